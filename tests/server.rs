//! The service's HTTP API, served by `flowhost_server::Server::run` on a real TCP listener on
//! 127.0.0.1 over a real SQLite file, called over HTTP: keys, flows, participants in
//! batches with idempotency keys, bad input, and draining on shutdown. The helpers are here;
//! the tests, one file per area, under `server/`.

mod delivery;
mod flows;
mod metrics;
mod notify;
mod openapi;
mod participants;
mod people;
mod plugins;
mod webhooks;

use bytes::Bytes;
use flowhost::config::{ApiKeyConfig, OperatorConfig};
use flowhost::runtime::Runtime;
use flowhost::testing::{Received, TestServer};
use flowhost_server::{Server, hash_key};
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::{Value, json};
use std::path::Path;
use std::time::Duration;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

const KEY: &str = "test-key-7f3a";

/// A service on a free port of 127.0.0.1, its store in `dir`.
struct Service {
    base: String,
    client: Client<HttpConnector, Full<Bytes>>,
    stop: Option<oneshot::Sender<()>>,
    running: JoinHandle<std::io::Result<()>>,
}

struct Answer {
    status: StatusCode,
    content_type: String,
    replayed: bool,
    retry_after: String,
    body: Value,
}

impl Service {
    async fn start(dir: &Path, change: impl FnOnce(&mut OperatorConfig)) -> Service {
        let mut config = config_in(dir);
        config.server.api_keys = vec![ApiKeyConfig {
            name: "tests".into(),
            sha256: Some(hash_key(KEY)),
            env: None,
        }];
        config.server.scheduler_every_ms = 50;
        change(&mut config);
        let runtime = Runtime::start(config.clone()).await.unwrap();
        runtime.load_saved_flows().await.unwrap();
        let server = Server::new(runtime, &config.server).unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let (stop, stopped) = oneshot::channel();
        let running = tokio::spawn(server.run(listener, async {
            let _ = stopped.await;
        }));
        Service {
            base,
            client: Client::builder(TokioExecutor::new()).build_http(),
            stop: Some(stop),
            running,
        }
    }

    /// A service with the greeting flow deployed.
    async fn with_greeting(dir: &Path, change: impl FnOnce(&mut OperatorConfig)) -> Service {
        let service = Service::start(dir, change).await;
        let deployed = service.post("/v1/flows", &greeting_flow("greeting")).await;
        assert_eq!(deployed.status, StatusCode::CREATED, "{}", deployed.body);
        service
    }

    async fn call(&self, method: Method, path: &str, key: Option<&str>, body: &str) -> Answer {
        self.call_with(method, path, key, body, &[]).await
    }

    async fn call_with(
        &self,
        method: Method,
        path: &str,
        key: Option<&str>,
        body: &str,
        headers: &[(&str, &str)],
    ) -> Answer {
        let mut req = Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base))
            .header("content-type", "application/json");
        if let Some(key) = key {
            req = req.header("authorization", format!("Bearer {key}"));
        }
        for (name, value) in headers {
            req = req.header(*name, *value);
        }
        let response = self
            .client
            .request(req.body(Full::new(Bytes::from(body.to_owned()))).unwrap())
            .await
            .unwrap();
        let status = response.status();
        let header = |name| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned()
        };
        let content_type = header("content-type");
        let replayed = header("idempotent-replayed") == "true";
        let retry_after = header("retry-after");
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        let body = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
        Answer {
            status,
            content_type,
            replayed,
            retry_after,
            body,
        }
    }

    async fn get(&self, path: &str) -> Answer {
        self.call(Method::GET, path, Some(KEY), "").await
    }

    async fn post(&self, path: &str, body: &Value) -> Answer {
        self.call(Method::POST, path, Some(KEY), &body.to_string())
            .await
    }

    async fn set_status(&self, flow: &str, status: &str) -> Answer {
        let body = json!({ "status": status }).to_string();
        let path = format!("/v1/flows/{flow}/status");
        self.call(Method::PUT, &path, Some(KEY), &body).await
    }

    /// Shuts the service down as SIGTERM would and waits for it to drain.
    async fn stop(mut self) {
        self.stop.take().unwrap().send(()).unwrap();
        self.running.await.unwrap().unwrap();
    }

    /// Waits until every listed participant has left `queued`/`running`.
    async fn settle(&self, ids: &[Value]) {
        for id in ids {
            let path = format!("/v1/participants/{}", id.as_str().unwrap());
            for attempt in 0.. {
                let p = self.get(&path).await;
                assert_eq!(p.status, StatusCode::OK, "{}", p.body);
                let status = p.body["status"].as_str().unwrap().to_owned();
                if status != "queued" && status != "running" {
                    break;
                }
                assert!(attempt < 600, "participant {id} still {status}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

impl Service {
    /// Waits until `GET path` answers as `done` says, and returns that answer.
    async fn when(&self, path: &str, what: &str, done: impl Fn(&Answer) -> bool) -> Answer {
        for _ in 0..400 {
            let answer = self.get(path).await;
            if done(&answer) {
                return answer;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        let last = self.get(path).await;
        panic!("{what}: {} {}", last.status, last.body);
    }
}

/// Waits a second and ends.
fn nap_flow() -> Value {
    json!({
        "id": "nap", "name": "Nap",
        "entry_points": [{"type": "api", "start": "wait"}],
        "elements": [
            {"id": "wait", "type": "wait", "config": {"duration": "1s"}, "exits": {"next": "done"}},
            {"id": "done", "type": "exit"}
        ]
    })
}

/// Sets a greeting from a variable and ends.
fn greeting_flow(id: &str) -> Value {
    json!({
        "id": id, "name": "Greeting",
        "entry_points": [{"type": "api", "start": "greet"}],
        "elements": [
            {"id": "greet", "type": "set-variable",
             "config": {"set": {"greeting": "Hello, {{name}}"}}, "exits": {"next": "done"}},
            {"id": "done", "type": "exit"}
        ]
    })
}

/// Waits until `server` (a channel gateway, a bot, a notify endpoint) has received `n`
/// requests, and returns them.
async fn received(server: &TestServer, n: usize) -> Vec<Received> {
    for _ in 0..400 {
        let got = server.received();
        if got.len() >= n {
            return got;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("{} received only {:?}", server.url(), server.received());
}

/// A received request's JSON body.
fn body(r: &Received) -> Value {
    serde_json::from_slice(&r.body).unwrap()
}

/// An operator configuration keeping everything in `dir`.
fn config_in(dir: &Path) -> OperatorConfig {
    OperatorConfig {
        database: dir.join("state.db"),
        plugins_dir: dir.join("plugins"),
        cache_dir: dir.join("cache"),
        ..OperatorConfig::default()
    }
}
