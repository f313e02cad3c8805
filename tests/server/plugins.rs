//! Hot reload: a plugin replaced, pinned, broken and removed in the plugins folder of a
//! running service, with participants running.

use super::*;
use flowhost::testing::Reply;
use flowhost_tests::components;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// A flow running `relay` (any version, or `version`) against `url`.
fn relay_flow(id: &str, version: Option<&str>, url: &str) -> Value {
    let kind = match version {
        Some(v) => format!("plugin:relay@{v}"),
        None => "plugin:relay".into(),
    };
    json!({
        "id": id, "name": id,
        "entry_points": [{"type": "api", "start": "relay"}],
        "elements": [
            {"id": "relay", "type": kind, "config": {"url": url}, "exits": {"done": "end"}},
            {"id": "end", "type": "exit"}
        ]
    })
}

/// Puts `component` in the folder as `name` the way an operator should: written beside it,
/// then renamed over, so the service never sees half a file.
fn install(plugins: &Path, component: &str, name: &str) {
    let staged = plugins.join(format!(".{name}.partial"));
    std::fs::copy(component, &staged).unwrap();
    std::fs::rename(&staged, plugins.join(name)).unwrap();
}

impl Service {
    /// Waits until `/v1/plugins` satisfies `ready`, and returns it.
    async fn plugins_when(&self, what: &str, ready: impl Fn(&Value) -> bool) -> Value {
        self.when("/v1/plugins", what, |a| ready(&a.body))
            .await
            .body
    }

    async fn add_one(&self, flow: &str) -> Value {
        let added = self
            .post(
                &format!("/v1/flows/{flow}/participants"),
                &json!({"participants": [{"contact": "+385911234567"}]}),
            )
            .await;
        assert_eq!(added.status, StatusCode::ACCEPTED, "{}", added.body);
        added.body["participants"][0].clone()
    }

    /// The version of `relay` that ran the participant, by its variable and its journey.
    async fn relay_version(&self, id: &Value) -> (Value, Value) {
        self.settle(std::slice::from_ref(id)).await;
        let id = id.as_str().unwrap();
        let p = self.get(&format!("/v1/participants/{id}")).await.body;
        let journey = self
            .get(&format!("/v1/participants/{id}/journey"))
            .await
            .body;
        (
            p["variables"]["relay_version"].clone(),
            journey["journey"][0]["element_type"].clone(),
        )
    }
}

impl Service {
    /// The version of `relay` that runs a participant added to `latest` now.
    async fn next_in_latest_runs(&self) -> Value {
        let id = self.add_one("latest").await;
        self.relay_version(&id).await.0
    }
}

fn versions(plugins: &Value) -> Vec<String> {
    let mut v: Vec<String> = plugins["plugins"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            format!(
                "{}@{}",
                p["id"].as_str().unwrap(),
                p["version"].as_str().unwrap()
            )
        })
        .collect();
    v.sort();
    v
}

#[tokio::test]
async fn a_plugin_replaced_while_participants_run_serves_new_steps_and_old_ones_finish() {
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().join("plugins");
    std::fs::create_dir_all(&folder).unwrap();
    install(&folder, components::RELAY_V1, "relay.wasm");
    // The first call is held for a while: the execution making it is in flight meanwhile.
    let calls = Arc::new(AtomicUsize::new(0));
    let counted = calls.clone();
    let upstream = TestServer::start_replying(move |_| {
        let reply = Reply::json(200, "{}");
        if counted.fetch_add(1, Ordering::SeqCst) == 0 {
            reply.after(Duration::from_secs(3))
        } else {
            reply
        }
    })
    .await;
    let service = Service::start(dir.path(), |c| {
        c.outbound.allow_private = vec!["127.0.0.1".into()];
        c.plugins.entry("relay".into()).or_default().allow_hosts = vec!["127.0.0.1".into()];
        c.server.plugin_rescan_ms = 100;
        // Time for the held call.
        c.limits.deadline_ms = 10_000;
    })
    .await;
    let url = upstream.url();
    for flow in [
        relay_flow("latest", None, &url),
        relay_flow("pinned", Some("1.0.0"), &url),
    ] {
        let deployed = service.post("/v1/flows", &flow).await;
        assert_eq!(deployed.status, StatusCode::CREATED, "{}", deployed.body);
    }
    let first = service.add_one("latest").await;
    received(&upstream, 1).await;

    // Version 2 replaces the file while the first execution waits for its answer.
    install(&folder, components::RELAY_V2, "relay.wasm");
    let now = service
        .plugins_when("relay 2.0.0 loaded", |p| {
            versions(p).contains(&"relay@2.0.0".to_owned())
        })
        .await;
    assert_eq!(
        versions(&now),
        ["relay@1.0.0", "relay@2.0.0"],
        "1.0.0 kept for `pinned`"
    );
    let reload = now["reloads"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(reload["loaded"], json!(["relay@2.0.0"]), "{reload}");
    assert_eq!(
        reload["kept"],
        json!([{"plugin": "relay@1.0.0", "flows": ["pinned"]}])
    );
    let path = format!("/v1/participants/{}", first.as_str().unwrap());
    assert_eq!(
        service.get(&path).await.body["status"],
        "running",
        "the first execution is still in flight"
    );
    let second = service.add_one("latest").await;
    let pinned = service.add_one("pinned").await;
    assert_eq!(
        service.relay_version(&first).await,
        (json!("1.0.0"), json!("plugin:relay@1.0.0")),
        "the execution in flight finished on the version it started with"
    );
    assert_eq!(
        service.relay_version(&second).await,
        (json!("2.0.0"), json!("plugin:relay@2.0.0"))
    );
    assert_eq!(
        service.relay_version(&pinned).await,
        (json!("1.0.0"), json!("plugin:relay@1.0.0"))
    );

    // A broken file is reported and changes nothing else.
    std::fs::write(folder.join("broken.wasm"), b"not a component").unwrap();
    let now = service
        .plugins_when("broken.wasm reported", |p| {
            p["failed"].as_array().is_some_and(|f| !f.is_empty())
        })
        .await;
    let failed = now["failed"][0].as_str().unwrap();
    assert!(
        failed.contains("broken.wasm") && failed.contains("not a WebAssembly file"),
        "{failed}"
    );
    assert_eq!(versions(&now), ["relay@1.0.0", "relay@2.0.0"]);
    assert_eq!(service.next_in_latest_runs().await, "2.0.0");

    // Once no running flow pins 1.0.0, it goes; removing the file a flow uses keeps it.
    assert_eq!(
        service.set_status("pinned", "canceled").await.status,
        StatusCode::OK
    );
    service
        .plugins_when("relay 1.0.0 unloaded", |p| versions(p) == ["relay@2.0.0"])
        .await;
    std::fs::remove_file(folder.join("relay.wasm")).unwrap();
    let now = service
        .plugins_when("relay 2.0.0 kept for `latest`", |p| {
            p["plugins"][0]["kept_for"] == json!(["latest"])
        })
        .await;
    assert_eq!(versions(&now), ["relay@2.0.0"]);
    assert_eq!(service.next_in_latest_runs().await, "2.0.0");
    service.stop().await;
}

/// Two nodes on one store, one lacking a plugin that a flow deployed through the other
/// needs: it says it is not ready (and why) until the plugin is copied into its folder, then
/// builds the flow and runs its participants.
#[tokio::test]
async fn a_node_without_a_plugin_a_deployed_flow_needs_is_not_ready_until_it_has_it() {
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().join("plugins");
    let other_folder = dir.path().join("other-plugins");
    for f in [&folder, &other_folder] {
        std::fs::create_dir_all(f).unwrap();
    }
    install(&folder, components::RELAY_V1, "relay.wasm");
    let upstream = TestServer::start_replying(|_| Reply::json(200, "{}")).await;
    let grant = |c: &mut OperatorConfig| {
        c.outbound.allow_private = vec!["127.0.0.1".into()];
        c.plugins.entry("relay".into()).or_default().allow_hosts = vec!["127.0.0.1".into()];
        c.server.plugin_rescan_ms = 100;
    };
    let node = Service::start(dir.path(), grant).await;
    let other = Service::start(dir.path(), |c| {
        grant(c);
        c.plugins_dir = other_folder.clone();
    })
    .await;
    let ready = other.get("/readyz").await;
    assert_eq!(ready.status, StatusCode::OK, "{}", ready.body);

    let deployed = node
        .post("/v1/flows", &relay_flow("latest", None, &upstream.url()))
        .await;
    assert_eq!(deployed.status, StatusCode::CREATED, "{}", deployed.body);
    let ready = other
        .when("/readyz", "the other node sees the flow", |a| {
            a.status == StatusCode::SERVICE_UNAVAILABLE
        })
        .await;
    let unbuilt = &ready.body["unbuilt_flows"];
    assert_eq!(unbuilt.as_array().unwrap().len(), 1, "{}", ready.body);
    assert_eq!(unbuilt[0]["flow"], "latest");
    assert_eq!(unbuilt[0]["version"], 1);
    let reason = unbuilt[0]["reason"].as_str().unwrap();
    assert!(reason.contains("\"relay\" is not loaded"), "{reason}");
    let problem = ready.body["problem"].as_str().unwrap();
    assert!(
        problem.contains("\"latest\"") && problem.contains("give this node the plugins"),
        "{problem}"
    );
    assert_eq!(node.get("/readyz").await.status, StatusCode::OK);

    // The node that has the plugin runs the participants meanwhile.
    let first = node.add_one("latest").await;
    assert_eq!(node.relay_version(&first).await.0, "1.0.0");

    install(&other_folder, components::RELAY_V1, "relay.wasm");
    let ready = other
        .when("/readyz", "the other node builds the flow", |a| {
            a.status == StatusCode::OK
        })
        .await;
    assert_eq!(ready.body["unbuilt_flows"], json!([]));
    let second = other.add_one("latest").await;
    assert_eq!(other.relay_version(&second).await.0, "1.0.0");
    other.stop().await;
    node.stop().await;
}
