//! Engines of several nodes on one PostgreSQL server: a node whose scheduler would look for
//! work only once an hour is woken by what another node commits (`LISTEN`/`NOTIFY`).

use flowhost::clock::SystemClock;
use flowhost::engine::Engine;
use flowhost::engine::scheduler::{Round, Scheduler};
use flowhost::flow::FlowDef;
use flowhost::person::Person;
use flowhost::store::{ParticipantState, Status};
use flowhost_store_postgres::PostgresStore;
use flowhost_store_postgres::test_server::Server;
use serde_json::json;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc::UnboundedReceiver;

async fn node(url: &str) -> (Arc<PostgresStore>, Engine) {
    let store = Arc::new(PostgresStore::connect(url).await.unwrap());
    let types = flowhost::elements::builtins(store.clone());
    let engine = Engine::new(store.clone(), Arc::new(SystemClock), types);
    (store, engine)
}

/// The next round that `done` accepts, within ten seconds.
async fn round_where(
    rounds: &mut UnboundedReceiver<Round>,
    what: &str,
    done: impl Fn(&Round) -> bool,
) -> Round {
    tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let round = rounds.recv().await.unwrap();
            if done(&round) {
                return round;
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("no round {what}"))
}

#[tokio::test]
async fn a_node_is_woken_for_flows_and_participants_another_node_commits() {
    let server = tokio::task::spawn_blocking(Server::start).await.unwrap();
    let (_, busy) = node(&server.url).await;
    let (_, idle) = node(&server.url).await;
    let (tx, mut rounds) = tokio::sync::mpsc::unbounded_channel();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let scheduler = tokio::spawn(Scheduler::new(idle.clone(), Duration::from_secs(3600)).run(
        async {
            let _ = stopped.await;
        },
        move |round| {
            let _ = tx.send(round);
        },
    ));

    let def = json!({
        "id": "hello", "name": "Hello",
        "entry_points": [{"type": "api", "start": "greet"}],
        "elements": [
            {"id": "greet", "type": "set-variable", "config": {"set": {"greeting": "hi"}},
             "exits": {"next": "done"}},
            {"id": "done", "type": "exit"}
        ]
    });
    busy.deploy(
        FlowDef::parse(&def.to_string(), "hello.json").unwrap(),
        "hello.json",
    )
    .await
    .unwrap();
    round_where(&mut rounds, "loading the flow deployed elsewhere", |r| {
        r.flows.contains(&"hello".to_owned())
    })
    .await;

    // Left queued by the busy node (as Add to Flow or an API call does when it has more
    // than it runs at once).
    let p = ParticipantState::new("hello", 1, "greet", Person::default(), BTreeMap::new());
    busy.store()
        .insert_queued(std::slice::from_ref(&p), None)
        .await
        .unwrap();
    let round = round_where(&mut rounds, "running the queued participant", |r| {
        !r.resumed.is_empty()
    })
    .await;
    assert_eq!(round.resumed.len(), 1);
    assert_eq!(round.resumed[0].id, p.id);
    assert_eq!(round.resumed[0].status, Status::Completed);
    assert_eq!(round.resumed[0].variables["greeting"], "hi");

    stop.send(()).unwrap();
    scheduler.await.unwrap();
}
