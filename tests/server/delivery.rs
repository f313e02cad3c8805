//! Outgoing messages: what chatbots and agents write reaches a channel endpoint on
//! 127.0.0.1 through the channel's connector, in order, retried, and recorded in the log.

use super::*;
use flowhost::answers::{Answers, Chatbot};
use flowhost::config::{ChannelConfig, DeliverConfig};
use flowhost::secrets::SecretSource;
use flowhost::testing::Reply;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

const PHONE: &str = "447700900123";
const SENDER: &str = "447491163443";
const SECRET: &str = "wa-hook-secret";

/// Waits for a message on WhatsApp, hands it to the chatbot, and to an agent when the bot
/// gives up.
fn support_flow() -> Value {
    json!({
        "id": "support", "name": "Support",
        "entry_points": [{"type": "api", "start": "ask"}],
        "elements": [
            {"id": "ask", "type": "evaluate-inbound",
             "config": {"channel": "whatsapp", "sender": SENDER,
                        "conditions": [{"exit": "any", "type": "any"}]},
             "exits": {"any": "bot", "timeout": "end"}},
            {"id": "bot", "type": "start-chatbot",
             "config": {"sender": SENDER, "conditions": ["agent-redirect-failed"]},
             "exits": {"agent-redirect-failed": "agent", "default": "end"}},
            {"id": "agent", "type": "start-conversation",
             "config": {"tag": "support", "create_tag": true},
             "exits": {"started": "end", "failed": "end"}},
            {"id": "end", "type": "exit"}
        ]
    })
}

fn helper_bot() -> Chatbot {
    serde_json::from_value(json!({
        "id": "helper", "name": "Helper", "channel": "whatsapp", "sender": SENDER,
        "session_timeout": "10m",
        "backend": {"type": "scripted", "greeting": "Hi, I am Helper",
                    "replies": {"hours": "We are open 9 to 5"},
                    "to_agent": ["agent"]}
    }))
    .unwrap()
}

/// The whatsapp channel: webhooks with [`SECRET`], and `deliver` when given.
fn whatsapp(deliver: Option<DeliverConfig>) -> impl FnOnce(&mut OperatorConfig) {
    move |c: &mut OperatorConfig| {
        c.outbound.allow_private = vec!["127.0.0.1".into()];
        c.server.channels.insert(
            "whatsapp".into(),
            ChannelConfig {
                secret: Some(SecretSource::Value(SECRET.into())),
                deliver,
            },
        );
    }
}

fn gateway(url: String) -> DeliverConfig {
    DeliverConfig {
        url,
        headers: BTreeMap::from([(
            "Authorization".to_owned(),
            SecretSource::Value("Bearer gw-token".into()),
        )]),
        timeout_ms: 2_000,
        max_attempts: 3,
        backoff_ms: 50,
        max_backoff_ms: 200,
    }
}

impl Service {
    /// A customer's WhatsApp message through the channel's webhook.
    async fn customer_says(&self, text: &str, id: &str) -> Answer {
        let body = json!({"from": format!("+{PHONE}"), "to": SENDER, "text": text,
                          "message_id": id})
        .to_string();
        let bearer = format!("Bearer {SECRET}");
        let answer = self
            .call_with(
                Method::POST,
                "/v1/channels/whatsapp/messages",
                None,
                &body,
                &[("authorization", &bearer)],
            )
            .await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
        answer
    }

    /// The conversation the bot handed over.
    async fn open_conversation(&self) -> String {
        let open = self.get("/v1/conversations?tag=support&status=open").await;
        let found = open.body["conversations"].as_array().unwrap();
        assert_eq!(found.len(), 1, "{}", open.body);
        found[0]["id"].as_str().unwrap().to_owned()
    }

    /// The log's messages with the customer, oldest first.
    async fn messages(&self) -> Vec<Value> {
        let log = self
            .get(&format!("/v1/messages?contact=%2B{PHONE}&channel=whatsapp"))
            .await;
        assert_eq!(log.status, StatusCode::OK, "{}", log.body);
        log.body["messages"].as_array().unwrap().clone()
    }
}

impl Service {
    /// Turns Answers on with `bot` (in the service's store, as `flowhost chatbot` would),
    /// deploys `flow` and adds the customer to it; returns the participant ids.
    async fn customer_in(&self, dir: &Path, bot: &Chatbot, flow: &Value) -> Vec<Value> {
        let store = flowhost::runtime::open_store(&config_in(dir))
            .await
            .unwrap();
        Answers::set_enabled(store.as_ref(), true).await.unwrap();
        Answers::save_chatbot(store.as_ref(), bot).await.unwrap();
        let deployed = self.post("/v1/flows", flow).await;
        assert_eq!(deployed.status, StatusCode::CREATED, "{}", deployed.body);
        let added = self
            .post(
                "/v1/flows/support/participants",
                &json!({"participants": [{"contact": format!("+{PHONE}")}]}),
            )
            .await;
        let ids = added.body["participants"].as_array().unwrap().clone();
        self.settle(&ids).await;
        ids
    }
}

/// Waits until the log's message with `text` is no longer pending, and returns it.
async fn settled(service: &Service, text: &str) -> Value {
    for _ in 0..400 {
        let found = service
            .messages()
            .await
            .into_iter()
            .find(|m| m["text"] == text);
        if let Some(m) = found
            && m["sending"]["state"] != "pending"
        {
            return m;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("{text:?} is still pending: {:?}", service.messages().await);
}

#[tokio::test]
async fn bot_and_agent_replies_reach_the_channel_in_order_and_a_failed_attempt_is_retried() {
    let dir = tempfile::tempdir().unwrap();
    // The gateway fails its first request, then takes every message with an id of its own.
    let calls = Arc::new(AtomicUsize::new(0));
    let counted = calls.clone();
    let channel =
        TestServer::start_replying(move |_| match counted.fetch_add(1, Ordering::SeqCst) {
            0 => Reply::json(503, r#"{"error": "busy"}"#),
            n => Reply::json(200, &format!(r#"{{"id": "gw-{n}"}}"#)),
        })
        .await;
    let service = Service::start(dir.path(), whatsapp(Some(gateway(channel.url())))).await;
    let ids = service
        .customer_in(dir.path(), &helper_bot(), &support_flow())
        .await;

    // The first message starts the bot, whose greeting meets the failing gateway; the
    // answer to the second waits behind the greeting's retry.
    service.customer_says("hello", "wa-1").await;
    service.settle(&ids).await;
    service.customer_says("your hours?", "wa-2").await;
    service.customer_says("an agent please", "wa-3").await;
    service.settle(&ids).await;
    let conversation = format!("/v1/conversations/{}", service.open_conversation().await);
    let assigned = service
        .post(&format!("{conversation}/assign"), &json!({"agent": "maja"}))
        .await;
    assert_eq!(assigned.status, StatusCode::OK, "{}", assigned.body);
    let replied = service
        .post(
            &format!("{conversation}/replies"),
            &json!({"text": "Maja here, how can I help?"}),
        )
        .await;
    assert_eq!(replied.status, StatusCode::CREATED, "{}", replied.body);

    let got = received(&channel, 4).await;
    let texts: Vec<Value> = got.iter().map(|r| body(r)["text"].clone()).collect();
    assert_eq!(
        texts,
        [
            "Hi, I am Helper",
            "Hi, I am Helper",
            "We are open 9 to 5",
            "Maja here, how can I help?"
        ],
        "in order, the greeting twice"
    );
    for r in &got {
        assert_eq!(r.method, "POST");
        assert_eq!(r.header("authorization"), Some("Bearer gw-token"));
        let sent = body(r);
        assert_eq!(r.header("idempotency-key"), sent["messageId"].as_str());
        assert_eq!(sent["to"], PHONE);
        assert_eq!(sent["from"], SENDER);
        assert_eq!(sent["channel"], "whatsapp");
    }
    assert_eq!(
        got[0].header("idempotency-key"),
        got[1].header("idempotency-key"),
        "a retry is the same message"
    );
    assert_eq!(
        (body(&got[1])["author"].clone(), body(&got[1])["by"].clone()),
        (json!("bot"), json!("helper"))
    );
    assert_eq!(
        (body(&got[3])["author"].clone(), body(&got[3])["by"].clone()),
        (json!("agent"), json!("maja"))
    );

    // The log says what happened to each.
    let greeting = settled(&service, "Hi, I am Helper").await;
    assert_eq!(greeting["sending"]["state"], "sent", "{greeting}");
    assert_eq!(greeting["sending"]["attempts"], 2);
    assert_eq!(greeting["sending"]["providerId"], "gw-1");
    let agent = settled(&service, "Maja here, how can I help?").await;
    assert_eq!(agent["sending"]["providerId"], "gw-3");
    let customer = service
        .messages()
        .await
        .into_iter()
        .find(|m| m["text"] == "hello")
        .unwrap();
    assert!(customer.get("sending").is_none(), "{customer}");
    let read = service.get(&conversation).await;
    let last = read.body["messages"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    assert_eq!(
        last["sending"]["state"], "sent",
        "the agent desk sees it: {last}"
    );
    let one = service
        .get(&format!("/v1/messages/{}", agent["id"].as_str().unwrap()))
        .await;
    assert_eq!(one.body, agent);
    assert_eq!(
        service.get("/v1/messages/m-none").await.status,
        StatusCode::NOT_FOUND
    );
    let scraped = service
        .get("/metrics")
        .await
        .body
        .as_str()
        .unwrap()
        .to_owned();
    for result in ["sent", "retry"] {
        let series =
            format!(r#"flowhost_messages_sent_total{{channel="whatsapp",result="{result}"}}"#);
        assert!(scraped.contains(&series), "{series} in {scraped}");
    }
    let bad = service.get("/v1/messages?contact=nobody").await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST, "{}", bad.body);
    assert_eq!(bad.body["errors"][0]["path"], "contact");
    service.stop().await;
}

#[tokio::test]
async fn messages_wait_for_a_connector_and_a_refusal_or_retries_running_out_fail_them() {
    let dir = tempfile::tempdir().unwrap();
    let handover = json!({
        "id": "handover", "name": "Handover",
        "entry_points": [{"type": "inbound-message", "channel": "whatsapp", "sender": SENDER,
                          "start": "agent"}],
        "elements": [
            {"id": "agent", "type": "start-conversation",
             "config": {"tag": "support", "create_tag": true},
             "exits": {"started": "end", "failed": "end"}},
            {"id": "end", "type": "exit"}
        ]
    });

    // No connector yet: the agent's reply is kept, pending.
    let service = Service::start(dir.path(), whatsapp(None)).await;
    let deployed = service.post("/v1/flows", &handover).await;
    assert_eq!(deployed.status, StatusCode::CREATED, "{}", deployed.body);
    let started = service.customer_says("hello", "wa-1").await;
    service
        .settle(started.body["delivery"]["participants"].as_array().unwrap())
        .await;
    let conversation = format!("/v1/conversations/{}", service.open_conversation().await);
    service
        .post(&format!("{conversation}/assign"), &json!({"agent": "ivo"}))
        .await;
    for text in [
        "first, kept while no connector",
        "please refuse",
        "please flake",
        "last",
    ] {
        let replied = service
            .post(&format!("{conversation}/replies"), &json!({"text": text}))
            .await;
        assert_eq!(replied.status, StatusCode::CREATED, "{}", replied.body);
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let kept = service.messages().await;
    assert!(
        kept.iter()
            .filter(|m| m["author"] == "agent")
            .all(|m| m["sending"]["state"] == "pending" && m["sending"]["attempts"] == 0),
        "{kept:?}"
    );
    service.stop().await;

    // With a connector, after a restart: each goes out. The gateway refuses one and is
    // always busy for another; neither holds back the messages after it.
    let channel = TestServer::start_replying(|r: &Received| {
        let text = body(r)["text"].as_str().unwrap_or_default().to_owned();
        match text.as_str() {
            "please refuse" => Reply::json(400, r#"{"error": "unknown recipient"}"#),
            "please flake" => Reply::json(503, "{}").header("retry-after", "0"),
            _ => Reply::json(202, ""),
        }
    })
    .await;
    let service = Service::start(dir.path(), whatsapp(Some(gateway(channel.url())))).await;
    let refused = settled(&service, "please refuse").await;
    assert_eq!(refused["sending"]["state"], "failed");
    assert_eq!(
        refused["sending"]["attempts"], 1,
        "a refusal is not retried"
    );
    let reason = refused["sending"]["lastError"].as_str().unwrap();
    assert!(
        reason.contains("answered 400") && reason.contains("unknown recipient"),
        "{reason}"
    );
    let flaky = settled(&service, "please flake").await;
    assert_eq!(flaky["sending"]["state"], "failed");
    assert_eq!(flaky["sending"]["attempts"], 3);
    assert!(
        flaky["sending"]["lastError"]
            .as_str()
            .unwrap()
            .contains("gave up after 3 attempts"),
        "{flaky}"
    );
    for text in ["first, kept while no connector", "last"] {
        let m = settled(&service, text).await;
        assert_eq!(m["sending"]["state"], "sent", "{m}");
        assert!(
            m["sending"].get("providerId").is_none(),
            "an empty 202 names no id"
        );
    }
    let texts: Vec<Value> = channel
        .received()
        .iter()
        .map(|r| body(r)["text"].clone())
        .collect();
    assert_eq!(
        texts,
        [
            "first, kept while no connector",
            "please refuse",
            "please flake",
            "please flake",
            "please flake",
            "last"
        ]
    );
    service.stop().await;

    // A connector that cannot work stops the service from starting, saying where.
    let mut config = config_in(dir.path());
    config.server.api_keys = vec![ApiKeyConfig {
        name: "tests".into(),
        sha256: Some(hash_key(KEY)),
        env: None,
    }];
    whatsapp(Some(gateway("ftp://gateway.example/send".into())))(&mut config);
    let runtime = Runtime::start(config.clone()).await.unwrap();
    let err = Server::new(runtime, &config.server)
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.starts_with("[server.channels.whatsapp.deliver] url \"ftp://gateway.example/send\""),
        "{err}"
    );
}

#[tokio::test]
async fn a_webhook_chatbot_replies_later_and_ends_its_session_through_its_callback() {
    let dir = tempfile::tempdir().unwrap();
    let channel = TestServer::start_replying(|_| Reply::json(200, "{}")).await;
    // The bot acknowledges the first message at once and answers it later.
    let bot = TestServer::start_replying(|_| {
        Reply::json(200, r#"{"replies": ["One moment, I am looking"]}"#)
    })
    .await;
    let service = Service::start(dir.path(), |c| {
        whatsapp(Some(gateway(channel.url())))(c);
        c.server.chatbots.insert(
            "tracker".into(),
            flowhost::config::ChatbotHookConfig {
                secret: SecretSource::Value("bot-secret".into()),
            },
        );
    })
    .await;
    let tracker: Chatbot = serde_json::from_value(json!({
        "id": "tracker", "channel": "whatsapp", "sender": SENDER,
        "backend": {"type": "webhook", "url": bot.url()}
    }))
    .unwrap();
    let mut flow = support_flow();
    flow["elements"][1]["config"]["conditions"] = json!(["closed"]);
    flow["elements"][1]["exits"] = json!({"closed": "end", "default": "agent"});
    let ids = service.customer_in(dir.path(), &tracker, &flow).await;
    service.customer_says("where is my order?", "wa-1").await;
    service.settle(&ids).await;
    let turn = body(&received(&bot, 1).await[0]);
    assert_eq!(turn["event"], "start");
    let session = turn["session"].as_str().unwrap().to_owned();
    let callback = |bot_id: &str, session: &str, payload: Value, auth: Option<String>| {
        let path = format!("/v1/chatbots/{bot_id}/sessions/{session}/events");
        let payload = payload.to_string();
        let service = &service;
        async move {
            let auth = auth.unwrap_or_else(|| "Bearer bot-secret".into());
            service
                .call_with(
                    Method::POST,
                    &path,
                    None,
                    &payload,
                    &[("authorization", &auth)],
                )
                .await
        }
    };

    // Refused, and nothing happens: no proof, an operator key, another bot, a session that
    // is not the bot's, an end a bot cannot give, an empty reply.
    let reply = json!({"replies": ["Shipped today"], "end": "closed"});
    let wrong = callback(
        "tracker",
        &session,
        reply.clone(),
        Some("Bearer nope".into()),
    )
    .await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED, "{}", wrong.body);
    let operator = callback(
        "tracker",
        &session,
        reply.clone(),
        Some(format!("Bearer {KEY}")),
    )
    .await;
    assert_eq!(operator.status, StatusCode::UNAUTHORIZED);
    let other = callback("helper", &session, reply.clone(), None).await;
    assert_eq!(other.status, StatusCode::NOT_FOUND);
    assert!(
        other.body["detail"]
            .as_str()
            .unwrap()
            .contains("[server.chatbots.helper]")
    );
    let missing = callback("tracker", "s-none", reply.clone(), None).await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND, "{}", missing.body);
    let expired = callback("tracker", &session, json!({"end": "expired"}), None).await;
    assert_eq!(expired.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(expired.body["errors"][0]["path"], "end");
    let blank = callback("tracker", &session, json!({"replies": ["ok", " "]}), None).await;
    assert_eq!(
        blank.body["errors"][0]["path"], "replies[1]",
        "{}",
        blank.body
    );
    assert_eq!(
        service
            .get(&format!("/v1/participants/{}", ids[0].as_str().unwrap()))
            .await
            .body["status"],
        "waiting"
    );

    // The real report: its reply reaches the customer after the first one, and the
    // participant leaves the chatbot by `closed`.
    let done = callback("tracker", &session, reply.clone(), None).await;
    assert_eq!(done.status, StatusCode::OK, "{}", done.body);
    assert_eq!(done.body["ended"], "closed");
    assert_eq!(done.body["participants"], json!(ids));
    let p = service
        .get(&format!(
            "/v1/participants/{}/journey",
            ids[0].as_str().unwrap()
        ))
        .await;
    let bot_step = p.body["journey"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["element_id"] == "bot" && s["exit"].is_string())
        .cloned();
    assert_eq!(bot_step.unwrap()["exit"], "closed", "{}", p.body);
    let texts: Vec<Value> = received(&channel, 2)
        .await
        .iter()
        .map(|r| body(r)["text"].clone())
        .collect();
    assert_eq!(texts, ["One moment, I am looking", "Shipped today"]);
    let again = callback("tracker", &session, json!({"replies": ["late"]}), None).await;
    assert_eq!(again.status, StatusCode::CONFLICT, "{}", again.body);
    service.stop().await;
}
