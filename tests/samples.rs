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
        idempotency_key: None,
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

/// Every example flow checked as a newcomer would: `flowhost.example.toml` as shipped (the
/// variables its secrets name not set), the sample plugins loaded, flows deployed in
/// order. The flows that need no secret deploy; those that need one say which variable to
/// export, and nothing else.
#[tokio::test]
async fn every_example_flow_validates_against_the_example_config() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let dir = tempfile::tempdir().unwrap();
    let plugins = dir.path().join("plugins");
    std::fs::create_dir_all(&plugins).unwrap();
    for component in [
        c::ORDER_STATUS,
        c::WEBINAR_REGISTRATION,
        c::GENAI_CONTENT,
        c::CRM_SYNC,
    ] {
        let name = Path::new(component).file_name().unwrap();
        std::fs::copy(component, plugins.join(name)).unwrap();
    }
    let mut config = OperatorConfig::load(&root.join("flowhost.example.toml")).unwrap();
    config.plugins_dir = plugins;
    config.database = dir.path().join("flowhost.db");
    config.cache_dir = dir.path().join("cache");
    let runtime = flowhost::runtime::Runtime::start_for_checks(config)
        .await
        .unwrap();
    assert!(
        runtime.load_errors().is_empty(),
        "{:?}",
        runtime.load_errors()
    );
    let engine = runtime.engine();
    // The account as the support desk's instructions leave it: Answers on, the example
    // chatbot added (`flowhost answers enable`, `flowhost chatbots add`).
    let bot: flowhost::answers::Chatbot = serde_json::from_str(
        &std::fs::read_to_string(root.join("examples/chatbots/helper-bot.json")).unwrap(),
    )
    .unwrap();
    flowhost::answers::Answers::set_enabled(engine.store(), true)
        .await
        .unwrap();
    flowhost::answers::Answers::save_chatbot(engine.store(), &bot)
        .await
        .unwrap();
    // Targets of Add to Flow first.
    let mut flows: Vec<std::path::PathBuf> = std::fs::read_dir(root.join("examples"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    flows.sort_by_key(|p| !p.ends_with("feedback.json"));
    assert_eq!(flows.len(), 4, "{flows:?}");
    for path in flows {
        let name = path.file_name().unwrap().to_str().unwrap().to_owned();
        let def = flowhost::flow::FlowDef::load(&path).unwrap();
        let needs = match name.as_str() {
            "order-updates.json" => &["SHOP_API_TOKEN"][..],
            "webinar-campaign.json" => &["HUBSPOT_TOKEN", "ZOOM_TOKEN", "OPENAI_API_KEY"][..],
            _ => &[][..],
        };
        match engine.deploy(def, &name).await {
            Ok(_) => assert!(needs.is_empty(), "{name} needs {needs:?}"),
            Err(e) => {
                let issues: Vec<String> = match e {
                    flowhost::engine::EngineError::Invalid(
                        flowhost::flow::FlowError::Invalid { issues, .. },
                    ) => issues.iter().map(ToString::to_string).collect(),
                    other => panic!("{other}"),
                };
                for issue in &issues {
                    assert!(
                        needs.iter().any(|env| issue.contains(&format!(
                            "the environment variable {env}, which is not set; export it where flowhost runs"
                        ))),
                        "{issue}"
                    );
                }
                for env in needs {
                    assert!(issues.iter().any(|i| i.contains(env)), "{env}: {issues:?}");
                }
            }
        }
    }
}
