//! The service over real HTTP on 127.0.0.1, with its baselines measured in the same run.
//!
//! Run with `./dev bench` (or `cargo bench -p flowhost-server --bench service`); it prints a
//! table, and the figures with the machine go in docs/BENCHMARKS.md.
//!
//! 1. **Flow API, 1000 participants per call** (`POST /v1/flows/{id}/participants`, inline
//!    people, into a flow whose participants wait a day): calls one after another, each
//!    answered once its 1000 participants are committed, while the ones added before run
//!    their first step in the background. Baselines: the same 1000 through `Engine::admit`
//!    (no HTTP, no JSON), and 1000 plain `INSERT`s of participant-sized rows in one SQLite
//!    transaction on a file with the store's pragmas.
//! 2. **Webhook to delivered chatbot reply, 50 conversations at once**: each conversation
//!    posts a customer's message to the WhatsApp webhook and waits until the bot's answer
//!    reaches a local gateway (through the channel's connector), then sends the next; the
//!    latency is from sending the webhook to the gateway receiving the reply. Baseline: a
//!    `GET /livez` round trip with the same 50 clients.
//! 3. **What the console reads, with 100,000 participants stored**: 100 calls of 1000 put
//!    100,000 participants into a waiting flow beside a flow of 100 elements; then each read
//!    the console's pages make (flows with counts by status, analytics, a definition, a
//!    person's participants, a journey) is timed, one at a time. Baseline: `GET /livez`.

use bytes::Bytes;
use flowhost::answers::{Answers, Chatbot};
use flowhost::config::{ApiKeyConfig, ChannelConfig, DeliverConfig, OperatorConfig};
use flowhost::person::Person;
use flowhost::runtime::{Runtime, open_store};
use flowhost::secrets::SecretSource;
use flowhost::testing::{Reply, TestServer};
use flowhost_server::{Server, hash_key};
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

const KEY: &str = "bench-key";
const SECRET: &str = "bench-whatsapp-secret";
const SENDER: &str = "447491163443";
const PER_CALL: usize = 1000;
const CALLS: usize = 10;
const CONVERSATIONS: usize = 50;
const TURNS: usize = 20;

type Http = Client<HttpConnector, Full<Bytes>>;

async fn call(http: &Http, method: Method, url: &str, bearer: &str, body: String) -> (u16, Value) {
    let request = Request::builder()
        .method(method)
        .uri(url)
        .header("authorization", format!("Bearer {bearer}"))
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body)))
        .unwrap();
    let response = http.request(request).await.unwrap();
    let status = response.status().as_u16();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

fn config(dir: &Path) -> OperatorConfig {
    let mut config = OperatorConfig {
        database: dir.join("state.db"),
        plugins_dir: dir.join("plugins"),
        cache_dir: dir.join("cache"),
        ..OperatorConfig::default()
    };
    config.server.api_keys = vec![ApiKeyConfig {
        name: "bench".into(),
        sha256: Some(hash_key(KEY)),
        env: None,
    }];
    config.server.participant_calls_per_second = 10_000;
    config.server.scheduler_every_ms = 50;
    config.outbound.allow_private = vec!["127.0.0.1".into()];
    config
}

/// A service on a free port; its base URL and the stop signal.
async fn serve(config: &OperatorConfig) -> (String, tokio::sync::oneshot::Sender<()>) {
    let runtime = Runtime::start(config.clone()).await.unwrap();
    runtime.load_saved_flows().await.unwrap();
    let server = Server::new(runtime, &config.server).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel();
    tokio::spawn(server.run(listener, async {
        let _ = stopped.await;
    }));
    (base, stop)
}

fn waiting_flow() -> Value {
    json!({
        "id": "later", "name": "Later",
        "entry_points": [{"type": "api", "start": "wait"}],
        "elements": [
            {"id": "wait", "type": "wait", "config": {"duration": "1d"}, "exits": {"next": "done"}},
            {"id": "done", "type": "exit"}
        ]
    })
}

fn batch(call: usize) -> Value {
    let people: Vec<Value> = (0..PER_CALL)
        .map(|i| {
            json!({"person": {"emails": [format!("p{call}-{i}@example.com")]},
                        "variables": {"n": i}})
        })
        .collect();
    json!({ "participants": people })
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

async fn flow_api(http: &Http) {
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path());
    let (base, stop) = serve(&config).await;
    let (status, _) = call(
        http,
        Method::POST,
        &format!("{base}/v1/flows"),
        KEY,
        waiting_flow().to_string(),
    )
    .await;
    assert_eq!(status, 201);
    let url = format!("{base}/v1/flows/later/participants");
    let mut calls = Vec::new();
    for n in 0..CALLS + 2 {
        let body = batch(n).to_string();
        let started = Instant::now();
        let (status, answer) = call(http, Method::POST, &url, KEY, body).await;
        let took = started.elapsed();
        assert_eq!(status, 202, "{answer}");
        if n >= 2 {
            calls.push(took);
        }
    }
    let _ = stop.send(());

    // Baseline 1: the engine's admission alone, same flow, same people.
    let dir = tempfile::tempdir().unwrap();
    let runtime = Runtime::start(config_in_place(dir.path())).await.unwrap();
    let engine = runtime.engine();
    engine
        .deploy(serde_json::from_value(waiting_flow()).unwrap(), "bench")
        .await
        .unwrap();
    let mut admits = Vec::new();
    for n in 0..CALLS + 2 {
        let entrants: Vec<(Person, BTreeMap<String, Value>)> = (0..PER_CALL)
            .map(|i| {
                (
                    Person {
                        emails: vec![format!("p{n}-{i}@example.com")],
                        ..Person::default()
                    },
                    BTreeMap::from([("n".to_owned(), json!(i))]),
                )
            })
            .collect();
        let started = Instant::now();
        engine.admit("later", entrants, None).await.unwrap();
        if n >= 2 {
            admits.push(started.elapsed());
        }
    }

    // Baseline 2: plain SQLite, 1000 rows of a participant's size in one transaction.
    let dir = tempfile::tempdir().unwrap();
    let conn = rusqlite::Connection::open(dir.path().join("raw.db")).unwrap();
    conn.pragma_update(None, "journal_mode", "WAL").unwrap();
    conn.pragma_update(None, "synchronous", "NORMAL").unwrap();
    conn.execute_batch(
        "CREATE TABLE p (id TEXT PRIMARY KEY, flow_id TEXT, person TEXT, variables TEXT,
             current TEXT, status TEXT, steps INTEGER)",
    )
    .unwrap();
    let mut raw = Vec::new();
    for n in 0..CALLS + 2 {
        let started = Instant::now();
        let tx = conn.unchecked_transaction().unwrap();
        {
            let mut stmt = tx
                .prepare_cached("INSERT INTO p VALUES (?1, 'later', ?2, ?3, 'wait', 'queued', 0)")
                .unwrap();
            for i in 0..PER_CALL {
                stmt.execute(rusqlite::params![
                    format!("p-{n}-{i}-{}", uuid_like(n, i)),
                    format!(r#"{{"id":"","emails":["p{n}-{i}@example.com"]}}"#),
                    format!(r#"{{"n":{i}}}"#),
                ])
                .unwrap();
            }
        }
        tx.commit().unwrap();
        if n >= 2 {
            raw.push(started.elapsed());
        }
    }
    println!("\n1. Flow API, {PER_CALL} participants per call, median of {CALLS} calls");
    println!("{:<44} {:>12} {:>16}", "", "per call", "participants/s");
    for (name, times) in [
        ("POST /v1/flows/{id}/participants", calls),
        ("baseline: Engine::admit (no HTTP)", admits),
        ("baseline: raw SQLite, 1000 INSERTs + COMMIT", raw),
    ] {
        let m = median(times);
        println!(
            "{name:<44} {:>9.1} ms {:>16.0}",
            ms(m),
            PER_CALL as f64 / m.as_secs_f64()
        );
    }
}

fn config_in_place(dir: &Path) -> OperatorConfig {
    OperatorConfig {
        database: dir.join("state.db"),
        plugins_dir: dir.join("plugins"),
        cache_dir: dir.join("cache"),
        ..OperatorConfig::default()
    }
}

/// A key as random-looking as a UUID, so rows land where the store's do.
fn uuid_like(n: usize, i: usize) -> u64 {
    let mut x = (n as u64) << 32 | i as u64;
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51afd7ed558ccd);
    x ^ (x >> 33)
}

async fn chatbot_replies(http: &Http) {
    // The gateway hands each reply's arrival to the conversation waiting for it.
    let waiting: Arc<Mutex<HashMap<String, mpsc::UnboundedSender<Instant>>>> = Arc::default();
    let routes = waiting.clone();
    let gateway = TestServer::start_replying(move |r| {
        let arrived = Instant::now();
        let body: Value = serde_json::from_slice(&r.body).unwrap_or_default();
        let to = body["to"].as_str().unwrap_or_default().to_owned();
        if let Some(tx) = routes.lock().unwrap().get(&to) {
            let _ = tx.send(arrived);
        }
        Reply::json(200, "{}")
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let mut config = config(dir.path());
    config.server.channels.insert(
        "whatsapp".into(),
        ChannelConfig {
            secret: Some(SecretSource::Value(SECRET.into())),
            deliver: Some(DeliverConfig {
                url: gateway.url(),
                headers: BTreeMap::new(),
                timeout_ms: 5_000,
                max_attempts: 3,
                backoff_ms: 100,
                max_backoff_ms: 1_000,
            }),
        },
    );
    let store = open_store(&config).await.unwrap();
    Answers::set_enabled(store.as_ref(), true).await.unwrap();
    let bot: Chatbot =
        serde_json::from_str(include_str!("../../../examples/chatbots/helper-bot.json")).unwrap();
    Answers::save_chatbot(store.as_ref(), &bot).await.unwrap();
    drop(store);
    let (base, stop) = serve(&config).await;
    for flow in [
        include_str!("../../../examples/feedback.json"),
        include_str!("../../../examples/support-desk.json"),
    ] {
        let (status, answer) = call(
            http,
            Method::POST,
            &format!("{base}/v1/flows"),
            KEY,
            flow.to_owned(),
        )
        .await;
        assert_eq!(status, 201, "{answer}");
    }
    let hook = format!("{base}/v1/channels/whatsapp/messages");
    let mut tasks = tokio::task::JoinSet::new();
    for c in 0..CONVERSATIONS {
        let phone = format!("4477009{c:05}");
        let (tx, mut rx) = mpsc::unbounded_channel();
        waiting.lock().unwrap().insert(phone.clone(), tx);
        let (http, hook) = (http.clone(), hook.clone());
        tasks.spawn(async move {
            let mut n = 0;
            let mut say = async |text: &str| {
                n += 1;
                let body = json!({"from": format!("+{phone}"), "to": SENDER, "text": text,
                                  "message_id": format!("{phone}-{n}")});
                let (status, answer) =
                    call(&http, Method::POST, &hook, SECRET, body.to_string()).await;
                assert_eq!(status, 200, "{answer}");
            };
            // "help" starts the flow; the next message starts the bot (greeting + answer).
            say("help").await;
            say("hours").await;
            for _ in 0..2 {
                rx.recv().await.unwrap();
            }
            let mut latencies = Vec::new();
            for _ in 0..TURNS {
                let sent = Instant::now();
                say("hours").await;
                let answered = sent.elapsed();
                let arrived = rx.recv().await.unwrap();
                latencies.push((arrived - sent, answered));
            }
            latencies
        });
    }
    let turns: Vec<(Duration, Duration)> = tasks.join_all().await.into_iter().flatten().collect();
    let mut latencies: Vec<Duration> = turns.iter().map(|t| t.0).collect();
    let mut answered: Vec<Duration> = turns.iter().map(|t| t.1).collect();
    latencies.sort();
    answered.sort();

    // Baseline: a round trip to the same service, with the same 50 clients.
    let livez = format!("{base}/livez");
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..CONVERSATIONS {
        let (http, livez) = (http.clone(), livez.clone());
        tasks.spawn(async move {
            let mut times = Vec::new();
            for _ in 0..TURNS {
                let started = Instant::now();
                let (status, _) = call(&http, Method::GET, &livez, "", String::new()).await;
                assert_eq!(status, 200);
                times.push(started.elapsed());
            }
            times
        });
    }
    let mut round_trips: Vec<Duration> = tasks.join_all().await.into_iter().flatten().collect();
    round_trips.sort();
    let _ = stop.send(());

    println!(
        "\n2. Webhook to delivered chatbot reply, {CONVERSATIONS} conversations at once, {} turns",
        latencies.len()
    );
    println!("{:<44} {:>9} {:>9} {:>9}", "", "p50", "p99", "max");
    for (name, sorted) in [
        ("webhook -> reply at the gateway", &latencies),
        ("  of which: webhook answered (routed)", &answered),
        ("baseline: GET /livez round trip", &round_trips),
    ] {
        println!(
            "{name:<44} {:>6.2} ms {:>6.2} ms {:>6.2} ms",
            ms(percentile(sorted, 0.50)),
            ms(percentile(sorted, 0.99)),
            ms(*sorted.last().unwrap())
        );
    }
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let http: Http = Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(64)
        .build_http();
    rt.block_on(async {
        flow_api(&http).await;
        chatbot_replies(&http).await;
        console_reads(&http).await;
    });
}

/// A flow of `n` elements: set-variable steps in a row, every tenth a branch.
fn long_flow(n: usize) -> Value {
    let elements: Vec<Value> = (0..n)
        .map(|i| {
            let next = |k: usize| format!("e{}", (i + k).min(n - 1));
            if i == n - 1 {
                json!({"id": format!("e{i}"), "type": "exit"})
            } else if i % 10 == 5 {
                json!({"id": format!("e{i}"), "type": "branch",
                       "config": {"conditions": [{"exit": "big",
                           "all": [{"variable": "n", "op": "greater_than", "value": 500}]}]},
                       "exits": {"big": next(1), "otherwise": next(2)}})
            } else {
                json!({"id": format!("e{i}"), "type": "set-variable",
                       "config": {"set": {format!("v{i}"): i}}, "exits": {"next": next(1)}})
            }
        })
        .collect();
    json!({"id": "hundred", "name": "A hundred elements",
           "entry_points": [{"type": "api", "start": "e0"}], "elements": elements})
}

async fn console_reads(http: &Http) {
    const STORED: usize = 100_000;
    const READS: usize = 30;
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path());
    let (base, stop) = serve(&config).await;
    for flow in [waiting_flow(), long_flow(100)] {
        let (status, answer) = call(
            http,
            Method::POST,
            &format!("{base}/v1/flows"),
            KEY,
            flow.to_string(),
        )
        .await;
        assert_eq!(status, 201, "{answer}");
    }
    let started = Instant::now();
    let mut first = None;
    for n in 0..STORED / PER_CALL {
        let (status, answer) = call(
            http,
            Method::POST,
            &format!("{base}/v1/flows/later/participants"),
            KEY,
            batch(n).to_string(),
        )
        .await;
        assert_eq!(status, 202, "{answer}");
        first.get_or_insert(answer["participants"][0].as_str().unwrap().to_owned());
    }
    // Until all of them wait.
    loop {
        let (_, flows) = call(
            http,
            Method::GET,
            &format!("{base}/v1/flows"),
            KEY,
            String::new(),
        )
        .await;
        let later = flows["flows"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["id"] == "later")
            .cloned();
        if later.is_some_and(|f| f["participants"]["waiting"] == STORED) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let stored = started.elapsed();
    let first = first.unwrap();
    let (_, p) = call(
        http,
        Method::GET,
        &format!("{base}/v1/participants/{first}"),
        KEY,
        String::new(),
    )
    .await;
    let person = p["person"]["id"].as_str().unwrap().to_owned();
    let reads = [
        ("GET /livez (baseline)", "/livez".to_owned()),
        ("GET /v1/flows (counts by status)", "/v1/flows".to_owned()),
        (
            "GET /v1/flows/later/analytics",
            "/v1/flows/later/analytics".to_owned(),
        ),
        (
            "GET /v1/flows/hundred (100 elements)",
            "/v1/flows/hundred".to_owned(),
        ),
        (
            "GET /v1/flows/hundred/analytics",
            "/v1/flows/hundred/analytics".to_owned(),
        ),
        (
            "GET /v1/participants?person=",
            format!("/v1/participants?person={person}"),
        ),
        (
            "GET /v1/participants/{id}/journey",
            format!("/v1/participants/{first}/journey"),
        ),
    ];
    println!(
        "\n3. What the console reads, {STORED} participants stored (added and run in {:.1} s), median of {READS}",
        stored.as_secs_f64()
    );
    println!("{:<44} {:>10} {:>10}", "", "median", "p90");
    for (name, path) in reads {
        let mut times = Vec::new();
        for _ in 0..READS {
            let started = Instant::now();
            let (status, answer) = call(
                http,
                Method::GET,
                &format!("{base}{path}"),
                KEY,
                String::new(),
            )
            .await;
            times.push(started.elapsed());
            assert_eq!(status, 200, "{path}: {answer}");
        }
        times.sort();
        println!(
            "{name:<44} {:>7.2} ms {:>7.2} ms",
            ms(median(times.clone())),
            ms(percentile(&times, 0.9))
        );
    }
    let _ = stop.send(());
}
