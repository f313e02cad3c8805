//! The plugin sandbox: every misbehaving test plugin ends on the error exit within its
//! deadline, and the next execution runs normally; bad files fail to load one by one.

use flowhost::config::{OperatorConfig, PluginGrant, SecretSource};
use flowhost::person::Person;
use flowhost::plugin::cache::CacheStatus;
use flowhost::plugin::{ExecFailure, Invocation, LoadError, LoadedPlugin, PluginHost};
use flowhost_tests::TestServer;
use flowhost_tests::components as c;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

fn operator(dir: &Path, grants: &[(&str, &str)]) -> OperatorConfig {
    let mut config = OperatorConfig {
        plugins_dir: dir.join("plugins"),
        cache_dir: dir.join("cache"),
        database: dir.join("db.sqlite"),
        ..OperatorConfig::default()
    };
    config.limits.deadline_ms = 1000;
    config.outbound.allow_private.push("127.0.0.1".into());
    config.limits.memory_mib = 32;
    for (id, host) in grants {
        config.plugins.insert(
            (*id).to_owned(),
            PluginGrant {
                allow_hosts: vec![(*host).to_owned()],
                ..PluginGrant::default()
            },
        );
    }
    config
}

fn invocation(config: Value) -> Invocation {
    let Value::Object(map) = config else { panic!() };
    Invocation {
        flow_id: "f".into(),
        element_id: "e1".into(),
        participant_id: "p-1".into(),
        person: Person {
            id: "ada".into(),
            attributes: json!({"firstName": "Ada"}).as_object().unwrap().clone(),
            ..Person::default()
        },
        config: map.into_iter().collect(),
        idempotency_key: Some("p-1:1".into()),
    }
}

async fn load(host: &PluginHost, path: &str) -> LoadedPlugin {
    host.load_file(Path::new(path)).await.unwrap()
}

async fn server() -> TestServer {
    TestServer::start(|req| match req.path.as_str() {
        "/missing" => (404, "application/json", "{}".into()),
        _ => (200, "application/json", r#"{"value": 42}"#.into()),
    })
    .await
}

#[tokio::test]
async fn happy_path_uses_config_variables_http_log_and_stdout() {
    let dir = tempfile::tempdir().unwrap();
    let srv = server().await;
    let mut config = operator(dir.path(), &[("happy", &srv.addr.to_string())]);
    let grant = config.plugins.get_mut("happy").unwrap();
    grant
        .secrets
        .insert("token".into(), SecretSource::Value("tok-123".into()));
    let host = flowhost::runtime::plugin_host(&config).unwrap();
    let plugin = load(&host, c::HAPPY).await;
    assert_eq!(plugin.manifest.id, "happy");
    assert_eq!(plugin.manifest.version.to_string(), "1.2.0");
    assert_eq!(plugin.wit_version, "0.1.0");
    let exits: Vec<_> = plugin
        .manifest
        .exits
        .iter()
        .map(|e| e.id.as_str())
        .collect();
    assert_eq!(exits, ["found", "not-found", "error"]);

    let vars = BTreeMap::from([("visits".to_owned(), json!(2))]);
    let inv = invocation(json!({"url": format!("{}/record", srv.url()), "greeting": "Hi"}));
    let run = host.execute(&plugin, &inv, vars).await;
    let (exit, data) = run.result.unwrap();
    assert_eq!(exit, "found");
    assert_eq!(data, Some(json!({"status": 200})));
    assert_eq!(run.variables["fetched"], json!(42));
    assert_eq!(run.variables["greeting"], json!("Hi, Ada"));
    assert_eq!(run.variables["visits"], json!(3));
    assert!(run.changed.contains("greeting"));
    let got = srv.received();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].path, "/record");
    assert_eq!(got[0].header("x-participant"), Some("p-1"));
    assert_eq!(got[0].header("authorization"), Some("Bearer tok-123"));
    // participant:step from the invocation, then the request's number.
    assert_eq!(got[0].header("idempotency-key"), Some("p-1:1:1"));
    let log: Vec<_> = run.logs.iter().map(|l| l.message.as_str()).collect();
    assert!(log.contains(&"fetched 42"), "{log:?}");
    assert!(log.contains(&"[stdout] printed to stdout"), "{log:?}");
    // The secret reached the server but not the journey.
    assert!(log.contains(&"using token [secret:token]"), "{log:?}");
    assert!(!format!("{:?}", run.logs).contains("tok-123"));
    // The request it sent, with its status and time.
    assert_eq!(run.requests.len(), 1);
    let sent = &run.requests[0];
    assert_eq!(
        (sent.method.as_str(), sent.status, sent.error.as_deref()),
        ("GET", Some(200), None)
    );
    assert!(sent.url.ends_with("/record"), "{}", sent.url);
    assert!(sent.duration_ms > 0.0);

    let inv = invocation(json!({"url": format!("{}/missing", srv.url())}));
    let run = host.execute(&plugin, &inv, BTreeMap::new()).await;
    assert_eq!(run.result.unwrap().0, "not-found");
}

/// Runs `path` and expects the error exit with a failure matching `expect`, within the
/// deadline; then checks that a well-behaved plugin still runs on the same host.
async fn misbehaves(
    path: &str,
    id: &str,
    expect: fn(&ExecFailure) -> bool,
) -> flowhost::plugin::Execution {
    let dir = tempfile::tempdir().unwrap();
    let srv = server().await;
    let addr = srv.addr.to_string();
    let host =
        flowhost::runtime::plugin_host(&operator(dir.path(), &[(id, &addr), ("happy", &addr)]))
            .unwrap();
    let bad = load(&host, path).await;
    let inv = invocation(json!({"url": format!("{}/x", srv.url())}));
    let vars = BTreeMap::from([("kept".to_owned(), json!("yes"))]);
    let run = host.execute(&bad, &inv, vars).await;
    let failure = run.result.as_ref().expect_err("should fail");
    assert!(expect(failure), "{id}: unexpected failure {failure:?}");
    assert!(
        run.duration < Duration::from_millis(1000) + Duration::from_millis(500),
        "{id}: took {:?}",
        run.duration
    );
    assert_eq!(run.variables["kept"], json!("yes"));
    assert!(run.changed.is_empty());

    let good = load(&host, c::HAPPY).await;
    let next = host.execute(&good, &inv, BTreeMap::new()).await;
    assert_eq!(next.result.unwrap().0, "found", "{id}: next participant");
    run
}

#[tokio::test]
async fn infinite_loop_hits_the_deadline() {
    misbehaves(c::INFINITE_LOOP, "infinite-loop", |f| {
        matches!(f, ExecFailure::Deadline(1000))
    })
    .await;
}

#[tokio::test]
async fn memory_growth_hits_the_cap() {
    let run = misbehaves(
        c::MEMORY_HOG,
        "memory-hog",
        |f| matches!(f, ExecFailure::Memory(m) if m.contains("32 MiB")),
    )
    .await;
    assert!(run.result.unwrap_err().to_string().contains("memory_mib"));
}

#[tokio::test]
async fn deep_recursion_overflows_the_stack() {
    misbehaves(c::DEEP_RECURSION, "deep-recursion", |f| {
        *f == ExecFailure::StackOverflow
    })
    .await;
}

#[tokio::test]
async fn panic_is_recorded_with_its_message() {
    let run = misbehaves(c::PANIC, "panic", |f| {
        matches!(f, ExecFailure::Panic { message, .. } if message == "the plugin panicked on purpose")
    })
    .await;
    let log = format!("{:?}", run.logs);
    assert!(log.contains("the plugin panicked on purpose"), "{log}");
    assert!(
        run.detail
            .as_deref()
            .unwrap()
            .starts_with("wasm backtrace: #0 "),
        "{:?}",
        run.detail
    );
}

#[tokio::test]
async fn host_not_granted_is_a_typed_error_and_nothing_is_sent() {
    let dir = tempfile::tempdir().unwrap();
    let srv = server().await;
    // Granted a different port than the server's.
    let host =
        flowhost::runtime::plugin_host(&operator(dir.path(), &[("denied-host", "127.0.0.1:1")]))
            .unwrap();
    let plugin = load(&host, c::DENIED_HOST).await;
    let run = host
        .execute(
            &plugin,
            &invocation(json!({"url": srv.url()})),
            BTreeMap::new(),
        )
        .await;
    let err = run.result.unwrap_err();
    assert!(
        matches!(&err, ExecFailure::Element(m) if m.contains("not granted")),
        "{err}"
    );
    assert!(srv.received().is_empty());
    assert!(format!("{:?}", run.logs).contains("request refused"));
}

#[tokio::test]
async fn undeclared_exit_ends_on_error() {
    misbehaves(c::UNDECLARED_EXIT, "undeclared-exit", |f| {
        *f == ExecFailure::UndeclaredExit("nowhere".into())
    })
    .await;
}

#[tokio::test]
async fn too_many_requests_stops_at_the_limit() {
    let dir = tempfile::tempdir().unwrap();
    let srv = server().await;
    let addr = srv.addr.to_string();
    let host =
        flowhost::runtime::plugin_host(&operator(dir.path(), &[("too-many-requests", &addr)]))
            .unwrap();
    let plugin = load(&host, c::TOO_MANY_REQUESTS).await;
    let run = host
        .execute(
            &plugin,
            &invocation(json!({"url": srv.url()})),
            BTreeMap::new(),
        )
        .await;
    assert!(
        matches!(run.result, Err(ExecFailure::HttpLimit(_))),
        "{:?}",
        run.result
    );
    assert_eq!(srv.received().len(), 16);
    misbehaves(c::TOO_MANY_REQUESTS, "too-many-requests", |f| {
        matches!(f, ExecFailure::HttpLimit(_))
    })
    .await;
}

#[tokio::test]
async fn bad_files_fail_one_by_one_and_good_ones_load() {
    let dir = tempfile::tempdir().unwrap();
    let plugins = dir.path().join("plugins");
    std::fs::create_dir_all(&plugins).unwrap();
    let happy = std::fs::read(c::HAPPY).unwrap();
    std::fs::write(plugins.join("a-good.wasm"), &happy).unwrap();
    std::fs::write(plugins.join("b-same-id.wasm"), &happy).unwrap();
    std::fs::write(plugins.join("c-text.wasm"), b"not wasm at all").unwrap();
    std::fs::write(plugins.join("d-core.wasm"), b"\0asm\x01\0\0\0").unwrap();
    std::fs::write(plugins.join("e-truncated.wasm"), &happy[..happy.len() / 2]).unwrap();
    std::fs::copy(c::UNKNOWN_WIT, plugins.join("f-future.wasm")).unwrap();
    std::fs::copy(c::TRIVIAL, plugins.join("g-trivial.wasm")).unwrap();
    std::fs::write(plugins.join("readme.txt"), b"ignored").unwrap();

    let host = flowhost::runtime::plugin_host(&operator(dir.path(), &[])).unwrap();
    let (registry, errors) = host.load_dir().await;
    let ids: Vec<_> = registry.iter().map(|p| p.key()).collect();
    assert_eq!(ids, ["happy@1.2.0", "trivial@0.1.0"]);
    let messages: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
    assert_eq!(messages.len(), 5, "{messages:#?}");
    assert!(matches!(&errors[0], LoadError::Duplicate { key, .. } if key == "happy@1.2.0"));
    assert!(messages[0].contains("b-same-id.wasm") && messages[0].contains("a-good.wasm"));
    assert!(matches!(errors[1], LoadError::NotWasm { .. }));
    assert!(matches!(errors[2], LoadError::CoreModule { .. }));
    assert!(messages[2].contains("wasm32-wasip2"));
    assert!(matches!(errors[3], LoadError::Invalid { .. }));
    assert!(messages[3].contains("e-truncated.wasm"));
    assert!(messages[4].contains("f-future.wasm"), "{}", messages[4]);
    assert!(
        messages[4].contains("flowhost:element@0.9.0"),
        "{}",
        messages[4]
    );
    for m in &messages {
        assert_eq!(m.lines().count(), 1, "one line: {m}");
    }
}

#[tokio::test]
async fn compiled_components_are_cached_and_corrupt_entries_rebuilt() {
    let dir = tempfile::tempdir().unwrap();
    let config = operator(dir.path(), &[]);
    let first = flowhost::runtime::plugin_host(&config).unwrap();
    assert_eq!(load(&first, c::TRIVIAL).await.cache, CacheStatus::Compiled);
    let restarted = flowhost::runtime::plugin_host(&config).unwrap();
    assert_eq!(load(&restarted, c::TRIVIAL).await.cache, CacheStatus::Hit);

    let entry = restarted
        .cache()
        .entry_path(&std::fs::read(c::TRIVIAL).unwrap());
    let mut bytes = std::fs::read(&entry).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    std::fs::write(&entry, &bytes).unwrap();
    let plugin = load(&restarted, c::TRIVIAL).await;
    assert_eq!(
        plugin.cache,
        CacheStatus::Rebuilt("checksum mismatch".into())
    );
    assert_eq!(load(&restarted, c::TRIVIAL).await.cache, CacheStatus::Hit);
    let run = restarted
        .execute(&plugin, &invocation(json!({})), BTreeMap::new())
        .await;
    assert_eq!(run.result.unwrap().0, "done");
}

#[tokio::test]
async fn wasi_http_goes_through_the_same_policy() {
    let dir = tempfile::tempdir().unwrap();
    let srv = server().await;
    let addr = srv.addr.to_string();
    let host =
        flowhost::runtime::plugin_host(&operator(dir.path(), &[("wasi-http", &addr)])).unwrap();
    let plugin = load(&host, c::WASI_HTTP).await;
    let run = host
        .execute(
            &plugin,
            &invocation(json!({"authority": addr})),
            BTreeMap::new(),
        )
        .await;
    assert_eq!(run.result.unwrap().0, "ok");
    assert_eq!(run.variables["status"], json!(200));
    assert_eq!(run.variables["body"], json!(r#"{"value": 42}"#));
    assert_eq!(srv.received()[0].path, "/wasi/0");
    // wasi:http requests carry the idempotency key too.
    assert_eq!(srv.received()[0].header("idempotency-key"), Some("p-1:1:1"));

    // Not granted: refused before anything is sent.
    let other = tempfile::tempdir().unwrap();
    let host =
        flowhost::runtime::plugin_host(&operator(other.path(), &[("wasi-http", "127.0.0.1:1")]))
            .unwrap();
    let plugin = load(&host, c::WASI_HTTP).await;
    let run = host
        .execute(
            &plugin,
            &invocation(json!({"authority": addr})),
            BTreeMap::new(),
        )
        .await;
    let err = run.result.unwrap_err().to_string();
    assert!(err.contains("HttpRequestDenied"), "{err}");
    assert!(
        format!("{:?}", run.logs).contains("wasi:http: 127.0.0.1"),
        "{:?}",
        run.logs
    );
    assert_eq!(srv.received().len(), 1);

    // The request budget is shared with `http.send`: the 17th request fails the execution.
    let host =
        flowhost::runtime::plugin_host(&operator(other.path(), &[("wasi-http", &addr)])).unwrap();
    let plugin = load(&host, c::WASI_HTTP).await;
    let run = host
        .execute(
            &plugin,
            &invocation(json!({"authority": addr, "count": 40})),
            BTreeMap::new(),
        )
        .await;
    assert!(
        matches!(run.result, Err(ExecFailure::HttpLimit(_))),
        "{:?}",
        run.result
    );
    assert_eq!(srv.received().len(), 1 + 16);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stuck_plugin_does_not_hold_up_other_participants() {
    let dir = tempfile::tempdir().unwrap();
    let srv = server().await;
    let addr = srv.addr.to_string();
    let mut config = operator(dir.path(), &[("happy", &addr)]);
    config.limits.deadline_ms = 1500;
    let host = flowhost::runtime::plugin_host(&config).unwrap();
    let stuck = load(&host, c::INFINITE_LOOP).await;
    let good = load(&host, c::HAPPY).await;
    let inv = invocation(json!({"url": format!("{}/x", srv.url())}));
    let looping = {
        let host = host.clone();
        let inv = inv.clone();
        tokio::spawn(async move { host.execute(&stuck, &inv, BTreeMap::new()).await })
    };
    // While the loop burns its 1.5 s, ten participants run the good plugin to completion.
    for _ in 0..10 {
        let run = host.execute(&good, &inv, BTreeMap::new()).await;
        assert_eq!(run.result.unwrap().0, "found");
    }
    assert!(
        !looping.is_finished(),
        "the good runs finished before the deadline"
    );
    let stuck_run = looping.await.unwrap();
    assert_eq!(stuck_run.result.unwrap_err(), ExecFailure::Deadline(1500));
}

/// An execution's store is dropped after its result is back (in a task of its own where one
/// runs on the caller's thread), and its permit only with it. Executions back to back, more
/// than the pool has instances, nothing awaited between them, all run: on a current-thread
/// runtime, in a multi-threaded runtime's task and in its `block_on`.
#[test]
fn more_executions_back_to_back_than_the_pool_has_instances() {
    async fn back_to_back(host: PluginHost, plugin: Arc<LoadedPlugin>) {
        let inv = invocation(json!({}));
        let runs = async {
            for i in 0..600 {
                let run = host.execute(&plugin, &inv, BTreeMap::new()).await;
                assert!(run.result.is_ok(), "execution {i}: {:?}", run.result);
            }
        };
        tokio::time::timeout(Duration::from_secs(60), runs)
            .await
            .expect("600 executions finished within a minute");
    }
    let dir = tempfile::tempdir().unwrap();
    let host = flowhost::runtime::plugin_host(&operator(dir.path(), &[])).unwrap();
    let current = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let plugin = Arc::new(current.block_on(load(&host, c::TRIVIAL)));
    current.block_on(back_to_back(host.clone(), plugin.clone()));
    let multi = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    multi
        .block_on(multi.spawn(back_to_back(host.clone(), plugin.clone())))
        .unwrap();
    multi.block_on(back_to_back(host, plugin));
}

#[tokio::test]
async fn no_filesystem_environment_arguments_or_sockets() {
    let dir = tempfile::tempdir().unwrap();
    let srv = server().await;
    let host = flowhost::runtime::plugin_host(&operator(dir.path(), &[])).unwrap();
    let plugin = load(&host, c::SANDBOX_PROBE).await;
    let run = host
        .execute(
            &plugin,
            &invocation(json!({"socket": srv.addr.to_string()})),
            BTreeMap::new(),
        )
        .await;
    assert_eq!(run.result.unwrap().0, "probed");
    assert_eq!(run.variables["root_listing"], json!(false));
    assert_eq!(run.variables["cwd_listing"], json!(false));
    assert_eq!(run.variables["env_count"], json!(0));
    assert_eq!(run.variables["arg_count"], json!(0));
    assert_eq!(run.variables["tcp_connect"], json!(false));
    assert!(srv.received().is_empty());
}

#[tokio::test]
async fn response_over_the_cap_is_a_typed_error() {
    let dir = tempfile::tempdir().unwrap();
    let srv = TestServer::start(|req| match req.path.as_str() {
        "/small" => (200, "text/plain", "x".repeat(1000)),
        _ => (200, "text/plain", "x".repeat(5000)),
    })
    .await;
    let mut config = operator(dir.path(), &[("sandbox-probe", &srv.addr.to_string())]);
    config
        .plugins
        .get_mut("sandbox-probe")
        .unwrap()
        .limits
        .max_response_bytes = Some(4096);
    let host = flowhost::runtime::plugin_host(&config).unwrap();
    let plugin = load(&host, c::SANDBOX_PROBE).await;
    assert_eq!(plugin.limits.max_response_bytes, 4096);
    let big = host
        .execute(
            &plugin,
            &invocation(json!({"url": format!("{}/big", srv.url())})),
            BTreeMap::new(),
        )
        .await;
    assert_eq!(
        big.variables["fetch_error"],
        json!("response body over 4096 bytes")
    );
    let small = host
        .execute(
            &plugin,
            &invocation(json!({"url": format!("{}/small", srv.url())})),
            BTreeMap::new(),
        )
        .await;
    assert_eq!(small.variables["fetched_bytes"], json!(1000));
}

#[tokio::test]
async fn loopback_and_denied_hosts_are_refused_even_when_granted() {
    let dir = tempfile::tempdir().unwrap();
    let srv = server().await;
    let addr = srv.addr.to_string();
    let inv = invocation(json!({"url": format!("{}/x", srv.url())}));

    // Granted, but 127.0.0.1 is loopback and the operator did not allow it.
    let mut config = operator(dir.path(), &[("happy", &addr), ("wasi-http", &addr)]);
    config.outbound.allow_private.clear();
    let host = flowhost::runtime::plugin_host(&config).unwrap();
    let plugin = load(&host, c::HAPPY).await;
    let run = host.execute(&plugin, &inv, BTreeMap::new()).await;
    let err = run.result.unwrap_err().to_string();
    assert!(
        err.contains("a loopback address, which is refused") && err.contains("allow_private"),
        "{err}"
    );
    let plugin = load(&host, c::WASI_HTTP).await;
    let run = host
        .execute(
            &plugin,
            &invocation(json!({"authority": addr})),
            BTreeMap::new(),
        )
        .await;
    assert!(
        run.result
            .unwrap_err()
            .to_string()
            .contains("HttpRequestDenied")
    );

    // Allowed as private, but on the operator's deny list.
    let mut config = operator(dir.path(), &[("happy", &addr)]);
    config.outbound.deny_hosts.push("127.0.0.1".into());
    let host = flowhost::runtime::plugin_host(&config).unwrap();
    let plugin = load(&host, c::HAPPY).await;
    let run = host.execute(&plugin, &inv, BTreeMap::new()).await;
    let err = run.result.unwrap_err().to_string();
    assert!(err.contains("outbound.deny_hosts"), "{err}");
    assert!(srv.received().is_empty());
}
