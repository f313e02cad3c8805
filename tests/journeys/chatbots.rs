//! Start chatbot (Answers): sessions, their end reasons, activation checks, webhook bots.

use super::*;

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
async fn in_session(inbound: &Inbound) -> String {
    let engine = inbound.engine();
    let p = engine
        .start("support", person(), BTreeMap::new())
        .await
        .unwrap();
    let delivery = inbound.receive(whatsapp("hello")).await.unwrap();
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
    let Setup {
        engine,
        inbound,
        clock,
    } = setup(dir.path()).await;
    enable_answers(&engine, &helper_bot("helper")).await;
    deploy(&engine, all_reasons_flow()).await;

    // Closed by the bot's Close session step; the transcript is in the message log.
    let id = in_session(&inbound).await;
    assert!(matches!(
        inbound.receive(whatsapp("opening hours?")).await.unwrap(),
        Delivery::Chatbot { .. }
    ));
    assert_eq!(
        engine.participant(&id).await.unwrap().status,
        Status::Waiting
    );
    inbound.receive(whatsapp("ok bye")).await.unwrap();
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
    let id = in_session(&inbound).await;
    inbound.receive(whatsapp("stop")).await.unwrap();
    assert_eq!(bot_exit(&engine, &id).await, "ended-by-user");

    // The bot's "to agent" step: redirect failed, and the flow hands over to an agent.
    let id = in_session(&inbound).await;
    inbound.receive(whatsapp("agent please")).await.unwrap();
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
    let id = in_session(&inbound).await;
    clock.advance_ms(9 * 60_000);
    inbound.receive(whatsapp("hours")).await.unwrap();
    clock.advance_ms(9 * 60_000);
    assert!(
        engine.resume_due().await.unwrap().is_empty(),
        "moved on by the message"
    );
    clock.advance_ms(60_000);
    assert_eq!(engine.resume_due().await.unwrap().len(), 1);
    assert_eq!(bot_exit(&engine, &id).await, "expired");

    // Ended externally: an agent conversation starts for the contact from another flow.
    let id = in_session(&inbound).await;
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
    let id = in_session(&inbound).await;
    inbound.stop_chatbot("helper").await.unwrap();
    assert_eq!(bot_exit(&engine, &id).await, "deactivated");

    // Session not started: no active chatbot on the sender when the participant arrives.
    let id = in_session_not_started(&inbound).await;
    assert_eq!(bot_exit(&engine, &id).await, "session-not-started");

    // Analytics count each end reason, and every session that started; one that did not
    // start is a reason but no session.
    let analytics = engine.analytics("support").await.unwrap();
    let bot = &analytics
        .iter()
        .find(|e| e.element_id == "bot")
        .unwrap()
        .counts;
    let left: u64 = bot.exits.values().sum();
    let ended: u64 = bot
        .details
        .iter()
        .filter(|(k, _)| *k != "sessions")
        .map(|(_, n)| n)
        .sum();
    assert_eq!(ended, left, "{bot:?}");
    assert_eq!(bot.details["session-not-started"], 1, "{bot:?}");
    assert_eq!(bot.details["deactivated"], 1, "{bot:?}");
    assert_eq!(bot.details["sessions"], left - 1, "{bot:?}");
}

async fn in_session_not_started(inbound: &Inbound) -> String {
    let p = inbound
        .engine()
        .start("support", person(), BTreeMap::new())
        .await
        .unwrap();
    inbound.receive(whatsapp("hello")).await.unwrap();
    p.id
}

#[tokio::test]
async fn chatbot_exits_offer_only_selected_conditions_plus_default_and_pick_the_current_bot() {
    let dir = tempfile::tempdir().unwrap();
    let Setup {
        engine, inbound, ..
    } = setup(dir.path()).await;
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
    inbound.stop_chatbot("first").await.unwrap();
    let id = in_session(&inbound).await;
    let journey = engine.journey(&id).await.unwrap();
    assert_eq!(
        step(&journey, "bot").data.as_ref().unwrap()["chatbot"],
        json!("second")
    );
    inbound.receive(whatsapp("STOP")).await.unwrap();
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
        let Setup {
            engine, inbound, ..
        } = setup(dir.path()).await;
        enable_answers(&engine, &helper_bot("helper")).await;
        deploy(&engine, all_reasons_flow()).await;
        in_session(&inbound).await
    };
    let Setup {
        engine, inbound, ..
    } = setup_at(dir.path(), T0 + 60_000).await;
    inbound.receive(whatsapp("bye")).await.unwrap();
    assert_eq!(bot_exit(&engine, &id).await, "closed");

    // Canceling the flow stops the participant; the chatbot session carries on.
    let id = in_session(&inbound).await;
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
        inbound.receive(whatsapp("hours")).await.unwrap(),
        Delivery::Chatbot { .. }
    ));
    let bot = Answers::chatbot(engine.store(), "helper")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(bot.status, flowhost::answers::BotStatus::Active);

    // With nobody waiting in it, the session still expires: the first message after its
    // timeout ends it and goes on to whoever is next in line.
    let Setup {
        engine, inbound, ..
    } = setup_at(dir.path(), T0 + 60_000 + 11 * 60_000).await;
    assert_eq!(
        inbound.receive(whatsapp("hours")).await.unwrap(),
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
    let err = check(changed.clone()).await.unwrap_err();
    assert_eq!(
        err,
        format!(
            "support.json: elements[1].config.sender: (element \"bot\") chatbot sender \"{SENDER}\" differs from sender \"447000000001\" of evaluate-inbound element \"ask\" (elements[0]); leave the sender out, or update it (flowhost flows update-chatbot-sender support)"
        )
    );
    // "Update chatbot sender" takes the evaluate-inbound's; then only the account is missing
    // a chatbot there.
    let mut updated = flow(changed.clone());
    let changes = flowhost::messaging::elements::update_chatbot_senders(&mut updated);
    assert_eq!((changes.len(), changes[0].to.as_str()), (1, "447000000001"));
    assert_eq!(updated.elements[1].config["sender"], "447000000001");
    let err = engine
        .compile(updated, "support.json")
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("no active chatbot on whatsapp sender \"447000000001\""),
        "{err}"
    );
    // A chatbot element without a sender takes the evaluate-inbound's.
    let mut implicit = good.clone();
    implicit["elements"][1]["config"]
        .as_object_mut()
        .unwrap()
        .remove("sender");
    check(implicit).await.unwrap();

    // The name a webhook bot answers with is not an end reason: it says which is.
    let mut to_agent = good.clone();
    to_agent["elements"][1]["config"]["conditions"] = json!(["to-agent"]);
    let err = check(to_agent).await.unwrap_err();
    assert!(
        err.contains("conditions[0]: (element \"bot\") \"to-agent\" is what a bot answers; the session end it makes, and its exit, is \"agent-redirect-failed\""),
        "{err}"
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

    // A draft is not activated: what would stop its activation comes as warnings.
    Answers::set_enabled(engine.store(), false).await.unwrap();
    let mut draft = good;
    draft["status"] = json!("draft");
    draft["elements"][0]["config"]["sender"] = json!("447000000001");
    let warnings: Vec<String> = engine
        .compile(flow(draft.clone()), "support.json")
        .await
        .unwrap()
        .warnings
        .iter()
        .map(ToString::to_string)
        .collect();
    assert!(
        warnings
            .iter()
            .any(|w| w.contains("Answers is not enabled"))
            && warnings.iter().any(|w| w.contains("differs from sender")),
        "{warnings:?}"
    );
    draft["elements"][0]["config"]["sender"] = json!(SENDER);
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
    let Setup {
        engine, inbound, ..
    } = setup(dir.path()).await;
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

    let id = in_session(&inbound).await;
    inbound.receive(whatsapp("bye")).await.unwrap();
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
    let id = in_session(&inbound).await;
    inbound.receive(whatsapp("answer me later")).await.unwrap();
    let journey = engine.journey(&id).await.unwrap();
    let session = step(&journey, "bot").data.as_ref().unwrap()["session"]
        .as_str()
        .unwrap()
        .to_owned();
    inbound
        .chatbot_event(
            &session,
            &BotEvent::Reply {
                text: "Here you go".into(),
            },
        )
        .await
        .unwrap();
    let done = inbound
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
    let err = inbound
        .chatbot_event(&session, &BotEvent::Reply { text: "x".into() })
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("has ended"), "{err}");

    // A bot that fails to answer: the session does not start, and the journey says why.
    down.store(true, std::sync::atomic::Ordering::SeqCst);
    let id = in_session_not_started(&inbound).await;
    assert_eq!(bot_exit(&engine, &id).await, "session-not-started");
    let journey = engine.journey(&id).await.unwrap();
    assert_eq!(
        step(&journey, "bot").data.as_ref().unwrap()["error"],
        json!(format!("chatbot webhook {}/bot answered 503", srv.url()))
    );
}
