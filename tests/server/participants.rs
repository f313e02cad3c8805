//! Adding participants: batches of 1000, idempotency keys, bad input, the rate limit, and
//! what a shutdown right after acknowledging leaves for the restart.

use super::*;

#[tokio::test]
async fn a_thousand_participants_in_one_call_once_per_key() {
    let dir = tempfile::tempdir().unwrap();
    let service = Service::with_greeting(dir.path(), |_| {}).await;

    let participants: Vec<Value> = (0..1000)
        .map(|i| match i % 3 {
            0 => json!({"contact": format!("+38591{i:07}"), "variables": {"name": format!("n{i}")}}),
            1 => json!({"person": {"emails": [format!("p{i}@example.com")]}, "variables": {"name": format!("n{i}")}}),
            _ => json!({"contact": format!("p{i}@example.org"), "variables": {"name": format!("n{i}")}}),
        })
        .collect();
    let body = json!({ "participants": participants }).to_string();
    let key = [("idempotency-key", "batch-0001")];
    let first = service
        .call_with(
            Method::POST,
            "/v1/flows/greeting/participants",
            Some(KEY),
            &body,
            &key,
        )
        .await;
    assert_eq!(first.status, StatusCode::ACCEPTED, "{}", first.body);
    assert!(!first.replayed);
    let ids = first.body["participants"].as_array().unwrap().clone();
    assert_eq!(ids.len(), 1000);

    // The retry adds nobody and answers the same.
    let retry = service
        .call_with(
            Method::POST,
            "/v1/flows/greeting/participants",
            Some(KEY),
            &body,
            &key,
        )
        .await;
    assert_eq!(retry.status, StatusCode::ACCEPTED);
    assert!(retry.replayed);
    assert_eq!(retry.body["participants"], json!(ids));
    // The same key for another request is refused.
    let other = json!({"participants": [{"contact": "+385910000001"}]}).to_string();
    let reused = service
        .call_with(
            Method::POST,
            "/v1/flows/greeting/participants",
            Some(KEY),
            &other,
            &key,
        )
        .await;
    assert_eq!(
        reused.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        reused.body
    );
    assert_eq!(reused.body["errors"][0]["path"], "Idempotency-Key");

    service.settle(&ids).await;
    let done = service
        .get("/v1/flows/greeting/participants?status=completed")
        .await;
    assert_eq!(done.body["participants"].as_array().unwrap().len(), 1000);
    let p = service
        .get(&format!("/v1/participants/{}", ids[3].as_str().unwrap()))
        .await;
    assert_eq!(p.body["variables"]["greeting"], "Hello, n3");
    assert_eq!(p.body["status"], "completed");
    let journey = service
        .get(&format!(
            "/v1/participants/{}/journey",
            ids[3].as_str().unwrap()
        ))
        .await;
    let steps = journey.body["journey"].as_array().unwrap();
    assert_eq!(steps.len(), 2, "{}", journey.body);
    assert_eq!(steps[0]["element_id"], "greet");
    assert_eq!(steps[0]["variables_changed"]["greeting"], "Hello, n3");
    service.stop().await;
}

#[tokio::test]
async fn a_persons_participants_are_found_and_flows_counted_by_status() {
    let dir = tempfile::tempdir().unwrap();
    let service = Service::with_greeting(dir.path(), |_| {}).await;
    let mut ids = Vec::new();
    for contact in ["+385911112222", "+385911112222", "+385913334444"] {
        let added = service
            .post(
                "/v1/flows/greeting/participants",
                &json!({"participants": [{"contact": contact, "variables": {"name": "Ana"}}]}),
            )
            .await;
        assert_eq!(added.status, StatusCode::ACCEPTED, "{}", added.body);
        ids.push(added.body["participants"][0].clone());
    }
    service.settle(&ids).await;

    let flows = service.get("/v1/flows").await;
    assert_eq!(
        flows.body["flows"][0]["participants"],
        json!({"running": 0, "queued": 0, "waiting": 0, "completed": 3, "failed": 0, "canceled": 0})
    );
    assert_eq!(flows.body["flows"][0]["failed_last_hour"], 0);

    // By contact, in any form People accepts, newest first.
    let found = service
        .get("/v1/participants?contact=%2B385911112222")
        .await;
    assert_eq!(found.status, StatusCode::OK, "{}", found.body);
    let listed: Vec<&Value> = found.body["participants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| &p["id"])
        .collect();
    assert_eq!(listed, [&ids[1], &ids[0]]);
    assert_eq!(found.body["participants"][0]["status"], "completed");
    let person = found.body["person"].as_str().unwrap().to_owned();
    let by_id = service
        .get(&format!("/v1/participants?person={person}&limit=1"))
        .await;
    assert_eq!(by_id.body["participants"].as_array().unwrap().len(), 1);
    assert_eq!(by_id.body["participants"][0]["id"], ids[1]);

    let nobody = service
        .get("/v1/participants?contact=%2B385919999999")
        .await;
    assert_eq!(nobody.status, StatusCode::NOT_FOUND, "{}", nobody.body);
    let neither = service.get("/v1/participants").await;
    assert_eq!(neither.status, StatusCode::BAD_REQUEST, "{}", neither.body);
    assert!(
        neither.body["detail"]
            .as_str()
            .unwrap()
            .contains("exactly one of person"),
        "{}",
        neither.body
    );
    service.stop().await;
}

#[tokio::test]
async fn bad_input_is_refused_with_where_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let service = Service::with_greeting(dir.path(), |c| c.server.max_body_bytes = 64 * 1024).await;
    let add = |body: Value| {
        let service = &service;
        async move { service.post("/v1/flows/greeting/participants", &body).await }
    };

    // One bad item refuses the whole batch, every bad item named.
    let mixed = add(json!({"participants": [
        {"contact": "+385911234567"},
        {"contact": "+385911234568", "person_id": "someone"},
        {"person_id": "nobody-here"},
        {"contact": "not a contact"},
    ]}))
    .await;
    assert_eq!(
        mixed.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        mixed.body
    );
    let paths: Vec<&str> = mixed.body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["path"].as_str().unwrap())
        .collect();
    assert_eq!(
        paths,
        [
            "participants[1]",
            "participants[2].person_id",
            "participants[3].contact"
        ]
    );
    let none = service.get("/v1/flows/greeting/participants").await;
    assert_eq!(none.body["participants"], json!([]), "nobody was added");

    let empty = add(json!({"participants": []})).await;
    assert_eq!(empty.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(empty.body["errors"][0]["path"], "participants");
    let too_many: Vec<Value> = (0..1001).map(|_| json!({"person": {}})).collect();
    let over = add(json!({ "participants": too_many })).await;
    assert_eq!(
        over.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        over.body
    );

    // Malformed JSON names the field; an unknown field too.
    let wrong_type = add(json!({"participants": [{"contact": 385}]})).await;
    assert_eq!(wrong_type.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        wrong_type.body["errors"][0]["path"],
        "participants[0].contact"
    );
    let unknown_field = add(json!({"participants": [{"contakt": "+385911234567"}]})).await;
    assert_eq!(unknown_field.status, StatusCode::BAD_REQUEST);
    assert!(
        unknown_field.body["detail"]
            .as_str()
            .unwrap()
            .contains("contakt"),
        "{}",
        unknown_field.body
    );
    let not_json = service
        .call(
            Method::POST,
            "/v1/flows/greeting/participants",
            Some(KEY),
            "{oops",
        )
        .await;
    assert_eq!(not_json.status, StatusCode::BAD_REQUEST);
    assert_eq!(not_json.content_type, "application/problem+json");

    // Too large: 413, as a problem.
    let big: Vec<Value> = (0..800)
        .map(|i| json!({"contact": format!("+38591{i:07}"), "variables": {"pad": "x".repeat(64)}}))
        .collect();
    let large = add(json!({ "participants": big })).await;
    assert_eq!(
        large.status,
        StatusCode::PAYLOAD_TOO_LARGE,
        "{}",
        large.body
    );
    assert!(
        large.body["detail"]
            .as_str()
            .unwrap()
            .contains("max_body_bytes")
    );

    // Unknown things are 404; a bad key header is 400.
    let nowhere = service
        .post(
            "/v1/flows/nowhere/participants",
            &json!({"participants": [{"person": {}}]}),
        )
        .await;
    assert_eq!(nowhere.status, StatusCode::NOT_FOUND, "{}", nowhere.body);
    assert_eq!(
        service.get("/v1/participants/p-none").await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        service.get("/v1/participants/p-none/journey").await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        service.get("/v1/no-such-endpoint").await.status,
        StatusCode::NOT_FOUND
    );
    let long_key = "k".repeat(300);
    let bad_key = service
        .call_with(
            Method::POST,
            "/v1/flows/greeting/participants",
            Some(KEY),
            r#"{"participants": [{"person": {}}]}"#,
            &[("idempotency-key", &long_key)],
        )
        .await;
    assert_eq!(bad_key.status, StatusCode::BAD_REQUEST);
    assert_eq!(bad_key.body["errors"][0]["path"], "Idempotency-Key");
    let bad_status = service
        .get("/v1/flows/greeting/participants?status=sleeping")
        .await;
    assert_eq!(bad_status.status, StatusCode::BAD_REQUEST);
    let none = service.get("/v1/flows/greeting/participants").await;
    assert_eq!(none.body["participants"], json!([]), "still nobody");
    service.stop().await;
}

#[tokio::test]
async fn shutdown_lets_added_participants_finish_and_a_restart_finds_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let service = Service::with_greeting(dir.path(), |_| {}).await;
    let participants: Vec<Value> = (0..300)
        .map(|i| json!({"person": {}, "variables": {"name": format!("n{i}")}}))
        .collect();
    let added = service
        .post(
            "/v1/flows/greeting/participants",
            &json!({ "participants": participants }),
        )
        .await;
    assert_eq!(added.status, StatusCode::ACCEPTED);
    let ids = added.body["participants"].as_array().unwrap().clone();
    // Stop at once: what was acknowledged is committed, so nothing is lost.
    service.stop().await;

    let again = Service::start(dir.path(), |_| {}).await;
    again.settle(&ids).await;
    let done = again
        .get("/v1/flows/greeting/participants?status=completed")
        .await;
    assert_eq!(done.body["participants"].as_array().unwrap().len(), 300);
    again.stop().await;
}

#[tokio::test]
async fn calls_adding_participants_beyond_the_rate_get_429_and_add_nobody() {
    let dir = tempfile::tempdir().unwrap();
    let service =
        Service::with_greeting(dir.path(), |c| c.server.participant_calls_per_second = 2).await;
    let mut accepted = 0;
    let mut limited = Vec::new();
    for _ in 0..6 {
        let answer = service
            .post(
                "/v1/flows/greeting/participants",
                &json!({"participants": [{"person": {}}]}),
            )
            .await;
        match answer.status {
            StatusCode::ACCEPTED => accepted += 1,
            StatusCode::TOO_MANY_REQUESTS => limited.push(answer),
            other => panic!("{other}: {}", answer.body),
        }
    }
    assert!(
        !limited.is_empty(),
        "six calls at once, two allowed per second"
    );
    assert_eq!(limited[0].content_type, "application/problem+json");
    assert_eq!(limited[0].retry_after, "1");
    assert!(
        limited[0].body["detail"]
            .as_str()
            .unwrap()
            .contains("participant_calls_per_second")
    );
    let all = service.get("/v1/flows/greeting/participants").await;
    assert_eq!(
        all.body["participants"].as_array().unwrap().len(),
        accepted,
        "a refused call added nobody"
    );
    service.stop().await;
}
