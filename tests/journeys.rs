//! Journeys across flows, people and agents: Add to Flow, People, flow lifecycle and entry
//! points, Evaluate inbound message, Start a Conversation, Start chatbot (Answers) and
//! analytics, on a real SQLite file, with restarts where waits must survive them.

mod add_to_flow;
mod analytics;
mod chatbots;
mod conversations;
mod inbound;
mod lifecycle;

use flowhost::answers::{Answers, BotEvent, Chatbot, EndReason};
use flowhost::clock::ManualClock;
use flowhost::config::{CallApiConfig, OutboundConfig};
use flowhost::conversations::{ConversationStatus, Conversations};
use flowhost::engine::{Engine, EngineError};
use flowhost::flow::{FlowDef, FlowStatus};
use flowhost::messaging::{Channel, Delivery, Inbound, InboundMessage};
use flowhost::outbound::HttpClient;
use flowhost::person::{AttributeType, Contact, People, Person};
use flowhost::store::{JourneyEntry, ParticipantState, SqliteStore, Status};
use flowhost::testing::{Reply, TestServer};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

const T0: i64 = 1_800_000_000_000;
const SENDER: &str = "447491163443";
const PHONE: &str = "+447700900123";

struct Setup {
    engine: Engine,
    inbound: Inbound,
    clock: Arc<ManualClock>,
}

/// An engine on `dir/state.db` that may reach 127.0.0.1 (for webhook chatbots).
async fn setup(dir: &Path) -> Setup {
    setup_at(dir, T0).await
}

async fn setup_at(dir: &Path, now: i64) -> Setup {
    let store = Arc::new(SqliteStore::open(&dir.join("state.db")).unwrap());
    let clock = Arc::new(ManualClock::new(now));
    let client = HttpClient::new(&OutboundConfig {
        allow_private: vec!["127.0.0.1".into()],
        ..OutboundConfig::default()
    })
    .unwrap();
    let types = flowhost::elements::builtins(store.clone())
        .with_call_api(client.clone(), &CallApiConfig::default())
        .unwrap();
    let engine = Engine::new(store, clock.clone(), types);
    engine.load_saved_flows().await.unwrap();
    let inbound = Inbound::new(engine.clone(), client);
    Setup {
        engine,
        inbound,
        clock,
    }
}

fn flow(value: Value) -> FlowDef {
    FlowDef::parse(&value.to_string(), "test.json").unwrap()
}

async fn deploy(engine: &Engine, value: Value) {
    engine.deploy(flow(value), "test.json").await.unwrap();
}

fn person() -> Person {
    Person {
        phones: vec![PHONE.into()],
        attributes: json!({"firstName": "Ada"}).as_object().unwrap().clone(),
        ..Person::default()
    }
}

fn vars(v: Value) -> BTreeMap<String, Value> {
    serde_json::from_value(v).unwrap()
}

async fn steps(engine: &Engine, id: &str) -> Vec<(String, Option<String>)> {
    engine
        .journey(id)
        .await
        .unwrap()
        .into_iter()
        .map(|e| (e.element_id, e.exit))
        .collect()
}

fn step<'a>(journey: &'a [JourneyEntry], element: &str) -> &'a JourneyEntry {
    journey
        .iter()
        .rev()
        .find(|e| e.element_id == element)
        .unwrap_or_else(|| panic!("no step of {element} in {journey:#?}"))
}

fn s(x: &str) -> (String, Option<String>) {
    (x.to_owned(), None)
}

fn x(el: &str, exit: &str) -> (String, Option<String>) {
    (el.to_owned(), Some(exit.to_owned()))
}

fn whatsapp(text: &str) -> InboundMessage {
    InboundMessage {
        channel: Channel::Whatsapp,
        from: PHONE.into(),
        to: SENDER.into(),
        text: text.into(),
        received_at: None,
    }
}

/// A target flow entered from others: waits a day so its participants stay visible.
fn loyalty(status: &str) -> Value {
    json!({
        "id": "loyalty", "name": "Loyalty", "status": status,
        "entry_points": [{"type": "existing-flow", "start": "hold"}],
        "elements": [
            {"id": "hold", "type": "wait", "config": {"duration": "1d"}, "exits": {"next": "end"}},
            {"id": "end", "type": "exit"}
        ]
    })
}

fn referral(add: Value, after_success: &str) -> Value {
    json!({
        "id": "orders", "name": "Orders",
        "entry_points": [{"type": "api", "start": "add"}],
        "elements": [
            {"id": "add", "type": "add-to-flow", "config": add,
             "exits": {"success": after_success, "failover": "fallback"}},
            {"id": "more", "type": "set-variable", "config": {"set": {"stayed": true}}, "exits": {"next": "end"}},
            {"id": "fallback", "type": "set-variable", "config": {"set": {"failed_over": true}}, "exits": {"next": "more"}},
            {"id": "end", "type": "exit"}
        ]
    })
}

async fn entered(engine: &Engine, source: &ParticipantState) -> ParticipantState {
    let journey = engine.journey(&source.id).await.unwrap();
    let id = step(&journey, "add").data.as_ref().unwrap()["participant"]
        .as_str()
        .unwrap()
        .to_owned();
    engine.participant(&id).await.unwrap()
}

fn survey() -> Value {
    json!({
        "id": "survey", "name": "Survey",
        "entry_points": [{"type": "api", "start": "ask"}],
        "elements": [
            {"id": "ask", "type": "evaluate-inbound",
             "config": {"channel": "whatsapp", "sender": "+44 7491 163443", "timeout": "2h",
                        "conditions": [
                            {"exit": "yes", "type": "keyword", "value": "yes"},
                            {"exit": "stop", "type": "equals", "value": "stop"},
                            {"exit": "code", "type": "regex", "value": "^[0-9]{4}$"},
                            {"exit": "help", "type": "contains", "value": "help"}]},
             "exits": {"yes": "end", "stop": "end", "code": "end", "help": "end", "other": "end", "timeout": "end"}},
            {"id": "end", "type": "exit"}
        ]
    })
}
