//! Delivery windows, sending speed and retries, with an injected clock and restarts.

use super::*;

#[tokio::test]
async fn outside_the_delivery_window_the_participant_waits_across_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let srv = echo_server().await;
    // Friday 2026-11-27, 18:00 in Zagreb (17:00Z): the window opens Monday 09:00 (08:00Z).
    let friday = ms("2026-11-27T17:00:00Z");
    let h = harness_with(dir.path(), friday, outbound(), call_api_config());
    let config = json!({
        "url": format!("{}/window", srv.url()),
        "schedule": {"window": {"start": "09:00", "end": "17:00", "time_zone": "Europe/Zagreb",
                                 "days": ["mon", "tue", "wed", "thu", "fri"]}}
    });
    let (p, journey) = h.run(flow("window", config, ALL_EXITS), json!({})).await;
    assert_eq!(p.status, Status::Waiting);
    let monday = ms("2026-11-30T08:00:00Z");
    assert_eq!(p.waiting_until, Some(monday));
    assert!(
        logs(&journey[0]).contains("opens at 2026-11-30 09:00 CET"),
        "{}",
        logs(&journey[0])
    );
    assert_eq!(
        h.engine
            .waiting_count("window", "call", "window")
            .await
            .unwrap(),
        1
    );
    assert!(srv.received().is_empty());
    drop(h);

    // A new engine on the same database, a minute before opening: nothing yet.
    let h = harness_with(dir.path(), monday - 60_000, outbound(), call_api_config());
    assert!(h.engine.load_saved_flows().await.unwrap().is_empty());
    assert!(h.engine.resume_due().await.unwrap().is_empty());
    h.clock.advance_ms(60_000);
    let resumed = h.engine.resume_due().await.unwrap();
    assert_eq!(resumed.len(), 1);
    assert_eq!(resumed[0].status, Status::Completed);
    assert_eq!(srv.received().len(), 1);
    assert_eq!(
        h.engine
            .waiting_count("window", "call", "window")
            .await
            .unwrap(),
        0
    );
}

#[tokio::test]
async fn the_window_opens_at_local_time_across_a_dst_change() {
    let dir = tempfile::tempdir().unwrap();
    let srv = echo_server().await;
    // Saturday 2026-03-28 21:00 in Zagreb; clocks go forward that night.
    let h = harness_with(
        dir.path(),
        ms("2026-03-28T20:00:00Z"),
        outbound(),
        call_api_config(),
    );
    let config = json!({
        "url": srv.url(),
        "schedule": {"window": {"start": "09:00", "end": "17:00", "time_zone": "Europe/Zagreb"}}
    });
    let (p, _) = h.run(flow("dst", config, ALL_EXITS), json!({})).await;
    // 09:00 CEST is 07:00Z, not 08:00Z as the day before.
    assert_eq!(p.waiting_until, Some(ms("2026-03-29T07:00:00Z")));
}

#[tokio::test]
async fn sending_speed_releases_participants_in_order_across_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let srv = echo_server().await;
    let t0 = ms("2026-11-24T10:00:00Z");
    let h = harness_with(dir.path(), t0, outbound(), call_api_config());
    let config = json!({
        "url": format!("{}/who/{{{{person.id}}}}", srv.url()),
        "schedule": {"rate": {"requests": 2, "per": "minute"}}
    });
    h.engine
        .deploy(flow("rate", config, ALL_EXITS), "rate.json")
        .await
        .unwrap();
    let mut waiting = Vec::new();
    for name in ["p1", "p2", "p3", "p4"] {
        let person = Person {
            id: name.into(),
            ..Person::default()
        };
        let p = h
            .engine
            .start("rate", person, BTreeMap::new())
            .await
            .unwrap();
        waiting.push(p.waiting_until);
    }
    assert_eq!(
        waiting,
        [
            None,
            Some(t0 + 30_000),
            Some(t0 + 60_000),
            Some(t0 + 90_000)
        ]
    );
    assert_eq!(
        h.engine
            .waiting_count("rate", "call", "queued")
            .await
            .unwrap(),
        3
    );
    assert_eq!(srv.received().len(), 1);

    h.clock.advance_ms(30_000);
    assert_eq!(h.engine.resume_due().await.unwrap().len(), 1);
    assert_eq!(
        h.engine
            .waiting_count("rate", "call", "queued")
            .await
            .unwrap(),
        2
    );
    drop(h);

    // After a restart, the queue continues where it was, and a newcomer joins at the end.
    let h = harness_with(dir.path(), t0 + 60_000, outbound(), call_api_config());
    h.engine.load_saved_flows().await.unwrap();
    let late = Person {
        id: "p5".into(),
        ..Person::default()
    };
    let p5 = h.engine.start("rate", late, BTreeMap::new()).await.unwrap();
    assert_eq!(p5.waiting_until, Some(t0 + 120_000));
    h.clock.advance_ms(60_000);
    assert_eq!(h.engine.resume_due().await.unwrap().len(), 3);
    let order: Vec<String> = srv.received().iter().map(|r| r.path.clone()).collect();
    assert_eq!(
        order,
        ["/who/p1", "/who/p2", "/who/p3", "/who/p4", "/who/p5"]
    );
    assert_eq!(
        h.engine
            .waiting_count("rate", "call", "queued")
            .await
            .unwrap(),
        0
    );
}

#[tokio::test]
async fn retries_honour_retry_after_and_only_repeat_idempotent_methods() {
    let dir = tempfile::tempdir().unwrap();
    let t0 = ms("2026-11-24T10:00:00Z");
    let h = harness_with(dir.path(), t0, outbound(), call_api_config());
    let calls = Arc::new(std::sync::atomic::AtomicU32::new(0));
    let counter = calls.clone();
    let srv = TestServer::start_replying(move |_| {
        if counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == 0 {
            Reply::json(503, "{}").header("Retry-After", "7")
        } else {
            Reply::json(200, r#"{"ok": true}"#)
        }
    })
    .await;
    let config = json!({"url": srv.url(), "method": "PUT", "retry": {"max_attempts": 3}});
    let (p, journey) = h
        .run(flow("retry", config.clone(), ALL_EXITS), json!({}))
        .await;
    assert_eq!(p.waiting_until, Some(t0 + 7_000));
    assert!(logs(&journey[0]).contains("attempt 1: PUT http://127.0.0.1:"));
    assert!(logs(&journey[0]).contains("HTTP 503 in"));
    assert!(logs(&journey[0]).contains("retrying in 7000 ms (Retry-After)"));
    // Each attempt is also a request record, in the step that made it.
    let sent = &journey[0].requests;
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(
        (sent[0].method.as_str(), sent[0].status),
        ("PUT", Some(503))
    );
    assert!(sent[0].url.starts_with(&srv.url()), "{sent:?}");
    h.clock.advance_ms(6_999);
    assert!(h.engine.resume_due().await.unwrap().is_empty());
    h.clock.advance_ms(1);
    let done = h.engine.resume_due().await.unwrap();
    assert_eq!(done[0].status, Status::Completed);
    let journey = h.engine.journey(&p.id).await.unwrap();
    assert_eq!(journey[1].exit.as_deref(), Some("2xx"));
    assert!(logs(&journey[1]).contains("attempt 2:"));
    assert_eq!(journey[1].data.as_ref().unwrap()["attempts"], json!(2));
    assert_eq!(journey[1].requests.len(), 1);
    assert_eq!(journey[1].requests[0].status, Some(200));

    // POST is not idempotent: a 503 is final.
    calls.store(0, std::sync::atomic::Ordering::SeqCst);
    let post = json!({"url": srv.url(), "method": "POST", "retry": {"max_attempts": 3}});
    let (p, journey) = h.run(flow("post", post, ALL_EXITS), json!({})).await;
    assert_eq!(p.status, Status::Completed);
    assert_eq!(journey[0].exit.as_deref(), Some("5xx"));

    // Connect failures are retried for any method, until the attempts run out.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let config = json!({"url": format!("http://{closed}/"), "method": "POST",
                        "retry": {"max_attempts": 2, "initial_backoff_ms": 1000}});
    let (p, journey) = h.run(flow("connect", config, ALL_EXITS), json!({})).await;
    let wait = p.waiting_until.unwrap() - h.clock.now_ms();
    assert!((500..=1000).contains(&wait), "jittered back-off {wait}");
    assert!(logs(&journey[0]).contains("could not connect"));
    let refused = &journey[0].requests[0];
    assert_eq!(refused.status, None);
    assert!(
        refused
            .error
            .as_deref()
            .unwrap_or("")
            .contains("could not connect"),
        "{refused:?}"
    );
    h.clock.advance_ms(1000);
    h.engine.resume_due().await.unwrap();
    let journey = h.engine.journey(&p.id).await.unwrap();
    assert_eq!(journey[1].exit.as_deref(), Some("error"));
    assert!(
        logs(&journey[1]).contains("no retry left"),
        "{}",
        logs(&journey[1])
    );
}

/// Participants resuming a plain wait run side by side: one waiting for a slow answer does
/// not hold up the others that fell due with it (only a sending speed's queue keeps order,
/// above).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn participants_resuming_a_wait_run_side_by_side() {
    const SLOW: std::time::Duration = std::time::Duration::from_secs(2);
    let dir = tempfile::tempdir().unwrap();
    let arrived = Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = arrived.clone();
    let srv = TestServer::start_replying(move |_| {
        seen.lock().unwrap().push(std::time::Instant::now());
        Reply::json(200, "{}").after(SLOW)
    })
    .await;
    let h = harness(dir.path());
    let def = json!({
        "id": "nap", "name": "Nap", "entry_points": [{"type": "api", "start": "nap"}],
        "elements": [
            {"id": "nap", "type": "wait", "config": {"duration": "1h"}, "exits": {"next": "call"}},
            {"id": "call", "type": "call-api", "config": {"url": format!("{}/slow", srv.url())},
             "exits": {"2xx": "done", "4xx": "done", "5xx": "done", "error": "done"}},
            {"id": "done", "type": "exit"}
        ]
    });
    let def = FlowDef::parse(&def.to_string(), "nap.json").unwrap();
    h.engine.deploy(def, "nap.json").await.unwrap();
    for name in ["p1", "p2", "p3", "p4"] {
        let person = Person {
            id: name.into(),
            ..Person::default()
        };
        let p = h
            .engine
            .start("nap", person, BTreeMap::new())
            .await
            .unwrap();
        assert_eq!(p.status, Status::Waiting);
    }
    h.clock.advance_ms(3_600_000);
    let resumed = h.engine.resume_due().await.unwrap();
    assert_eq!(resumed.len(), 4);
    assert!(resumed.iter().all(|p| p.status == Status::Completed));
    let arrived = arrived.lock().unwrap();
    assert_eq!(arrived.len(), 4);
    // One after another, the last request would have left after three slow answers.
    let spread = arrived[3] - arrived[0];
    assert!(
        spread < SLOW,
        "the four requests arrived over {spread:?}: the participants ran one after another"
    );
}
