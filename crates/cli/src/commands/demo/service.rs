//! The support desk, run as an operator runs it: `flowhost serve` started as its own
//! process, driven over its HTTP API. Customers write in through the WhatsApp webhook, a
//! scripted chatbot answers, whoever asks gets an agent, and everything the bot and the
//! agent write is delivered to a local emulator of a WhatsApp gateway. Then SIGTERM.

use crate::output::print_analytics;
use anyhow::{Context, bail, ensure};
use bytes::Bytes;
use flowhost::answers::{Answers, Chatbot};
use flowhost::config::OperatorConfig;
use flowhost::engine::ElementAnalytics;
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
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

const SENDER: &str = "447491163443";
const API_KEY: &str = "demo-operator-key";
const WEBHOOK_SECRET: &str = "demo-whatsapp-secret";

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

/// Runs the support desk through `flowhost serve`, keeping its state in `state_dir`.
pub async fn support_desk(config: &OperatorConfig, state_dir: &Path) -> anyhow::Result<()> {
    // The WhatsApp gateway: takes each outgoing message and gives it an id.
    let taken = Arc::new(AtomicUsize::new(0));
    let counter = taken.clone();
    let gateway = TestServer::start_replying(move |_| {
        let n = counter.fetch_add(1, Ordering::SeqCst) + 1;
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
        ),
    )?;
    let (service, addr) = Service::start(&file)?;
    println!("\nsupport desk, as a service: flowhost serve on http://{addr}");
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

    // The agent desk: take the open conversation, answer, close.
    let open = api.get("/v1/conversations?tag=support&status=open").await?;
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
    println!(
        "  the WhatsApp gateway at {} took {} message(s)",
        gateway.url(),
        taken.load(Ordering::SeqCst)
    );
    println!("\nanalytics of support-desk (GET /v1/flows/support-desk/analytics):");
    let analytics = api.get("/v1/flows/support-desk/analytics").await?;
    let elements: Vec<ElementAnalytics> = serde_json::from_value(analytics["elements"].clone())?;
    print_analytics(&elements);
    let status = service.stop()?;
    ensure!(status.success(), "flowhost serve exited with {status}");
    println!("flowhost serve stopped on SIGTERM ({status})");
    Ok(())
}
