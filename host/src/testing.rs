//! Test support for plugin authors and for flowhost's own tests: a real HTTP server on
//! 127.0.0.1 that records what it received and answers as told ([`TestServer`]), and
//! [`PluginTest`], which runs one plugin element on the real host — the same validation and
//! sandbox as in a flow — with given configuration, variables, person and operator settings.
//!
//! ```no_run
//! # async fn demo() {
//! use flowhost::testing::{PluginTest, Reply, TestServer};
//! use serde_json::json;
//!
//! let api = TestServer::start_replying(|_| Reply::json(200, r#"{"status": "shipped"}"#)).await;
//! let run = PluginTest::new("order-status", "target/wasm32-wasip2/release/order_status.wasm")
//!     .setting("base_url", &api.url())
//!     .secret("api_token", "t0k3n")
//!     .grant(&api.addr.to_string())
//!     .config(json!({"order_variable": "order_id"}))
//!     .variable("order_id", json!("1001"))
//!     .run()
//!     .await;
//! assert_eq!(run.exit(), Some("shipped"));
//! assert_eq!(run.variables["order_status"], json!("shipped"));
//! assert_eq!(api.received()[0].header("authorization"), Some("Bearer t0k3n"));
//! # }
//! ```

use crate::config::{OperatorConfig, PluginGrant, SecretSource};
use crate::elements::{ElementType, PluginElementType, StepInput, StepOutcome, StepResult};
use crate::flow::ElementDef;
use crate::person::Person;
use crate::plugin::capabilities::LogLine;
use crate::store::HttpRequestRecord;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use tokio::net::TcpListener;

/// A request the test server received.
#[derive(Clone, Debug)]
pub struct Received {
    /// Method.
    pub method: String,
    /// Path and query.
    pub path: String,
    /// Headers, names lowercase.
    pub headers: Vec<(String, String)>,
    /// Body.
    pub body: Vec<u8>,
}

impl Received {
    /// A header value.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// An answer: status, content type, body.
pub type Answer = (u16, &'static str, String);

/// A full answer, with any headers.
#[derive(Clone, Debug, Default)]
pub struct Reply {
    /// Status code.
    pub status: u16,
    /// Headers.
    pub headers: Vec<(String, String)>,
    /// Body.
    pub body: String,
    /// Wait this long before answering (without blocking the server).
    pub delay: std::time::Duration,
}

impl Reply {
    /// A reply with a status and a JSON body.
    pub fn json(status: u16, body: &str) -> Self {
        Reply {
            status,
            headers: vec![("content-type".into(), "application/json".into())],
            body: body.to_owned(),
            delay: std::time::Duration::ZERO,
        }
    }

    /// The same reply, sent after `delay`.
    pub fn after(mut self, delay: std::time::Duration) -> Self {
        self.delay = delay;
        self
    }

    /// The same reply with one more header.
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }
}

type Handler = dyn Fn(&Received) -> Reply + Send + Sync;

/// TLS settings for [`TestServer::start_tls`]: a server certificate and its key, PEM.
pub struct TlsIdentity {
    /// Certificate chain, PEM.
    pub cert_pem: String,
    /// Private key, PEM.
    pub key_pem: String,
}

/// A hyper server on 127.0.0.1 with an ephemeral port.
pub struct TestServer {
    /// Where it listens.
    pub addr: SocketAddr,
    received: Arc<Mutex<Vec<Received>>>,
    task: tokio::task::JoinHandle<()>,
}

impl TestServer {
    /// Starts a server that answers every request with `handler`.
    pub async fn start(handler: impl Fn(&Received) -> Answer + Send + Sync + 'static) -> Self {
        Self::start_replying(move |r| {
            let (status, content_type, body) = handler(r);
            Reply {
                status,
                headers: vec![("content-type".into(), content_type.into())],
                body,
                delay: std::time::Duration::ZERO,
            }
        })
        .await
    }

    /// Starts a server whose `handler` sets any headers.
    pub async fn start_replying(
        handler: impl Fn(&Received) -> Reply + Send + Sync + 'static,
    ) -> Self {
        Self::serve(handler, None).await
    }

    /// Starts an HTTPS server presenting `identity`.
    pub async fn start_tls(
        identity: &TlsIdentity,
        handler: impl Fn(&Received) -> Reply + Send + Sync + 'static,
    ) -> Self {
        use rustls::pki_types::pem::PemObject;
        let certs = rustls::pki_types::CertificateDer::pem_slice_iter(identity.cert_pem.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .unwrap();
        let key =
            rustls::pki_types::PrivateKeyDer::from_pem_slice(identity.key_pem.as_bytes()).unwrap();
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap();
        Self::serve(
            handler,
            Some(tokio_rustls::TlsAcceptor::from(Arc::new(config))),
        )
        .await
    }

    async fn serve(
        handler: impl Fn(&Received) -> Reply + Send + Sync + 'static,
        tls: Option<tokio_rustls::TlsAcceptor>,
    ) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let received: Arc<Mutex<Vec<Received>>> = Arc::default();
        let handler: Arc<Handler> = Arc::new(handler);
        let log = received.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let handler = handler.clone();
                let log = log.clone();
                let tls = tls.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |req: Request<Incoming>| {
                        let handler = handler.clone();
                        let log = log.clone();
                        async move {
                            let (parts, body) = req.into_parts();
                            let body = body
                                .collect()
                                .await
                                .map(|b| b.to_bytes())
                                .unwrap_or_default();
                            let received = Received {
                                method: parts.method.to_string(),
                                path: parts
                                    .uri
                                    .path_and_query()
                                    .map(|p| p.to_string())
                                    .unwrap_or_default(),
                                headers: parts
                                    .headers
                                    .iter()
                                    .map(|(k, v)| {
                                        (k.to_string(), v.to_str().unwrap_or("").to_owned())
                                    })
                                    .collect(),
                                body: body.to_vec(),
                            };
                            let reply = handler(&received);
                            log.lock().unwrap().push(received);
                            if !reply.delay.is_zero() {
                                tokio::time::sleep(reply.delay).await;
                            }
                            let mut response = Response::builder().status(reply.status);
                            for (k, v) in &reply.headers {
                                response = response.header(k, v);
                            }
                            Ok::<_, std::convert::Infallible>(
                                response.body(Full::new(Bytes::from(reply.body))).unwrap(),
                            )
                        }
                    });
                    let http = hyper::server::conn::http1::Builder::new();
                    match tls {
                        None => {
                            let _ = http.serve_connection(TokioIo::new(stream), service).await;
                        }
                        Some(acceptor) => {
                            if let Ok(stream) = acceptor.accept(stream).await {
                                let _ = http.serve_connection(TokioIo::new(stream), service).await;
                            }
                        }
                    }
                });
            }
        });
        TestServer {
            addr,
            received,
            task,
        }
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Requests received so far.
    pub fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// One plugin element, run on the real host without a flow.
#[derive(Clone, Debug)]
pub struct PluginTest {
    id: String,
    wasm: PathBuf,
    config: OperatorConfig,
    element: serde_json::Map<String, Value>,
    variables: BTreeMap<String, Value>,
    person: Person,
}

/// What one run produced.
#[derive(Debug)]
pub struct PluginRun {
    /// How the step ended.
    pub outcome: StepOutcome,
    /// All variables after the step.
    pub variables: BTreeMap<String, Value>,
    /// Variables the step set.
    pub changed: BTreeMap<String, Value>,
    /// Journey log lines.
    pub logs: Vec<LogLine>,
    /// Outcome data.
    pub data: Option<Value>,
    /// The HTTP requests it sent, as the journey keeps them.
    pub requests: Vec<HttpRequestRecord>,
}

impl PluginRun {
    /// The exit taken, or `None` when the element failed (then see [`PluginRun::failure`]).
    pub fn exit(&self) -> Option<&str> {
        match &self.outcome {
            StepOutcome::Exit(e) => Some(e),
            _ => None,
        }
    }

    /// Why the element failed (it would take its `error` exit in a flow).
    pub fn failure(&self) -> Option<&str> {
        match &self.outcome {
            StepOutcome::Failed(reason) => Some(reason),
            _ => None,
        }
    }

    /// The journey as one text, for checking that something (a secret) never appears.
    pub fn journey_text(&self) -> String {
        format!(
            "{:?} {:?} {:?} {:?}",
            self.outcome, self.changed, self.logs, self.data
        )
    }
}

impl PluginTest {
    /// A test of the plugin `id` built at `wasm`.
    pub fn new(id: &str, wasm: impl AsRef<Path>) -> Self {
        let mut config = OperatorConfig {
            // Shared between runs: entries are keyed by content hash, so compiling once is enough.
            cache_dir: std::env::temp_dir().join("flowhost-test-cache"),
            ..OperatorConfig::default()
        };
        config.plugins.insert(id.to_owned(), PluginGrant::default());
        PluginTest {
            id: id.to_owned(),
            wasm: wasm.as_ref().to_owned(),
            config,
            element: serde_json::Map::new(),
            variables: BTreeMap::new(),
            person: Person {
                id: "test-person".into(),
                ..Person::default()
            },
        }
    }

    fn grant_mut(&mut self) -> &mut PluginGrant {
        self.config.plugins.entry(self.id.clone()).or_default()
    }

    /// Grants a host (`127.0.0.1:8080`); a loopback address is also allowed as private.
    pub fn grant(mut self, host: &str) -> Self {
        let bare = match host.rsplit_once(':') {
            Some((h, port)) if port.parse::<u16>().is_ok() => h.trim_matches(['[', ']']),
            _ => host,
        };
        if bare
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
        {
            self.config.outbound.allow_private.push(bare.to_owned());
        }
        self.grant_mut().allow_hosts.push(host.to_owned());
        self
    }

    /// An operator setting.
    pub fn setting(mut self, name: &str, value: &str) -> Self {
        self.grant_mut()
            .settings
            .insert(name.to_owned(), value.to_owned());
        self
    }

    /// An operator secret.
    pub fn secret(mut self, name: &str, value: &str) -> Self {
        self.grant_mut()
            .secrets
            .insert(name.to_owned(), SecretSource::Value(value.to_owned()));
        self
    }

    /// The element's configuration in the flow (a JSON object).
    pub fn config(mut self, config: Value) -> Self {
        self.element = match config {
            Value::Object(map) => map,
            other => panic!("element configuration must be a JSON object, got {other}"),
        };
        self
    }

    /// A flow variable before the step.
    pub fn variable(mut self, name: &str, value: Value) -> Self {
        self.variables.insert(name.to_owned(), value);
        self
    }

    /// The person.
    pub fn person(mut self, person: Person) -> Self {
        self.person = person;
        self
    }

    /// Changes the operator configuration directly (limits, other plugins' grants).
    pub fn operator(mut self, change: impl FnOnce(&mut OperatorConfig)) -> Self {
        change(&mut self.config);
        self
    }

    /// Loads the plugin, checks the configuration as flow validation would, and runs one
    /// step. Panics with the validation issues or load error, since the test cannot go on.
    pub async fn run(self) -> PluginRun {
        let host = crate::runtime::plugin_host(&self.config).unwrap_or_else(|e| panic!("{e}"));
        let plugin = host
            .load_file(&self.wasm)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            plugin.manifest.id,
            self.id,
            "{} describes itself as {:?}",
            self.wasm.display(),
            plugin.manifest.id
        );
        run_element(host, plugin, self.element, self.variables, &self.person)
            .await
            .unwrap_or_else(|issues| {
                panic!(
                    "the configuration would not pass flow validation: {}",
                    issues
                        .iter()
                        .map(|i| i.to_string())
                        .collect::<Vec<_>>()
                        .join("; ")
                )
            })
    }
}

/// Runs one step of a loaded plugin, without a flow: its `config` checked as flow validation
/// checks it (the issues, at their paths, when it does not pass), then one execution for
/// `person` with `variables`. What `PluginTest` and `flowhost plugins run` do.
pub async fn run_element(
    host: crate::plugin::PluginHost,
    plugin: crate::plugin::LoadedPlugin,
    config: serde_json::Map<String, Value>,
    variables: BTreeMap<String, Value>,
    person: &Person,
) -> Result<PluginRun, Vec<crate::flow::Issue>> {
    let id = plugin.manifest.id.clone();
    let ty = PluginElementType::new(host, Arc::new(plugin));
    let def = ElementDef {
        id: "under-test".into(),
        kind: format!("plugin:{id}"),
        config,
        exits: BTreeMap::new(),
    };
    let element = ty.build(&def)?;
    let StepResult {
        outcome,
        set,
        logs,
        data,
        requests,
        ..
    } = element
        .run(StepInput {
            flow_id: "test-flow",
            element_id: "under-test",
            participant_id: "test-participant",
            person,
            variables: &variables,
            now: 0,
            resumed: false,
            state: None,
            event: None,
            flows: &crate::elements::NoFlows,
            step: 1,
        })
        .await;
    let mut after = variables;
    after.extend(set.clone());
    Ok(PluginRun {
        outcome,
        variables: after,
        changed: set,
        logs,
        data,
        requests,
    })
}
