//! The HTTP client every outbound request goes through: connection pooling (HTTP/1.1),
//! rustls with the system's root certificates (plus any the operator adds), and a connector
//! that resolves names itself and refuses special-range addresses before connecting.

use super::address::{IpRange, special_range};
use super::{HostPattern, OutboundError};
use bytes::Bytes;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::{Connected, Connection};
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde::Deserialize;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tracing::Instrument;

/// Request bodies the client sends.
pub type ClientBody =
    http_body_util::combinators::UnsyncBoxBody<Bytes, Box<dyn std::error::Error + Send + Sync>>;

/// `[outbound]`: rules every outbound request follows, whoever sends it.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OutboundConfig {
    /// Host patterns refused even when granted.
    pub deny_hosts: Vec<String>,
    /// Loopback, private and link-local addresses or CIDR ranges that may be reached (all
    /// such addresses are refused otherwise).
    pub allow_private: Vec<String>,
    /// Time allowed to connect (DNS, TCP and TLS), in milliseconds.
    pub connect_timeout_ms: u64,
    /// PEM files of CA certificates trusted besides the system's.
    pub extra_ca_files: Vec<PathBuf>,
}

impl Default for OutboundConfig {
    fn default() -> Self {
        OutboundConfig {
            deny_hosts: Vec::new(),
            allow_private: Vec::new(),
            connect_timeout_ms: 5_000,
            extra_ca_files: Vec::new(),
        }
    }
}

/// The operator's `[outbound]` rules could not be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OutboundConfigError {
    /// A `deny_hosts` entry is not a host pattern.
    #[error(
        "outbound.deny_hosts: {0:?} is not a host pattern; write api.example.com, *.example.com or host:port"
    )]
    DenyPattern(String),
    /// An `allow_private` entry is not an address or range.
    #[error(
        "outbound.allow_private: {0:?} is not an IP address or CIDR range; write e.g. 127.0.0.1 or 10.0.0.0/8"
    )]
    PrivateRange(String),
    /// An extra CA file could not be used.
    #[error("outbound.extra_ca_files: {path}: {reason}; give a PEM file of CA certificates")]
    CaFile {
        /// The file.
        path: String,
        /// Why.
        reason: String,
    },
}

/// Rules that hold for every outbound request, whoever sends it.
#[derive(Debug)]
pub(crate) struct NetworkRules {
    deny_hosts: Vec<HostPattern>,
    allow_private: Vec<IpRange>,
    connect_timeout: Duration,
    extra_roots: Vec<rustls::pki_types::CertificateDer<'static>>,
    tls: OnceLock<Result<Arc<rustls::ClientConfig>, String>>,
}

impl NetworkRules {
    fn tls(&self) -> Result<Arc<rustls::ClientConfig>, String> {
        // Loading the system's roots reads a few hundred files: only when HTTPS is first used.
        self.tls
            .get_or_init(|| {
                let mut roots = rustls::RootCertStore::empty();
                let native = rustls_native_certs::load_native_certs();
                roots.add_parsable_certificates(native.certs);
                roots.add_parsable_certificates(self.extra_roots.iter().cloned());
                if roots.is_empty() {
                    return Err("no trusted root certificates: the system has none (install ca-certificates) and outbound.extra_ca_files adds none".to_owned());
                }
                let provider = Arc::new(rustls::crypto::ring::default_provider());
                let config = rustls::ClientConfig::builder_with_provider(provider)
                    .with_safe_default_protocol_versions()
                    .map_err(|e| e.to_string())?
                    .with_root_certificates(roots)
                    .with_no_client_auth();
                Ok(Arc::new(config))
            })
            .clone()
    }

    /// Refuses hosts the operator denies.
    pub(crate) fn check_host(&self, host: &str, port: u16) -> Result<(), OutboundError> {
        match self.deny_hosts.iter().find(|p| p.matches(host, port)) {
            Some(p) => Err(OutboundError::Denied(format!(
                "{host}:{port} is denied by the operator (outbound.deny_hosts has {p})"
            ))),
            None => Ok(()),
        }
    }

    fn check_ip(&self, host: &str, ip: IpAddr) -> Result<(), String> {
        match special_range(ip) {
            Some(kind) if !self.allow_private.iter().any(|r| r.contains(ip)) => {
                let at = if host.parse::<IpAddr>().is_ok() {
                    format!("{ip} is")
                } else {
                    format!("{host} is at {ip},")
                };
                Err(format!(
                    "{at} a {kind} address, which is refused; the operator can allow it with outbound.allow_private in flowhost.toml"
                ))
            }
            _ => Ok(()),
        }
    }
}

/// Why the connector did not connect; found again in the client's error chain.
#[derive(Debug, thiserror::Error)]
enum ConnectError {
    #[error("{0}")]
    Refused(String),
    #[error("connect to {0} timed out")]
    Timeout(String),
    #[error("{0}")]
    Failed(String),
}

/// The pooled client. Cheap to clone.
#[derive(Clone)]
pub struct HttpClient {
    rules: Arc<NetworkRules>,
    client: Client<Connector, ClientBody>,
}

impl std::fmt::Debug for HttpClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpClient")
            .field("rules", &self.rules)
            .finish()
    }
}

impl HttpClient {
    /// A client following the operator's `[outbound]` rules.
    pub fn new(config: &OutboundConfig) -> Result<Self, OutboundConfigError> {
        let deny_hosts = config
            .deny_hosts
            .iter()
            .map(|h| {
                HostPattern::parse(h).ok_or_else(|| OutboundConfigError::DenyPattern(h.clone()))
            })
            .collect::<Result<_, _>>()?;
        let allow_private = config
            .allow_private
            .iter()
            .map(|r| IpRange::parse(r).ok_or_else(|| OutboundConfigError::PrivateRange(r.clone())))
            .collect::<Result<_, _>>()?;
        let mut extra_roots = Vec::new();
        for path in &config.extra_ca_files {
            use rustls::pki_types::pem::PemObject;
            let ca_error = |reason: String| OutboundConfigError::CaFile {
                path: path.display().to_string(),
                reason,
            };
            let certs = rustls::pki_types::CertificateDer::pem_file_iter(path)
                .map_err(|e| ca_error(e.to_string()))?
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| ca_error(e.to_string()))?;
            if certs.is_empty() {
                return Err(ca_error("no certificate in it".into()));
            }
            extra_roots.extend(certs);
        }
        let rules = Arc::new(NetworkRules {
            deny_hosts,
            allow_private,
            connect_timeout: Duration::from_millis(config.connect_timeout_ms),
            extra_roots,
            tls: OnceLock::new(),
        });
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .pool_max_idle_per_host(32)
            .build(Connector {
                rules: rules.clone(),
            });
        Ok(HttpClient { rules, client })
    }

    /// A client with default rules (no private addresses, system roots).
    pub fn with_defaults() -> Self {
        Self::new(&OutboundConfig::default()).expect("default outbound rules are valid")
    }

    pub(crate) fn rules(&self) -> &NetworkRules {
        &self.rules
    }

    /// Sends a request; the policy check is the caller's. The response body is not read yet.
    pub async fn send(
        &self,
        request: http::Request<ClientBody>,
    ) -> Result<http::Response<hyper::body::Incoming>, OutboundError> {
        let host = request.uri().host().unwrap_or_default().to_owned();
        let span = tracing::debug_span!(
            "outbound",
            method = %request.method(),
            host = %host,
            status = tracing::field::Empty,
        );
        let started = std::time::Instant::now();
        let sent = self.client.request(request).instrument(span.clone()).await;
        let status = match &sent {
            Ok(response) => {
                span.record("status", response.status().as_u16());
                span.in_scope(|| tracing::debug!("response"));
                response.status().as_u16().to_string()
            }
            Err(e) => {
                span.in_scope(|| tracing::debug!(error = %e, "request failed"));
                "error".to_owned()
            }
        };
        metrics::histogram!("flowhost_outbound_request_seconds", "host" => host.clone())
            .record(started.elapsed().as_secs_f64());
        metrics::counter!("flowhost_outbound_requests_total", "host" => host, "status" => status)
            .increment(1);
        sent.map_err(map_client_error)
    }
}

fn map_client_error(e: hyper_util::client::legacy::Error) -> OutboundError {
    let mut source: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(&e);
    while let Some(s) = source {
        if let Some(c) = s.downcast_ref::<ConnectError>() {
            return match c {
                ConnectError::Refused(m) => OutboundError::Denied(m.clone()),
                ConnectError::Timeout(m) => {
                    OutboundError::ConnectFailed(format!("connect to {m} timed out"))
                }
                ConnectError::Failed(m) => OutboundError::ConnectFailed(m.clone()),
            };
        }
        source = s.source();
    }
    let mut message = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        message.push_str(": ");
        message.push_str(&s.to_string());
        source = s.source();
    }
    OutboundError::Connection(message)
}

/// Resolves, checks every address, connects, and wraps in TLS for `https`.
#[derive(Clone)]
struct Connector {
    rules: Arc<NetworkRules>,
}

impl tower_service::Service<http::Uri> for Connector {
    type Response = Conn;
    type Error = ConnectError;
    type Future = Pin<Box<dyn Future<Output = Result<Conn, ConnectError>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: http::Uri) -> Self::Future {
        let rules = self.rules.clone();
        Box::pin(async move {
            let (host, port) = super::url_host_port(&uri)
                .ok_or_else(|| ConnectError::Failed(format!("no host in {uri}")))?;
            let bare = host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_owned();
            let timeout = rules.connect_timeout;
            let connect = async {
                let addrs: Vec<SocketAddr> = match bare.parse::<IpAddr>() {
                    Ok(ip) => vec![SocketAddr::new(ip, port)],
                    Err(_) => tokio::net::lookup_host((bare.as_str(), port))
                        .await
                        .map_err(|e| ConnectError::Failed(format!("DNS lookup of {bare}: {e}")))?
                        .collect(),
                };
                let mut refused = None;
                let mut last_error = None;
                for addr in addrs {
                    if let Err(reason) = rules.check_ip(&bare, addr.ip()) {
                        refused.get_or_insert(reason);
                        continue;
                    }
                    match TcpStream::connect(addr).await {
                        Ok(stream) => {
                            let _ = stream.set_nodelay(true);
                            return Ok(stream);
                        }
                        Err(e) => last_error = Some(format!("connect to {addr}: {e}")),
                    }
                }
                Err(match (last_error, refused) {
                    (Some(e), _) => ConnectError::Failed(e),
                    (None, Some(r)) => ConnectError::Refused(r),
                    (None, None) => ConnectError::Failed(format!("{bare} has no addresses")),
                })
            };
            let stream = tokio::time::timeout(timeout, connect)
                .await
                .map_err(|_| ConnectError::Timeout(format!("{host}:{port}")))??;
            if uri.scheme_str() != Some("https") {
                return Ok(Conn(TokioIo::new(Box::new(stream))));
            }
            let tls = rules.tls().map_err(ConnectError::Failed)?;
            let name = rustls::pki_types::ServerName::try_from(bare.clone())
                .map_err(|e| ConnectError::Failed(format!("TLS server name {bare:?}: {e}")))?;
            let stream = tokio::time::timeout(
                timeout,
                tokio_rustls::TlsConnector::from(tls).connect(name, stream),
            )
            .await
            .map_err(|_| ConnectError::Timeout(format!("TLS handshake with {host}:{port}")))?
            .map_err(|e| ConnectError::Failed(format!("TLS with {host}:{port}: {e}")))?;
            Ok(Conn(TokioIo::new(Box::new(stream))))
        })
    }
}

trait Io: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> Io for T {}

/// A plain or TLS connection.
struct Conn(TokioIo<Box<dyn Io>>);

impl Connection for Conn {
    fn connected(&self) -> Connected {
        Connected::new()
    }
}

impl hyper::rt::Read for Conn {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl hyper::rt::Write for Conn {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}
