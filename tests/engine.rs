//! The engine end to end: flows with built-ins and real plugins, validation messages, the
//! journey, and durable waits resumed by a new engine on the same database.

use flowhost::clock::{Clock, ManualClock};
use flowhost::config::{OperatorConfig, PluginGrant, SecretSource};
use flowhost::engine::{Engine, EngineError};
use flowhost::flow::{FlowDef, FlowError};
use flowhost::person::Person;
use flowhost::store::{SqliteStore, Status};
use flowhost_tests::TestServer;
use flowhost_tests::components as c;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

const T0: i64 = 1_800_000_000_000;

struct Setup {
    engine: Engine,
    clock: Arc<ManualClock>,
}

/// An engine on the database in `dir`, with the given plugins copied into its plugins folder.
async fn setup(dir: &Path, plugins: &[&str], grant_host: &str) -> Setup {
    let plugin_dir = dir.join("plugins");
    std::fs::create_dir_all(&plugin_dir).unwrap();
    for p in plugins {
        let name = Path::new(p).file_name().unwrap();
        std::fs::copy(p, plugin_dir.join(name)).unwrap();
    }
    let mut config = OperatorConfig {
        plugins_dir: plugin_dir,
        cache_dir: dir.join("cache"),
        database: dir.join("state.db"),
        ..OperatorConfig::default()
    };
    config.outbound.allow_private.push("127.0.0.1".into());
    for id in ["happy", "panic"] {
        config.plugins.insert(
            id.into(),
            PluginGrant {
                allow_hosts: vec![grant_host.to_owned()],
                secrets: BTreeMap::from([("token".into(), SecretSource::Value("t0k3n".into()))]),
                ..PluginGrant::default()
            },
        );
    }
    let host = flowhost::runtime::plugin_host(&config).unwrap();
    let (registry, errors) = host.load_dir().await;
    assert!(errors.is_empty(), "{errors:?}");
    let store = Arc::new(SqliteStore::open(&config.database).unwrap());
    let clock = Arc::new(ManualClock::new(T0));
    let types = flowhost::elements::builtins(store.clone())
        .with_plugins(host, flowhost::plugin::PluginSet::new(registry));
    let engine = Engine::new(store, clock.clone(), types);
    Setup { engine, clock }
}

fn flow(value: Value) -> FlowDef {
    FlowDef::parse(&value.to_string(), "test.json").unwrap()
}

fn lookup_flow(url: &str) -> FlowDef {
    flow(json!({
        "id": "lookup", "name": "Lookup",
        "entry_points": [{"type": "api", "start": "init"}],
        "elements": [
            {"id": "init", "type": "set-variable", "config": {"set": {"visits": 0}}, "exits": {"next": "fetch"}},
            {"id": "fetch", "type": "plugin:happy", "config": {"url": url},
             "exits": {"found": "check", "not-found": "done", "error": "done"}},
            {"id": "check", "type": "branch",
             "config": {"conditions": [{"exit": "big", "all": [{"variable": "fetched", "op": "greater_than", "value": 10}]}]},
             "exits": {"big": "pause", "otherwise": "done"}},
            {"id": "pause", "type": "wait", "config": {"duration": "2h"}, "exits": {"next": "done"}},
            {"id": "done", "type": "exit"}
        ]
    }))
}

fn ada() -> Person {
    Person {
        id: "ada".into(),
        emails: vec!["ada@example.com".into()],
        attributes: json!({"firstName": "Ada"}).as_object().unwrap().clone(),
        ..Person::default()
    }
}

#[tokio::test]
async fn flow_runs_plugin_and_builtins_and_waits_durably_across_restart() {
    let dir = tempfile::tempdir().unwrap();
    let srv = TestServer::start(|_| (200, "application/json", r#"{"value": 42}"#.into())).await;
    let url = format!("{}/value", srv.url());
    let first = setup(dir.path(), &[c::HAPPY], &srv.addr.to_string()).await;
    first
        .engine
        .deploy(lookup_flow(&url), "test.json")
        .await
        .unwrap();
    let p = first
        .engine
        .start("lookup", ada(), BTreeMap::new())
        .await
        .unwrap();
    assert_eq!(p.status, Status::Waiting);
    assert_eq!(p.current.as_deref(), Some("pause"));
    assert_eq!(p.waiting_until, Some(T0 + 2 * 3_600_000));
    assert_eq!(p.variables["fetched"], json!(42));
    assert_eq!(p.variables["greeting"], json!("Hello, Ada"));
    assert_eq!(p.variables["visits"], json!(1));

    let journey = first.engine.journey(&p.id).await.unwrap();
    let steps: Vec<_> = journey
        .iter()
        .map(|e| (e.element_id.as_str(), e.exit.as_deref()))
        .collect();
    assert_eq!(
        steps,
        [
            ("init", Some("next")),
            ("fetch", Some("found")),
            ("check", Some("big")),
            ("pause", None)
        ]
    );
    let fetch = &journey[1];
    assert_eq!(fetch.element_type, "plugin:happy@1.2.0");
    assert_eq!(fetch.variables_changed["fetched"], json!(42));
    assert_eq!(fetch.data, Some(json!({"status": 200})));
    assert!(fetch.logs.iter().any(|l| l.message == "fetched 42"));
    // The request the plugin sent, with its answer and time, secrets redacted (below).
    assert_eq!(fetch.requests.len(), 1, "{:?}", fetch.requests);
    assert_eq!(fetch.requests[0].status, Some(200));
    assert!(
        fetch.requests[0].url.starts_with(&url),
        "{:?}",
        fetch.requests
    );
    assert!(!serde_json::to_string(&journey).unwrap().contains("t0k3n"));
    // Analytics count plugin elements like built-ins.
    let analytics = first.engine.analytics("lookup").await.unwrap();
    let fetch = analytics.iter().find(|a| a.element_id == "fetch").unwrap();
    assert_eq!(fetch.element_type, "plugin:happy@1.2.0");
    assert_eq!(
        (
            fetch.counts.entered,
            fetch.counts.exits.get("found").copied()
        ),
        (1, Some(1))
    );
    let pause = analytics.iter().find(|a| a.element_id == "pause").unwrap();
    assert_eq!((pause.counts.entered, pause.counts.waiting), (1, 1));
    drop(first);

    // A new engine (new plugin host, new store handle) on the same database.
    let second = setup(dir.path(), &[], &srv.addr.to_string()).await;
    assert!(second.engine.load_saved_flows().await.unwrap().is_empty());
    assert!(
        second.engine.resume_due().await.unwrap().is_empty(),
        "not due yet"
    );
    second.clock.advance_ms(2 * 3_600_000);
    let resumed = second.engine.resume_due().await.unwrap();
    assert_eq!(resumed.len(), 1);
    assert_eq!(resumed[0].id, p.id);
    assert_eq!(resumed[0].status, Status::Completed);
    let journey = second.engine.journey(&p.id).await.unwrap();
    let last: Vec<_> = journey[4..]
        .iter()
        .map(|e| (e.element_id.as_str(), e.exit.as_deref()))
        .collect();
    assert_eq!(last, [("pause", Some("next")), ("done", None)]);
    assert_eq!(journey[4].at_ms, second.clock.now_ms());
    assert!(
        second.engine.resume_due().await.unwrap().is_empty(),
        "resumed once only"
    );
}

#[tokio::test]
async fn plugin_failure_takes_the_error_exit_or_stops_the_participant() {
    let dir = tempfile::tempdir().unwrap();
    let s = setup(dir.path(), &[c::PANIC, c::HAPPY], "127.0.0.1").await;
    s.engine
        .deploy(
            flow(json!({
                "id": "f", "name": "F",
                "entry_points": [{"type": "api", "start": "boom"}],
                "elements": [
                    {"id": "boom", "type": "plugin:panic", "exits": {"error": "after"}},
                    {"id": "after", "type": "set-variable", "config": {"set": {"recovered": true}}}
                ]
            })),
            "f.json",
        )
        .await
        .unwrap();
    let p = s.engine.start("f", ada(), BTreeMap::new()).await.unwrap();
    assert_eq!(p.status, Status::Completed);
    assert_eq!(p.variables["recovered"], json!(true));
    let journey = s.engine.journey(&p.id).await.unwrap();
    assert_eq!(journey[0].exit.as_deref(), Some("error"));
    assert!(
        journey[0]
            .error
            .as_deref()
            .unwrap()
            .ends_with(": the plugin panicked on purpose"),
        "{:?}",
        journey[0].error
    );

    s.engine
        .deploy(
            flow(json!({
                "id": "g", "name": "G",
                "entry_points": [{"type": "api", "start": "boom"}],
                "elements": [{"id": "boom", "type": "plugin:panic"}]
            })),
            "g.json",
        )
        .await
        .unwrap();
    let p = s.engine.start("g", ada(), BTreeMap::new()).await.unwrap();
    assert_eq!(p.status, Status::Failed);
}

#[tokio::test]
async fn validation_reports_every_issue_with_its_path() {
    let dir = tempfile::tempdir().unwrap();
    let s = setup(dir.path(), &[c::HAPPY], "127.0.0.1").await;
    let bad = flow(json!({
        "id": "bad", "name": "Bad",
        "entry_points": [{"type": "api", "start": "a"}],
        "elements": [
            {"id": "a", "type": "plugin:happy",
             "config": {"greeting": 5, "colour": "red", "token": "inline"},
             "exits": {"found": "b", "failed": "b"}},
            {"id": "b", "type": "plugin:crm", "exits": {}},
            {"id": "c", "type": "teleport"},
            {"id": "d", "type": "wait", "config": {"duration": "soon"}},
            {"id": "e", "type": "plugin:happy@9.0.0"}
        ]
    }));
    let err = s.engine.compile(bad, "bad.json").await.err().unwrap();
    let FlowError::Invalid { issues, .. } = &err else {
        panic!("{err}")
    };
    let lines: Vec<String> = issues.iter().map(|i| i.to_string()).collect();
    let expect = [
        "elements[2]: element \"c\" is unreachable",
        "elements[3]: element \"d\" is unreachable",
        "elements[0].config.url: (element \"a\") is required by plugin happy@1.2.0 (text)",
        "elements[0].config.greeting: (element \"a\") plugin happy@1.2.0 expects text, got number",
        "elements[0].config.token: (element \"a\") is a secret of plugin happy@1.2.0; remove it from the flow",
        "elements[0].config.colour: (element \"a\") plugin happy@1.2.0 has no config field \"colour\"; its fields: url, greeting",
        "elements[0].exits.failed: element \"a\" (plugin:happy@1.2.0) has no exit \"failed\"; its exits: found, not-found, error",
        "elements[1].type: plugin \"crm\" is not loaded",
        "elements[2].type: unknown element type \"teleport\"",
        "elements[3].config.duration: (element \"d\") \"soon\" is not a duration",
        "elements[4].type: plugin \"happy\" has no version 9.0.0; loaded versions: 1.2.0",
    ];
    for e in expect {
        assert!(
            lines.iter().any(|l| l.starts_with(e)),
            "missing {e:?} in {lines:#?}"
        );
    }
    assert_eq!(lines.len(), expect.len() + 1, "{lines:#?}"); // and "e" is unreachable
    for line in err.to_string().lines() {
        assert!(line.starts_with("bad.json: elements["), "{line}");
    }
}

#[tokio::test]
async fn only_active_flows_take_participants() {
    let dir = tempfile::tempdir().unwrap();
    let s = setup(dir.path(), &[], "127.0.0.1").await;
    s.engine
        .deploy(
            flow(json!({"id": "d", "name": "D", "status": "draft",
                "entry_points": [{"type": "api", "start": "x"}],
                "elements": [{"id": "x", "type": "exit"}]})),
            "d.json",
        )
        .await
        .unwrap();
    let err = s
        .engine
        .start("d", ada(), BTreeMap::new())
        .await
        .unwrap_err();
    assert!(matches!(err, EngineError::FlowNotActive { .. }), "{err}");
    let err = s
        .engine
        .start("nope", ada(), BTreeMap::new())
        .await
        .unwrap_err();
    assert!(matches!(err, EngineError::UnknownFlow(_)));
}

#[tokio::test]
async fn the_scheduler_resumes_what_is_due_and_flows_deployed_elsewhere_until_shut_down() {
    use flowhost::engine::scheduler::Scheduler;
    let dir = tempfile::tempdir().unwrap();
    let ours = setup(dir.path(), &[], "127.0.0.1").await;
    // Another engine on the same database deploys the flow and starts someone in it; ours
    // has never loaded the flow.
    let other = setup(dir.path(), &[], "127.0.0.1").await;
    other
        .engine
        .deploy(
            flow(json!({
                "id": "napper", "name": "Napper",
                "entry_points": [{"type": "api", "start": "nap"}],
                "elements": [
                    {"id": "nap", "type": "wait", "config": {"duration": "1h"}, "exits": {"next": "done"}},
                    {"id": "done", "type": "exit"}
                ]
            })),
            "napper.json",
        )
        .await
        .unwrap();
    let p = other
        .engine
        .start("napper", ada(), BTreeMap::new())
        .await
        .unwrap();
    assert_eq!(p.status, Status::Waiting);
    ours.clock.advance_ms(3_600_000);

    let (rounds, mut finished) = tokio::sync::mpsc::unbounded_channel();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let scheduler = Scheduler::new(ours.engine.clone(), std::time::Duration::from_millis(10));
    let running = tokio::spawn(scheduler.run(
        async {
            let _ = stopped.await;
        },
        move |round| {
            let _ = rounds.send(round);
        },
    ));
    let round = finished.recv().await.unwrap();
    assert!(round.problems.is_empty(), "{:?}", round.problems);
    assert_eq!(round.flows, ["napper"]);
    let resumed: Vec<_> = round.resumed.iter().map(|r| (&r.id, r.status)).collect();
    assert_eq!(resumed, [(&p.id, Status::Completed)]);
    // A flow that did not change is not loaded again.
    let round = finished.recv().await.unwrap();
    assert!(round.flows.is_empty(), "{:?}", round.flows);
    // Paused elsewhere: the next round loads that change, and ours holds the flow's
    // participants too.
    other
        .engine
        .set_flow_status("napper", flowhost::flow::FlowStatus::Paused)
        .await
        .unwrap();
    let round = loop {
        let round = finished.recv().await.unwrap();
        if !round.flows.is_empty() {
            break round;
        }
    };
    assert_eq!(round.flows, ["napper"]);
    assert_eq!(
        ours.engine.flow_def("napper").unwrap().status,
        flowhost::flow::FlowStatus::Paused
    );
    let round = finished.recv().await.unwrap();
    assert!(round.flows.is_empty(), "{:?}", round.flows);
    stop.send(()).unwrap();
    running.await.unwrap();
    // Stopped: the rounds' sender went with the loop.
    while let Some(round) = finished.recv().await {
        assert!(round.resumed.is_empty());
    }
    assert_eq!(
        ours.engine.participant(&p.id).await.unwrap().status,
        Status::Completed
    );
}
