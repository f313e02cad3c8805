//! Requests as the server received them, and what stops one being sent.

use super::*;

#[tokio::test]
async fn every_method_and_body_kind_reaches_the_server_as_configured() {
    let dir = tempfile::tempdir().unwrap();
    let h = harness(dir.path());
    let srv = echo_server().await;
    for (i, method) in ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"]
        .iter()
        .enumerate()
    {
        let config = json!({"url": format!("{}/m/{method}", srv.url()), "method": method});
        let (p, journey) = h
            .run(flow(&format!("m{i}"), config, ALL_EXITS), json!({}))
            .await;
        assert_eq!(
            journey[0].exit.as_deref(),
            Some("2xx"),
            "{method}: {journey:?}"
        );
        assert_eq!(p.status, Status::Completed);
    }
    let got = srv.received();
    let methods: Vec<_> = got.iter().map(|r| r.method.as_str()).collect();
    assert_eq!(methods, ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"]);
    // No headers beyond what HTTP needs, and the request's idempotency key.
    let mut names: Vec<_> = got[0].headers.iter().map(|(k, _)| k.as_str()).collect();
    names.sort();
    assert_eq!(names, ["host", "idempotency-key"]);

    // Key-value pairs as JSON, with typed placeholders; the flow sets Content-Type itself.
    let config = json!({
        "url": format!("{}/contacts/{{{{person.externalId}}}}?order={{{{order_id}}}}", srv.url()),
        "method": "POST",
        "headers": {"Content-Type": "application/json", "X-Channel": "sms-{{channel}}"},
        "body": {"name": "{{person.firstName}} {{person.lastName}}", "points": "{{points}}", "vip": true},
    });
    h.run(
        flow("kv", config, ALL_EXITS),
        json!({"order_id": "A-1", "points": 42, "channel": "eu"}),
    )
    .await;
    // Raw JSON (an array) with no Content-Type: none is added, and validation warns.
    let config = json!({"url": format!("{}/raw", srv.url()), "method": "PUT", "body": [1, "{{points}}", {"x": null}]});
    let compiled = h
        .engine
        .compile(flow("raw", config.clone(), ALL_EXITS), "raw.json")
        .await
        .unwrap();
    let warnings: Vec<String> = compiled.warnings.iter().map(ToString::to_string).collect();
    assert_eq!(
        warnings,
        [
            "elements[0].config.headers: (element \"call\") the JSON body is sent without a Content-Type header, and most servers then refuse it; add \"Content-Type\": \"application/json\""
        ]
    );
    h.run(flow("raw", config, ALL_EXITS), json!({"points": 7}))
        .await;
    // A form, because the Content-Type header says so.
    let config = json!({
        "url": format!("{}/form", srv.url()), "method": "POST",
        "headers": {"content-type": "application/x-www-form-urlencoded"},
        "body": {"name": "{{person.firstName}} Lovelace", "points": "{{points}}", "note": "a&b=c"},
    });
    h.run(flow("form", config, ALL_EXITS), json!({"points": 42}))
        .await;

    let got = srv.received();
    let kv = &got[6];
    assert_eq!(kv.path, "/contacts/crm-77?order=A-1");
    assert_eq!(kv.header("content-type"), Some("application/json"));
    assert_eq!(kv.header("x-channel"), Some("sms-eu"));
    let body: Value = serde_json::from_slice(&kv.body).unwrap();
    assert_eq!(
        body,
        json!({"name": "Ada Lovelace", "points": 42, "vip": true})
    );
    let raw = &got[7];
    assert_eq!(raw.header("content-type"), None);
    assert_eq!(String::from_utf8_lossy(&raw.body), r#"[1,7,{"x":null}]"#);
    let form = &got[8];
    assert_eq!(
        String::from_utf8_lossy(&form.body),
        "name=Ada+Lovelace&note=a%26b%3Dc&points=42"
    );
}

#[tokio::test]
async fn a_missing_variable_is_an_error_and_nothing_is_sent() {
    let dir = tempfile::tempdir().unwrap();
    let h = harness(dir.path());
    let srv = echo_server().await;
    let config = json!({"url": format!("{}/orders/{{{{order_id}}}}", srv.url())});
    let (_, journey) = h.run(flow("missing", config, ALL_EXITS), json!({})).await;
    assert_eq!(journey[0].exit.as_deref(), Some("error"));
    assert_eq!(
        journey[0].error.as_deref(),
        Some(
            "request not sent: variable \"order_id\" is not set; set it earlier in the flow or remove the placeholder"
        )
    );
    assert!(srv.received().is_empty());
}

#[tokio::test]
async fn set_variable_shares_the_placeholder_syntax() {
    let dir = tempfile::tempdir().unwrap();
    let h = harness(dir.path());
    let def = FlowDef::parse(
        &json!({"id": "sv", "name": "sv", "entry_points": [{"type": "api", "start": "s"}], "elements": [
            {"id": "s", "type": "set-variable",
             "config": {"set": {"greeting": "Hi {{person.firstName}}", "copy": "{{points}}", "n": 1}},
             "exits": {"next": "missing", "error": "end"}},
            {"id": "missing", "type": "set-variable", "config": {"set": {"x": "{{nope}}"}}, "exits": {"error": "end"}},
            {"id": "end", "type": "exit"}]})
        .to_string(),
        "sv.json",
    )
    .unwrap();
    let (p, journey) = h.run(def, json!({"points": 5})).await;
    assert_eq!(p.variables["greeting"], json!("Hi Ada"));
    assert_eq!(p.variables["copy"], json!(5));
    assert_eq!(journey[1].exit.as_deref(), Some("error"));
    assert!(
        journey[1]
            .error
            .as_deref()
            .unwrap()
            .contains("variable \"nope\" is not set")
    );
}

/// Each request carries an idempotency key (`participant:step:1`), the same on every retry;
/// an element may name another header or send none, and a header the flow sets wins.
#[tokio::test]
async fn requests_carry_an_idempotency_key_kept_across_retries() {
    let dir = tempfile::tempdir().unwrap();
    let h = harness(dir.path());
    let calls = std::sync::atomic::AtomicU32::new(0);
    let srv = TestServer::start_replying(move |r| match r.path.as_str() {
        "/flaky" if calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == 0 => {
            Reply::json(503, "{}")
        }
        _ => Reply::json(200, "{}"),
    })
    .await;
    let url = |path: &str| format!("{}{path}", srv.url());
    let config =
        json!({"url": url("/flaky"), "retry": {"max_attempts": 3, "initial_backoff_ms": 1000}});
    let (p, _) = h.run(flow("flaky", config, ALL_EXITS), json!({})).await;
    assert_eq!(p.status, Status::Waiting, "retrying");
    h.clock.advance_ms(1_000);
    let resumed = h.engine.resume_due().await.unwrap();
    assert_eq!(resumed[0].status, Status::Completed);
    let keys: Vec<_> = srv
        .received()
        .iter()
        .map(|r| r.header("idempotency-key").map(str::to_owned))
        .collect();
    let first = format!("{}:1:1", p.id);
    assert_eq!(keys, [Some(first.clone()), Some(first)]);

    for (config, header, expected) in [
        (
            json!({"url": url("/named"), "idempotency_key": "X-Request-Key"}),
            "x-request-key",
            true,
        ),
        (
            json!({"url": url("/off"), "idempotency_key": false}),
            "idempotency-key",
            false,
        ),
        (
            json!({"url": url("/own"), "headers": {"Idempotency-Key": "order-{{order}}"}}),
            "idempotency-key",
            true,
        ),
    ] {
        let path = config["url"]
            .as_str()
            .unwrap()
            .rsplit('/')
            .next()
            .unwrap()
            .to_owned();
        let (p, _) = h
            .run(flow(&path, config, ALL_EXITS), json!({"order": 7}))
            .await;
        let got = srv.received();
        let sent = got.last().unwrap();
        assert_eq!(sent.path, format!("/{path}"));
        assert_eq!(sent.header(header).is_some(), expected, "{path}");
        match path.as_str() {
            "named" => assert_eq!(sent.header(header), Some(format!("{}:1:1", p.id).as_str())),
            "own" => assert_eq!(sent.header(header), Some("order-7")),
            _ => assert_eq!(sent.header("x-request-key"), None),
        }
    }
}
