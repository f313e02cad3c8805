//! `flowhost demo`, the README's first command: the sample flows, run against local
//! emulators of the APIs they call, on a database of its own; then the support desk run
//! through `flowhost serve` (`service`).

mod service;

use crate::output::print_participant;
use anyhow::{Context, bail};
use flowhost::clock::SystemClock;
use flowhost::config::{OperatorConfig, SecretSource};
use flowhost::flow::FlowDef;
use flowhost::outbound::HttpClient;
use flowhost::person::Person;
use flowhost::plugin::PluginHost;
use flowhost::runtime::{Runtime, open_store};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

/// Grants a sample plugin its emulator: host, `base_url` and one secret.
fn grant_emulator(
    config: &mut OperatorConfig,
    plugin: &str,
    addr: std::net::SocketAddr,
    base_url: &str,
    secret: (&str, &str),
) {
    let grant = config.plugins.entry(plugin.into()).or_default();
    grant.allow_hosts.push(addr.to_string());
    grant
        .settings
        .insert("base_url".into(), base_url.to_owned());
    grant
        .secrets
        .insert(secret.0.into(), SecretSource::Value(secret.1.into()));
}

/// `flowhost demo [--hold]`.
#[derive(clap::Args)]
pub struct Args {
    /// Keep `flowhost serve` and the emulators running at the end, with the web console open
    /// to look around, until Enter (or the end of input). The default when the input is a
    /// terminal.
    #[arg(long)]
    hold: bool,
}

/// The main job: the sample flows, run against local emulators of the APIs they call.
pub async fn run(args: Args, mut config: OperatorConfig) -> anyhow::Result<ExitCode> {
    use std::io::IsTerminal;
    let hold = args.hold || std::io::stdin().is_terminal();
    use flowhost::demo::{crm::CrmApi, genai::ChatApi, webinar::WebinarApi};
    let shop = flowhost::demo::ShopApi::start().await?;
    println!("shop API listening on {}", shop.url());
    let webinar = WebinarApi::start("demo-zoom-token").await;
    let chat = ChatApi::start("demo-openai-key").await;
    let crm = CrmApi::start("demo-hubspot-token").await;
    println!(
        "webinar API on {}, chat completions API on {}, CRM API on {}",
        webinar.url(),
        chat.url(),
        crm.url()
    );
    grant_emulator(
        &mut config,
        "webinar-registration",
        webinar.server.addr,
        &webinar.url(),
        ("api_token", "demo-zoom-token"),
    );
    grant_emulator(
        &mut config,
        "genai-content",
        chat.server.addr,
        &chat.url(),
        ("api_key", "demo-openai-key"),
    );
    config
        .plugins
        .entry("genai-content".into())
        .or_default()
        .settings
        .insert("model".into(), "gpt-4o-mini".into());
    grant_emulator(
        &mut config,
        "crm-sync",
        crm.server.addr,
        &crm.url(),
        ("access_token", "demo-hubspot-token"),
    );
    // The shop emulator is on loopback, which outbound requests may not reach by default.
    config.outbound.allow_private.push("127.0.0.1".into());
    let grant = config.plugins.entry("order-status".into()).or_default();
    grant.allow_hosts.push(shop.addr.to_string());
    grant.settings.insert("base_url".into(), shop.url());
    grant.secrets.insert(
        "api_token".into(),
        SecretSource::Value(flowhost::demo::DEMO_TOKEN.into()),
    );
    config.call_api.secrets.insert(
        "shop_token".into(),
        SecretSource::Value(flowhost::demo::DEMO_TOKEN.into()),
    );
    // The demo keeps its state apart from any real database.
    let state_dir = tempfile_dir()?;
    config.database = state_dir.join("demo.db");
    let started = std::time::Instant::now();
    let client = HttpClient::new(&config.outbound)?;
    let host = PluginHost::new(&config.plugin_host(), client.clone())?;
    let (registry, errors) = host.load_dir().await;
    for e in &errors {
        eprintln!("warning: {e}");
    }
    for id in [
        "order-status",
        "webinar-registration",
        "genai-content",
        "crm-sync",
    ] {
        if registry.get(id, None).is_none() {
            bail!(
                "plugin {id} is not in {}; build the sample plugins with `./dev plugins`",
                config.plugins_dir.display()
            );
        }
    }
    let plugin = registry.get("order-status", None).expect("checked above");
    println!(
        "loaded {} plugin(s) from {} in {:.0} ms (order-status: {})",
        registry.len(),
        config.plugins_dir.display(),
        started.elapsed().as_secs_f64() * 1000.0,
        plugin.cache
    );
    let store = open_store(&config).await?;
    let service_config = config.clone();
    let runtime = Runtime::assemble(
        config,
        client,
        host,
        registry,
        errors,
        store,
        Arc::new(SystemClock),
    )?;
    let engine = runtime.engine();
    let flow = FlowDef::parse(
        include_str!("../../../../examples/order-updates.json"),
        "examples/order-updates.json",
    )?;
    let flow_id = flow.id.clone();
    engine.deploy(flow, "examples/order-updates.json").await?;
    let people = [
        ("grace", "1001", "gold"),
        ("alan", "1002", "silver"),
        ("ada", "1003", "silver"),
        ("linus", "9999", "silver"),
    ];
    for (name, order, tier) in people {
        let person = demo_person(name, json!({"firstName": name, "tier": tier}));
        let vars = BTreeMap::from([
            ("order_id".to_owned(), json!(order)),
            ("shop_url".to_owned(), json!(shop.url())),
        ]);
        let p = engine.start(&flow_id, person, vars).await?;
        println!();
        print_participant(engine, &p, false).await?;
    }

    let campaign = FlowDef::parse(
        include_str!("../../../../examples/webinar-campaign.json"),
        "examples/webinar-campaign.json",
    )?;
    let campaign_id = campaign.id.clone();
    engine
        .deploy(campaign, "examples/webinar-campaign.json")
        .await?;
    // Grace twice: the second time she is already registered.
    for (id, first, last) in [
        ("grace", "Grace", "Hopper"),
        ("alan", "Alan", "Turing"),
        ("grace", "Grace", "Hopper"),
    ] {
        let person = demo_person(id, json!({"firstName": first, "lastName": last}));
        let p = engine.start(&campaign_id, person, BTreeMap::new()).await?;
        println!();
        print_participant(engine, &p, false).await?;
    }

    service::support_desk(&service_config, &state_dir, &shop, hold).await?;
    let _ = std::fs::remove_dir_all(&state_dir);
    Ok(ExitCode::SUCCESS)
}

/// A demo person with an `@example.com` address.
fn demo_person(id: &str, attributes: Value) -> Person {
    Person {
        id: id.into(),
        emails: vec![format!("{id}@example.com")],
        attributes: attributes.as_object().cloned().unwrap_or_default(),
        ..Person::default()
    }
}

fn tempfile_dir() -> anyhow::Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("flowhost-demo-{}", std::process::id()));
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    Ok(dir)
}
