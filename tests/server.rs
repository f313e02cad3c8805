//! The service's HTTP API, served by `flowhost_server::Server::run` on a real TCP listener on
//! 127.0.0.1 over a real SQLite file, called over HTTP: keys, flows, participants in
//! batches with idempotency keys, bad input, and draining on shutdown.

use bytes::Bytes;
use flowhost::config::{ApiKeyConfig, OperatorConfig};
use flowhost::runtime::Runtime;
use flowhost_server::{Server, hash_key};
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::{Value, json};
use std::path::Path;
use std::time::Duration;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

const KEY: &str = "test-key-7f3a";

/// A service on a free port of 127.0.0.1, its store in `dir`.
struct Service {
    base: String,
    client: Client<HttpConnector, Full<Bytes>>,
    stop: Option<oneshot::Sender<()>>,
    running: JoinHandle<std::io::Result<()>>,
}

struct Answer {
    status: StatusCode,
    content_type: String,
    replayed: bool,
    retry_after: String,
    body: Value,
}

impl Service {
    async fn start(dir: &Path, change: impl FnOnce(&mut OperatorConfig)) -> Service {
        let mut config = OperatorConfig {
            database: dir.join("state.db"),
            plugins_dir: dir.join("plugins"),
            cache_dir: dir.join("cache"),
            ..OperatorConfig::default()
        };
        config.server.api_keys = vec![ApiKeyConfig {
            name: "tests".into(),
            sha256: Some(hash_key(KEY)),
            env: None,
        }];
        config.server.scheduler_every_ms = 50;
        change(&mut config);
        let runtime = Runtime::start(config.clone()).await.unwrap();
        runtime.load_saved_flows().await.unwrap();
        let server = Server::new(runtime, &config.server).unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let (stop, stopped) = oneshot::channel();
        let running = tokio::spawn(server.run(listener, async {
            let _ = stopped.await;
        }));
        Service {
            base,
            client: Client::builder(TokioExecutor::new()).build_http(),
            stop: Some(stop),
            running,
        }
    }

    /// A service with the greeting flow deployed.
    async fn with_greeting(dir: &Path, change: impl FnOnce(&mut OperatorConfig)) -> Service {
        let service = Service::start(dir, change).await;
        let deployed = service.post("/v1/flows", &greeting_flow("greeting")).await;
        assert_eq!(deployed.status, StatusCode::CREATED, "{}", deployed.body);
        service
    }

    async fn call(&self, method: Method, path: &str, key: Option<&str>, body: &str) -> Answer {
        self.call_with(method, path, key, body, &[]).await
    }

    async fn call_with(
        &self,
        method: Method,
        path: &str,
        key: Option<&str>,
        body: &str,
        headers: &[(&str, &str)],
    ) -> Answer {
        let mut req = Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base))
            .header("content-type", "application/json");
        if let Some(key) = key {
            req = req.header("authorization", format!("Bearer {key}"));
        }
        for (name, value) in headers {
            req = req.header(*name, *value);
        }
        let response = self
            .client
            .request(req.body(Full::new(Bytes::from(body.to_owned()))).unwrap())
            .await
            .unwrap();
        let status = response.status();
        let header = |name| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned()
        };
        let content_type = header("content-type");
        let replayed = header("idempotent-replayed") == "true";
        let retry_after = header("retry-after");
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        let body = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
        Answer {
            status,
            content_type,
            replayed,
            retry_after,
            body,
        }
    }

    async fn get(&self, path: &str) -> Answer {
        self.call(Method::GET, path, Some(KEY), "").await
    }

    async fn post(&self, path: &str, body: &Value) -> Answer {
        self.call(Method::POST, path, Some(KEY), &body.to_string())
            .await
    }

    async fn set_status(&self, flow: &str, status: &str) -> Answer {
        let body = json!({ "status": status }).to_string();
        let path = format!("/v1/flows/{flow}/status");
        self.call(Method::PUT, &path, Some(KEY), &body).await
    }

    /// Shuts the service down as SIGTERM would and waits for it to drain.
    async fn stop(mut self) {
        self.stop.take().unwrap().send(()).unwrap();
        self.running.await.unwrap().unwrap();
    }

    /// Waits until every listed participant has left `queued`/`running`.
    async fn settle(&self, ids: &[Value]) {
        for id in ids {
            let path = format!("/v1/participants/{}", id.as_str().unwrap());
            for attempt in 0.. {
                let p = self.get(&path).await;
                assert_eq!(p.status, StatusCode::OK, "{}", p.body);
                let status = p.body["status"].as_str().unwrap().to_owned();
                if status != "queued" && status != "running" {
                    break;
                }
                assert!(attempt < 600, "participant {id} still {status}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

/// Sets a greeting from a variable and ends.
fn greeting_flow(id: &str) -> Value {
    json!({
        "id": id, "name": "Greeting",
        "entry_points": [{"type": "api", "start": "greet"}],
        "elements": [
            {"id": "greet", "type": "set-variable",
             "config": {"set": {"greeting": "Hello, {{name}}"}}, "exits": {"next": "done"}},
            {"id": "done", "type": "exit"}
        ]
    })
}

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
        json!([{"id": "greeting", "name": "Greeting", "status": "active", "elements": 2}])
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
            flowhost::config::ChannelHookConfig {
                secret: flowhost::secrets::SecretSource::Value("sms-hook-secret".into()),
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

#[tokio::test]
async fn metrics_count_steps_requests_and_waiting_participants() {
    let dir = tempfile::tempdir().unwrap();
    // A wrong file in plugins/ is counted as failed.
    std::fs::create_dir_all(dir.path().join("plugins")).unwrap();
    std::fs::write(dir.path().join("plugins/broken.wasm"), b"not wasm").unwrap();
    let api = flowhost::testing::TestServer::start_replying(|_| {
        flowhost::testing::Reply::json(200, r#"{"ok": true}"#)
    })
    .await;
    let service = Service::start(dir.path(), |c| {
        c.outbound.allow_private = vec!["127.0.0.1".into()];
        c.call_api.allow_hosts = vec!["127.0.0.1".into()];
    })
    .await;
    let flow = json!({
        "id": "metered", "name": "Metered",
        "entry_points": [{"type": "api", "start": "call"}],
        "elements": [
            {"id": "call", "type": "call-api",
             "config": {"method": "GET", "url": format!("{}/ping", api.url())},
             "exits": {"2xx": "later", "error": "later"}},
            {"id": "later", "type": "wait", "config": {"duration": "1d"}, "exits": {"next": "done"}},
            {"id": "done", "type": "exit"}
        ]
    });
    let deployed = service.post("/v1/flows", &flow).await;
    assert_eq!(deployed.status, StatusCode::CREATED, "{}", deployed.body);
    let added = service
        .post(
            "/v1/flows/metered/participants",
            &json!({"participants": [{"person": {}}, {"person": {}}]}),
        )
        .await;
    service
        .settle(added.body["participants"].as_array().unwrap())
        .await;

    let unauthorized = service.call(Method::GET, "/metrics", None, "").await;
    assert_eq!(unauthorized.status, StatusCode::UNAUTHORIZED);
    let scraped = service.get("/metrics").await;
    assert_eq!(scraped.status, StatusCode::OK);
    assert!(
        scraped.content_type.starts_with("text/plain"),
        "{}",
        scraped.content_type
    );
    let text = scraped.body.as_str().unwrap().to_owned();
    let line = |prefix: &str| {
        text.lines()
            .find(|l| l.starts_with(prefix))
            .unwrap_or_else(|| panic!("no {prefix} in\n{text}"))
            .rsplit(' ')
            .next()
            .unwrap()
            .to_owned()
    };
    assert_eq!(
        line(r#"flowhost_steps_total{flow="metered",element="call",exit="2xx"}"#),
        "2"
    );
    assert_eq!(
        line(r#"flowhost_participants_waiting{flow="metered",element="later"}"#),
        "2"
    );
    assert_eq!(line(r#"flowhost_participants_queued{flow="metered"}"#), "0");
    assert!(
        text.contains(r#"flowhost_outbound_requests_total{host="127.0.0.1",status="200"}"#),
        "{text}"
    );
    assert!(text.contains("flowhost_step_duration_seconds"), "{text}");
    assert_eq!(line("flowhost_plugin_files_failed"), "1");
    service.stop().await;
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
