//! The Call API element against real HTTP servers on 127.0.0.1: requests as the server
//! received them, response mapping, exits, background sends, scheduling and retries with an
//! injected clock, redirects, HTTPS, and secrets kept out of everything stored.

mod requests;
mod responses;
mod scheduling;
mod security;

use flowhost::clock::{Clock, ManualClock};
use flowhost::config::{CallApiConfig, OutboundConfig, SecretSource};
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
    let store = Arc::new(SqliteStore::open(&dir.join("state.db")).unwrap());
    let types = flowhost::elements::builtins(store.clone())
        .with_call_api(client, &call_api)
        .unwrap();
    let clock = Arc::new(ManualClock::new(now));
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
