//! Journeys across flows, people and agents: Add to Flow, People, flow lifecycle and entry
//! points, Evaluate inbound message, Start a Conversation, Start chatbot (Answers) and
//! analytics, on a real SQLite file, with restarts where waits must survive them.

use flowhost::answers::{Answers, BotEvent, Chatbot, EndReason};
use flowhost::clock::ManualClock;
use flowhost::config::{CallApiConfig, OutboundConfig};
use flowhost::conversations::{ConversationStatus, Conversations};
use flowhost::elements::ElementTypes;
use flowhost::engine::{Engine, EngineError};
use flowhost::flow::{FlowDef, FlowStatus};
use flowhost::messaging::{Channel, Delivery, InboundMessage};
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
    let types = ElementTypes::builtins_only()
        .with_call_api(client, &CallApiConfig::default())
        .unwrap();
    let engine = Engine::new(store, clock.clone(), types);
    engine.load_saved_flows().await.unwrap();
    Setup { engine, clock }
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

#[tokio::test]
async fn add_to_flow_placed_before_the_exit_moves_elsewhere_the_participant_is_in_both() {
    let dir = tempfile::tempdir().unwrap();
    let Setup { engine, .. } = setup(dir.path()).await;
    deploy(&engine, loyalty("active")).await;
    let add = json!({"flow": "loyalty", "variables": {"order": "{{order_id}}", "who": "{{person.firstName}}"}});

    // Elsewhere: continues here ("more") and also enters the target.
    deploy(&engine, referral(add.clone(), "more")).await;
    let p = engine
        .start("orders", person(), vars(json!({"order_id": 7})))
        .await
        .unwrap();
    assert_eq!(
        steps(&engine, &p.id).await,
        [x("add", "success"), x("more", "next"), s("end")]
    );
    assert_eq!(p.status, Status::Completed);
    assert_eq!(p.variables["stayed"], json!(true));
    let target = entered(&engine, &p).await;
    assert_eq!(target.flow_id, "loyalty");
    assert_eq!(target.status, Status::Waiting);
    assert_eq!(target.current.as_deref(), Some("hold"));
    assert_eq!(target.variables, vars(json!({"order": 7, "who": "Ada"})));
    assert_eq!(target.person, p.person);

    // Last before the exit: the participant leaves this flow and is only in the target.
    deploy(&engine, referral(add, "end")).await;
    let p = engine
        .start("orders", person(), vars(json!({"order_id": 8})))
        .await
        .unwrap();
    assert_eq!(steps(&engine, &p.id).await, [x("add", "success"), s("end")]);
    assert!(!p.variables.contains_key("stayed"));
    let target = entered(&engine, &p).await;
    assert_eq!(
        (target.status, target.variables["order"].clone()),
        (Status::Waiting, json!(8))
    );
}

#[tokio::test]
async fn add_to_flow_fails_over_for_draft_canceled_missing_entry_and_bad_contact() {
    let dir = tempfile::tempdir().unwrap();
    let Setup { engine, .. } = setup(dir.path()).await;
    let run = |engine: Engine, add: Value| async move {
        deploy(&engine, referral(add, "end")).await;
        let p = engine
            .start("orders", person(), vars(json!({"friend": "not-an-email"})))
            .await
            .unwrap();
        let journey = engine.journey(&p.id).await.unwrap();
        assert_eq!(step(&journey, "add").exit.as_deref(), Some("failover"));
        assert_eq!(p.variables["failed_over"], json!(true));
        step(&journey, "add").data.as_ref().unwrap()["failover"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let to_loyalty = json!({"flow": "loyalty"});

    let why = run(engine.clone(), to_loyalty.clone()).await;
    assert_eq!(why, "cannot add to flow: flow \"loyalty\" is not deployed");

    deploy(&engine, loyalty("draft")).await;
    let why = run(engine.clone(), to_loyalty.clone()).await;
    assert_eq!(
        why,
        "cannot add to flow: flow \"loyalty\" is draft, not active"
    );

    engine
        .set_flow_status("loyalty", FlowStatus::Canceled)
        .await
        .unwrap();
    let why = run(engine.clone(), to_loyalty.clone()).await;
    assert_eq!(
        why,
        "cannot add to flow: flow \"loyalty\" is canceled, not active"
    );

    let mut api_only = loyalty("active");
    api_only["entry_points"][0]["type"] = json!("api");
    deploy(&engine, api_only).await;
    let why = run(engine.clone(), to_loyalty).await;
    assert_eq!(
        why,
        "cannot add to flow: flow \"loyalty\" has no existing-flow entry point"
    );

    deploy(&engine, loyalty("active")).await;
    let why = run(
        engine.clone(),
        json!({"flow": "loyalty", "participant": {"contact": "{{friend}}", "type": "email"}}),
    )
    .await;
    assert_eq!(
        why,
        "invalid contact for the other participant: \"not-an-email\" is not an email address"
    );
    let why = run(
        engine.clone(),
        json!({"flow": "loyalty", "participant": {"contact": "{{friend_phone}}", "type": "phone"}}),
    )
    .await;
    assert!(
        why.starts_with(
            "no contact for the other participant: variable \"friend_phone\" is not set"
        ),
        "{why}"
    );
    // Nothing entered the target.
    assert_eq!(
        engine.analytics("loyalty").await.unwrap()[0].counts.entered,
        0,
        "failover enters no one"
    );
}

#[tokio::test]
async fn add_to_flow_with_another_participant_updates_or_creates_the_person() {
    let dir = tempfile::tempdir().unwrap();
    let Setup { engine, .. } = setup(dir.path()).await;
    let people = People::new(engine.store());
    people
        .define_attribute("referredBy", AttributeType::Text)
        .await
        .unwrap();
    let bob = people
        .create(Person {
            emails: vec!["bob@example.com".into()],
            attributes: json!({"firstName": "Bob"}).as_object().unwrap().clone(),
            ..Person::default()
        })
        .await
        .unwrap();
    deploy(&engine, loyalty("active")).await;
    deploy(
        &engine,
        referral(
            json!({"flow": "loyalty", "variables": {"by": "{{person.firstName}}"},
                   "participant": {"contact": "{{friend}}", "type": "email",
                                   "attributes": {"referredBy": "{{person.firstName}}"}}}),
            "more",
        ),
    )
    .await;

    // An existing person: found by contact (any case), attributes updated.
    let p = engine
        .start(
            "orders",
            person(),
            vars(json!({"friend": "BOB@example.com"})),
        )
        .await
        .unwrap();
    let journey = engine.journey(&p.id).await.unwrap();
    let data = step(&journey, "add").data.clone().unwrap();
    assert_eq!(data["person"], json!(bob.id));
    assert_eq!(data["personCreated"], json!(false));
    let target = entered(&engine, &p).await;
    assert_eq!(target.person.id, bob.id);
    let bob_now = people.get(&bob.id).await.unwrap().unwrap();
    assert_eq!(bob_now.attributes["referredBy"], json!("Ada"));
    assert_eq!(bob_now.attributes["firstName"], json!("Bob"));
    assert_eq!(target.person, bob_now);

    // A new contact: a profile is created with the contact and the attributes.
    let p = engine
        .start(
            "orders",
            person(),
            vars(json!({"friend": "carol@example.com"})),
        )
        .await
        .unwrap();
    let target = entered(&engine, &p).await;
    let carol = people
        .find(&Contact::email("carol@example.com").unwrap())
        .await
        .unwrap()
        .expect("profile created");
    assert_eq!(target.person, carol);
    assert_eq!(carol.emails, ["carol@example.com"]);
    assert_eq!(carol.attributes["referredBy"], json!("Ada"));
    assert_eq!(target.variables["by"], json!("Ada"));
}

#[tokio::test]
async fn flow_lifecycle_controls_who_may_enter_and_cancel_stops_waiting_participants() {
    let dir = tempfile::tempdir().unwrap();
    let Setup { engine, clock } = setup(dir.path()).await;
    let mut draft = loyalty("draft");
    draft["entry_points"] = json!([{"type": "api", "start": "hold"}]);
    deploy(&engine, draft).await;
    let err = engine
        .start("loyalty", person(), BTreeMap::new())
        .await
        .unwrap_err();
    assert!(matches!(err, EngineError::FlowNotActive { .. }), "{err}");
    engine
        .set_flow_status("loyalty", FlowStatus::Active)
        .await
        .unwrap();
    let waiting = engine
        .start("loyalty", person(), BTreeMap::new())
        .await
        .unwrap();
    assert_eq!(waiting.status, Status::Waiting);
    let err = engine
        .set_flow_status("loyalty", FlowStatus::Draft)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("cannot go from active to draft"), "{err}");

    // Finished: nobody new enters, those inside finish.
    engine
        .set_flow_status("loyalty", FlowStatus::Finished)
        .await
        .unwrap();
    assert!(
        engine
            .start("loyalty", person(), BTreeMap::new())
            .await
            .is_err()
    );
    clock.advance_ms(86_400_000);
    let done = engine.resume_due().await.unwrap();
    assert_eq!(done.len(), 1);
    assert_eq!(done[0].status, Status::Completed);

    // Canceled: waiting participants stop, with a journey entry; the status survives a restart.
    let mut other = loyalty("active");
    other["id"] = json!("winback");
    other["entry_points"] = json!([{"type": "api", "start": "hold"}]);
    deploy(&engine, other).await;
    let p = engine
        .start("winback", person(), BTreeMap::new())
        .await
        .unwrap();
    engine
        .set_flow_status("winback", FlowStatus::Canceled)
        .await
        .unwrap();
    let p = engine.participant(&p.id).await.unwrap();
    assert_eq!(p.status, Status::Canceled);
    let last = engine.journey(&p.id).await.unwrap().pop().unwrap();
    assert_eq!(last.error.as_deref(), Some("flow \"winback\" was canceled"));
    drop(engine);
    let again = setup_at(dir.path(), T0 + 2 * 86_400_000).await;
    assert_eq!(
        again.engine.flow_def("winback").unwrap().status,
        FlowStatus::Canceled
    );
    assert!(again.engine.resume_due().await.unwrap().is_empty());
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

#[tokio::test]
async fn evaluate_inbound_waits_across_a_restart_and_takes_the_exit_of_the_condition() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        ("Yes, please", "yes"),
        ("  STOP ", "stop"),
        ("4821", "code"),
        ("I need HELP now", "help"),
        ("maybe", "other"),
    ];
    let phone = |i: usize| format!("+44770090010{i}");
    let mut ids = Vec::new();
    {
        let Setup { engine, .. } = setup(dir.path()).await;
        deploy(&engine, survey()).await;
        for i in 0..cases.len() {
            let someone = Person {
                phones: vec![phone(i)],
                ..Person::default()
            };
            let p = engine
                .start("survey", someone, BTreeMap::new())
                .await
                .unwrap();
            assert_eq!(p.status, Status::Waiting);
            ids.push(p.id);
        }
    }
    // A new engine on the same database (a restart) takes the messages.
    let Setup { engine, .. } = setup_at(dir.path(), T0 + 1000).await;
    for (i, (text, exit)) in cases.iter().enumerate() {
        let message = InboundMessage {
            from: phone(i),
            ..whatsapp(text)
        };
        let delivery = engine.receive_inbound(message).await.unwrap();
        assert_eq!(
            delivery,
            Delivery::Waiting {
                participants: vec![ids[i].clone()]
            }
        );
        let p = engine.participant(&ids[i]).await.unwrap();
        assert_eq!(p.status, Status::Completed, "{text}");
        assert_eq!(steps(&engine, &ids[i]).await[1], x("ask", exit), "{text}");
        let last = &p.variables["LastInboundMessage"];
        assert_eq!(last["text"], json!(text));
        assert_eq!(last["channel"], json!("whatsapp"));
        assert_eq!(last["from"], json!(phone(i)));
        assert_eq!(last["to"], json!(SENDER));
        assert_eq!(last["receivedAt"], json!(T0 + 1000));
    }
}

#[tokio::test]
async fn evaluate_inbound_times_out_and_needs_a_contact() {
    let dir = tempfile::tempdir().unwrap();
    let Setup { engine, clock } = setup(dir.path()).await;
    deploy(&engine, survey()).await;
    let p = engine
        .start("survey", person(), BTreeMap::new())
        .await
        .unwrap();
    assert_eq!(p.waiting_until, Some(T0 + 2 * 3_600_000));
    clock.advance_ms(2 * 3_600_000);
    let done = engine.resume_due().await.unwrap();
    assert_eq!(done.len(), 1);
    assert_eq!(steps(&engine, &p.id).await[1], x("ask", "timeout"));
    // A late message finds nobody waiting.
    assert_eq!(
        engine.receive_inbound(whatsapp("yes")).await.unwrap(),
        Delivery::Unrouted
    );

    let nobody = Person {
        emails: vec!["ada@example.com".into()],
        ..Person::default()
    };
    let p = engine
        .start("survey", nobody, BTreeMap::new())
        .await
        .unwrap();
    let journey = engine.journey(&p.id).await.unwrap();
    assert_eq!(p.status, Status::Failed);
    assert!(
        journey[0].error.as_deref().unwrap().contains(
            "the person has no phone number for whatsapp; add one to the person's profile"
        ),
        "{journey:?}"
    );
}

#[tokio::test]
async fn inbound_messages_start_flows_at_inbound_entry_points_and_create_people() {
    let dir = tempfile::tempdir().unwrap();
    let Setup { engine, .. } = setup(dir.path()).await;
    deploy(
        &engine,
        json!({
            "id": "join", "name": "Join",
            "entry_points": [{"type": "inbound-message", "channel": "whatsapp", "sender": SENDER,
                              "keyword": "join", "start": "greet"}],
            "elements": [
                {"id": "greet", "type": "set-variable",
                 "config": {"set": {"said": "{{LastInboundMessage.text}}"}}, "exits": {"next": "end"}},
                {"id": "end", "type": "exit"}
            ]
        }),
    ).await;
    assert_eq!(
        engine.receive_inbound(whatsapp("hello")).await.unwrap(),
        Delivery::Unrouted,
        "the keyword does not match"
    );
    let Delivery::Started { participants } =
        engine.receive_inbound(whatsapp("JOIN now")).await.unwrap()
    else {
        panic!("not started");
    };
    let p = engine.participant(&participants[0]).await.unwrap();
    assert_eq!(p.variables["said"], json!("JOIN now"));
    let created = People::new(engine.store())
        .find(&Contact::phone(PHONE).unwrap())
        .await
        .unwrap()
        .expect("a profile for the new contact");
    assert_eq!(p.person, created);
    // The same contact again: the same person.
    let Delivery::Started { participants } =
        engine.receive_inbound(whatsapp("join")).await.unwrap()
    else {
        panic!("not started");
    };
    assert_eq!(
        engine
            .participant(&participants[0])
            .await
            .unwrap()
            .person
            .id,
        created.id
    );
    // People-kept persons can be started by id, at the flow's api entry point only.
    let err = engine
        .start_person("join", &created.id, BTreeMap::new())
        .await
        .unwrap_err()
        .to_string();
    assert_eq!(
        err,
        "flow \"join\" has no api entry point; add {\"type\": \"api\", \"start\": \"<element id>\"} to its entry_points"
    );
    let err = engine
        .start_person("join", "nobody", BTreeMap::new())
        .await
        .unwrap_err()
        .to_string();
    assert_eq!(err, "no person \"nobody\" in People");
    let err = engine
        .receive_inbound(InboundMessage {
            from: "call me".into(),
            ..whatsapp("join")
        })
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("inbound message: from: \"call me\" is not a phone number"),
        "{err}"
    );
}

fn support_flow(conditions: Value, exits: Value) -> Value {
    json!({
        "id": "support", "name": "Support",
        "entry_points": [{"type": "api", "start": "ask"}],
        "elements": [
            {"id": "ask", "type": "evaluate-inbound",
             "config": {"channel": "whatsapp", "sender": SENDER,
                        "conditions": [{"exit": "any", "type": "any"}]},
             "exits": {"any": "bot", "timeout": "end"}},
            {"id": "bot", "type": "start-chatbot",
             "config": {"sender": SENDER, "context": "Customer {{person.firstName}}",
                        "conditions": conditions},
             "exits": exits},
            {"id": "agent", "type": "start-conversation", "config": {"tag": "support", "create_tag": true},
             "exits": {"started": "end", "failed": "end"}},
            {"id": "end", "type": "exit"}
        ]
    })
}

fn all_reasons_flow() -> Value {
    let reasons: Vec<&str> = EndReason::ALL.iter().map(|r| r.as_str()).collect();
    let mut exits: serde_json::Map<String, Value> = reasons
        .iter()
        .map(|r| (r.to_string(), json!("end")))
        .collect();
    exits.insert("agent-redirect-failed".into(), json!("agent"));
    exits.insert("default".into(), json!("end"));
    support_flow(json!(reasons), Value::Object(exits))
}

fn helper_bot(id: &str) -> Chatbot {
    serde_json::from_value(json!({
        "id": id, "name": "Helper", "channel": "whatsapp", "sender": SENDER,
        "session_timeout": "10m",
        "backend": {"type": "scripted", "greeting": format!("Hi, I am {id}"),
                    "replies": {"hours": "We are open 9 to 5"}, "fallback": "Sorry?",
                    "close": {"bye": "Goodbye!"}, "to_agent": ["agent"], "end": ["stop"]}
    }))
    .unwrap()
}

async fn enable_answers(engine: &Engine, bot: &Chatbot) {
    Answers::set_enabled(engine.store(), true).await.unwrap();
    Answers::save_chatbot(engine.store(), bot).await.unwrap();
}

/// Starts a participant and brings it into a chatbot session with its first message.
async fn in_session(engine: &Engine) -> String {
    let p = engine
        .start("support", person(), BTreeMap::new())
        .await
        .unwrap();
    let delivery = engine.receive_inbound(whatsapp("hello")).await.unwrap();
    assert_eq!(
        delivery,
        Delivery::Waiting {
            participants: vec![p.id.clone()]
        }
    );
    let p = engine.participant(&p.id).await.unwrap();
    assert_eq!(
        p.current.as_deref(),
        Some("bot"),
        "{:?}",
        steps(engine, &p.id).await
    );
    assert_eq!(p.status, Status::Waiting);
    p.id
}

async fn bot_exit(engine: &Engine, id: &str) -> String {
    let journey = engine.journey(id).await.unwrap();
    step(&journey, "bot").exit.clone().unwrap_or_default()
}

#[tokio::test]
async fn chatbot_sessions_end_on_the_exit_of_their_reason() {
    let dir = tempfile::tempdir().unwrap();
    let Setup { engine, clock } = setup(dir.path()).await;
    enable_answers(&engine, &helper_bot("helper")).await;
    deploy(&engine, all_reasons_flow()).await;

    // Closed by the bot's Close session step; the transcript is in the message log.
    let id = in_session(&engine).await;
    assert!(matches!(
        engine
            .receive_inbound(whatsapp("opening hours?"))
            .await
            .unwrap(),
        Delivery::Chatbot { .. }
    ));
    assert_eq!(
        engine.participant(&id).await.unwrap().status,
        Status::Waiting
    );
    engine.receive_inbound(whatsapp("ok bye")).await.unwrap();
    assert_eq!(bot_exit(&engine, &id).await, "closed");
    assert_eq!(
        engine.participant(&id).await.unwrap().status,
        Status::Completed
    );
    let log: Vec<String> =
        flowhost::messaging::recent_messages(engine.store(), &Contact::phone(PHONE).unwrap(), 7)
            .await
            .unwrap()
            .into_iter()
            .map(|m| m.text)
            .collect();
    assert_eq!(
        log,
        [
            "hello",
            "Hi, I am helper",
            "Sorry?",
            "opening hours?",
            "We are open 9 to 5",
            "ok bye",
            "Goodbye!"
        ]
    );

    // Ended by the user.
    let id = in_session(&engine).await;
    engine.receive_inbound(whatsapp("stop")).await.unwrap();
    assert_eq!(bot_exit(&engine, &id).await, "ended-by-user");

    // The bot's "to agent" step: redirect failed, and the flow hands over to an agent.
    let id = in_session(&engine).await;
    engine
        .receive_inbound(whatsapp("agent please"))
        .await
        .unwrap();
    assert_eq!(bot_exit(&engine, &id).await, "agent-redirect-failed");
    let journey = engine.journey(&id).await.unwrap();
    assert_eq!(step(&journey, "agent").exit.as_deref(), Some("started"));
    let conversation = step(&journey, "agent").data.as_ref().unwrap()["conversation"]
        .as_str()
        .unwrap()
        .to_owned();
    Conversations::new(engine.store())
        .close(&conversation, T0)
        .await
        .unwrap();

    // Expired: no message within the session timeout, which each message moves.
    let id = in_session(&engine).await;
    clock.advance_ms(9 * 60_000);
    engine.receive_inbound(whatsapp("hours")).await.unwrap();
    clock.advance_ms(9 * 60_000);
    assert!(
        engine.resume_due().await.unwrap().is_empty(),
        "moved on by the message"
    );
    clock.advance_ms(60_000);
    assert_eq!(engine.resume_due().await.unwrap().len(), 1);
    assert_eq!(bot_exit(&engine, &id).await, "expired");

    // Ended externally: an agent conversation starts for the contact from another flow.
    let id = in_session(&engine).await;
    deploy(
        &engine,
        json!({
            "id": "escalate", "name": "Escalate",
            "entry_points": [{"type": "api", "start": "agent"}],
            "elements": [
                {"id": "agent", "type": "start-conversation",
                 "config": {"tag": "vip", "create_tag": true, "channel": "whatsapp", "sender": SENDER},
                 "exits": {"started": "end", "failed": "end"}},
                {"id": "end", "type": "exit"}
            ]
        }),
    ).await;
    engine
        .start("escalate", person(), BTreeMap::new())
        .await
        .unwrap();
    assert_eq!(bot_exit(&engine, &id).await, "ended-externally");
    let vip = Conversations::new(engine.store())
        .list(Some("vip"), None)
        .await
        .unwrap();
    Conversations::new(engine.store())
        .close(&vip[0].id, T0)
        .await
        .unwrap();

    // Deactivated while the session runs.
    let id = in_session(&engine).await;
    engine.stop_chatbot("helper").await.unwrap();
    assert_eq!(bot_exit(&engine, &id).await, "deactivated");

    // Session not started: no active chatbot on the sender when the participant arrives.
    let id = in_session_not_started(&engine).await;
    assert_eq!(bot_exit(&engine, &id).await, "session-not-started");
}

async fn in_session_not_started(engine: &Engine) -> String {
    let p = engine
        .start("support", person(), BTreeMap::new())
        .await
        .unwrap();
    engine.receive_inbound(whatsapp("hello")).await.unwrap();
    p.id
}

#[tokio::test]
async fn chatbot_exits_offer_only_selected_conditions_plus_default_and_pick_the_current_bot() {
    let dir = tempfile::tempdir().unwrap();
    let Setup { engine, .. } = setup(dir.path()).await;
    enable_answers(&engine, &helper_bot("first")).await;
    let err = engine
        .compile(
            flow(support_flow(
                json!(["closed"]),
                json!({"closed": "end", "expired": "end"}),
            )),
            "support.json",
        )
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("elements[1].exits.expired: element \"bot\" (start-chatbot) has no exit \"expired\"; its exits: closed, default"),
        "{err}"
    );
    deploy(
        &engine,
        support_flow(
            json!(["closed"]),
            json!({"closed": "end", "default": "agent"}),
        ),
    )
    .await;
    // The first bot is stopped and another takes the sender: the new one gets the session.
    Answers::save_chatbot(engine.store(), &helper_bot("second"))
        .await
        .unwrap();
    engine.stop_chatbot("first").await.unwrap();
    let id = in_session(&engine).await;
    let journey = engine.journey(&id).await.unwrap();
    assert_eq!(
        step(&journey, "bot").data.as_ref().unwrap()["chatbot"],
        json!("second")
    );
    engine.receive_inbound(whatsapp("STOP")).await.unwrap();
    assert_eq!(bot_exit(&engine, &id).await, "default");
    let journey = engine.journey(&id).await.unwrap();
    assert_eq!(
        step(&journey, "bot").data.as_ref().unwrap()["reason"],
        json!("ended-by-user")
    );
}

#[tokio::test]
async fn a_participant_in_a_chatbot_session_survives_a_restart_and_cancel_leaves_the_bot_alone() {
    let dir = tempfile::tempdir().unwrap();
    let id = {
        let Setup { engine, .. } = setup(dir.path()).await;
        enable_answers(&engine, &helper_bot("helper")).await;
        deploy(&engine, all_reasons_flow()).await;
        in_session(&engine).await
    };
    let Setup { engine, .. } = setup_at(dir.path(), T0 + 60_000).await;
    engine.receive_inbound(whatsapp("bye")).await.unwrap();
    assert_eq!(bot_exit(&engine, &id).await, "closed");

    // Canceling the flow stops the participant; the chatbot session carries on.
    let id = in_session(&engine).await;
    engine
        .set_flow_status("support", FlowStatus::Canceled)
        .await
        .unwrap();
    assert_eq!(
        engine.participant(&id).await.unwrap().status,
        Status::Canceled
    );
    let contact = Contact::phone(PHONE).unwrap();
    let session = Answers::running_session(engine.store(), Channel::Whatsapp, &contact, SENDER)
        .await
        .unwrap();
    assert!(session.is_some(), "the session is untouched");
    assert!(matches!(
        engine.receive_inbound(whatsapp("hours")).await.unwrap(),
        Delivery::Chatbot { .. }
    ));
    let bot = Answers::chatbot(engine.store(), "helper")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(bot.status, flowhost::answers::BotStatus::Active);

    // With nobody waiting in it, the session still expires: the first message after its
    // timeout ends it and goes on to whoever is next in line.
    let Setup { engine, .. } = setup_at(dir.path(), T0 + 60_000 + 11 * 60_000).await;
    assert_eq!(
        engine.receive_inbound(whatsapp("hours")).await.unwrap(),
        Delivery::Unrouted
    );
    assert!(
        Answers::running_session(engine.store(), Channel::Whatsapp, &contact, SENDER)
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test]
async fn chatbot_placement_sender_and_account_are_checked_when_the_flow_is_activated() {
    let dir = tempfile::tempdir().unwrap();
    let Setup { engine, .. } = setup(dir.path()).await;
    let check = async |value: Value| {
        engine
            .compile(flow(value), "support.json")
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    };
    let good = all_reasons_flow();
    let err = check(good.clone()).await.unwrap_err();
    assert!(
        err.contains("support.json: elements[1].type: (element \"bot\") Answers is not enabled for this account; enable it (flowhost answers enable) before activating the flow"),
        "{err}"
    );
    Answers::set_enabled(engine.store(), true).await.unwrap();
    let err = check(good.clone()).await.unwrap_err();
    assert_eq!(
        err,
        format!(
            "support.json: elements[1].config.sender: (element \"bot\") no active chatbot on whatsapp sender \"{SENDER}\"; add or start one there (flowhost chatbots add BOT.json)"
        )
    );
    Answers::save_chatbot(engine.store(), &helper_bot("helper"))
        .await
        .unwrap();
    check(good.clone()).await.unwrap();

    // The sender changed in the evaluate-inbound element but not in the chatbot.
    let mut changed = good.clone();
    changed["elements"][0]["config"]["sender"] = json!("447000000001");
    let err = check(changed).await.unwrap_err();
    assert_eq!(
        err,
        format!(
            "support.json: elements[1].config.sender: (element \"bot\") chatbot sender \"{SENDER}\" differs from sender \"447000000001\" of evaluate-inbound element \"ask\" (elements[0]); update the chatbot sender to \"447000000001\""
        )
    );

    // Reachable without an evaluate-inbound element first.
    let mut skipped = good.clone();
    skipped["entry_points"] = json!([
        {"type": "api", "start": "bot"},
        {"type": "existing-flow", "start": "ask"}
    ]);
    let err = check(skipped).await.unwrap_err();
    assert!(
        err.starts_with("support.json: elements[1]: (element \"bot\") can be reached without an evaluate-inbound element before it"),
        "{err}"
    );

    // A draft is not activated, so it is not checked against the account yet.
    Answers::set_enabled(engine.store(), false).await.unwrap();
    let mut draft = good;
    draft["status"] = json!("draft");
    deploy(&engine, draft).await;
    let err = engine
        .set_flow_status("support", FlowStatus::Active)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("Answers is not enabled"), "{err}");
}

#[tokio::test]
async fn webhook_chatbots_answer_over_http_and_report_later_through_the_library() {
    let dir = tempfile::tempdir().unwrap();
    let Setup { engine, .. } = setup(dir.path()).await;
    let down = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let is_down = down.clone();
    let srv = TestServer::start_replying(move |r| {
        if is_down.load(std::sync::atomic::Ordering::SeqCst) {
            return Reply::json(503, "");
        }
        let event: Value = serde_json::from_slice(&r.body).unwrap();
        let text = event["text"].as_str().unwrap_or_default();
        if text.contains("later") {
            Reply::json(200, "")
        } else if text.contains("bye") {
            Reply::json(200, r#"{"replies": ["See you"], "end": "closed"}"#)
        } else {
            Reply::json(200, r#"{"replies": ["Hello from the webhook"]}"#)
        }
    })
    .await;
    let bot: Chatbot = serde_json::from_value(json!({
        "id": "external", "channel": "whatsapp", "sender": SENDER,
        "backend": {"type": "webhook", "url": format!("{}/bot", srv.url())}
    }))
    .unwrap();
    enable_answers(&engine, &bot).await;
    deploy(&engine, all_reasons_flow()).await;

    let id = in_session(&engine).await;
    engine.receive_inbound(whatsapp("bye")).await.unwrap();
    assert_eq!(bot_exit(&engine, &id).await, "closed");
    let sent: Vec<Value> = srv
        .received()
        .iter()
        .map(|r| serde_json::from_slice(&r.body).unwrap())
        .collect();
    assert_eq!(sent[0]["event"], json!("start"));
    assert_eq!(sent[0]["text"], json!("hello\nCustomer Ada"));
    assert_eq!(sent[0]["contact"], json!(PHONE));
    assert_eq!(sent[1]["event"], json!("message"));

    // The bot answers later, through the library.
    let id = in_session(&engine).await;
    engine
        .receive_inbound(whatsapp("answer me later"))
        .await
        .unwrap();
    let journey = engine.journey(&id).await.unwrap();
    let session = step(&journey, "bot").data.as_ref().unwrap()["session"]
        .as_str()
        .unwrap()
        .to_owned();
    engine
        .chatbot_event(
            &session,
            &BotEvent::Reply {
                text: "Here you go".into(),
            },
        )
        .await
        .unwrap();
    let done = engine
        .chatbot_event(
            &session,
            &BotEvent::End {
                reason: EndReason::EndedByUser,
            },
        )
        .await
        .unwrap();
    assert_eq!(done[0].id, id);
    assert_eq!(bot_exit(&engine, &id).await, "ended-by-user");
    let err = engine
        .chatbot_event(&session, &BotEvent::Reply { text: "x".into() })
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("has ended"), "{err}");

    // A bot that fails to answer: the session does not start, and the journey says why.
    down.store(true, std::sync::atomic::Ordering::SeqCst);
    let id = in_session_not_started(&engine).await;
    assert_eq!(bot_exit(&engine, &id).await, "session-not-started");
    let journey = engine.journey(&id).await.unwrap();
    assert_eq!(
        step(&journey, "bot").data.as_ref().unwrap()["error"],
        json!(format!("chatbot webhook {}/bot answered 503", srv.url()))
    );
}

#[tokio::test]
async fn agents_list_assign_reply_and_close_conversations_with_recent_messages() {
    let dir = tempfile::tempdir().unwrap();
    let Setup { engine, .. } = setup(dir.path()).await;
    let agents = Conversations::new(engine.store());
    agents.create_tag("billing").await.unwrap();
    let handover = |tag: &str, create: bool| {
        json!({
            "id": format!("handover-{tag}"), "name": "Handover",
            "entry_points": [{"type": "api", "start": "ask"}],
            "elements": [
                {"id": "ask", "type": "evaluate-inbound",
                 "config": {"channel": "sms", "sender": "InfoSMS", "conditions": []},
                 "exits": {"other": "agent", "timeout": "end"}},
                {"id": "agent", "type": "start-conversation",
                 "config": {"tag": tag, "create_tag": create, "recent_messages": 2},
                 "exits": {"started": "end", "failed": "end"}},
                {"id": "end", "type": "exit"}
            ]
        })
    };
    let sms = |text: &str| InboundMessage {
        channel: Channel::Sms,
        from: PHONE.into(),
        to: "INFOSMS".into(),
        text: text.into(),
        received_at: None,
    };
    // Messages before the flow: the conversation starts with the two newest.
    engine.receive_inbound(sms("first")).await.unwrap();
    engine.receive_inbound(sms("second")).await.unwrap();

    deploy(&engine, handover("unknown", false)).await;
    let p = engine
        .start("handover-unknown", person(), BTreeMap::new())
        .await
        .unwrap();
    engine
        .receive_inbound(sms("my bill is wrong"))
        .await
        .unwrap();
    let journey = engine.journey(&p.id).await.unwrap();
    assert_eq!(step(&journey, "agent").exit.as_deref(), Some("failed"));
    assert!(
        step(&journey, "agent").data.as_ref().unwrap()["failed"]
            .as_str()
            .unwrap()
            .starts_with("tag \"unknown\" does not exist")
    );

    deploy(&engine, handover("billing", false)).await;
    let p = engine
        .start("handover-billing", person(), BTreeMap::new())
        .await
        .unwrap();
    engine.receive_inbound(sms("still wrong")).await.unwrap();
    assert_eq!(steps(&engine, &p.id).await[2], x("agent", "started"));
    let open = agents
        .list(Some("billing"), Some(ConversationStatus::Open))
        .await
        .unwrap();
    assert_eq!(open.len(), 1);
    let c = &open[0];
    let texts: Vec<&str> = c.messages.iter().map(|m| m.text.as_str()).collect();
    assert_eq!(texts, ["my bill is wrong", "still wrong"]);
    assert_eq!((c.channel, c.sender.as_str()), (Channel::Sms, "INFOSMS"));
    assert_eq!(c.participant_id, p.id);

    // Messages from the contact now go to the conversation.
    assert_eq!(
        engine.receive_inbound(sms("hello?")).await.unwrap(),
        Delivery::Conversation { id: c.id.clone() }
    );
    let err = agents.reply(&c.id, "hi", T0).await.unwrap_err().to_string();
    assert!(err.contains("is not assigned"), "{err}");
    agents.assign(&c.id, "maria").await.unwrap();
    let c2 = agents.reply(&c.id, "Hi, Maria here", T0).await.unwrap();
    assert_eq!(c2.messages.last().unwrap().by.as_deref(), Some("maria"));
    assert_eq!(c2.messages.len(), 4);
    assert!(
        agents
            .list(Some("billing"), Some(ConversationStatus::Open))
            .await
            .unwrap()
            .is_empty()
    );
    agents.close(&c.id, T0 + 5).await.unwrap();
    assert!(agents.close(&c.id, T0 + 6).await.is_err());
    // A second start for the same contact while one is open fails; after closing it works.
    deploy(&engine, handover("created-on-the-spot", true)).await;
    let p = engine
        .start("handover-created-on-the-spot", person(), BTreeMap::new())
        .await
        .unwrap();
    engine.receive_inbound(sms("again")).await.unwrap();
    assert_eq!(steps(&engine, &p.id).await[2], x("agent", "started"));
    assert!(agents.tag_exists("created-on-the-spot").await.unwrap());
}

#[tokio::test]
async fn analytics_count_entries_exits_and_waiting_per_element() {
    let dir = tempfile::tempdir().unwrap();
    let Setup { engine, clock } = setup(dir.path()).await;
    deploy(&engine, survey()).await;
    for _ in 0..3 {
        engine
            .start("survey", person(), BTreeMap::new())
            .await
            .unwrap();
    }
    let by_id = async |engine: &Engine| -> BTreeMap<String, Value> {
        engine
            .analytics("survey")
            .await
            .unwrap()
            .into_iter()
            .map(|a| (a.element_id.clone(), serde_json::to_value(&a).unwrap()))
            .collect()
    };
    let a = by_id(&engine).await;
    assert_eq!(a["ask"]["entered"], json!(3));
    assert_eq!(a["ask"]["waiting"], json!(3));
    assert_eq!(a["ask"]["exits"], json!({}));
    engine.receive_inbound(whatsapp("yes")).await.unwrap();
    clock.advance_ms(3 * 3_600_000);
    engine
        .start(
            "survey",
            Person {
                phones: vec!["+385911234567".into()],
                ..Person::default()
            },
            BTreeMap::new(),
        )
        .await
        .unwrap();
    let a = by_id(&engine).await;
    assert_eq!(
        a["ask"]["entered"],
        json!(4),
        "a resumed participant is not counted twice"
    );
    assert_eq!(a["ask"]["exits"], json!({"yes": 3}));
    assert_eq!(a["ask"]["waiting"], json!(1));
    assert_eq!(a["end"]["entered"], json!(3));
    assert_eq!(a["ask"]["element_type"], json!("evaluate-inbound"));
}
