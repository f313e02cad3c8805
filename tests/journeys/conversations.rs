//! Start a Conversation and the agents' side of it.

use super::*;

#[tokio::test]
async fn agents_list_assign_reply_and_close_conversations_with_recent_messages() {
    let dir = tempfile::tempdir().unwrap();
    let Setup {
        engine, inbound, ..
    } = setup(dir.path()).await;
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
    inbound.receive(sms("first")).await.unwrap();
    inbound.receive(sms("second")).await.unwrap();

    deploy(&engine, handover("unknown", false)).await;
    let p = engine
        .start("handover-unknown", person(), BTreeMap::new())
        .await
        .unwrap();
    inbound.receive(sms("my bill is wrong")).await.unwrap();
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
    inbound.receive(sms("still wrong")).await.unwrap();
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
        inbound.receive(sms("hello?")).await.unwrap(),
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
    inbound.receive(sms("again")).await.unwrap();
    assert_eq!(steps(&engine, &p.id).await[2], x("agent", "started"));
    assert!(agents.tag_exists("created-on-the-spot").await.unwrap());
}
