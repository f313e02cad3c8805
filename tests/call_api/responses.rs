//! Response mapping, exits and their precedence, timeouts, background sends, size caps.

use super::*;

#[tokio::test]
async fn response_headers_status_and_body_map_to_variables() {
    let dir = tempfile::tempdir().unwrap();
    let h = harness(dir.path());
    let srv = TestServer::start_replying(|r| match r.path.as_str() {
        "/text" => Reply {
            status: 200,
            body: "plain words".into(),
            ..Reply::default()
        },
        _ => Reply::json(
            200,
            r#"{"loyalty": {"points": 120, "tier": null}, "tags": ["a", "b"], "user": {"name": "Ada"}, "items": [{"sku": 1}, {"sku": 2}]}"#,
        )
        .header("X-Request-Id", "req-9"),
    })
    .await;
    let config = json!({
        "url": format!("{}/json", srv.url()),
        "response": {
            "status": "code",
            "headers": {"request_id": "x-REQUEST-id", "absent": "X-Nope"},
            "body": {
                "points": "$.loyalty.points", "tier": "$.loyalty.tier", "nothing": "$.missing",
                "several": "$.items[*].sku", "array": "$.tags", "object": "$.user",
                "filtered": "$.items[?@.sku == 2].sku",
            },
            "whole_body": {"variable": "doc"},
        }
    });
    let (p, journey) = h.run(flow("map", config, ALL_EXITS), json!({})).await;
    let v = &p.variables;
    assert_eq!(v["code"], json!(200));
    assert_eq!(v["request_id"], json!("req-9"));
    assert_eq!(v["absent"], Value::Null);
    assert_eq!(v["points"], json!(120));
    assert_eq!(v["tier"], Value::Null);
    assert_eq!(v["filtered"], json!(2));
    for var in ["nothing", "several", "array", "object"] {
        assert_eq!(v[var], Value::Null, "{var}");
    }
    assert_eq!(v["doc"]["user"]["name"], json!("Ada"));
    let log = logs(&journey[0]);
    for reason in [
        "nothing set to null: $.missing selects nothing",
        "several set to null: $.items[*].sku selects 2 values, not one",
        "array set to null: $.tags selects an array, not a single value",
        "object set to null: $.user selects an object, not a single value",
        "absent set to null: the response has no X-Nope header",
    ] {
        assert!(log.contains(reason), "{reason} not in\n{log}");
    }

    // Not JSON: paths give null with the reason; the whole body is kept as text.
    let config = json!({
        "url": format!("{}/text", srv.url()),
        "response": {"body": {"points": "$.points"}, "whole_body": {"variable": "raw", "as": "text"}}
    });
    let (p, journey) = h.run(flow("text", config, ALL_EXITS), json!({})).await;
    assert_eq!(p.variables["points"], Value::Null);
    assert_eq!(p.variables["raw"], json!("plain words"));
    assert!(logs(&journey[0]).contains("points set to null: the response body is not JSON"));
}

#[tokio::test]
async fn exits_follow_the_documented_precedence() {
    let dir = tempfile::tempdir().unwrap();
    let h = harness(dir.path());
    let srv = TestServer::start_replying(|r| {
        let code = r.path.trim_start_matches('/').parse().unwrap_or(200);
        Reply::json(code, r#"{"error": "details"}"#)
    })
    .await;
    // A closed port: bind, read the port, drop the listener.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let cases: &[(&str, &[&str], Option<&str>)] = &[
        ("/204", ALL_EXITS, Some("2xx")),
        ("/404", ALL_EXITS, Some("4xx")),
        ("/404", &["2xx", "5xx", "error"], Some("error")),
        ("/503", ALL_EXITS, Some("5xx")),
        ("/500", &["2xx", "4xx", "error"], Some("error")),
        ("/302", ALL_EXITS, Some("error")),
        ("closed", ALL_EXITS, Some("error")),
    ];
    for (i, (path, exits, expected)) in cases.iter().enumerate() {
        let url = if *path == "closed" {
            format!("http://{closed}/")
        } else {
            format!("{}{path}", srv.url())
        };
        let config =
            json!({"url": url, "response": {"status": "code", "body": {"why": "$.error"}}});
        let (_, journey) = h
            .run(flow(&format!("x{i}"), config, exits), json!({}))
            .await;
        assert_eq!(
            journey[0].exit.as_deref(),
            *expected,
            "{path} with {exits:?}: {journey:?}"
        );
        if *path == "/404" && exits.contains(&"4xx") {
            assert_eq!(journey[0].variables_changed["why"], json!("details"));
        }
        if *path == "closed" {
            assert!(
                journey[0]
                    .error
                    .as_deref()
                    .unwrap()
                    .contains("could not connect"),
                "{journey:?}"
            );
        }
    }

    // No error exit: validation warns, and a failure stops the participant as failed.
    let config = json!({"url": format!("{}/500", srv.url())});
    let compiled = h
        .engine
        .compile(flow("w", config.clone(), &["2xx"]), "w.json")
        .await
        .unwrap();
    assert_eq!(compiled.warnings.len(), 1);
    assert!(
        compiled.warnings[0]
            .to_string()
            .starts_with("elements[0].exits: (element \"call\") no \"error\" exit")
    );
    let (p, _) = h.run(flow("w", config, &["2xx"]), json!({})).await;
    assert_eq!(p.status, Status::Failed);
}

#[tokio::test]
async fn a_server_that_never_answers_times_out_on_the_error_exit() {
    let dir = tempfile::tempdir().unwrap();
    let h = harness(dir.path());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let hold = tokio::spawn(async move {
        let mut open = Vec::new();
        while let Ok((s, _)) = listener.accept().await {
            open.push(s);
        }
    });
    let config = json!({"url": format!("http://{addr}/slow"), "timeout_ms": 300});
    let started = std::time::Instant::now();
    let (_, journey) = h.run(flow("slow", config, ALL_EXITS), json!({})).await;
    assert_eq!(journey[0].exit.as_deref(), Some("error"));
    assert!(
        journey[0].error.as_deref().unwrap().ends_with("timed out"),
        "{journey:?}"
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
    hold.abort();
}

#[tokio::test]
async fn without_waiting_the_participant_moves_on_and_the_result_joins_the_journey() {
    let dir = tempfile::tempdir().unwrap();
    let h = harness(dir.path());
    let srv = echo_server().await;
    let config = json!({"url": format!("{}/notify", srv.url()), "method": "POST", "wait_for_response": false});
    let (p, journey) = h
        .run(flow("bg", config, &["next", "error"]), json!({}))
        .await;
    assert_eq!(p.status, Status::Completed);
    assert_eq!(journey[0].exit.as_deref(), Some("next"));
    h.engine.finish_background().await;
    assert_eq!(srv.received().len(), 1);
    let journey = h.engine.journey(&p.id).await.unwrap();
    let background = journey.last().unwrap();
    assert_eq!(background.element_id, "call");
    assert_eq!(background.data.as_ref().unwrap()["status"], json!(200));
    let seqs: Vec<u64> = journey.iter().map(|e| e.seq).collect();
    assert_eq!(seqs, (1..=journey.len() as u64).collect::<Vec<_>>());

    // Mapping a response, or branching on it, needs waiting.
    let config = json!({"url": srv.url(), "wait_for_response": false, "response": {"status": "s"}});
    let err = h
        .engine
        .compile(flow("bad", config, &["4xx", "next"]), "bad.json")
        .await
        .unwrap_err();
    let FlowError::Invalid { issues, .. } = err else {
        panic!()
    };
    let issues: Vec<String> = issues.iter().map(|i| i.to_string()).collect();
    assert!(
        issues
            .iter()
            .any(|i| i.starts_with("elements[0].config.response:")),
        "{issues:?}"
    );
    assert!(
        issues
            .iter()
            .any(|i| i.starts_with("elements[0].exits.4xx:")),
        "{issues:?}"
    );
}

#[tokio::test]
async fn a_response_over_the_operator_cap_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let mut capped = call_api_config();
    capped.max_response_bytes = 1024;
    let h = harness_with(dir.path(), 0, outbound(), capped);
    let srv = TestServer::start_replying(|r| {
        let size = if r.path == "/big" { 4096 } else { 512 };
        Reply::json(200, &format!("\"{}\"", "x".repeat(size)))
    })
    .await;
    let (_, journey) = h
        .run(
            flow(
                "small",
                json!({"url": format!("{}/small", srv.url())}),
                ALL_EXITS,
            ),
            json!({}),
        )
        .await;
    assert_eq!(journey[0].exit.as_deref(), Some("2xx"));
    let (_, journey) = h
        .run(
            flow(
                "big",
                json!({"url": format!("{}/big", srv.url())}),
                ALL_EXITS,
            ),
            json!({}),
        )
        .await;
    assert_eq!(journey[0].exit.as_deref(), Some("error"));
    assert!(
        journey[0]
            .error
            .as_deref()
            .unwrap()
            .ends_with("response body larger than 1024 bytes"),
        "{journey:?}"
    );
}

/// What a response is mapped into keeps the operator's `[limits]` for variables, as what a
/// plugin sets does: too large a value ends on `error`, and nothing is set.
#[tokio::test]
async fn mapped_responses_keep_the_variable_limits() {
    let dir = tempfile::tempdir().unwrap();
    let h = harness(dir.path());
    let srv = TestServer::start_replying(|_| Reply {
        status: 200,
        body: "r".repeat(2 << 20),
        ..Reply::default()
    })
    .await;
    let config = json!({
        "url": format!("{}/big", srv.url()),
        "response": {"status": "code", "whole_body": {"variable": "raw", "as": "text"}}
    });
    let (p, journey) = h.run(flow("big", config, ALL_EXITS), json!({})).await;
    assert_eq!(journey[0].exit.as_deref(), Some("error"));
    assert_eq!(
        journey[0].error.as_deref(),
        Some(
            "response mapping: variable `raw`: 2097157 bytes, over limits.max_variable_bytes = 1048576; the operator can raise it in flowhost.toml"
        )
    );
    assert!(journey[0].variables_changed.is_empty());
    assert!(!p.variables.contains_key("raw") && !p.variables.contains_key("code"));
}
