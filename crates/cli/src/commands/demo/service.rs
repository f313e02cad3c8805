//! The support desk, run as an operator runs it: `flowhost serve` started as its own
//! process, driven over its HTTP API. Customers write in through the WhatsApp webhook, a
//! scripted chatbot answers, whoever asks gets an agent, and everything the bot and the
//! agent write is delivered to a local emulator of a WhatsApp gateway. Then SIGTERM.

use crate::output::print_analytics;
use anyhow::{Context, bail, ensure};
use bytes::Bytes;
use flowhost::answers::{Answers, Chatbot};
use flowhost::config::OperatorConfig;
use flowhost::demo::ShopApi;
use flowhost::engine::ElementAnalytics;
use flowhost::person::{AttributeType, People};
use flowhost::runtime::open_store;
use flowhost::testing::{Reply, TestServer};
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::{Value, json};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

const SENDER: &str = "447491163443";
const API_KEY: &str = "demo-operator-key";
const WEBHOOK_SECRET: &str = "demo-whatsapp-secret";
/// The customer left waiting for an agent.
const WAITING_CUSTOMER: &str = "+447700900789";

/// The service's HTTP API, with the operator's key.
struct Api {
    base: String,
    client: Client<HttpConnector, Full<Bytes>>,
}

impl Api {
    async fn call(&self, method: Method, path: &str, bearer: &str, body: &Value) -> (u16, Value) {
        let request = Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base))
            .header("authorization", format!("Bearer {bearer}"))
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body.to_string())))
            .expect("a well-formed request");
        let result = async {
            let response = self.client.request(request).await?;
            let status = response.status().as_u16();
            let bytes = response.into_body().collect().await?.to_bytes();
            anyhow::Ok((
                status,
                serde_json::from_slice(&bytes).unwrap_or(Value::Null),
            ))
        };
        result
            .await
            .unwrap_or_else(|e| (0, json!({ "detail": e.to_string() })))
    }

    async fn post(&self, path: &str, body: &Value) -> anyhow::Result<Value> {
        let (status, answer) = self.call(Method::POST, path, API_KEY, body).await;
        ensure!(
            (200..300).contains(&status),
            "POST {path}: {status} {answer}"
        );
        Ok(answer)
    }

    async fn get(&self, path: &str) -> anyhow::Result<Value> {
        let (status, answer) = self.call(Method::GET, path, API_KEY, &Value::Null).await;
        ensure!(
            (200..300).contains(&status),
            "GET {path}: {status} {answer}"
        );
        Ok(answer)
    }

    /// A customer's message through the channel webhook, proven with the channel's secret.
    async fn customer_says(&self, from: &str, text: &str, id: &str) -> anyhow::Result<Value> {
        let body = json!({"from": from, "to": SENDER, "text": text, "message_id": id});
        let path = "/v1/channels/whatsapp/messages";
        let (status, answer) = self.call(Method::POST, path, WEBHOOK_SECRET, &body).await;
        ensure!(status == 200, "POST {path}: {status} {answer}");
        Ok(answer)
    }

    /// The message log with a customer, once nothing in it waits to be sent.
    async fn delivered(&self, contact: &str) -> anyhow::Result<Vec<Value>> {
        let path = format!("/v1/messages?channel=whatsapp&contact={contact}");
        for _ in 0..200 {
            let log = self.get(&path).await?["messages"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            if log.iter().all(|m| m["sending"]["state"] != "pending") {
                return Ok(log);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        bail!("messages to {contact} are still pending after 10 s")
    }
}

/// `flowhost serve` in its own process, stopped with SIGTERM when dropped.
struct Service(Child);

impl Service {
    /// Starts the binary this demo runs from with `config`, and waits for its address.
    fn start(config: &Path) -> anyhow::Result<(Service, String)> {
        let mut child = Command::new(std::env::current_exe()?)
            .arg("--config")
            .arg(config)
            .args(["serve", "--listen", "127.0.0.1:0"])
            .env("FLOWHOST_DEMO_API_KEY", API_KEY)
            .env("FLOWHOST_DEMO_WHATSAPP_SECRET", WEBHOOK_SECRET)
            .stderr(Stdio::piped())
            .spawn()
            .context("starting flowhost serve")?;
        let stderr = child.stderr.take().expect("piped");
        let mut lines = BufReader::new(stderr).lines();
        let service = Service(child);
        for line in lines.by_ref() {
            let line = line?;
            if let Some(rest) = line.split("serving on http://").nth(1) {
                let addr = rest.split(';').next().unwrap_or_default().to_owned();
                // The rest of its log goes on to the demo's own stderr.
                std::thread::spawn(move || {
                    for line in lines.map_while(Result::ok) {
                        if !line.contains(" INFO ") {
                            eprintln!("  [serve] {line}");
                        }
                    }
                });
                return Ok((service, addr));
            }
            eprintln!("  [serve] {line}");
        }
        bail!("flowhost serve stopped before it listened")
    }

    /// SIGTERM, as a service manager stops it; its exit status.
    fn stop(mut self) -> anyhow::Result<std::process::ExitStatus> {
        let pid = self.0.id().to_string();
        // std has no way to send SIGTERM; `kill` is on every Unix.
        let sent = Command::new("kill").args(["-TERM", &pid]).status()?;
        ensure!(sent.success(), "kill -TERM {pid} failed");
        let status = self.0.wait()?;
        std::mem::forget(self);
        Ok(status)
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Runs the support desk through `flowhost serve`, keeping its state in `state_dir`, and
/// order updates beside it (their plugin and Call API reach `shop`). With `hold`, the
/// service stays up with its console until Enter.
pub async fn support_desk(
    config: &OperatorConfig,
    state_dir: &Path,
    shop: &ShopApi,
    hold: bool,
) -> anyhow::Result<()> {
    // The WhatsApp gateway: takes each outgoing message and gives it an id; while the
    // service is held open, it says what it took (an agent's reply from the console).
    let taken = Arc::new(AtomicUsize::new(0));
    let echo = Arc::new(AtomicBool::new(false));
    let (counter, echoing) = (taken.clone(), echo.clone());
    let gateway = TestServer::start_replying(move |r| {
        let n = counter.fetch_add(1, Ordering::SeqCst) + 1;
        if echoing.load(Ordering::SeqCst) {
            let body: Value = serde_json::from_slice(&r.body).unwrap_or_default();
            println!(
                "  gateway took wamid.{n:04} to {}: {}",
                body["to"].as_str().unwrap_or_default(),
                body["text"].as_str().unwrap_or_default()
            );
        }
        Reply::json(202, &format!(r#"{{"id": "wamid.{n:04}"}}"#))
    })
    .await;

    // The chatbot and Answers are account settings, kept in the service's database.
    let database = state_dir.join("service.db");
    let store = open_store(&OperatorConfig {
        database: database.clone(),
        ..OperatorConfig::default()
    })
    .await?;
    Answers::set_enabled(store.as_ref(), true).await?;
    let bot: Chatbot = serde_json::from_str(include_str!(
        "../../../../../examples/chatbots/helper-bot.json"
    ))?;
    Answers::save_chatbot(store.as_ref(), &bot).await?;
    // The custom attribute order updates branch on, as `flowhost people define` does it.
    People::new(store.as_ref())
        .define_attribute("tier", AttributeType::Text)
        .await?;
    drop(store);

    let toml_path = |p: &Path| -> anyhow::Result<String> {
        let p = std::path::absolute(p)?;
        Ok(serde_json::to_string(&p.display().to_string())?)
    };
    let file = state_dir.join("flowhost.toml");
    std::fs::write(
        &file,
        format!(
            r#"plugins_dir = {plugins}
database = {database}
cache_dir = {cache}

[outbound]
allow_private = ["127.0.0.1"]

[call_api]
secrets = {{ shop_token = {token:?} }}

[plugins.order-status]
allow_hosts = [{shop_host:?}]
settings = {{ base_url = {shop_url:?} }}
secrets = {{ api_token = {token:?} }}

[server]
api_keys = [{{ name = "demo", env = "FLOWHOST_DEMO_API_KEY" }}]
scheduler_every_ms = 100

[server.channels.whatsapp]
secret = {{ env = "FLOWHOST_DEMO_WHATSAPP_SECRET" }}

[server.channels.whatsapp.deliver]
url = "{gateway}/whatsapp/send"
headers = {{ Authorization = "Bearer demo-gateway-token" }}
"#,
            plugins = toml_path(&config.plugins_dir)?,
            database = toml_path(&database)?,
            cache = toml_path(&config.cache_dir)?,
            gateway = gateway.url(),
            token = flowhost::demo::DEMO_TOKEN,
            shop_host = shop.addr.to_string(),
            shop_url = shop.url(),
        ),
    )?;
    let (service, addr) = Service::start(&file)?;
    println!("\nsupport desk, as a service: flowhost serve on http://{addr}");
    println!("  web console: http://{addr}/console/ (API key: {API_KEY})");
    let api = Api {
        base: format!("http://{addr}"),
        client: Client::builder(TokioExecutor::new()).build_http(),
    };
    for (text, name) in [
        (
            include_str!("../../../../../examples/feedback.json"),
            "feedback",
        ),
        (
            include_str!("../../../../../examples/support-desk.json"),
            "support-desk",
        ),
    ] {
        let flow: Value = serde_json::from_str(text)?;
        let deployed = api.post("/v1/flows", &flow).await?;
        println!(
            "  POST /v1/flows ({name}) -> version {}",
            deployed["version"]
        );
    }

    // Order updates, added through the API this time: a plugin and a Call API per person,
    // each a profile in People first.
    let order_updates: Value =
        serde_json::from_str(include_str!("../../../../../examples/order-updates.json"))?;
    api.post("/v1/flows", &order_updates).await?;
    let mut people = Vec::new();
    for (name, order, tier) in [
        ("grace", "1001", "gold"),
        ("alan", "1002", "silver"),
        ("ada", "1003", "silver"),
        ("linus", "9999", "silver"),
    ] {
        let person = api
            .post(
                "/v1/people",
                &json!({"emails": [format!("{name}@example.com")],
                        "attributes": {"firstName": name, "tier": tier}}),
            )
            .await?;
        people.push(json!({
            "person_id": person["id"],
            "variables": {"order_id": order, "shop_url": shop.url()},
        }));
    }
    let added = api
        .post(
            "/v1/flows/order-updates/participants",
            &json!({ "participants": people }),
        )
        .await?;
    println!(
        "  POST /v1/flows/order-updates/participants -> {} participants",
        added["participants"].as_array().map_or(0, Vec::len)
    );

    let chats = [
        (
            "+447700900123",
            &["help", "What are your opening hours?", "hours", "bye"][..],
        ),
        (
            "+447700900456",
            &["help", "My parcel arrived broken", "agent please"][..],
        ),
    ];
    let mut n = 0;
    for (from, messages) in chats {
        for text in messages {
            n += 1;
            let answer = api.customer_says(from, text, &format!("wa-in-{n}")).await?;
            println!("  webhook: {from} > {text:<30} -> {}", answer["delivery"]);
        }
    }

    // The agent desk: take the open conversation, answer, close. The chatbot hands the
    // customer who asked for an agent over after its webhook has answered, so the
    // conversation opens a moment later: wait for it (a few seconds at most).
    let mut tries = 0;
    let open = loop {
        let open = api.get("/v1/conversations?tag=support&status=open").await?;
        tries += 1;
        if tries == 100
            || open["conversations"]
                .as_array()
                .is_some_and(|c| !c.is_empty())
        {
            break open;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    for c in open["conversations"]
        .as_array()
        .cloned()
        .unwrap_or_default()
    {
        let path = format!("/v1/conversations/{}", c["id"].as_str().unwrap_or_default());
        api.post(&format!("{path}/assign"), &json!({"agent": "maria"}))
            .await?;
        api.post(
            &format!("{path}/replies"),
            &json!({"text": "Maria here, sorry about that. A new one is on its way."}),
        )
        .await?;
        api.post(&format!("{path}/close"), &json!({})).await?;
        println!(
            "  agent maria took conversation {} with {}, answered and closed it",
            c["id"], c["contact"]
        );
    }

    for (from, _) in chats {
        println!("  message log with {from}:");
        for m in api.delivered(&from.replace('+', "%2B")).await? {
            let sending = &m["sending"];
            let state = match sending["state"].as_str() {
                None => String::new(),
                Some(state) => format!(
                    "  [{state}{}]",
                    sending["providerId"]
                        .as_str()
                        .map(|id| format!(" as {id}"))
                        .unwrap_or_default()
                ),
            };
            println!(
                "    {:>6}: {}{state}",
                m["author"].as_str().unwrap_or_default(),
                m["text"].as_str().unwrap_or_default().replace('\n', " / ")
            );
        }
    }
    // One more customer asks for an agent, and that conversation is left open for the
    // console's agent desk.
    for (text, id) in [("help", "wa-in-90"), ("agent", "wa-in-91")] {
        api.customer_says(WAITING_CUSTOMER, text, id).await?;
    }
    println!(
        "  {WAITING_CUSTOMER} asked for an agent: the conversation waits in the console's agent desk"
    );
    println!(
        "  the WhatsApp gateway at {} took {} message(s)",
        gateway.url(),
        taken.load(Ordering::SeqCst)
    );
    println!("\nanalytics of support-desk (GET /v1/flows/support-desk/analytics):");
    let analytics = api.get("/v1/flows/support-desk/analytics").await?;
    let elements: Vec<ElementAnalytics> = serde_json::from_value(analytics["elements"].clone())?;
    print_analytics(&elements);
    if hold {
        echo.store(true, Ordering::SeqCst);
        println!(
            "\nconsole: http://{addr}/console/ (API key: {API_KEY})\n\
             the service runs until you press Enter"
        );
        tokio::task::spawn_blocking(|| {
            let mut line = String::new();
            std::io::stdin().read_line(&mut line)
        })
        .await??;
    }
    let status = service.stop()?;
    ensure!(status.success(), "flowhost serve exited with {status}");
    println!("flowhost serve stopped on SIGTERM ({status})");
    Ok(())
}
