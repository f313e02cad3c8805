//! A real PostgreSQL server for tests (feature `test-server`): `initdb` and `pg_ctl` on a temporary folder and a free
//! local port, as an unprivileged user (`postgres` when the tests run as root, since initdb
//! refuses root), stopped and removed when dropped.

use std::path::{Path, PathBuf};
use std::process::Command;

/// A running server with one database for the test.
pub struct Server {
    dir: tempfile::TempDir,
    bin: PathBuf,
    as_root: bool,
    /// The server's command-line options (port, socket folder).
    options: String,
    /// `postgres://flowhost@127.0.0.1:PORT/flowhost`.
    pub url: String,
}

/// Where Debian's `postgresql` package puts `initdb` and `pg_ctl`.
fn bin_dir() -> PathBuf {
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path().join("bin"))
        .filter(|b| b.join("initdb").is_file())
        .collect();
    found.sort();
    found.pop().unwrap_or_else(|| {
        panic!(
            "PostgreSQL is not installed: `apt-get install postgresql` (./dev and .ci/run do it)"
        )
    })
}

/// `program args`, as `postgres` when running as root.
fn command(as_root: bool, program: &Path) -> Command {
    if as_root {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(program);
        c
    } else {
        Command::new(program)
    }
}

fn run(as_root: bool, program: &Path, args: &[&str]) {
    let out = command(as_root, program)
        .args(args)
        .output()
        .expect("running a PostgreSQL tool");
    assert!(
        out.status.success(),
        "{} {args:?}: {}{}",
        program.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Server {
    /// Starts a fresh server with a database `flowhost` owned by user `flowhost`.
    pub fn start() -> Server {
        let bin = bin_dir();
        let as_root = Command::new("id")
            .arg("-u")
            .output()
            .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
        let dir = tempfile::Builder::new()
            .prefix("flowhost-pg")
            .tempdir()
            .unwrap();
        if as_root {
            let status = Command::new("chown")
                .arg("postgres")
                .arg(dir.path())
                .status()
                .unwrap();
            assert!(status.success(), "chown postgres {}", dir.path().display());
        }
        let data = dir.path().join("data");
        let data = data.to_str().unwrap();
        run(
            as_root,
            &bin.join("initdb"),
            &[
                "-D",
                data,
                "-A",
                "trust",
                "-U",
                "flowhost",
                "-E",
                "UTF8",
                "--no-sync",
            ],
        );
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let options = format!(
            "-p {port} -k {} -c listen_addresses=127.0.0.1 -c fsync=off",
            dir.path().display()
        );
        let log = dir.path().join("log");
        run(
            as_root,
            &bin.join("pg_ctl"),
            &[
                "-D",
                data,
                "-o",
                &options,
                "-l",
                log.to_str().unwrap(),
                "-w",
                "start",
            ],
        );
        run(
            as_root,
            &bin.join("createdb"),
            &[
                "-h",
                "127.0.0.1",
                "-p",
                &port.to_string(),
                "-U",
                "flowhost",
                "flowhost",
            ],
        );
        Server {
            url: format!("postgres://flowhost@127.0.0.1:{port}/flowhost"),
            dir,
            bin,
            as_root,
            options,
        }
    }
}

impl Server {
    /// A benchmark's baseline, measured on this server: rows a second written with one-row
    /// `INSERT`s on one connection, each its own commit, then 100 to a commit. Each call
    /// writes to a table of its own (`raw_<table>`).
    pub async fn raw_commit_rates(&self, table: &str, rows: usize) -> (f64, f64) {
        let (mut client, connection) = tokio_postgres::connect(&self.url, tokio_postgres::NoTls)
            .await
            .expect("connecting for the raw baseline");
        tokio::spawn(connection);
        client
            .batch_execute(&format!(
                "CREATE TABLE raw_{table} (id TEXT PRIMARY KEY, body TEXT)"
            ))
            .await
            .expect("creating the raw baseline's table");
        let insert = client
            .prepare(&format!("INSERT INTO raw_{table} VALUES ($1, $2)"))
            .await
            .expect("preparing the raw baseline's insert");
        let body = r#"{"n": 1}"#;
        let started = std::time::Instant::now();
        for i in 0..rows {
            client
                .execute(&insert, &[&format!("one-{i}"), &body])
                .await
                .expect("a raw one-row commit");
        }
        let single = rows as f64 / started.elapsed().as_secs_f64();
        let started = std::time::Instant::now();
        for batch in 0..rows / 100 {
            let tx = client.transaction().await.expect("a raw transaction");
            for i in 0..100 {
                tx.execute(&insert, &[&format!("many-{batch}-{i}"), &body])
                    .await
                    .expect("a raw insert");
            }
            tx.commit().await.expect("a raw commit of 100 rows");
        }
        (
            single,
            (rows / 100 * 100) as f64 / started.elapsed().as_secs_f64(),
        )
    }

    /// Creates another database on this server, empty, and returns its URL.
    pub async fn database(&self, name: &str) -> String {
        let (client, connection) = tokio_postgres::connect(&self.url, tokio_postgres::NoTls)
            .await
            .expect("connecting to create a database");
        tokio::spawn(connection);
        client
            .batch_execute(&format!("CREATE DATABASE \"{name}\""))
            .await
            .expect("creating a database");
        let (server, _) = self.url.rsplit_once('/').expect("the URL names a database");
        format!("{server}/{name}")
    }

    /// Stops the server at once, as a crash or a lost network would look to its clients.
    pub fn stop(&self) {
        let data = self.dir.path().join("data");
        run(
            self.as_root,
            &self.bin.join("pg_ctl"),
            &["-D", data.to_str().unwrap(), "-m", "immediate", "stop"],
        );
    }

    /// Starts it again, on the same data and port.
    pub fn restart(&self) {
        let data = self.dir.path().join("data");
        let log = self.dir.path().join("log");
        run(
            self.as_root,
            &self.bin.join("pg_ctl"),
            &[
                "-D",
                data.to_str().unwrap(),
                "-o",
                &self.options,
                "-l",
                log.to_str().unwrap(),
                "-w",
                "start",
            ],
        );
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let data = self.dir.path().join("data");
        let _ = command(self.as_root, &self.bin.join("pg_ctl"))
            .args(["-D", data.to_str().unwrap(), "-m", "immediate", "stop"])
            .output();
    }
}
