//! Recovery from a crashed engine: its participants are taken over once their leases expire,
//! the re-run step is marked in the journey, and a long step keeps its lease by renewing it.

use flowhost::clock::{ManualClock, SystemClock};
use flowhost::config::OutboundConfig;
use flowhost::engine::Engine;
use flowhost::flow::FlowDef;
use flowhost::outbound::HttpClient;
use flowhost::person::Person;
use flowhost::store::{ParticipantState, ParticipantStore, SqliteStore, Status};
use flowhost::testing::{Reply, TestServer};
use serde_json::json;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

fn store(dir: &Path) -> Arc<SqliteStore> {
    Arc::new(SqliteStore::open(&dir.join("state.db")).unwrap())
}

fn engine(store: Arc<SqliteStore>, clock: Arc<dyn flowhost::clock::Clock>) -> Engine {
    let client = HttpClient::new(&OutboundConfig {
        allow_private: vec!["127.0.0.1".into()],
        ..OutboundConfig::default()
    })
    .unwrap();
    let types = flowhost::elements::builtins(store.clone())
        .with_call_api(client, &Default::default())
        .unwrap();
    Engine::new(store, clock, types)
}

/// set-variable, then a Call API request to `url`, then the end.
fn flow(url: &str) -> FlowDef {
    let def = json!({
        "id": "notify", "name": "Notify",
        "entry_points": [{"type": "api", "start": "mark"}],
        "elements": [
            {"id": "mark", "type": "set-variable", "config": {"set": {"marked": true}}, "exits": {"next": "call"}},
            {"id": "call", "type": "call-api", "config": {"url": url, "response": {"status": "code"}},
             "exits": {"2xx": "done"}},
            {"id": "done", "type": "exit"}
        ]
    });
    FlowDef::parse(&def.to_string(), "notify.json").unwrap()
}

#[tokio::test]
async fn a_crashed_engines_participant_is_taken_over_and_its_step_marked() {
    let dir = tempfile::tempdir().unwrap();
    let srv = TestServer::start_replying(|_| Reply::json(200, "{}")).await;
    let store = store(dir.path());
    let clock = Arc::new(ManualClock::new(1_000));
    let engine = engine(store.clone(), clock.clone()).with_lease(10_000);
    engine
        .deploy(flow(&format!("{}/hook", srv.url())), "notify.json")
        .await
        .unwrap();
    // An engine took the participant and died before its first commit.
    let p = ParticipantState::new(
        "notify",
        1,
        "mark",
        Person {
            id: "ada".into(),
            ..Person::default()
        },
        BTreeMap::new(),
    );
    store.insert_claimed(&p, "crashed", 5_000).await.unwrap();

    assert!(
        engine.resume_due().await.unwrap().is_empty(),
        "still leased"
    );
    clock.advance_ms(4_000);
    let resumed = engine.resume_due().await.unwrap();
    assert_eq!(resumed.len(), 1);
    assert_eq!(resumed[0].status, Status::Completed);
    assert_eq!(resumed[0].variables["code"], json!(200));
    let journey = engine.journey(&p.id).await.unwrap();
    let steps: Vec<(u64, &str, u32)> = journey
        .iter()
        .map(|e| (e.seq, e.element_id.as_str(), e.retried))
        .collect();
    // Up to and including the first step with outside effects, the steps ran before.
    assert_eq!(steps, [(1, "mark", 1), (2, "call", 1), (3, "done", 0)]);
    assert_eq!(srv.received().len(), 1);
}

/// A server answering after `delay_ms`, and two engines on one database with 150 ms leases,
/// both knowing the flow that calls it.
async fn two_engines(dir: &Path, delay_ms: u64) -> (TestServer, Engine, Engine) {
    let srv = TestServer::start_replying(move |_| {
        Reply::json(200, "{}").after(Duration::from_millis(delay_ms))
    })
    .await;
    let store = store(dir);
    let a = engine(store.clone(), Arc::new(SystemClock)).with_lease(150);
    let b = engine(store.clone(), Arc::new(SystemClock)).with_lease(150);
    a.deploy(flow(&format!("{}/hook", srv.url())), "notify.json")
        .await
        .unwrap();
    b.load_saved_flows().await.unwrap();
    (srv, a, b)
}

#[tokio::test]
async fn a_long_step_renews_its_lease_so_nobody_takes_it_over() {
    let dir = tempfile::tempdir().unwrap();
    let (srv, a, b) = two_engines(dir.path(), 600).await;
    let person = Person {
        id: "ada".into(),
        ..Person::default()
    };
    let running = tokio::spawn(async move { a.start("notify", person, BTreeMap::new()).await });
    // Four lease lengths into the request: engine b finds nothing to take over.
    for _ in 0..4 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(b.resume_due().await.unwrap().is_empty());
    }
    let p = running.await.unwrap().unwrap();
    assert_eq!(p.status, Status::Completed);
    assert_eq!(srv.received().len(), 1, "sent once");
    let journey = b.journey(&p.id).await.unwrap();
    assert!(journey.iter().all(|e| e.retried == 0), "{journey:?}");
}

/// An engine that dies after its request went out (its task ends mid-step, as the process
/// would): once the lease expires another engine runs the step again, and the server sees
/// the same idempotency key twice.
#[tokio::test]
async fn a_step_run_again_sends_the_same_idempotency_key() {
    let dir = tempfile::tempdir().unwrap();
    let (srv, a, b) = two_engines(dir.path(), 400).await;
    let person = Person {
        id: "ada".into(),
        ..Person::default()
    };
    let doomed = tokio::spawn(async move { a.start("notify", person, BTreeMap::new()).await });
    while srv.received().is_empty() {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    doomed.abort();
    let _ = doomed.await;
    tokio::time::sleep(Duration::from_millis(200)).await;

    let resumed = b.resume_due().await.unwrap();
    assert_eq!(resumed.len(), 1);
    assert_eq!(resumed[0].status, Status::Completed);
    let got = srv.received();
    assert_eq!(got.len(), 2);
    let keys: Vec<_> = got.iter().map(|r| r.header("idempotency-key")).collect();
    let first = keys[0].expect("a key");
    assert_eq!(
        first,
        format!("{}:2:1", resumed[0].id),
        "participant:step:request"
    );
    assert_eq!(keys[1], Some(first));
    let journey = b.journey(&resumed[0].id).await.unwrap();
    let call = journey.iter().find(|e| e.element_id == "call").unwrap();
    assert_eq!(call.retried, 1);
}

/// A request sent without waiting for its response is kept with its step: when the process
/// dies before it is through (here, while it waits to retry a 503), the next process sends
/// it, with the same idempotency key, and its report joins the journey once.
#[test]
fn requests_sent_without_waiting_survive_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    let main = tokio::runtime::Runtime::new().unwrap();
    let calls = std::sync::atomic::AtomicU32::new(0);
    let srv = main.block_on(TestServer::start_replying(move |_| {
        match calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst) {
            0 => Reply::json(503, "{}"),
            _ => Reply::json(200, "{}"),
        }
    }));
    let def = json!({
        "id": "later", "name": "Later",
        "entry_points": [{"type": "api", "start": "send"}],
        "elements": [
            {"id": "send", "type": "call-api", "exits": {"next": "done"}, "config": {
                "url": format!("{}/later", srv.url()), "wait_for_response": false,
                "retry": {"max_attempts": 3, "initial_backoff_ms": 60000}}},
            {"id": "done", "type": "exit"}
        ]
    });
    let def = FlowDef::parse(&def.to_string(), "later.json").unwrap();

    // The first process, on a runtime of its own, dies while the request waits to retry.
    let id = std::thread::scope(|scope| {
        scope
            .spawn(|| {
                let rt = tokio::runtime::Runtime::new().unwrap();
                let id = rt.block_on(async {
                    // Short leases: what it held is free soon after it dies.
                    let a = engine(store(dir.path()), Arc::new(SystemClock)).with_lease(150);
                    a.deploy(def, "later.json").await.unwrap();
                    let person = Person {
                        id: "ada".into(),
                        ..Person::default()
                    };
                    let p = a.start("later", person, BTreeMap::new()).await.unwrap();
                    assert_eq!(p.status, Status::Completed, "moved on without waiting");
                    p.id
                });
                while srv.received().is_empty() {
                    std::thread::sleep(Duration::from_millis(5));
                }
                rt.shutdown_background();
                id
            })
            .join()
            .unwrap()
    });

    std::thread::sleep(Duration::from_millis(200));
    main.block_on(async {
        let b = engine(store(dir.path()), Arc::new(SystemClock));
        assert_eq!(
            b.send_background().await.unwrap(),
            1,
            "the request is still kept"
        );
        b.finish_background().await;
        assert_eq!(b.send_background().await.unwrap(), 0, "and then done");
        let got = srv.received();
        assert_eq!(got.len(), 2);
        let key = got[0].header("idempotency-key").unwrap();
        assert_eq!(key, format!("{id}:1:1"));
        assert_eq!(got[1].header("idempotency-key"), Some(key));
        let journey = b.journey(&id).await.unwrap();
        let reports: Vec<_> = journey
            .iter()
            .filter_map(|e| e.data.as_ref().map(|d| d["status"].clone()))
            .collect();
        assert_eq!(reports, [json!(200)], "{journey:?}");
    });
}

/// Two engines on one database: a request sent without waiting goes out once, though the
/// other engine's scheduler finds it recorded while it is being sent.
#[tokio::test]
async fn a_request_sent_without_waiting_is_sent_by_one_engine() {
    let dir = tempfile::tempdir().unwrap();
    let srv =
        TestServer::start_replying(|_| Reply::json(200, "{}").after(Duration::from_millis(400)))
            .await;
    let store = store(dir.path());
    let a = engine(store.clone(), Arc::new(SystemClock)).with_lease(150);
    let b = engine(store.clone(), Arc::new(SystemClock)).with_lease(150);
    let def = json!({
        "id": "later", "name": "Later",
        "entry_points": [{"type": "api", "start": "send"}],
        "elements": [
            {"id": "send", "type": "call-api", "exits": {"next": "done"}, "config": {
                "url": format!("{}/later", srv.url()), "wait_for_response": false}},
            {"id": "done", "type": "exit"}
        ]
    });
    a.deploy(
        FlowDef::parse(&def.to_string(), "later.json").unwrap(),
        "later.json",
    )
    .await
    .unwrap();
    b.load_saved_flows().await.unwrap();
    let person = Person {
        id: "ada".into(),
        ..Person::default()
    };
    let p = a.start("later", person, BTreeMap::new()).await.unwrap();
    assert_eq!(p.status, Status::Completed);
    // Engine b's rounds see the record for as long as the request takes (several of a's
    // renewals), and leave it alone.
    for _ in 0..4 {
        b.send_background().await.unwrap();
        b.finish_background().await;
        tokio::time::sleep(Duration::from_millis(60)).await;
    }
    a.finish_background().await;
    assert_eq!(b.send_background().await.unwrap(), 0, "done and removed");
    assert_eq!(srv.received().len(), 1, "sent once");
    let journey = a.journey(&p.id).await.unwrap();
    let reports = journey.iter().filter(|e| e.data.is_some()).count();
    assert_eq!(reports, 1, "{journey:?}");
}
