//! The Call API element against real HTTP servers on 127.0.0.1: requests as the server
//! received them, response mapping, exits, background sends, scheduling and retries with an
//! injected clock, redirects, HTTPS, and secrets kept out of everything stored.

use flowhost::clock::{Clock, ManualClock};
use flowhost::config::{CallApiConfig, OutboundConfig, SecretSource};
use flowhost::elements::ElementTypes;
use flowhost::engine::Engine;
use flowhost::flow::{FlowDef, FlowError};
use flowhost::outbound::HttpClient;
use flowhost::person::Person;
use flowhost::store::{JourneyEntry, ParticipantState, SqliteStore, Status};
use flowhost_tests::{Reply, TestServer, TlsIdentity};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

const SECRET: &str = "crm-s3cr3t-7f1d";

fn ms(text: &str) -> i64 {
    text.parse::<jiff::Timestamp>().unwrap().as_millisecond()
}

struct Harness {
    engine: Engine,
    clock: Arc<ManualClock>,
}

fn outbound() -> OutboundConfig {
    OutboundConfig {
        allow_private: vec!["127.0.0.1".into()],
        ..OutboundConfig::default()
    }
}

fn call_api_config() -> CallApiConfig {
    let mut c = CallApiConfig::default();
    c.secrets
        .insert("crm_token".into(), SecretSource::Value(SECRET.into()));
    c
}

/// An engine on `dir/state.db` with Call API under `outbound` and `call_api` settings.
fn harness_with(
    dir: &Path,
    now: i64,
    outbound: OutboundConfig,
    call_api: CallApiConfig,
) -> Harness {
    let client = HttpClient::new(&outbound).unwrap();
    let types = ElementTypes::builtins_only()
        .with_call_api(client, &call_api)
        .unwrap();
    let clock = Arc::new(ManualClock::new(now));
    let store = Arc::new(SqliteStore::open(&dir.join("state.db")).unwrap());
    Harness {
        engine: Engine::new(store, clock.clone(), types),
        clock,
    }
}

fn harness(dir: &Path) -> Harness {
    harness_with(
        dir,
        ms("2026-11-24T10:00:00Z"),
        outbound(),
        call_api_config(),
    )
}

/// A flow whose `call` element has `config` and whose connected exits lead to exit elements
/// named `on-<exit>`.
fn flow(id: &str, config: Value, exits: &[&str]) -> FlowDef {
    let mut elements = vec![json!({
        "id": "call", "type": "call-api", "config": config,
        "exits": exits.iter().map(|e| (e.to_string(), json!(format!("on-{e}")))).collect::<serde_json::Map<_, _>>(),
    })];
    for e in exits {
        elements.push(json!({"id": format!("on-{e}"), "type": "exit"}));
    }
    let def = json!({"id": id, "name": id, "entry_points": [{"type": "api", "start": "call"}], "elements": elements});
    FlowDef::parse(&def.to_string(), "test.json").unwrap()
}

const ALL_EXITS: &[&str] = &["2xx", "4xx", "5xx", "error"];

fn ada() -> Person {
    Person {
        id: "ada".into(),
        emails: vec!["ada@example.com".into()],
        external_id: Some("crm-77".into()),
        attributes: json!({"firstName": "Ada", "lastName": "Lovelace"})
            .as_object()
            .unwrap()
            .clone(),
        ..Person::default()
    }
}

impl Harness {
    async fn run(&self, def: FlowDef, vars: Value) -> (ParticipantState, Vec<JourneyEntry>) {
        self.run_as(def, ada(), vars).await
    }

    async fn run_as(
        &self,
        def: FlowDef,
        person: Person,
        vars: Value,
    ) -> (ParticipantState, Vec<JourneyEntry>) {
        let id = def.id.clone();
        self.engine.deploy(def, "test.json").await.unwrap();
        let vars: BTreeMap<String, Value> = serde_json::from_value(vars).unwrap();
        let p = self.engine.start(&id, person, vars).await.unwrap();
        let journey = self.engine.journey(&p.id).await.unwrap();
        (p, journey)
    }
}

fn logs(entry: &JourneyEntry) -> String {
    entry
        .logs
        .iter()
        .map(|l| l.message.as_str())
        .collect::<Vec<_>>()
        .join("\n")
}

async fn echo_server() -> TestServer {
    TestServer::start_replying(|r| {
        Reply::json(
            200,
            &json!({"method": r.method, "path": r.path, "loyalty": {"points": 120}}).to_string(),
        )
        .header("X-Request-Id", "req-1")
    })
    .await
}

#[tokio::test]
async fn every_method_and_body_kind_reaches_the_server_as_configured() {
    let dir = tempfile::tempdir().unwrap();
    let h = harness(dir.path());
    let srv = echo_server().await;
    for (i, method) in ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"]
        .iter()
        .enumerate()
    {
        let config = json!({"url": format!("{}/m/{method}", srv.url()), "method": method});
        let (p, journey) = h
            .run(flow(&format!("m{i}"), config, ALL_EXITS), json!({}))
            .await;
        assert_eq!(
            journey[0].exit.as_deref(),
            Some("2xx"),
            "{method}: {journey:?}"
        );
        assert_eq!(p.status, Status::Completed);
    }
    let got = srv.received();
    let methods: Vec<_> = got.iter().map(|r| r.method.as_str()).collect();
    assert_eq!(methods, ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"]);
    // No headers beyond what HTTP needs.
    let mut names: Vec<_> = got[0].headers.iter().map(|(k, _)| k.as_str()).collect();
    names.sort();
    assert_eq!(names, ["host"]);

    // Key-value pairs as JSON, with typed placeholders; the flow sets Content-Type itself.
    let config = json!({
        "url": format!("{}/contacts/{{{{person.externalId}}}}?order={{{{order_id}}}}", srv.url()),
        "method": "POST",
        "headers": {"Content-Type": "application/json", "X-Channel": "sms-{{channel}}"},
        "body": {"name": "{{person.firstName}} {{person.lastName}}", "points": "{{points}}", "vip": true},
    });
    h.run(
        flow("kv", config, ALL_EXITS),
        json!({"order_id": "A-1", "points": 42, "channel": "eu"}),
    )
    .await;
    // Raw JSON (an array) with no Content-Type: none is added.
    let config = json!({"url": format!("{}/raw", srv.url()), "method": "PUT", "body": [1, "{{points}}", {"x": null}]});
    h.run(flow("raw", config, ALL_EXITS), json!({"points": 7}))
        .await;
    // A form, because the Content-Type header says so.
    let config = json!({
        "url": format!("{}/form", srv.url()), "method": "POST",
        "headers": {"content-type": "application/x-www-form-urlencoded"},
        "body": {"name": "{{person.firstName}} Lovelace", "points": "{{points}}", "note": "a&b=c"},
    });
    h.run(flow("form", config, ALL_EXITS), json!({"points": 42}))
        .await;

    let got = srv.received();
    let kv = &got[6];
    assert_eq!(kv.path, "/contacts/crm-77?order=A-1");
    assert_eq!(kv.header("content-type"), Some("application/json"));
    assert_eq!(kv.header("x-channel"), Some("sms-eu"));
    let body: Value = serde_json::from_slice(&kv.body).unwrap();
    assert_eq!(
        body,
        json!({"name": "Ada Lovelace", "points": 42, "vip": true})
    );
    let raw = &got[7];
    assert_eq!(raw.header("content-type"), None);
    assert_eq!(String::from_utf8_lossy(&raw.body), r#"[1,7,{"x":null}]"#);
    let form = &got[8];
    assert_eq!(
        String::from_utf8_lossy(&form.body),
        "name=Ada+Lovelace&note=a%26b%3Dc&points=42"
    );
}

#[tokio::test]
async fn a_missing_variable_is_an_error_and_nothing_is_sent() {
    let dir = tempfile::tempdir().unwrap();
    let h = harness(dir.path());
    let srv = echo_server().await;
    let config = json!({"url": format!("{}/orders/{{{{order_id}}}}", srv.url())});
    let (_, journey) = h.run(flow("missing", config, ALL_EXITS), json!({})).await;
    assert_eq!(journey[0].exit.as_deref(), Some("error"));
    assert_eq!(
        journey[0].error.as_deref(),
        Some(
            "request not sent: variable \"order_id\" is not set; set it earlier in the flow or remove the placeholder"
        )
    );
    assert!(srv.received().is_empty());
}

#[tokio::test]
async fn response_headers_status_and_body_map_to_variables() {
    let dir = tempfile::tempdir().unwrap();
    let h = harness(dir.path());
    let srv = TestServer::start_replying(|r| match r.path.as_str() {
        "/text" => Reply {
            status: 200,
            body: "plain words".into(),
            ..Reply::default()
        },
        _ => Reply::json(
            200,
            r#"{"loyalty": {"points": 120, "tier": null}, "tags": ["a", "b"], "user": {"name": "Ada"}, "items": [{"sku": 1}, {"sku": 2}]}"#,
        )
        .header("X-Request-Id", "req-9"),
    })
    .await;
    let config = json!({
        "url": format!("{}/json", srv.url()),
        "response": {
            "status": "code",
            "headers": {"request_id": "x-REQUEST-id", "absent": "X-Nope"},
            "body": {
                "points": "$.loyalty.points", "tier": "$.loyalty.tier", "nothing": "$.missing",
                "several": "$.items[*].sku", "array": "$.tags", "object": "$.user",
                "filtered": "$.items[?@.sku == 2].sku",
            },
            "whole_body": {"variable": "doc"},
        }
    });
    let (p, journey) = h.run(flow("map", config, ALL_EXITS), json!({})).await;
    let v = &p.variables;
    assert_eq!(v["code"], json!(200));
    assert_eq!(v["request_id"], json!("req-9"));
    assert_eq!(v["absent"], Value::Null);
    assert_eq!(v["points"], json!(120));
    assert_eq!(v["tier"], Value::Null);
    assert_eq!(v["filtered"], json!(2));
    for var in ["nothing", "several", "array", "object"] {
        assert_eq!(v[var], Value::Null, "{var}");
    }
    assert_eq!(v["doc"]["user"]["name"], json!("Ada"));
    let log = logs(&journey[0]);
    for reason in [
        "nothing set to null: $.missing selects nothing",
        "several set to null: $.items[*].sku selects 2 values, not one",
        "array set to null: $.tags selects an array, not a single value",
        "object set to null: $.user selects an object, not a single value",
        "absent set to null: the response has no X-Nope header",
    ] {
        assert!(log.contains(reason), "{reason} not in\n{log}");
    }

    // Not JSON: paths give null with the reason; the whole body is kept as text.
    let config = json!({
        "url": format!("{}/text", srv.url()),
        "response": {"body": {"points": "$.points"}, "whole_body": {"variable": "raw", "as": "text"}}
    });
    let (p, journey) = h.run(flow("text", config, ALL_EXITS), json!({})).await;
    assert_eq!(p.variables["points"], Value::Null);
    assert_eq!(p.variables["raw"], json!("plain words"));
    assert!(logs(&journey[0]).contains("points set to null: the response body is not JSON"));
}

#[tokio::test]
async fn exits_follow_the_documented_precedence() {
    let dir = tempfile::tempdir().unwrap();
    let h = harness(dir.path());
    let srv = TestServer::start_replying(|r| {
        let code = r.path.trim_start_matches('/').parse().unwrap_or(200);
        Reply::json(code, r#"{"error": "details"}"#)
    })
    .await;
    // A closed port: bind, read the port, drop the listener.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let cases: &[(&str, &[&str], Option<&str>)] = &[
        ("/204", ALL_EXITS, Some("2xx")),
        ("/404", ALL_EXITS, Some("4xx")),
        ("/404", &["2xx", "5xx", "error"], Some("error")),
        ("/503", ALL_EXITS, Some("5xx")),
        ("/500", &["2xx", "4xx", "error"], Some("error")),
        ("/302", ALL_EXITS, Some("error")),
        ("closed", ALL_EXITS, Some("error")),
    ];
    for (i, (path, exits, expected)) in cases.iter().enumerate() {
        let url = if *path == "closed" {
            format!("http://{closed}/")
        } else {
            format!("{}{path}", srv.url())
        };
        let config =
            json!({"url": url, "response": {"status": "code", "body": {"why": "$.error"}}});
        let (_, journey) = h
            .run(flow(&format!("x{i}"), config, exits), json!({}))
            .await;
        assert_eq!(
            journey[0].exit.as_deref(),
            *expected,
            "{path} with {exits:?}: {journey:?}"
        );
        if *path == "/404" && exits.contains(&"4xx") {
            assert_eq!(journey[0].variables_changed["why"], json!("details"));
        }
        if *path == "closed" {
            assert!(
                journey[0]
                    .error
                    .as_deref()
                    .unwrap()
                    .contains("could not connect"),
                "{journey:?}"
            );
        }
    }

    // No error exit: validation warns, and a failure stops the participant as failed.
    let config = json!({"url": format!("{}/500", srv.url())});
    let compiled = h
        .engine
        .compile(flow("w", config.clone(), &["2xx"]), "w.json")
        .await
        .unwrap();
    assert_eq!(compiled.warnings.len(), 1);
    assert!(
        compiled.warnings[0]
            .to_string()
            .starts_with("elements[0].exits: (element \"call\") no \"error\" exit")
    );
    let (p, _) = h.run(flow("w", config, &["2xx"]), json!({})).await;
    assert_eq!(p.status, Status::Failed);
}

#[tokio::test]
async fn a_server_that_never_answers_times_out_on_the_error_exit() {
    let dir = tempfile::tempdir().unwrap();
    let h = harness(dir.path());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let hold = tokio::spawn(async move {
        let mut open = Vec::new();
        while let Ok((s, _)) = listener.accept().await {
            open.push(s);
        }
    });
    let config = json!({"url": format!("http://{addr}/slow"), "timeout_ms": 300});
    let started = std::time::Instant::now();
    let (_, journey) = h.run(flow("slow", config, ALL_EXITS), json!({})).await;
    assert_eq!(journey[0].exit.as_deref(), Some("error"));
    assert!(
        journey[0].error.as_deref().unwrap().ends_with("timed out"),
        "{journey:?}"
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
    hold.abort();
}

#[tokio::test]
async fn without_waiting_the_participant_moves_on_and_the_result_joins_the_journey() {
    let dir = tempfile::tempdir().unwrap();
    let h = harness(dir.path());
    let srv = echo_server().await;
    let config = json!({"url": format!("{}/notify", srv.url()), "method": "POST", "wait_for_response": false});
    let (p, journey) = h
        .run(flow("bg", config, &["next", "error"]), json!({}))
        .await;
    assert_eq!(p.status, Status::Completed);
    assert_eq!(journey[0].exit.as_deref(), Some("next"));
    h.engine.finish_background().await;
    assert_eq!(srv.received().len(), 1);
    let journey = h.engine.journey(&p.id).await.unwrap();
    let background = journey.last().unwrap();
    assert_eq!(background.element_id, "call");
    assert_eq!(background.data.as_ref().unwrap()["status"], json!(200));
    let seqs: Vec<u64> = journey.iter().map(|e| e.seq).collect();
    assert_eq!(seqs, (1..=journey.len() as u64).collect::<Vec<_>>());

    // Mapping a response, or branching on it, needs waiting.
    let config = json!({"url": srv.url(), "wait_for_response": false, "response": {"status": "s"}});
    let err = h
        .engine
        .compile(flow("bad", config, &["4xx", "next"]), "bad.json")
        .await
        .unwrap_err();
    let FlowError::Invalid { issues, .. } = err else {
        panic!()
    };
    let issues: Vec<String> = issues.iter().map(|i| i.to_string()).collect();
    assert!(
        issues
            .iter()
            .any(|i| i.starts_with("elements[0].config.response:")),
        "{issues:?}"
    );
    assert!(
        issues
            .iter()
            .any(|i| i.starts_with("elements[0].exits.4xx:")),
        "{issues:?}"
    );
}

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
    h.clock.advance_ms(6_999);
    assert!(h.engine.resume_due().await.unwrap().is_empty());
    h.clock.advance_ms(1);
    let done = h.engine.resume_due().await.unwrap();
    assert_eq!(done[0].status, Status::Completed);
    let journey = h.engine.journey(&p.id).await.unwrap();
    assert_eq!(journey[1].exit.as_deref(), Some("2xx"));
    assert!(logs(&journey[1]).contains("attempt 2:"));
    assert_eq!(journey[1].data.as_ref().unwrap()["attempts"], json!(2));

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

#[tokio::test]
async fn redirects_are_followed_and_checked_at_every_hop() {
    let dir = tempfile::tempdir().unwrap();
    let h = harness(dir.path());
    let other = echo_server().await;
    let other_url = other.url();
    let srv = TestServer::start_replying(move |r| match r.path.as_str() {
        "/moved" => Reply::json(302, "").header("Location", "/final"),
        "/final" => Reply::json(200, r#"{"at": "final"}"#),
        "/away" => Reply::json(307, "").header("Location", &format!("{other_url}/elsewhere")),
        "/metadata" => {
            Reply::json(302, "").header("Location", "http://169.254.169.254/latest/meta-data/")
        }
        _ => Reply::json(404, "{}"),
    })
    .await;
    let config = json!({"url": format!("{}/moved", srv.url()), "method": "POST", "body": {"a": 1},
                        "response": {"body": {"at": "$.at"}}});
    let (p, journey) = h.run(flow("r1", config, ALL_EXITS), json!({})).await;
    assert_eq!(p.variables["at"], json!("final"));
    assert_eq!(
        journey[0].data.as_ref().unwrap()["redirects"],
        json!([format!("{}/final", srv.url())])
    );
    // 302 after POST continues as GET without the body.
    let got = srv.received();
    assert_eq!((got[1].method.as_str(), got[1].body.len()), ("GET", 0));

    // Credentials stay with their origin.
    let config = json!({"url": format!("{}/away", srv.url()),
                        "headers": {"Authorization": "Bearer {{secret.crm_token}}"}});
    let (_, journey) = h.run(flow("r2", config, ALL_EXITS), json!({})).await;
    assert_eq!(journey[0].exit.as_deref(), Some("2xx"));
    let hop = &other.received()[0];
    assert_eq!(hop.path, "/elsewhere");
    assert_eq!(hop.header("authorization"), None);

    // The cloud metadata address is refused even as a redirect target.
    let config = json!({"url": format!("{}/metadata", srv.url())});
    let (_, journey) = h.run(flow("r3", config, ALL_EXITS), json!({})).await;
    assert_eq!(journey[0].exit.as_deref(), Some("error"));
    let error = journey[0].error.as_deref().unwrap();
    assert!(
        error.contains("redirect to http://169.254.169.254/latest/meta-data/ refused")
            && error.contains("link-local address"),
        "{error}"
    );
}

#[tokio::test]
async fn private_addresses_and_denied_hosts_need_the_operator() {
    let dir = tempfile::tempdir().unwrap();
    let srv = echo_server().await;
    let config = json!({"url": srv.url()});
    let h = harness_with(dir.path(), 0, OutboundConfig::default(), call_api_config());
    let (_, journey) = h
        .run(flow("private", config.clone(), ALL_EXITS), json!({}))
        .await;
    assert!(
        journey[0]
            .error
            .as_deref()
            .unwrap()
            .contains("loopback address, which is refused")
    );

    let other = tempfile::tempdir().unwrap();
    let mut narrow = call_api_config();
    narrow.allow_hosts = vec!["api.example.com".into()];
    let h = harness_with(other.path(), 0, outbound(), narrow);
    let (_, journey) = h.run(flow("narrow", config, ALL_EXITS), json!({})).await;
    assert!(
        journey[0]
            .error
            .as_deref()
            .unwrap()
            .contains("is not granted to Call API")
    );
    assert!(srv.received().is_empty());
}

#[tokio::test]
async fn https_uses_trusted_roots_and_refuses_unknown_ones() {
    let dir = tempfile::tempdir().unwrap();
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    let key = rcgen::KeyPair::generate().unwrap();
    let leaf = rcgen::CertificateParams::new(vec!["localhost".to_owned()])
        .unwrap()
        .signed_by(&key, &issuer)
        .unwrap();
    let identity = TlsIdentity {
        cert_pem: leaf.pem(),
        key_pem: key.serialize_pem(),
    };
    let srv = TestServer::start_tls(&identity, |_| Reply::json(200, r#"{"secure": true}"#)).await;
    let url = format!("https://localhost:{}/tls", srv.addr.port());
    let config = json!({"url": url, "response": {"body": {"secure": "$.secure"}}});

    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, ca.pem()).unwrap();
    let trusting = OutboundConfig {
        extra_ca_files: vec![ca_file],
        ..outbound()
    };
    let h = harness_with(dir.path(), 0, trusting, call_api_config());
    let (p, journey) = h
        .run(flow("tls", config.clone(), ALL_EXITS), json!({}))
        .await;
    assert_eq!(journey[0].exit.as_deref(), Some("2xx"), "{journey:?}");
    assert_eq!(p.variables["secure"], json!(true));

    let other = tempfile::tempdir().unwrap();
    let h = harness_with(other.path(), 0, outbound(), call_api_config());
    let (_, journey) = h.run(flow("untrusted", config, ALL_EXITS), json!({})).await;
    let error = journey[0].error.as_deref().unwrap();
    assert!(error.contains("TLS with localhost"), "{error}");
}

#[tokio::test]
async fn secrets_reach_the_server_but_nothing_stored_or_printed() {
    let dir = tempfile::tempdir().unwrap();
    let h = harness(dir.path());
    // The server echoes what it got, secret included, in its body and a header.
    let srv = TestServer::start_replying(|r| {
        let auth = r.header("authorization").unwrap_or("").to_owned();
        let code = if r.path.starts_with("/fail") {
            500
        } else {
            200
        };
        Reply::json(
            code,
            &json!({"echo": auth, "body": String::from_utf8_lossy(&r.body)}).to_string(),
        )
        .header("X-Echo", &auth)
    })
    .await;
    let config = json!({
        "url": format!("{}/ok?key={{{{secret.crm_token}}}}", srv.url()),
        "method": "POST",
        "headers": {"Authorization": "Bearer {{secret.crm_token}}"},
        "body": {"token": "{{secret.crm_token}}"},
        "response": {"headers": {"echoed": "X-Echo"}, "body": {"echo": "$.echo"},
                     "whole_body": {"variable": "all", "as": "text"}},
    });
    let (p, _) = h.run(flow("s1", config, ALL_EXITS), json!({})).await;
    let fail = json!({"url": format!("{}/fail?key={{{{secret.crm_token}}}}", srv.url()),
                      "headers": {"Authorization": "Bearer {{secret.crm_token}}"}});
    let (p2, _) = h.run(flow("s2", fail, &["2xx"]), json!({})).await;
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let down = json!({"url": format!("http://{closed}/x?key={{{{secret.crm_token}}}}"), "wait_for_response": false});
    let (p3, _) = h.run(flow("s3", down, &["next"]), json!({})).await;
    h.engine.finish_background().await;

    let got = srv.received();
    assert_eq!(
        got[0].header("authorization"),
        Some(format!("Bearer {SECRET}").as_str())
    );
    assert!(got[0].path.ends_with(SECRET));
    assert_eq!(p.variables["echoed"], json!("Bearer [secret:crm_token]"));

    let mut everything = String::new();
    for id in [&p.id, &p2.id, &p3.id] {
        everything += &format!("{:?}", h.engine.participant(id).await.unwrap());
        everything += &serde_json::to_string(&h.engine.journey(id).await.unwrap()).unwrap();
    }
    assert!(everything.contains("[secret:crm_token]"), "{everything}");
    assert!(!everything.contains(SECRET), "{everything}");
    drop(h);
    // Nor anywhere in the database files.
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        let bytes = std::fs::read(entry.unwrap().path()).unwrap();
        assert!(!bytes.windows(SECRET.len()).any(|w| w == SECRET.as_bytes()));
    }
}

#[tokio::test]
async fn configuration_mistakes_are_reported_at_their_paths() {
    let dir = tempfile::tempdir().unwrap();
    let h = harness(dir.path());
    let config = json!({
        "url": "ftp://example.com/{{x}}",
        "method": "FETCH",
        "headers": {"Authorization": "Bearer {{secret.nope}}", "bad header": "x"},
        "response": {"body": {"points": "$.[", "ok": "$.ok"}},
        "schedule": {"window": {"start": "09:00", "end": "17:00", "time_zone": "Mars/Olympus"},
                     "rate": {"requests": 0, "per": "minute"}},
        "timeout_ms": 0,
    });
    let err = h
        .engine
        .compile(flow("bad", config, ALL_EXITS), "bad.json")
        .await
        .unwrap_err();
    let FlowError::Invalid { issues, .. } = err else {
        panic!()
    };
    let paths: Vec<&str> = issues.iter().map(|i| i.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "elements[0].config.url",
            "elements[0].config.method",
            "elements[0].config.headers.Authorization",
            "elements[0].config.headers.bad header",
            "elements[0].config.timeout_ms",
            "elements[0].config.response.body.points",
            "elements[0].config.schedule.window.time_zone",
            "elements[0].config.schedule.rate.requests",
        ]
    );
    let text = issues
        .iter()
        .map(|i| i.to_string())
        .collect::<Vec<_>>()
        .join("\n");
    assert!(
        text.contains(
            "secret \"nope\" is not configured; the operator adds it under [call_api.secrets]"
        ),
        "{text}"
    );
    assert!(
        text.contains("use GET, POST, PUT, PATCH, DELETE, HEAD"),
        "{text}"
    );

    let err = h
        .engine
        .compile(
            flow(
                "typo",
                json!({"url": "http://x", "methd": "GET"}),
                ALL_EXITS,
            ),
            "typo.json",
        )
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("elements[0].config.methd: (element \"call\") unknown field `methd`"),
        "{err}"
    );
}

#[tokio::test]
async fn set_variable_shares_the_placeholder_syntax() {
    let dir = tempfile::tempdir().unwrap();
    let h = harness(dir.path());
    let def = FlowDef::parse(
        &json!({"id": "sv", "name": "sv", "entry_points": [{"type": "api", "start": "s"}], "elements": [
            {"id": "s", "type": "set-variable",
             "config": {"set": {"greeting": "Hi {{person.firstName}}", "copy": "{{points}}", "n": 1}},
             "exits": {"next": "missing", "error": "end"}},
            {"id": "missing", "type": "set-variable", "config": {"set": {"x": "{{nope}}"}}, "exits": {"error": "end"}},
            {"id": "end", "type": "exit"}]})
        .to_string(),
        "sv.json",
    )
    .unwrap();
    let (p, journey) = h.run(def, json!({"points": 5})).await;
    assert_eq!(p.variables["greeting"], json!("Hi Ada"));
    assert_eq!(p.variables["copy"], json!(5));
    assert_eq!(journey[1].exit.as_deref(), Some("error"));
    assert!(
        journey[1]
            .error
            .as_deref()
            .unwrap()
            .contains("variable \"nope\" is not set")
    );
}

#[tokio::test]
async fn a_response_over_the_operator_cap_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let mut capped = call_api_config();
    capped.max_response_bytes = 1024;
    let h = harness_with(dir.path(), 0, outbound(), capped);
    let srv = TestServer::start_replying(|r| {
        let size = if r.path == "/big" { 4096 } else { 512 };
        Reply::json(200, &format!("\"{}\"", "x".repeat(size)))
    })
    .await;
    let (_, journey) = h
        .run(
            flow(
                "small",
                json!({"url": format!("{}/small", srv.url())}),
                ALL_EXITS,
            ),
            json!({}),
        )
        .await;
    assert_eq!(journey[0].exit.as_deref(), Some("2xx"));
    let (_, journey) = h
        .run(
            flow(
                "big",
                json!({"url": format!("{}/big", srv.url())}),
                ALL_EXITS,
            ),
            json!({}),
        )
        .await;
    assert_eq!(journey[0].exit.as_deref(), Some("error"));
    assert!(
        journey[0]
            .error
            .as_deref()
            .unwrap()
            .ends_with("response body larger than 1024 bytes"),
        "{journey:?}"
    );
}
