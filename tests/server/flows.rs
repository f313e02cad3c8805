//! Keys on every endpoint, and the flow endpoints: deploy, list, get, status, analytics.

use super::*;

#[tokio::test]
async fn every_endpoint_but_liveness_needs_a_key() {
    let dir = tempfile::tempdir().unwrap();
    let service = Service::start(dir.path(), |_| {}).await;
    let live = service.call(Method::GET, "/livez", None, "").await;
    assert_eq!(live.status, StatusCode::OK);
    for key in [None, Some("wrong-key")] {
        for (method, path) in [
            (Method::GET, "/readyz"),
            (Method::GET, "/v1/flows"),
            (Method::POST, "/v1/flows"),
        ] {
            let body = greeting_flow("g").to_string();
            let answer = service.call(method, path, key, &body).await;
            assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{path} {key:?}");
            assert_eq!(answer.content_type, "application/problem+json");
            assert!(
                answer.body["detail"]
                    .as_str()
                    .unwrap()
                    .contains("Authorization"),
                "{}",
                answer.body
            );
        }
    }
    // The refused deploy changed nothing.
    let flows = service.get("/v1/flows").await;
    assert_eq!(flows.body["flows"], json!([]));
    let ready = service.get("/readyz").await;
    assert_eq!(ready.status, StatusCode::OK, "{}", ready.body);
    assert_eq!(ready.body["status"], "ready");
    service.stop().await;
}

#[tokio::test]
async fn flows_are_deployed_listed_read_changed_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    let service = Service::start(dir.path(), |_| {}).await;

    let deployed = service.post("/v1/flows", &greeting_flow("greeting")).await;
    assert_eq!(deployed.status, StatusCode::CREATED, "{}", deployed.body);
    assert_eq!(deployed.body["id"], "greeting");
    assert_eq!(deployed.body["status"], "active");

    let list = service.get("/v1/flows").await;
    assert_eq!(
        list.body["flows"],
        json!([{"id": "greeting", "name": "Greeting", "status": "active", "version": 1,
                 "elements": 2, "failed_last_hour": 0,
                 "participants": {"running": 0, "queued": 0, "waiting": 0, "completed": 0,
                                  "failed": 0, "canceled": 0}}])
    );
    let def = service.get("/v1/flows/greeting").await;
    assert_eq!(def.body["elements"][0]["id"], "greet");

    // Every problem of an invalid flow, each at its JSON path.
    let mut bad = greeting_flow("bad");
    bad["elements"][0]["type"] = json!("no-such-type");
    bad["elements"][1]["exits"] = json!({"next": "nowhere"});
    let refused = service.post("/v1/flows", &bad).await;
    assert_eq!(
        refused.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        refused.body
    );
    assert_eq!(refused.content_type, "application/problem+json");
    let paths: Vec<&str> = refused.body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["path"].as_str().unwrap())
        .collect();
    assert!(paths.contains(&"elements[0].type"), "{paths:?}");
    assert!(
        paths.iter().any(|p| p.starts_with("elements[1].exits")),
        "{paths:?}"
    );
    assert_eq!(
        service.get("/v1/flows/bad").await.status,
        StatusCode::NOT_FOUND
    );

    // Not a flow at all: 400 naming where reading stopped.
    let malformed = service
        .call(
            Method::POST,
            "/v1/flows",
            Some(KEY),
            r#"{"id": "m", "name": "M", "entry_points": 7, "elements": []}"#,
        )
        .await;
    assert_eq!(
        malformed.status,
        StatusCode::BAD_REQUEST,
        "{}",
        malformed.body
    );
    assert!(
        malformed.body["detail"]
            .as_str()
            .unwrap()
            .starts_with("entry_points"),
        "{}",
        malformed.body
    );

    // Lifecycle: a change not allowed is 409 with both statuses; an unknown status is 400.
    let to_draft = service.set_status("greeting", "draft").await;
    assert_eq!(to_draft.status, StatusCode::CONFLICT, "{}", to_draft.body);
    assert!(
        to_draft.body["detail"]
            .as_str()
            .unwrap()
            .contains("active to draft")
    );
    let unknown = service.set_status("greeting", "paused-ish").await;
    assert_eq!(unknown.status, StatusCode::BAD_REQUEST);
    assert_eq!(unknown.body["errors"][0]["path"], "status");

    // Analytics count what ran.
    let added = service
        .post(
            "/v1/flows/greeting/participants",
            &json!({"participants": [{"contact": "+385911234567", "variables": {"name": "Ana"}}]}),
        )
        .await;
    assert_eq!(added.status, StatusCode::ACCEPTED, "{}", added.body);
    service
        .settle(added.body["participants"].as_array().unwrap())
        .await;
    let analytics = service.get("/v1/flows/greeting/analytics").await;
    assert_eq!(analytics.body["elements"][0]["element_id"], "greet");
    assert_eq!(analytics.body["elements"][0]["entered"], 1);
    assert_eq!(analytics.body["elements"][0]["exits"]["next"], 1);

    let finished = service.set_status("greeting", "finished").await;
    assert_eq!(finished.status, StatusCode::OK, "{}", finished.body);
    let closed = service
        .post(
            "/v1/flows/greeting/participants",
            &json!({"participants": [{"contact": "+385911234599"}]}),
        )
        .await;
    assert_eq!(closed.status, StatusCode::CONFLICT, "{}", closed.body);
    assert!(
        closed.body["detail"].as_str().unwrap().contains("Finished"),
        "{}",
        closed.body
    );
    // Refused before People was touched: the contact made no profile.
    let nobody = service.get("/v1/people?contact=%2B385911234599").await;
    assert_eq!(nobody.status, StatusCode::NOT_FOUND);
    service.stop().await;
}

#[tokio::test]
async fn a_paused_flow_holds_its_participants_and_takes_nobody_until_resumed() {
    let dir = tempfile::tempdir().unwrap();
    let service = Service::start(dir.path(), |_| {}).await;
    let nap = nap_flow();
    assert_eq!(
        service.post("/v1/flows", &nap).await.status,
        StatusCode::CREATED
    );
    let one = json!({"participants": [{"contact": "+385911234567"}]});
    let add = || service.post("/v1/flows/nap/participants", &one);
    let added = add().await;
    let ids = added.body["participants"].as_array().unwrap().clone();
    service.settle(&ids).await;
    let path = format!("/v1/participants/{}", ids[0].as_str().unwrap());

    let paused = service.set_status("nap", "paused").await;
    assert_eq!(paused.status, StatusCode::OK, "{}", paused.body);
    let refused = add().await;
    assert_eq!(refused.status, StatusCode::CONFLICT, "{}", refused.body);
    assert!(
        refused.body["detail"].as_str().unwrap().contains("Paused"),
        "{}",
        refused.body
    );
    // Its wait ends while the flow is paused: the participant stays where it is.
    tokio::time::sleep(Duration::from_millis(1300)).await;
    let held = service.get(&path).await.body;
    assert_eq!(
        (held["status"].clone(), held["current"].clone()),
        (json!("waiting"), json!("wait")),
        "{held}"
    );
    let listed = service.get("/v1/flows/nap").await.body;
    assert_eq!(listed["status"], "paused", "{listed}");

    // Resumed, it goes on at once, and the flow takes participants again.
    let resumed = service.set_status("nap", "active").await;
    assert_eq!(resumed.status, StatusCode::OK, "{}", resumed.body);
    service.settle(&ids).await;
    let mut status = Value::Null;
    for _ in 0..200 {
        status = service.get(&path).await.body["status"].clone();
        if status == "completed" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(status, "completed");
    assert_eq!(add().await.status, StatusCode::ACCEPTED);
    service.stop().await;
}

/// Waits at `pause` for `wait`, then marks the participant with `mark` and ends.
fn marked_flow(id: &str, wait: &str, pause: &str, mark: &str) -> Value {
    json!({
        "id": id, "name": id,
        "entry_points": [{"type": "api", "start": pause}],
        "elements": [
            {"id": pause, "type": "wait", "config": {"duration": wait}, "exits": {"next": "mark"}},
            {"id": "mark", "type": "set-variable", "config": {"set": {"mark": mark}},
             "exits": {"next": "done"}},
            {"id": "done", "type": "exit"}
        ]
    })
}

#[tokio::test]
async fn a_changed_flow_is_a_new_version_and_participants_keep_theirs_until_moved() {
    let dir = tempfile::tempdir().unwrap();
    let service = Service::start(dir.path(), |_| {}).await;
    let add = |flow: &'static str| {
        let service = &service;
        async move {
            let added = service
                .post(
                    &format!("/v1/flows/{flow}/participants"),
                    &json!({"participants": [{"contact": "+385911234567"}]}),
                )
                .await;
            assert_eq!(added.status, StatusCode::ACCEPTED, "{}", added.body);
            let ids = added.body["participants"].as_array().unwrap().clone();
            service.settle(&ids).await;
            ids[0].as_str().unwrap().to_owned()
        }
    };

    // Version 1; the same definition again (another status aside) is still version 1.
    let v1 = marked_flow("timed", "1s", "pause", "one");
    let first = service.post("/v1/flows", &v1).await;
    assert_eq!(
        (first.status, first.body["version"].clone()),
        (StatusCode::CREATED, json!(1))
    );
    let again = service.post("/v1/flows", &v1).await;
    assert_eq!(
        (again.status, again.body["version"].clone()),
        (StatusCode::OK, json!(1))
    );
    let early = add("timed").await;

    // A changed definition is version 2: newcomers enter it, the one inside stays on 1.
    let v2 = service
        .post("/v1/flows", &marked_flow("timed", "1s", "pause", "two"))
        .await;
    assert_eq!(
        (v2.status, v2.body["version"].clone()),
        (StatusCode::CREATED, json!(2))
    );
    let late = add("timed").await;
    let finished = |id: String| {
        let service = &service;
        async move {
            let path = format!("/v1/participants/{id}");
            for _ in 0..200 {
                let p = service.get(&path).await.body;
                if p["status"] == "completed" {
                    let journey = service.get(&format!("{path}/journey")).await.body;
                    let versions: Vec<Value> = journey["journey"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|e| e["flow_version"].clone())
                        .collect();
                    return (
                        p["version"].clone(),
                        p["variables"]["mark"].clone(),
                        versions,
                    );
                }
                tokio::time::sleep(Duration::from_millis(25)).await;
            }
            panic!("{id} did not complete: {}", service.get(&path).await.body);
        }
    };
    let (version, mark, steps) = finished(early).await;
    assert_eq!((version, mark), (json!(1), json!("one")));
    assert!(steps.iter().all(|v| *v == 1), "{steps:?}");
    let (version, mark, steps) = finished(late).await;
    assert_eq!((version, mark), (json!(2), json!("two")));
    assert!(steps.iter().all(|v| *v == 2), "{steps:?}");

    // Each version has its own analytics and definition; the current one by default.
    let analytics = |query: &'static str| {
        let service = &service;
        async move {
            service
                .get(&format!("/v1/flows/timed/analytics{query}"))
                .await
        }
    };
    let now = analytics("").await.body;
    assert_eq!(
        (
            now["version"].clone(),
            now["elements"][1]["entered"].clone()
        ),
        (json!(2), json!(1))
    );
    let then = analytics("?version=1").await.body;
    assert_eq!(
        (
            then["version"].clone(),
            then["elements"][1]["entered"].clone()
        ),
        (json!(1), json!(1))
    );
    let none = analytics("?version=9").await;
    assert_eq!(none.status, StatusCode::NOT_FOUND, "{}", none.body);
    assert!(
        none.body["detail"]
            .as_str()
            .unwrap()
            .contains("versions are 1 to 2")
    );
    let old = service.get("/v1/flows/timed?version=1").await;
    assert_eq!(old.body["elements"][1]["config"]["set"]["mark"], "one");
    let listed = service.get("/v1/flows").await.body;
    assert_eq!(listed["flows"][0]["version"], 2);

    // Moving: those whose element is in the current version move, the others stay.
    service
        .post("/v1/flows", &marked_flow("held", "1h", "pause", "one"))
        .await;
    let (a, b) = (add("held").await, add("held").await);
    service
        .post("/v1/flows", &marked_flow("held", "1h", "pause", "two"))
        .await;
    let moved = service
        .post("/v1/flows/held/participants/move", &json!({}))
        .await;
    assert_eq!(moved.status, StatusCode::OK, "{}", moved.body);
    let mut ids = vec![json!(a), json!(b)];
    ids.sort_by_key(|v| v.as_str().unwrap().to_owned());
    let mut got = moved.body["moved"].as_array().unwrap().clone();
    got.sort_by_key(|v| v.as_str().unwrap().to_owned());
    assert_eq!((moved.body["version"].clone(), got), (json!(2), ids));
    let p = service.get(&format!("/v1/participants/{a}")).await.body;
    assert_eq!(
        (p["version"].clone(), p["current"].clone()),
        (json!(2), json!("pause"))
    );
    service
        .post("/v1/flows", &marked_flow("held", "1h", "hold", "three"))
        .await;
    let stayed = service
        .post("/v1/flows/held/participants/move", &json!({}))
        .await
        .body;
    assert_eq!(stayed["moved"], json!([]));
    assert_eq!(stayed["stayed"].as_array().unwrap().len(), 2);
    assert_eq!(
        stayed["stayed"][0]["reason"],
        "element \"pause\" is not in version 3"
    );
    assert_eq!(stayed["stayed"][0]["version"], 2);
    service.stop().await;
}

#[tokio::test]
async fn update_chatbot_sender_takes_the_evaluate_inbound_sender_as_a_new_version() {
    let dir = tempfile::tempdir().unwrap();
    let service = Service::start(dir.path(), |_| {}).await;
    let draft = json!({
        "id": "support", "name": "Support", "status": "draft",
        "entry_points": [{"type": "api", "start": "ask"}],
        "elements": [
            {"id": "ask", "type": "evaluate-inbound",
             "config": {"channel": "whatsapp", "sender": "447000000001",
                        "conditions": [{"exit": "any", "type": "any"}]},
             "exits": {"any": "bot", "timeout": "end"}},
            {"id": "bot", "type": "start-chatbot", "config": {"sender": "447491163443"},
             "exits": {"default": "end"}},
            {"id": "end", "type": "exit"}
        ]
    });
    let deployed = service.post("/v1/flows", &draft).await;
    assert_eq!(deployed.status, StatusCode::CREATED, "{}", deployed.body);
    let warned = deployed.body["warnings"].to_string();
    assert!(warned.contains("differs from sender"), "{warned}");
    let updated = service
        .post("/v1/flows/support/chatbot-sender", &json!({}))
        .await;
    assert_eq!(updated.status, StatusCode::OK, "{}", updated.body);
    assert_eq!(
        updated.body,
        json!({"id": "support", "version": 2, "changed": [
            {"element": "bot", "from": "447491163443", "to": "447000000001"}]})
    );
    let def = service.get("/v1/flows/support").await;
    assert_eq!(def.body["elements"][1]["config"]["sender"], "447000000001");
    let again = service
        .post("/v1/flows/support/chatbot-sender", &json!({}))
        .await;
    assert_eq!(
        (again.body["version"].clone(), again.body["changed"].clone()),
        (json!(2), json!([]))
    );
    service.stop().await;
}
