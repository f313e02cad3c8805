//! The People endpoints, and participants added by People id.

use super::*;

#[tokio::test]
async fn people_are_created_found_by_contact_replaced_and_entered_by_id() {
    let dir = tempfile::tempdir().unwrap();
    let service = Service::with_greeting(dir.path(), |_| {}).await;
    let created = service
        .post(
            "/v1/people",
            &json!({"id": "ana", "phones": ["+385 91 123 4567"], "attributes": {"firstName": "Ana"}}),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let found = service.get("/v1/people?contact=%2B385911234567").await;
    assert_eq!(found.status, StatusCode::OK, "{}", found.body);
    assert_eq!(found.body["id"], "ana");
    assert_eq!(found.body["attributes"]["firstName"], "Ana");

    // A contact that belongs to Ana cannot go to someone else; a bad one names itself.
    let taken = service
        .post(
            "/v1/people",
            &json!({"id": "bo", "phones": ["+385911234567"]}),
        )
        .await;
    assert_eq!(taken.status, StatusCode::CONFLICT, "{}", taken.body);
    let bad = service
        .post("/v1/people", &json!({"emails": ["not-an-email"]}))
        .await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", bad.body);
    assert!(
        bad.body["detail"]
            .as_str()
            .unwrap()
            .contains("not-an-email")
    );
    let unknown_field = service.post("/v1/people", &json!({"phone": "+1"})).await;
    assert_eq!(unknown_field.status, StatusCode::BAD_REQUEST);

    let replaced = service
        .call(
            Method::PUT,
            "/v1/people/ana",
            Some(KEY),
            &json!({"phones": ["+385911234567"], "attributes": {"firstName": "Ana", "lastName": "K"}})
                .to_string(),
        )
        .await;
    assert_eq!(replaced.status, StatusCode::OK, "{}", replaced.body);
    assert_eq!(
        service.get("/v1/people/ana").await.body["attributes"]["lastName"],
        "K"
    );
    let mismatch = service
        .call(
            Method::PUT,
            "/v1/people/ana",
            Some(KEY),
            r#"{"id": "other"}"#,
        )
        .await;
    assert_eq!(mismatch.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(mismatch.body["errors"][0]["path"], "id");
    let missing = service
        .call(Method::PUT, "/v1/people/nobody", Some(KEY), "{}")
        .await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert_eq!(
        service.get("/v1/people/nobody").await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        service
            .get("/v1/people?contact=%2B385919999999")
            .await
            .status,
        StatusCode::NOT_FOUND
    );

    // A participant added by People id carries the profile.
    let added = service
        .post(
            "/v1/flows/greeting/participants",
            &json!({"participants": [{"person_id": "ana", "variables": {"name": "Ana"}}]}),
        )
        .await;
    assert_eq!(added.status, StatusCode::ACCEPTED, "{}", added.body);
    let ids = added.body["participants"].as_array().unwrap().clone();
    service.settle(&ids).await;
    let p = service
        .get(&format!("/v1/participants/{}", ids[0].as_str().unwrap()))
        .await;
    assert_eq!(p.body["person"]["id"], "ana");
    assert_eq!(p.body["person"]["attributes"]["lastName"], "K");
    service.stop().await;
}
