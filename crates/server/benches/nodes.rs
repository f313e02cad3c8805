//! Several nodes on one PostgreSQL server, beside one node on SQLite, with the raw commit
//! rates of both databases as baselines, measured in the same run.
//!
//! Run with `./dev bench` (or `cargo bench -p flowhost-server --bench nodes`); it prints a
//! table, and the figures with the machine go in docs/BENCHMARKS.md.
//!
//! A node here is what `flowhost serve` runs for its participants: an engine with a store of
//! its own (its own connection pool and its own listening connection on PostgreSQL) and a
//! scheduler, all in this one process; the nodes share the machine's cores with each other
//! and with PostgreSQL, as they would on one host.
//!
//! 1. **Steps a second**: 10,000 participants are queued in a flow of five native elements
//!    (set-variable, branch, set-variable, set-variable, exit); then every node's scheduler
//!    runs until all have completed. Steps a second = 50,000 / that time.
//! 2. **Claim latency**: 10,000 participants queued, and each node claims batches of 100
//!    (`claim_due`, one statement) at the same time until none is left; each call is timed.
//!
//! Baselines: one-row `INSERT`s, each its own transaction, on one connection (PostgreSQL
//! through `tokio-postgres`; SQLite through `rusqlite` on a file with the store's pragmas).

use flowhost::clock::SystemClock;
use flowhost::engine::Engine;
use flowhost::engine::scheduler::Scheduler;
use flowhost::flow::FlowDef;
use flowhost::person::Person;
use flowhost::store::{ParticipantState, SqliteStore, StateStore};
use flowhost_store_postgres::PostgresStore;
use flowhost_store_postgres::test_server::Server;
use serde_json::json;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

const PARTICIPANTS: usize = 10_000;
const STEPS: usize = 5;
const CLAIM_BATCH: usize = 100;
const RAW_COMMITS: usize = 2_000;

fn five() -> FlowDef {
    let def = json!({
        "id": "five", "name": "Five",
        "entry_points": [{"type": "api", "start": "a"}],
        "elements": [
            {"id": "a", "type": "set-variable", "config": {"set": {"a": 1}}, "exits": {"next": "check"}},
            {"id": "check", "type": "branch",
             "config": {"conditions": [{"exit": "big",
                 "all": [{"variable": "n", "op": "greater_than", "value": 5000}]}]},
             "exits": {"big": "b", "otherwise": "b"}},
            {"id": "b", "type": "set-variable", "config": {"set": {"b": 2}}, "exits": {"next": "c"}},
            {"id": "c", "type": "set-variable", "config": {"set": {"c": 3}}, "exits": {"next": "done"}},
            {"id": "done", "type": "exit"}
        ]
    });
    FlowDef::parse(&def.to_string(), "five.json").unwrap()
}

fn engine(store: &Arc<dyn StateStore>) -> Engine {
    Engine::new(
        store.clone(),
        Arc::new(SystemClock),
        flowhost::elements::builtins(store.clone()),
    )
}

/// Queues `PARTICIPANTS` in the flow, in calls of 1000.
async fn queue(store: &dyn StateStore) {
    for call in 0..PARTICIPANTS / 1000 {
        let batch: Vec<ParticipantState> = (0..1000)
            .map(|i| {
                let person = Person {
                    id: format!("p{call}-{i}"),
                    ..Person::default()
                };
                let vars = BTreeMap::from([("n".to_owned(), json!(call * 1000 + i))]);
                ParticipantState::new("five", 1, "a", person, vars)
            })
            .collect();
        store.insert_queued(&batch, None).await.unwrap();
    }
}

/// Steps a second with a node on each store.
async fn steps_per_second(stores: &[Arc<dyn StateStore>]) -> f64 {
    let engines: Vec<Engine> = stores.iter().map(engine).collect();
    engines[0].deploy(five(), "five.json").await.unwrap();
    for e in &engines[1..] {
        e.load_saved_flows().await.unwrap();
    }
    queue(&*stores[0]).await;
    let (stop, stopping) = tokio::sync::watch::channel(false);
    let started = Instant::now();
    let schedulers: Vec<_> = engines
        .iter()
        .map(|e| {
            let mut stopping = stopping.clone();
            tokio::spawn(
                Scheduler::new(e.clone(), Duration::from_millis(10))
                    .keep_states(false)
                    .run(
                        async move {
                            let _ = stopping.wait_for(|s| *s).await;
                        },
                        |_| {},
                    ),
            )
        })
        .collect();
    loop {
        let counts = stores[0].status_counts("five", 0).await.unwrap();
        if counts.completed as usize == PARTICIPANTS {
            break;
        }
        assert_eq!(counts.failed, 0);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let took = started.elapsed();
    stop.send(true).unwrap();
    for s in schedulers {
        s.await.unwrap();
    }
    (PARTICIPANTS * STEPS) as f64 / took.as_secs_f64()
}

/// Every store claims batches at once until nothing is due; each call's time.
async fn claim_times(stores: &[Arc<dyn StateStore>]) -> Vec<Duration> {
    engine(&stores[0])
        .deploy(five(), "five.json")
        .await
        .unwrap();
    queue(&*stores[0]).await;
    let claimers: Vec<_> = stores
        .iter()
        .enumerate()
        .map(|(n, store)| {
            let store = store.clone();
            tokio::spawn(async move {
                let owner = format!("node-{n}");
                let (mut times, mut claimed) = (Vec::new(), 0);
                loop {
                    let started = Instant::now();
                    let now = flowhost::clock::Clock::now_ms(&SystemClock);
                    let claims = store
                        .claim_due(&owner, now, now + 60_000, CLAIM_BATCH, &[])
                        .await
                        .unwrap();
                    if claims.is_empty() {
                        return (times, claimed);
                    }
                    times.push(started.elapsed());
                    claimed += claims.len();
                }
            })
        })
        .collect();
    let (mut times, mut claimed) = (Vec::new(), 0);
    for c in claimers {
        let (t, n) = c.await.unwrap();
        times.extend(t);
        claimed += n;
    }
    assert_eq!(claimed, PARTICIPANTS, "every participant claimed once");
    times.sort();
    times
}

async fn postgres_stores(server: &Server, nodes: usize) -> Vec<Arc<dyn StateStore>> {
    let mut stores: Vec<Arc<dyn StateStore>> = Vec::new();
    for _ in 0..nodes {
        stores.push(Arc::new(PostgresStore::connect(&server.url).await.unwrap()));
    }
    stores
}

fn sqlite_store(dir: &std::path::Path) -> Vec<Arc<dyn StateStore>> {
    vec![Arc::new(SqliteStore::open(&dir.join("state.db")).unwrap())]
}

/// Commits a second, one single-row `INSERT` each, on a SQLite file.
fn raw_sqlite(dir: &std::path::Path) -> f64 {
    let conn = rusqlite::Connection::open(dir.join("raw.db")).unwrap();
    conn.pragma_update(None, "journal_mode", "WAL").unwrap();
    conn.pragma_update(None, "synchronous", "NORMAL").unwrap();
    conn.execute_batch("CREATE TABLE raw (id TEXT PRIMARY KEY, body TEXT)")
        .unwrap();
    let mut insert = conn.prepare("INSERT INTO raw VALUES (?1, ?2)").unwrap();
    let started = Instant::now();
    for i in 0..RAW_COMMITS {
        insert
            .execute(rusqlite::params![format!("row-{i}"), r#"{"n": 1}"#])
            .unwrap();
    }
    RAW_COMMITS as f64 / started.elapsed().as_secs_f64()
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let at = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[at].as_secs_f64() * 1000.0
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        println!("\n1. Steps a second, {PARTICIPANTS} participants through {STEPS} native elements");
        println!("{:<44} {:>12}", "", "steps/s");
        let dir = tempfile::tempdir().unwrap();
        let sqlite = steps_per_second(&sqlite_store(dir.path())).await;
        println!("{:<44} {:>12.0}", "SQLite, 1 node", sqlite);
        for nodes in 1..=3 {
            let server = tokio::task::spawn_blocking(Server::start).await.unwrap();
            let rate = steps_per_second(&postgres_stores(&server, nodes).await).await;
            println!("{:<44} {:>12.0}", format!("PostgreSQL, {nodes} node(s)"), rate);
        }
        let server = tokio::task::spawn_blocking(Server::start).await.unwrap();
        println!(
            "{:<44} {:>12.0}",
            "baseline: raw PostgreSQL commits/s",
            server.raw_commit_rates("nodes", RAW_COMMITS).await.0
        );
        println!(
            "{:<44} {:>12.0}",
            "baseline: raw SQLite commits/s",
            raw_sqlite(dir.path())
        );

        println!(
            "\n2. Claim latency, {PARTICIPANTS} queued, batches of {CLAIM_BATCH}, every node at once"
        );
        println!("{:<44} {:>10} {:>10} {:>10}", "", "p50 ms", "p99 ms", "max ms");
        let dir = tempfile::tempdir().unwrap();
        let mut runs = vec![("SQLite, 1 node".to_owned(), claim_times(&sqlite_store(dir.path())).await)];
        for nodes in 1..=3 {
            let server = tokio::task::spawn_blocking(Server::start).await.unwrap();
            let times = claim_times(&postgres_stores(&server, nodes).await).await;
            runs.push((format!("PostgreSQL, {nodes} node(s)"), times));
        }
        for (name, times) in runs {
            println!(
                "{:<44} {:>10.2} {:>10.2} {:>10.2}",
                name,
                percentile(&times, 0.5),
                percentile(&times, 0.99),
                percentile(&times, 1.0)
            );
        }
    });
}
