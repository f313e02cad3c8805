//! Add to Flow: moving or copying participants, failover, other people.

use super::*;

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

    // A target that loses its existing-flow entry point after the flow was deployed: the
    // participant fails over; deploying the flow again is refused, saying why.
    deploy(&engine, loyalty("active")).await;
    deploy(&engine, referral(to_loyalty.clone(), "end")).await;
    let mut api_only = loyalty("active");
    api_only["entry_points"][0]["type"] = json!("api");
    deploy(&engine, api_only).await;
    let p = engine
        .start("orders", person(), vars(json!({})))
        .await
        .unwrap();
    let journey = engine.journey(&p.id).await.unwrap();
    assert_eq!(
        step(&journey, "add").data.as_ref().unwrap()["failover"],
        "cannot add to flow: flow \"loyalty\" has no existing-flow entry point"
    );
    let def: flowhost::flow::FlowDef = serde_json::from_value(referral(to_loyalty, "end")).unwrap();
    let refused = engine.deploy(def, "orders.json").await.unwrap_err();
    assert!(
        refused.to_string().contains(
            "flow \"loyalty\" has no existing-flow entry point, so nobody can be added to it"
        ),
        "{refused}"
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
async fn validation_says_when_a_target_cannot_take_anyone_and_when_failover_goes_nowhere() {
    let dir = tempfile::tempdir().unwrap();
    let Setup { engine, .. } = setup(dir.path()).await;
    let warnings = |value: Value| {
        let engine = engine.clone();
        async move {
            let compiled = engine.compile(flow(value), "orders.json").await.unwrap();
            compiled
                .warnings
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
        }
    };
    let to = |target: &str| referral(json!({"flow": target}), "end");
    assert_eq!(
        warnings(to("no-such-flow")).await,
        [
            "elements[0].config.flow: (element \"add\") flow \"no-such-flow\" is not deployed; until it is, participants leave by failover"
        ]
    );
    deploy(&engine, loyalty("draft")).await;
    assert_eq!(
        warnings(to("loyalty")).await,
        [
            "elements[0].config.flow: (element \"add\") flow \"loyalty\" is draft; until it is active, participants leave by failover"
        ]
    );
    deploy(&engine, loyalty("active")).await;
    assert!(warnings(to("loyalty")).await.is_empty());
    let unhandled = json!({
        "id": "orders", "name": "Orders",
        "entry_points": [{"type": "api", "start": "add"}],
        "elements": [
            {"id": "add", "type": "add-to-flow", "config": {"flow": "loyalty"},
             "exits": {"success": "end"}},
            {"id": "end", "type": "exit"}
        ]
    });
    assert_eq!(
        warnings(unhandled).await,
        [
            "elements[0].exits: (element \"add\") no \"failover\" exit: when nobody can be added (the target is not active, a value is missing), the flow ends here without a trace of it; connect exits.failover"
        ]
    );
}
