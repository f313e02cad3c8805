//! kill -9 loses nothing: `flowhost serve` runs a few thousand participants through a plugin,
//! Call API requests (one waiting for its answer, one sent without waiting), a wait and Add to
//! Flow, and is killed with SIGKILL at random moments and restarted, several times. Then every
//! participant has completed, every journey is whole (sequence numbers from 1 without a gap,
//! no step twice), every request sent without waiting reached the server, and a request the
//! server saw more than once carried the same idempotency key each time.

use super::*;
use flowhost::testing::{Reply, TestServer};
use std::collections::{BTreeMap, BTreeSet};
use std::hash::{BuildHasher, Hasher};
use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

/// Participants added to the first flow; each enters the second one too.
const PEOPLE: usize = 2000;
/// Times the service is killed.
const KILLS: usize = 4;
pub(super) const KEY: &str = "crash-test-key";

/// A number from 0 to `below`, different on every run.
pub(super) fn random(below: u64) -> u64 {
    std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish()
        % below
}

/// A `flowhost serve` process, killed when dropped, so none outlives a failed test.
pub(super) struct Service(Child);

impl std::ops::Deref for Service {
    type Target = Child;
    fn deref(&self) -> &Child {
        &self.0
    }
}

impl std::ops::DerefMut for Service {
    fn deref_mut(&mut self) -> &mut Child {
        &mut self.0
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `flowhost serve` in `dir`; the process and the address it listens on.
pub(super) fn serve(dir: &Path) -> (Service, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_flowhost"))
        .current_dir(dir)
        .arg("serve")
        .env("FLOWHOST_CRASH_KEY", KEY)
        .env("FLOWHOST_LOG", "error")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let addr = super::service::listen_address(&mut stderr);
    // Keep reading, so the service never blocks on a full pipe.
    std::thread::spawn(move || for _ in stderr.lines() {});
    (Service(child), addr)
}

pub(super) fn post(addr: &str, path: &str, body: &serde_json::Value) -> String {
    let (status, answer) = super::service::http(addr, "POST", path, KEY, &body.to_string());
    assert!((200..=202).contains(&status), "{path}: {status} {answer}");
    answer
}

/// The steps of a participant of the first flow, and of the second (sorted: the report of
/// the request sent without waiting comes when it comes), as `element:exit`.
pub(super) const FIRST_STEPS: [&str; 6] = [
    "plug:found",
    "call:2xx",
    "nap:-",
    "nap:next",
    "add:success",
    "end:-",
];
pub(super) const LATER_STEPS: [&str; 3] = ["end:-", "send:next", "send:report"];

/// The plugin and flowhost.toml for services on `database`, with `server` added to
/// `[server]`.
pub(super) fn setup(dir: &Path, database: &str, server: &str) {
    std::fs::create_dir_all(dir.join("plugins")).unwrap();
    std::fs::copy(c::HAPPY, dir.join("plugins/happy.wasm")).unwrap();
    std::fs::write(
        dir.join("flowhost.toml"),
        format!(
            r#"
database = "{database}"
cache_dir = "cache"
lease_ms = 1000

[outbound]
allow_private = ["127.0.0.1"]

[plugins.happy]
allow_hosts = ["127.0.0.1"]

[server]
listen = "127.0.0.1:0"
scheduler_every_ms = 50
api_keys = [{{ name = "crash", env = "FLOWHOST_CRASH_KEY" }}]
{server}
"#
        ),
    )
    .unwrap();
}

/// Deploys `later` (a request sent without waiting) and `first` (the plugin, a request,
/// optionally at a sending speed of `per_minute`, a wait, Add to Flow into `later`), both
/// calling `base`.
pub(super) fn deploy(addr: &str, base: &str, per_minute: Option<u64>) {
    post(
        addr,
        "/v1/flows",
        &json!({
            "id": "later", "name": "Later",
            "entry_points": [{"type": "existing-flow", "start": "send"}],
            "elements": [
                {"id": "send", "type": "call-api", "exits": {"next": "end"},
                 "config": {"url": format!("{base}/later/{{{{n}}}}"), "wait_for_response": false}},
                {"id": "end", "type": "exit"}
            ]
        }),
    );
    let mut call = json!({"url": format!("{base}/call/{{{{n}}}}")});
    if let Some(n) = per_minute {
        call["schedule"] = json!({"rate": {"requests": n, "per": "minute"}});
    }
    post(
        addr,
        "/v1/flows",
        &json!({
            "id": "first", "name": "First",
            "entry_points": [{"type": "api", "start": "plug"}],
            "elements": [
                {"id": "plug", "type": "plugin:happy", "config": {"url": format!("{base}/plugin")},
                 "exits": {"found": "call", "not-found": "call", "error": "call"}},
                {"id": "call", "type": "call-api", "config": call,
                 "exits": {"2xx": "nap", "error": "nap"}},
                {"id": "nap", "type": "wait", "config": {"duration": "1s"}, "exits": {"next": "add"}},
                {"id": "add", "type": "add-to-flow", "config": {"flow": "later", "variables": {"n": "{{n}}"}},
                 "exits": {"success": "end", "failover": "end"}},
                {"id": "end", "type": "exit"}
            ]
        }),
    );
}

/// The idempotency keys the server saw, by request: the path, or the plugin's participant.
pub(super) fn keys(srv: &TestServer) -> BTreeMap<String, BTreeSet<String>> {
    let mut keys: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for request in srv.received() {
        let what = match request.path.as_str() {
            "/plugin" => format!("plugin {}", request.header("x-participant").unwrap()),
            other => other.to_owned(),
        };
        let key = request
            .header("idempotency-key")
            .unwrap_or_else(|| panic!("{what}: no idempotency key"));
        keys.entry(what).or_default().insert(key.to_owned());
    }
    keys
}

#[test]
fn killed_at_random_moments_the_service_loses_nothing() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let srv = runtime.block_on(TestServer::start_replying(|_| {
        Reply::json(200, r#"{"value": 1}"#)
    }));
    let dir = tempfile::tempdir().unwrap();
    setup(dir.path(), "state.db", "");

    let (mut service, addr) = serve(dir.path());
    deploy(&addr, &srv.url(), None);
    for batch in 0..PEOPLE / 1000 {
        let participants: Vec<_> = (batch * 1000..(batch + 1) * 1000)
            .map(|n| json!({"person": {"id": format!("person-{n}")}, "variables": {"n": n}}))
            .collect();
        post(
            &addr,
            "/v1/flows/first/participants",
            &json!({ "participants": participants }),
        );
    }

    let db = rusqlite::Connection::open(dir.path().join("state.db")).unwrap();
    let count = |sql: &str| -> i64 { db.query_row(sql, [], |r| r.get(0)).unwrap() };
    let mut killed_at = Vec::new();
    for _ in 0..KILLS {
        std::thread::sleep(Duration::from_millis(200 + random(1200)));
        service.kill().unwrap();
        service.wait().unwrap();
        killed_at.push(count(
            "SELECT COUNT(*) FROM participants WHERE status = 'completed'",
        ));
        (service, _) = serve(dir.path());
    }
    eprintln!("completed when killed: {killed_at:?} of {}", 2 * PEOPLE);
    assert!(
        killed_at[0] < 2 * PEOPLE as i64,
        "the first kill came after the work was done: {killed_at:?}"
    );

    // Everyone finishes: the ones the dead processes held, once their leases expire.
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let done = count("SELECT COUNT(*) FROM participants WHERE status = 'completed'");
        let left = count("SELECT COUNT(*) FROM records WHERE kind = 'background'");
        if done == 2 * PEOPLE as i64 && left == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{done} of {} participants completed, {left} requests not sent yet",
            2 * PEOPLE
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    service.kill().unwrap();
    service.wait().unwrap();

    assert_eq!(
        count("SELECT COUNT(*) FROM participants"),
        2 * PEOPLE as i64,
        "nobody was added twice"
    );
    // Each journey: seq 1..n without a gap, and the steps of its flow, each once.
    let mut stmt = db
        .prepare("SELECT p.id, p.flow_id, j.seq, j.entry FROM participants p JOIN journey j ON j.participant_id = p.id ORDER BY p.id, j.seq")
        .unwrap();
    let mut journeys: BTreeMap<String, (String, Vec<(u64, String)>)> = BTreeMap::new();
    let rows = stmt
        .query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, i64>(2)?,
                r.get::<_, String>(3)?,
            ))
        })
        .unwrap();
    for row in rows {
        let (id, flow, seq, entry) = row.unwrap();
        let entry: serde_json::Value = serde_json::from_str(&entry).unwrap();
        let step = format!(
            "{}:{}",
            entry["element_id"].as_str().unwrap(),
            entry["exit"]
                .as_str()
                .unwrap_or(if entry["data"].is_null() {
                    "-"
                } else {
                    "report"
                })
        );
        journeys
            .entry(id)
            .or_insert_with(|| (flow, Vec::new()))
            .1
            .push((seq as u64, step));
    }
    assert_eq!(journeys.len(), 2 * PEOPLE);
    for (id, (flow, steps)) in &journeys {
        let seqs: Vec<u64> = steps.iter().map(|(s, _)| *s).collect();
        assert_eq!(seqs, (1..=steps.len() as u64).collect::<Vec<_>>(), "{id}");
        let mut names: Vec<&str> = steps.iter().map(|(_, s)| s.as_str()).collect();
        if flow == "later" {
            // The report of the request sent without waiting comes when it comes.
            names.sort();
            assert_eq!(names, LATER_STEPS, "{id}: {steps:?}");
        } else {
            assert_eq!(names, FIRST_STEPS, "{id}: {steps:?}");
        }
    }

    // Every request reached the server; one seen again carried the same key.
    let keys = keys(&srv);
    for n in 0..PEOPLE {
        for what in [format!("/call/{n}"), format!("/later/{n}")] {
            let seen = keys
                .get(&what)
                .unwrap_or_else(|| panic!("{what} never sent"));
            assert_eq!(seen.len(), 1, "{what}: {seen:?}");
        }
    }
    let plugin_calls = keys.keys().filter(|k| k.starts_with("plugin ")).count();
    assert_eq!(plugin_calls, PEOPLE);
    assert!(keys.values().all(|k| k.len() == 1), "one key per request");
    let again = srv.received().len() - keys.len();
    let retried = count("SELECT COUNT(*) FROM journey WHERE json_extract(entry, '$.retried') > 0");
    eprintln!("requests sent again: {again}; journey steps run again: {retried}");
}
