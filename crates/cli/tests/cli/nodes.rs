//! Several nodes on one PostgreSQL: three `flowhost serve` processes share a database while
//! participants added through each of them run through a plugin, a Call API element with a
//! sending speed, a wait and Add to Flow. One node is killed with SIGKILL midway and another
//! restarted. At the end every participant has completed once (each journey whole, no step
//! twice), the sending speed held in total across the nodes, and a request the server saw
//! more than once carried the same idempotency key.

use super::crash::{FIRST_STEPS, KEY, LATER_STEPS, deploy, keys, post, random, serve, setup};
use super::*;
use flowhost::store::{ParticipantStore, RecordStore, Status};
use flowhost::testing::{Reply, TestServer};
use flowhost_store_postgres::PostgresStore;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Participants added to the first flow, across the nodes; each enters the second one too.
const PEOPLE: usize = 10_000;
/// The first flow's sending speed: 2,400 a minute, one request every 25 ms in total, so at
/// least 250 s for all. Slower than the three debug-built nodes run participants here (about
/// 45 a second, each through both flows), so it is what sets the pace, and three nodes each
/// keeping it alone would be done far sooner.
const PER_MINUTE: u64 = 2_400;

#[test]
fn three_nodes_on_postgresql_share_the_work_and_the_sending_speed() {
    let pg = flowhost_store_postgres::test_server::Server::start();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let arrivals: Arc<Mutex<Vec<(String, Instant)>>> = Arc::default();
    let log = Arc::clone(&arrivals);
    let srv = runtime.block_on(TestServer::start_replying(move |r| {
        log.lock().unwrap().push((r.path.clone(), Instant::now()));
        Reply::json(200, r#"{"value": 1}"#)
    }));
    let dir = tempfile::tempdir().unwrap();
    setup(dir.path(), &pg.url, "participant_calls_per_second = 100");

    let mut nodes: Vec<_> = (0..3).map(|_| serve(dir.path())).collect();
    deploy(&nodes[0].1, &srv.url(), Some(PER_MINUTE));
    // The other nodes pick the flows up from the database in their next round.
    std::thread::sleep(Duration::from_millis(300));
    for batch in 0..PEOPLE / 250 {
        let participants: Vec<_> = (batch * 250..(batch + 1) * 250)
            .map(|n| json!({"person": {"id": format!("person-{n}")}, "variables": {"n": n}}))
            .collect();
        let node = &nodes[batch % nodes.len()].1;
        post(
            node,
            "/v1/flows/first/participants",
            &json!({ "participants": participants }),
        );
    }

    // One node dies midway (the sending speed makes the run last at least 250 s); another
    // restarts.
    std::thread::sleep(Duration::from_millis(60_000 + random(60_000)));
    nodes[1].0.kill().unwrap();
    nodes[1].0.wait().unwrap();
    std::thread::sleep(Duration::from_millis(random(1000)));
    nodes[2].0.kill().unwrap();
    nodes[2].0.wait().unwrap();
    nodes[2] = serve(dir.path());

    let done = runtime.block_on(async {
        let store = PostgresStore::connect(&pg.url).await.unwrap();
        let deadline = Instant::now() + Duration::from_secs(600);
        loop {
            let completed = store
                .participants_of("first", &[Status::Completed])
                .await
                .unwrap()
                .len()
                + store
                    .participants_of("later", &[Status::Completed])
                    .await
                    .unwrap()
                    .len();
            let left = store
                .records("background", None, None, None)
                .await
                .unwrap()
                .len();
            if completed == 2 * PEOPLE && left == 0 {
                break store;
            }
            assert!(
                Instant::now() < deadline,
                "{completed} of {} participants completed, {left} requests not sent yet",
                2 * PEOPLE
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    });
    for (node, _) in &mut nodes {
        let _ = node.kill();
        let _ = node.wait();
    }

    // Each journey whole: seq 1..n, its flow's steps, each once.
    runtime.block_on(async {
        for flow in ["first", "later"] {
            let ids = done
                .participants_of(flow, &[Status::Completed, Status::Failed, Status::Running])
                .await
                .unwrap();
            assert_eq!(ids.len(), PEOPLE, "{flow}: nobody twice, nobody lost");
            for id in ids {
                let journey = done.journey(&id).await.unwrap();
                let seqs: Vec<u64> = journey.iter().map(|e| e.seq).collect();
                assert_eq!(seqs, (1..=journey.len() as u64).collect::<Vec<_>>(), "{id}");
                let mut steps: Vec<String> = journey
                    .iter()
                    .map(|e| {
                        let how = match (&e.exit, &e.data) {
                            (Some(exit), _) => exit.as_str(),
                            (None, Some(_)) => "report",
                            (None, None) => "-",
                        };
                        format!("{}:{how}", e.element_id)
                    })
                    .collect();
                if flow == "later" {
                    steps.sort();
                    assert_eq!(steps, LATER_STEPS, "{id}");
                } else {
                    // Queued for its sending slot, or not.
                    steps.retain(|s| s != "call:-");
                    assert_eq!(steps, FIRST_STEPS, "{id}: {journey:?}");
                }
            }
        }
    });

    // One key per request, every request sent.
    let keys = keys(&srv);
    assert!(keys.values().all(|k| k.len() == 1), "one key per request");
    for n in 0..PEOPLE {
        assert!(
            keys.contains_key(&format!("/call/{n}")),
            "/call/{n} never sent"
        );
        assert!(
            keys.contains_key(&format!("/later/{n}")),
            "/later/{n} never sent"
        );
    }

    // The sending speed held in total: the first and last of the rate-limited requests are
    // at least that far apart, where three nodes each keeping it alone would take a third.
    let calls: Vec<Instant> = arrivals
        .lock()
        .unwrap()
        .iter()
        .filter(|(path, _)| path.starts_with("/call/"))
        .map(|(_, at)| *at)
        .collect();
    let span = *calls.iter().max().unwrap() - *calls.iter().min().unwrap();
    let least = Duration::from_millis((PEOPLE as u64 - 1) * 60_000 / PER_MINUTE);
    assert!(
        span >= least.mul_f64(0.95),
        "{} requests in {span:?}; the sending speed needs at least {least:?}",
        calls.len()
    );
    eprintln!(
        "{} requests at the sending speed in {span:?} (at least {least:?}); {} requests in all",
        calls.len(),
        srv.received().len()
    );
}

/// A node that loses its database keeps answering liveness, says it is not ready and why,
/// and goes on by itself once the database is back: participants added before it was lost
/// complete.
#[test]
fn a_node_that_loses_the_database_waits_and_goes_on() {
    use super::service::http;
    let pg = flowhost_store_postgres::test_server::Server::start();
    let dir = tempfile::tempdir().unwrap();
    setup(dir.path(), &pg.url, "");
    let (_node, addr) = serve(dir.path());
    post(
        &addr,
        "/v1/flows",
        &json!({
            "id": "nap", "name": "Nap",
            "entry_points": [{"type": "api", "start": "w"}],
            "elements": [
                {"id": "w", "type": "wait", "config": {"duration": "2s"}, "exits": {"next": "e"}},
                {"id": "e", "type": "exit"}
            ]
        }),
    );
    let participants: Vec<_> = (0..20)
        .map(|n| json!({"person": {"id": format!("person-{n}")}}))
        .collect();
    post(
        &addr,
        "/v1/flows/nap/participants",
        &json!({ "participants": participants }),
    );
    assert_eq!(http(&addr, "GET", "/readyz", KEY, "").0, 200);

    pg.stop();
    let (status, body) = http(&addr, "GET", "/readyz", KEY, "");
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("the store does not answer"), "{body}");
    assert_eq!(http(&addr, "GET", "/livez", KEY, "").0, 200, "still alive");
    // Meanwhile the waits end; the scheduler's rounds fail and are tried again.
    std::thread::sleep(Duration::from_millis(2500));

    pg.restart();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (status, body) = http(
            &addr,
            "GET",
            "/v1/flows/nap/participants?status=completed",
            KEY,
            "",
        );
        let done = serde_json::from_str::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| v["participants"].as_array().map(Vec::len))
            .unwrap_or(0);
        if status == 200 && done == 20 {
            break;
        }
        assert!(Instant::now() < deadline, "{status}: {body}");
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(http(&addr, "GET", "/readyz", KEY, "").0, 200);
}
