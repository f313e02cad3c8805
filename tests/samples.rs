//! The sample plugins against their local API emulators.

use flowhost::config::{OperatorConfig, PluginGrant, SecretSource};
use flowhost::demo::{DEMO_TOKEN, ShopApi};
use flowhost::person::Person;
use flowhost::plugin::{ExecFailure, Invocation, PluginHost};
use flowhost_tests::components as c;
use serde_json::json;
use std::collections::BTreeMap;
use std::path::Path;

async fn host(dir: &Path, shop: &ShopApi, token: &str) -> PluginHost {
    let mut config = OperatorConfig {
        cache_dir: dir.join("cache"),
        ..OperatorConfig::default()
    };
    config.outbound.allow_private.push("127.0.0.1".into());
    config.plugins.insert(
        "order-status".into(),
        PluginGrant {
            allow_hosts: vec![shop.addr.to_string()],
            settings: BTreeMap::from([("base_url".into(), shop.url())]),
            secrets: BTreeMap::from([("api_token".into(), SecretSource::Value(token.into()))]),
            ..PluginGrant::default()
        },
    );
    flowhost::runtime::plugin_host(&config).unwrap()
}

fn invocation() -> Invocation {
    Invocation {
        flow_id: "f".into(),
        element_id: "lookup".into(),
        participant_id: "p".into(),
        person: Person::default(),
        config: vec![("order_variable".into(), json!("order"))],
    }
}

#[tokio::test]
async fn order_status_takes_every_exit() {
    let dir = tempfile::tempdir().unwrap();
    let shop = ShopApi::start().await.unwrap();
    let host = host(dir.path(), &shop, DEMO_TOKEN).await;
    let plugin = host.load_file(Path::new(c::ORDER_STATUS)).await.unwrap();
    assert!(plugin.missing_secrets.is_empty());
    for (order, exit, status) in [
        ("1001", "shipped", Some("shipped")),
        ("1002", "processing", Some("processing")),
        ("1003", "delivered", Some("delivered")),
        ("4040", "not-found", None),
    ] {
        let vars = BTreeMap::from([("order".to_owned(), json!(order))]);
        let run = host.execute(&plugin, &invocation(), vars).await;
        let (taken, _) = run.result.unwrap();
        assert_eq!(taken, exit, "order {order}");
        assert_eq!(
            run.variables.get("order_status").and_then(|v| v.as_str()),
            status
        );
    }
    let vars = BTreeMap::from([("order".to_owned(), json!("1001"))]);
    let run = host.execute(&plugin, &invocation(), vars).await;
    assert_eq!(run.variables["order_eta"], json!("2026-12-01"));
}

#[tokio::test]
async fn order_status_fails_clearly_and_never_leaks_the_token() {
    let dir = tempfile::tempdir().unwrap();
    let shop = ShopApi::start().await.unwrap();
    let host = host(dir.path(), &shop, "wrong-token-123").await;
    let plugin = host.load_file(Path::new(c::ORDER_STATUS)).await.unwrap();
    let vars = BTreeMap::from([("order".to_owned(), json!("1001"))]);
    let run = host.execute(&plugin, &invocation(), vars).await;
    let err = run.result.unwrap_err();
    assert_eq!(
        err,
        ExecFailure::Element("shop API answered 401 for order 1001".into())
    );
    assert!(!format!("{err} {:?}", run.logs).contains("wrong-token-123"));

    let run = host.execute(&plugin, &invocation(), BTreeMap::new()).await;
    assert_eq!(
        run.result.unwrap_err(),
        ExecFailure::Element("flow variable `order` holding the order id is not set".into())
    );

    // Without the operator's secret, the plugin says which one is missing.
    let other = tempfile::tempdir().unwrap();
    let bare = flowhost::runtime::plugin_host(&OperatorConfig {
        cache_dir: other.path().join("cache"),
        ..OperatorConfig::default()
    })
    .unwrap();
    let plugin = bare.load_file(Path::new(c::ORDER_STATUS)).await.unwrap();
    assert_eq!(plugin.missing_secrets, ["api_token"]);
}
