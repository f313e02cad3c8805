//! Evaluate inbound message, and inbound messages that start flows.

use super::*;

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
    let Setup {
        engine, inbound, ..
    } = setup_at(dir.path(), T0 + 1000).await;
    for (i, (text, exit)) in cases.iter().enumerate() {
        let message = InboundMessage {
            from: phone(i),
            ..whatsapp(text)
        };
        let delivery = inbound.receive(message).await.unwrap();
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
    let Setup {
        engine,
        inbound,
        clock,
    } = setup(dir.path()).await;
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
        inbound.receive(whatsapp("yes")).await.unwrap(),
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
    let Setup {
        engine, inbound, ..
    } = setup(dir.path()).await;
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
        inbound.receive(whatsapp("hello")).await.unwrap(),
        Delivery::Unrouted,
        "the keyword does not match"
    );
    let Delivery::Started { participants } = inbound.receive(whatsapp("JOIN now")).await.unwrap()
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
    let Delivery::Started { participants } = inbound.receive(whatsapp("join")).await.unwrap()
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
    let err = inbound
        .receive(InboundMessage {
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
