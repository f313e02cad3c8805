//! Redirects, private addresses, HTTPS trust, secrets, and configuration mistakes at their paths.

use super::*;

#[tokio::test]
async fn redirects_are_followed_and_checked_at_every_hop() {
    let dir = tempfile::tempdir().unwrap();
    let h = harness(dir.path());
    let other = echo_server().await;
    let other_url = other.url();
    let srv = TestServer::start_replying(move |r| match r.path.as_str() {
        "/moved" => Reply::json(302, "").header("Location", "/final"),
        "/final" => Reply::json(200, r#"{"at": "final"}"#),
        "/away" => Reply::json(307, "").header("Location", &format!("{other_url}/elsewhere")),
        "/metadata" => {
            Reply::json(302, "").header("Location", "http://169.254.169.254/latest/meta-data/")
        }
        _ => Reply::json(404, "{}"),
    })
    .await;
    let config = json!({"url": format!("{}/moved", srv.url()), "method": "POST", "body": {"a": 1},
                        "response": {"body": {"at": "$.at"}}});
    let (p, journey) = h.run(flow("r1", config, ALL_EXITS), json!({})).await;
    assert_eq!(p.variables["at"], json!("final"));
    assert_eq!(
        journey[0].data.as_ref().unwrap()["redirects"],
        json!([format!("{}/final", srv.url())])
    );
    // 302 after POST continues as GET without the body.
    let got = srv.received();
    assert_eq!((got[1].method.as_str(), got[1].body.len()), ("GET", 0));

    // Credentials stay with their origin.
    let config = json!({"url": format!("{}/away", srv.url()),
                        "headers": {"Authorization": "Bearer {{secret.crm_token}}"}});
    let (_, journey) = h.run(flow("r2", config, ALL_EXITS), json!({})).await;
    assert_eq!(journey[0].exit.as_deref(), Some("2xx"));
    let hop = &other.received()[0];
    assert_eq!(hop.path, "/elsewhere");
    assert_eq!(hop.header("authorization"), None);

    // The cloud metadata address is refused even as a redirect target.
    let config = json!({"url": format!("{}/metadata", srv.url())});
    let (_, journey) = h.run(flow("r3", config, ALL_EXITS), json!({})).await;
    assert_eq!(journey[0].exit.as_deref(), Some("error"));
    let error = journey[0].error.as_deref().unwrap();
    assert!(
        error.contains("redirect to http://169.254.169.254/latest/meta-data/ refused")
            && error.contains("link-local address"),
        "{error}"
    );
}

#[tokio::test]
async fn private_addresses_and_denied_hosts_need_the_operator() {
    let dir = tempfile::tempdir().unwrap();
    let srv = echo_server().await;
    let config = json!({"url": srv.url()});
    let h = harness_with(dir.path(), 0, OutboundConfig::default(), call_api_config());
    let (_, journey) = h
        .run(flow("private", config.clone(), ALL_EXITS), json!({}))
        .await;
    assert!(
        journey[0]
            .error
            .as_deref()
            .unwrap()
            .contains("loopback address, which is refused")
    );

    let other = tempfile::tempdir().unwrap();
    let mut narrow = call_api_config();
    narrow.allow_hosts = vec!["api.example.com".into()];
    let h = harness_with(other.path(), 0, outbound(), narrow);
    let (_, journey) = h.run(flow("narrow", config, ALL_EXITS), json!({})).await;
    assert!(
        journey[0]
            .error
            .as_deref()
            .unwrap()
            .contains("is not granted to Call API")
    );
    assert!(srv.received().is_empty());
}

#[tokio::test]
async fn https_uses_trusted_roots_and_refuses_unknown_ones() {
    let dir = tempfile::tempdir().unwrap();
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    let key = rcgen::KeyPair::generate().unwrap();
    let leaf = rcgen::CertificateParams::new(vec!["localhost".to_owned()])
        .unwrap()
        .signed_by(&key, &issuer)
        .unwrap();
    let identity = TlsIdentity {
        cert_pem: leaf.pem(),
        key_pem: key.serialize_pem(),
    };
    let srv = TestServer::start_tls(&identity, |_| Reply::json(200, r#"{"secure": true}"#)).await;
    let url = format!("https://localhost:{}/tls", srv.addr.port());
    let config = json!({"url": url, "response": {"body": {"secure": "$.secure"}}});

    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, ca.pem()).unwrap();
    let trusting = OutboundConfig {
        extra_ca_files: vec![ca_file],
        ..outbound()
    };
    let h = harness_with(dir.path(), 0, trusting, call_api_config());
    let (p, journey) = h
        .run(flow("tls", config.clone(), ALL_EXITS), json!({}))
        .await;
    assert_eq!(journey[0].exit.as_deref(), Some("2xx"), "{journey:?}");
    assert_eq!(p.variables["secure"], json!(true));

    let other = tempfile::tempdir().unwrap();
    let h = harness_with(other.path(), 0, outbound(), call_api_config());
    let (_, journey) = h.run(flow("untrusted", config, ALL_EXITS), json!({})).await;
    let error = journey[0].error.as_deref().unwrap();
    assert!(error.contains("TLS with localhost"), "{error}");
}

#[tokio::test]
async fn secrets_reach_the_server_but_nothing_stored_or_printed() {
    let dir = tempfile::tempdir().unwrap();
    let h = harness(dir.path());
    // The server echoes what it got, secret included, in its body and a header.
    let srv = TestServer::start_replying(|r| {
        let auth = r.header("authorization").unwrap_or("").to_owned();
        let code = if r.path.starts_with("/fail") {
            500
        } else {
            200
        };
        Reply::json(
            code,
            &json!({"echo": auth, "body": String::from_utf8_lossy(&r.body)}).to_string(),
        )
        .header("X-Echo", &auth)
    })
    .await;
    let config = json!({
        "url": format!("{}/ok?key={{{{secret.crm_token}}}}", srv.url()),
        "method": "POST",
        "headers": {"Authorization": "Bearer {{secret.crm_token}}"},
        "body": {"token": "{{secret.crm_token}}"},
        "response": {"headers": {"echoed": "X-Echo"}, "body": {"echo": "$.echo"},
                     "whole_body": {"variable": "all", "as": "text"}},
    });
    let (p, _) = h.run(flow("s1", config, ALL_EXITS), json!({})).await;
    let fail = json!({"url": format!("{}/fail?key={{{{secret.crm_token}}}}", srv.url()),
                      "headers": {"Authorization": "Bearer {{secret.crm_token}}"}});
    let (p2, _) = h.run(flow("s2", fail, &["2xx"]), json!({})).await;
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let down = json!({"url": format!("http://{closed}/x?key={{{{secret.crm_token}}}}"), "wait_for_response": false});
    let (p3, _) = h.run(flow("s3", down, &["next"]), json!({})).await;
    h.engine.finish_background().await;

    let got = srv.received();
    assert_eq!(
        got[0].header("authorization"),
        Some(format!("Bearer {SECRET}").as_str())
    );
    assert!(got[0].path.ends_with(SECRET));
    assert_eq!(p.variables["echoed"], json!("Bearer [secret:crm_token]"));

    let mut everything = String::new();
    for id in [&p.id, &p2.id, &p3.id] {
        everything += &format!("{:?}", h.engine.participant(id).await.unwrap());
        everything += &serde_json::to_string(&h.engine.journey(id).await.unwrap()).unwrap();
    }
    assert!(everything.contains("[secret:crm_token]"), "{everything}");
    assert!(!everything.contains(SECRET), "{everything}");
    drop(h);
    // Nor anywhere in the database files.
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        let bytes = std::fs::read(entry.unwrap().path()).unwrap();
        assert!(!bytes.windows(SECRET.len()).any(|w| w == SECRET.as_bytes()));
    }
}

/// The issues of a flow that does not compile.
async fn invalid(h: &Harness, def: flowhost::flow::FlowDef) -> Vec<flowhost::flow::Issue> {
    match h.engine.compile(def, "bad.json").await {
        Err(FlowError::Invalid { issues, .. }) => issues,
        other => panic!("{:?}", other.map(|f| f.warnings.clone())),
    }
}

#[tokio::test]
async fn configuration_mistakes_are_reported_at_their_paths() {
    let dir = tempfile::tempdir().unwrap();
    let h = harness(dir.path());
    let config = json!({
        "url": "ftp://example.com/{{x}}",
        "method": "FETCH",
        "headers": {"Authorization": "Bearer {{secret.nope}}", "bad header": "x"},
        "response": {"body": {"points": "$.[", "ok": "$.ok"}},
        "schedule": {"window": {"start": "09:00", "end": "17:00", "time_zone": "Mars/Olympus"},
                     "rate": {"requests": 0, "per": "minute"}},
        "timeout_ms": 0,
    });
    let issues = invalid(&h, flow("bad", config, ALL_EXITS)).await;
    let paths: Vec<&str> = issues.iter().map(|i| i.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "elements[0].config.url",
            "elements[0].config.method",
            "elements[0].config.headers.Authorization",
            "elements[0].config.headers.bad header",
            "elements[0].config.timeout_ms",
            "elements[0].config.response.body.points",
            "elements[0].config.schedule.window.time_zone",
            "elements[0].config.schedule.rate.requests",
        ]
    );
    let text = issues
        .iter()
        .map(|i| i.to_string())
        .collect::<Vec<_>>()
        .join("\n");
    assert!(
        text.contains(
            "secret \"nope\" is not configured; the operator adds it under [call_api.secrets]"
        ),
        "{text}"
    );
    assert!(
        text.contains("use GET, POST, PUT, PATCH, DELETE, HEAD"),
        "{text}"
    );

    let err = h
        .engine
        .compile(
            flow(
                "typo",
                json!({"url": "http://x", "methd": "GET"}),
                ALL_EXITS,
            ),
            "typo.json",
        )
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("elements[0].config.methd: (element \"call\") unknown field `methd`"),
        "{err}"
    );

    // One problem does not hide the others: a bad `per`, the typo and every problem of the
    // delivery window, each at its path.
    let issues = invalid(
        &h,
        flow(
            "many",
            json!({"url": "http://x", "methd": "GET",
                   "schedule": {"rate": {"requests": 2, "per": "second"},
                                "window": {"start": "9", "end": "17:00",
                                           "time_zone": "Mars/Olympus"}}}),
            ALL_EXITS,
        ),
    )
    .await;
    let paths: Vec<&str> = issues.iter().map(|i| i.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "elements[0].config.methd",
            "elements[0].config.schedule.rate.per",
            "elements[0].config.schedule.window.start",
            "elements[0].config.schedule.window.time_zone",
        ],
        "{issues:?}"
    );
}
