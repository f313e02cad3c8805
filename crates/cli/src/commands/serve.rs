//! `flowhost serve [--listen ADDR]`: the engine as a service (the HTTP API and the scheduler)
//! until SIGTERM or Ctrl-C; `flowhost serve --hash-key` prints the digest of an API key.

use crate::setup;
use anyhow::Context;
use flowhost::config::OperatorConfig;
use flowhost_server::{Server, hash_key};
use std::io::Read;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct Args {
    /// Address to listen on; defaults to `[server] listen` (127.0.0.1:8080).
    #[arg(long, value_name = "ADDR")]
    listen: Option<String>,
    /// Read an API key on stdin, print its SHA-256 for `[server] api_keys`, and exit (so
    /// the key never appears in the configuration or the process list).
    #[arg(long)]
    hash_key: bool,
}

pub async fn run(args: Args, config: OperatorConfig) -> anyhow::Result<ExitCode> {
    if args.hash_key {
        let mut key = String::new();
        std::io::stdin()
            .read_to_string(&mut key)
            .context("reading the API key on stdin")?;
        let key = key.trim();
        anyhow::ensure!(
            !key.is_empty(),
            "no key on stdin; pipe the key in: echo -n KEY | flowhost serve --hash-key"
        );
        println!("{}", hash_key(key));
        return Ok(ExitCode::SUCCESS);
    }
    let listen = args.listen.unwrap_or_else(|| config.server.listen.clone());
    let server_config = config.server.clone();
    // Before the runtime starts, so plugin load failures are counted.
    flowhost_server::metrics::install();
    let runtime = setup::runtime(config).await?;
    let server = Server::new(runtime, &server_config)?;
    let listener = tokio::net::TcpListener::bind(&listen)
        .await
        .with_context(|| {
            format!(
                "cannot listen on {listen}; pick another address with --listen or [server] listen"
            )
        })?;
    let addr = listener.local_addr()?;
    eprintln!("flowhost serving on http://{addr}; SIGTERM or Ctrl-C stops it");
    server.run(listener, shutdown_signal()).await?;
    eprintln!("flowhost stopped");
    Ok(ExitCode::SUCCESS)
}

/// SIGTERM (how service managers stop a service) or Ctrl-C.
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
