//! Channel webhooks and the agent desk they lead to.

use super::*;

/// Waits in Evaluate inbound message for any SMS to InfoSMS, then hands over to an agent.
fn handover_flow() -> Value {
    json!({
        "id": "handover", "name": "Handover",
        "entry_points": [{"type": "api", "start": "ask"}],
        "elements": [
            {"id": "ask", "type": "evaluate-inbound",
             "config": {"channel": "sms", "sender": "InfoSMS", "conditions": []},
             "exits": {"other": "agent", "timeout": "end"}},
            {"id": "agent", "type": "start-conversation",
             "config": {"tag": "billing", "create_tag": true},
             "exits": {"started": "end", "failed": "end"}},
            {"id": "end", "type": "exit"}
        ]
    })
}

fn signed(secret: &str, body: &str) -> String {
    use hmac::{Hmac, KeyInit, Mac};
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body.as_bytes());
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

#[tokio::test]
async fn channel_webhooks_route_once_per_message_and_agents_answer() {
    let dir = tempfile::tempdir().unwrap();
    let service = Service::start(dir.path(), |c| {
        c.server.channels.insert(
            "sms".into(),
            flowhost::config::ChannelConfig {
                secret: Some(flowhost::secrets::SecretSource::Value(
                    "sms-hook-secret".into(),
                )),
                deliver: None,
            },
        );
    })
    .await;
    let deployed = service.post("/v1/flows", &handover_flow()).await;
    assert_eq!(deployed.status, StatusCode::CREATED, "{}", deployed.body);
    let added = service
        .post(
            "/v1/flows/handover/participants",
            &json!({"participants": [{"contact": "+447700900123"}]}),
        )
        .await;
    let ids = added.body["participants"].as_array().unwrap().clone();
    service.settle(&ids).await;

    let hook = |body: &str, auth: (&'static str, String)| {
        let service = &service;
        let body = body.to_owned();
        async move {
            service
                .call_with(
                    Method::POST,
                    "/v1/channels/sms/messages",
                    None,
                    &body,
                    &[(auth.0, &auth.1)],
                )
                .await
        }
    };
    let message = json!({"from": "+447700900123", "to": "InfoSMS", "text": "I was billed twice",
                         "message_id": "prov-1"})
    .to_string();
    let signature = ("x-flowhost-signature", signed("sms-hook-secret", &message));

    // Not proven: wrong signature, wrong token, an operator API key, nothing at all.
    for auth in [
        ("x-flowhost-signature", signed("another-secret", &message)),
        ("authorization", "Bearer not-the-secret".to_owned()),
        ("authorization", format!("Bearer {KEY}")),
        ("x-nothing", "x".to_owned()),
    ] {
        let refused = hook(&message, auth.clone()).await;
        assert_eq!(
            refused.status,
            StatusCode::UNAUTHORIZED,
            "{auth:?}: {}",
            refused.body
        );
    }
    let p = service
        .get(&format!("/v1/participants/{}", ids[0].as_str().unwrap()))
        .await;
    assert_eq!(p.body["status"], "waiting", "nothing was routed");

    let routed = hook(&message, signature.clone()).await;
    assert_eq!(routed.status, StatusCode::OK, "{}", routed.body);
    assert_eq!(routed.body["delivery"]["to"], "waiting");
    assert_eq!(routed.body["delivery"]["participants"], json!(ids));
    service.settle(&ids).await;
    // The provider's retry is acknowledged with the same answer and not routed again.
    let retried = hook(&message, signature.clone()).await;
    assert_eq!(retried.status, StatusCode::OK);
    assert!(retried.replayed);
    assert_eq!(retried.body, routed.body);

    // The handover opened a conversation; the next message goes into it (a bearer token
    // works as well as a signature).
    let open = service
        .get("/v1/conversations?tag=billing&status=open")
        .await;
    let conversations = open.body["conversations"].as_array().unwrap().clone();
    assert_eq!(conversations.len(), 1, "{}", open.body);
    let id = conversations[0]["id"].as_str().unwrap().to_owned();
    let second = json!({"from": "+447700900123", "to": "InfoSMS", "text": "Hello?",
                        "message_id": "prov-2"})
    .to_string();
    let into = hook(&second, ("authorization", "Bearer sms-hook-secret".into())).await;
    assert_eq!(into.status, StatusCode::OK, "{}", into.body);
    assert_eq!(
        into.body["delivery"],
        json!({"to": "conversation", "id": id})
    );

    // The agent's side.
    let conversation = format!("/v1/conversations/{id}");
    let early = service
        .post(&format!("{conversation}/replies"), &json!({"text": "Hi"}))
        .await;
    assert_eq!(early.status, StatusCode::CONFLICT, "{}", early.body);
    assert!(
        early.body["detail"]
            .as_str()
            .unwrap()
            .contains("not assigned")
    );
    let assigned = service
        .post(&format!("{conversation}/assign"), &json!({"agent": "maja"}))
        .await;
    assert_eq!(assigned.status, StatusCode::OK, "{}", assigned.body);
    assert_eq!(assigned.body["status"], "assigned");
    let replied = service
        .post(
            &format!("{conversation}/replies"),
            &json!({"text": "Sorry about that, refunding now."}),
        )
        .await;
    assert_eq!(replied.status, StatusCode::CREATED, "{}", replied.body);
    let read = service.get(&conversation).await;
    let texts: Vec<&str> = read.body["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["text"].as_str().unwrap())
        .collect();
    assert!(
        texts.ends_with(&["Hello?", "Sorry about that, refunding now."]),
        "{texts:?}"
    );
    let empty = service
        .post(&format!("{conversation}/replies"), &json!({"text": " "}))
        .await;
    assert_eq!(empty.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(empty.body["errors"][0]["path"], "text");
    let closed = service
        .post(&format!("{conversation}/close"), &json!({}))
        .await;
    assert_eq!(closed.status, StatusCode::OK, "{}", closed.body);
    assert_eq!(closed.body["status"], "closed");
    let again = service
        .post(&format!("{conversation}/close"), &json!({}))
        .await;
    assert_eq!(again.status, StatusCode::CONFLICT);
    assert_eq!(
        service.get("/v1/conversations/c-none").await.status,
        StatusCode::NOT_FOUND
    );

    // Bad webhooks: a channel with no secret, no channel at all, no message id.
    let whatsapp = service
        .call_with(
            Method::POST,
            "/v1/channels/whatsapp/messages",
            None,
            &message,
            &[("authorization", "Bearer sms-hook-secret")],
        )
        .await;
    assert_eq!(whatsapp.status, StatusCode::NOT_FOUND);
    assert!(
        whatsapp.body["detail"]
            .as_str()
            .unwrap()
            .contains("[server.channels.whatsapp]")
    );
    let pigeon = service
        .call(Method::POST, "/v1/channels/pigeon/messages", None, &message)
        .await;
    assert_eq!(pigeon.status, StatusCode::NOT_FOUND);
    let no_id = json!({"from": "+447700900123", "to": "InfoSMS", "text": "x"}).to_string();
    let missing = hook(
        &no_id,
        ("x-flowhost-signature", signed("sms-hook-secret", &no_id)),
    )
    .await;
    assert_eq!(missing.status, StatusCode::BAD_REQUEST, "{}", missing.body);
    assert!(
        missing.body["detail"]
            .as_str()
            .unwrap()
            .contains("message_id")
    );
    service.stop().await;
}
