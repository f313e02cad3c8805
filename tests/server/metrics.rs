//! `/metrics`.

use super::*;

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
