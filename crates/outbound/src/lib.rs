//! The one policy point for outbound HTTP.
//!
//! Every request leaving the host — a plugin's `http.send`, a component's `wasi:http`
//! `outgoing-handler`, and the Call API element — is checked here against an
//! [`OutboundPolicy`]: the hosts allowed, the number of requests per execution, and the largest
//! response body accepted. Every request then leaves through one [`HttpClient`], whose
//! connector applies the operator's network rules (denied hosts, private addresses) to the
//! addresses a name resolves to. Operator secrets, and the one way their values are kept out of
//! what is stored or logged, are in [`secrets`].
//!
//! ```
//! use flowhost_outbound::{HostPattern, OutboundPolicy};
//!
//! let policy = OutboundPolicy {
//!     subject: "plugin crm-sync@1.0.0".into(),
//!     declared: None,
//!     granted: vec![HostPattern::parse("*.crm.example").unwrap()],
//!     max_requests: 4,
//!     max_response_bytes: 1 << 20,
//! };
//! assert!(policy.check(&"https://api.crm.example/v2".parse().unwrap()).is_ok());
//! let refused = policy.check(&"https://elsewhere.example/".parse().unwrap()).unwrap_err();
//! assert!(refused.to_string().contains("allow_hosts"));
//! ```
#![deny(missing_docs)]

mod address;
mod client;
pub mod secrets;

pub use address::{IpRange, special_range};
pub use client::{ClientBody, HttpClient, OutboundConfig, OutboundConfigError};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use std::sync::Arc;
use std::time::Duration;

/// A host pattern: `api.example.com`, `api.example.com:8443`, `*.example.com`, or `*`.
/// A pattern without a port matches any port.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostPattern {
    host: HostMatch,
    port: Option<u16>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum HostMatch {
    Any,
    Exact(String),
    /// `*.example.com` stored as `.example.com`.
    Suffix(String),
}

impl HostPattern {
    /// Parses a pattern; `None` when it is not one.
    pub fn parse(text: &str) -> Option<HostPattern> {
        let text = text.trim().to_ascii_lowercase();
        if text.is_empty() || text.contains('/') {
            return None;
        }
        // `[::1]:8080` and `host:8080`; a bare IPv6 address has several colons and no port.
        let (host, port) = if let Some(rest) = text.strip_prefix('[') {
            let (h, after) = rest.split_once(']')?;
            let port = match after.strip_prefix(':') {
                Some(p) => Some(p.parse().ok()?),
                None if after.is_empty() => None,
                None => return None,
            };
            (h.to_owned(), port)
        } else if text.matches(':').count() == 1 {
            let (h, p) = text.split_once(':')?;
            (h.to_owned(), Some(p.parse().ok()?))
        } else {
            (text.clone(), None)
        };
        let host = if host == "*" {
            HostMatch::Any
        } else if let Some(suffix) = host.strip_prefix("*.") {
            HostMatch::Suffix(format!(".{suffix}"))
        } else if host.contains('*') {
            return None;
        } else {
            HostMatch::Exact(host)
        };
        Some(HostPattern { host, port })
    }

    /// Whether a request to `host:port` matches.
    pub fn matches(&self, host: &str, port: u16) -> bool {
        if self.port.is_some_and(|p| p != port) {
            return false;
        }
        let host = host.trim_start_matches('[').trim_end_matches(']');
        match &self.host {
            HostMatch::Any => true,
            HostMatch::Exact(h) => h.eq_ignore_ascii_case(host),
            HostMatch::Suffix(s) => {
                host.len() > s.len() && host.to_ascii_lowercase().ends_with(s.as_str())
            }
        }
    }
}

impl std::fmt::Display for HostPattern {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.host {
            HostMatch::Any => f.write_str("*")?,
            HostMatch::Exact(h) if h.contains(':') => write!(f, "[{h}]")?,
            HostMatch::Exact(h) => f.write_str(h)?,
            HostMatch::Suffix(s) => write!(f, "*{s}")?,
        }
        match self.port {
            Some(p) => write!(f, ":{p}"),
            None => Ok(()),
        }
    }
}

/// The `host:port` a URL points at, for patterns and messages.
pub fn url_host_port(uri: &http::Uri) -> Option<(String, u16)> {
    let host = uri.host()?.to_ascii_lowercase();
    let port = uri.port_u16().unwrap_or(match uri.scheme_str() {
        Some("https") => 443,
        _ => 80,
    });
    Some((host, port))
}

/// What one participant's execution of one element may send.
#[derive(Clone, Debug)]
pub struct OutboundPolicy {
    /// Who the policy is for, used in messages (`plugin order-status@0.1.0`).
    pub subject: String,
    /// Hosts the element declared it needs; `None` means no declaration is required.
    pub declared: Option<Vec<HostPattern>>,
    /// Hosts the operator granted.
    pub granted: Vec<HostPattern>,
    /// Requests allowed per execution.
    pub max_requests: u32,
    /// Largest response body accepted, in bytes.
    pub max_response_bytes: u64,
}

/// Why a request was not sent or got no usable response.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum OutboundError {
    /// The policy refuses the destination.
    #[error("{0}")]
    Denied(String),
    /// The request itself is malformed.
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    /// No response in time.
    #[error("timed out")]
    Timeout,
    /// No connection could be made (DNS, TCP connect, TLS handshake): nothing was sent.
    #[error("could not connect: {0}")]
    ConnectFailed(String),
    /// The connection failed after the request may have been sent.
    #[error("connection failed: {0}")]
    Connection(String),
    /// The response body is larger than allowed.
    #[error("response body larger than {0} bytes")]
    ResponseTooLarge(u64),
}

impl OutboundPolicy {
    /// Checks a destination against the allow-lists.
    pub fn check(&self, uri: &http::Uri) -> Result<(), OutboundError> {
        match uri.scheme_str() {
            Some("http" | "https") => {}
            other => {
                return Err(OutboundError::InvalidRequest(format!(
                    "unsupported scheme {:?} in {uri}; use http or https",
                    other.unwrap_or("")
                )));
            }
        }
        let (host, port) = url_host_port(uri)
            .ok_or_else(|| OutboundError::InvalidRequest(format!("no host in URL {uri}")))?;
        if let Some(declared) = &self.declared
            && !declared.iter().any(|p| p.matches(&host, port))
        {
            return Err(OutboundError::Denied(format!(
                "{host}:{port} is not among the hosts {} declares",
                self.subject
            )));
        }
        if !self.granted.iter().any(|p| p.matches(&host, port)) {
            return Err(OutboundError::Denied(format!(
                "{host}:{port} is not granted to {}; the operator can add it to allow_hosts in flowhost.toml",
                self.subject
            )));
        }
        Ok(())
    }
}

/// A request with its whole body.
#[derive(Clone, Debug)]
pub struct BufferedRequest {
    /// `GET`, `POST`, …
    pub method: String,
    /// Absolute `http` or `https` URL.
    pub url: String,
    /// Header pairs, in order.
    pub headers: Vec<(String, String)>,
    /// Body bytes, if any.
    pub body: Option<Vec<u8>>,
    /// Total timeout, redirects included.
    pub timeout: Duration,
    /// Redirects to follow (0: return the 3xx response as it is).
    pub max_redirects: u8,
}

/// A response with its whole body.
#[derive(Clone, Debug)]
pub struct BufferedResponse {
    /// Status code.
    pub status: u16,
    /// Header pairs, names in lowercase.
    pub headers: Vec<(String, String)>,
    /// Body bytes.
    pub body: Vec<u8>,
    /// URLs redirected to, in order; the last one gave this response.
    pub redirects: Vec<String>,
}

impl BufferedResponse {
    /// The first value of a header, by case-insensitive name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Checks a destination against the operator's deny rules and the policy.
pub fn check(
    client: &HttpClient,
    policy: &OutboundPolicy,
    uri: &http::Uri,
) -> Result<(), OutboundError> {
    let checked = match url_host_port(uri) {
        Some((host, port)) => client.rules().check_host(&host, port),
        None => Ok(()),
    }
    .and_then(|()| policy.check(uri));
    if let Err(e) = &checked {
        let reason = match e {
            OutboundError::Denied(_) => "denied",
            _ => "invalid",
        };
        // No host label: a refused host can be anything a plugin makes up.
        metrics::counter!("flowhost_outbound_refused_total", "reason" => reason).increment(1);
    }
    checked
}

/// Sends one request after the policy allows it, follows redirects up to
/// `req.max_redirects` (checking every hop again), and reads the whole response.
///
/// Counting requests against `max_requests` is the caller's job, since only it knows the
/// execution they belong to.
pub async fn send_buffered(
    client: &HttpClient,
    policy: &OutboundPolicy,
    req: BufferedRequest,
) -> Result<BufferedResponse, OutboundError> {
    let timeout = req.timeout;
    tokio::time::timeout(timeout, exchange(client, policy, req))
        .await
        .map_err(|_| OutboundError::Timeout)?
}

async fn exchange(
    client: &HttpClient,
    policy: &OutboundPolicy,
    req: BufferedRequest,
) -> Result<BufferedResponse, OutboundError> {
    let mut uri: http::Uri = req
        .url
        .parse()
        .map_err(|e| OutboundError::InvalidRequest(format!("URL {:?}: {e}", req.url)))?;
    let mut method = http::Method::from_bytes(req.method.as_bytes())
        .map_err(|_| OutboundError::InvalidRequest(format!("method {:?}", req.method)))?;
    let mut headers = req.headers;
    let mut body = req.body;
    let mut redirects = Vec::new();
    loop {
        let on_hop = |e: OutboundError| match (&e, redirects.is_empty()) {
            (OutboundError::Denied(m), false) => {
                OutboundError::Denied(format!("redirect to {uri} refused: {m}"))
            }
            _ => e,
        };
        check(client, policy, &uri).map_err(on_hop)?;
        let mut builder = http::Request::builder()
            .method(method.clone())
            .uri(uri.clone());
        for (name, value) in &headers {
            builder = builder.header(name.as_str(), value.as_str());
        }
        let payload = Full::new(Bytes::from(body.clone().unwrap_or_default()))
            .map_err(|never| match never {})
            .boxed_unsync();
        let request = builder
            .body(payload)
            .map_err(|e| OutboundError::InvalidRequest(e.to_string()))?;
        let response = client.send(request).await.map_err(on_hop)?;
        let status = response.status();
        let location = response
            .headers()
            .get(http::header::LOCATION)
            .and_then(|l| l.to_str().ok())
            .map(str::to_owned);
        if status.is_redirection()
            && let Some(location) = location
            && redirects.len() < usize::from(req.max_redirects)
        {
            let next = resolve_location(&uri, &location).ok_or_else(|| {
                OutboundError::InvalidRequest(format!(
                    "redirect from {uri} to an unusable Location {location:?}"
                ))
            })?;
            // 303, and 301/302 after POST, turn into GET without a body, as browsers do.
            if status == http::StatusCode::SEE_OTHER
                || (matches!(status.as_u16(), 301 | 302) && method == http::Method::POST)
            {
                if method != http::Method::HEAD {
                    method = http::Method::GET;
                }
                body = None;
                headers.retain(|(k, _)| {
                    !k.eq_ignore_ascii_case("content-type")
                        && !k.eq_ignore_ascii_case("content-length")
                });
            }
            // Credentials never follow a redirect to another origin.
            if url_host_port(&next) != url_host_port(&uri) || next.scheme() != uri.scheme() {
                headers.retain(|(k, _)| {
                    !k.eq_ignore_ascii_case("authorization") && !k.eq_ignore_ascii_case("cookie")
                });
            }
            redirects.push(next.to_string());
            uri = next;
            continue;
        }
        let (parts, incoming) = response.into_parts();
        let body = limit_body(incoming, policy.max_response_bytes)
            .collect()
            .await
            .map_err(OutboundError::from)?
            .to_bytes();
        return Ok(BufferedResponse {
            status: parts.status.as_u16(),
            headers: parts
                .headers
                .iter()
                .map(|(k, v)| {
                    (
                        k.as_str().to_owned(),
                        String::from_utf8_lossy(v.as_bytes()).into_owned(),
                    )
                })
                .collect(),
            // No copy when the collected bytes are not shared.
            body: Vec::from(body),
            redirects,
        });
    }
}

/// Resolves a `Location` header against the URL that returned it.
fn resolve_location(base: &http::Uri, location: &str) -> Option<http::Uri> {
    let absolute: http::Uri = location.parse().ok()?;
    if absolute.scheme().is_some() {
        return Some(absolute);
    }
    let mut parts = base.clone().into_parts();
    let path = if location.starts_with('/') {
        location.to_owned()
    } else {
        let base_path = base.path();
        let dir = &base_path[..base_path.rfind('/').map_or(0, |i| i + 1)];
        format!("{dir}{location}")
    };
    parts.path_and_query = Some(path.parse().ok()?);
    http::Uri::from_parts(parts).ok()
}

/// Why a response body could not be read to its end.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BodyError {
    /// The body is larger than the cap.
    #[error("response body larger than {0} bytes")]
    TooLarge(u64),
    /// The connection failed while reading it.
    #[error("reading the response body: {0}")]
    Read(String),
}

impl From<BodyError> for OutboundError {
    fn from(e: BodyError) -> Self {
        match e {
            BodyError::TooLarge(max) => OutboundError::ResponseTooLarge(max),
            BodyError::Read(m) => OutboundError::Connection(m),
        }
    }
}

/// A response body that fails with [`BodyError::TooLarge`] past `max` bytes; both the buffered
/// path and `wasi:http` use it, so the cap means the same everywhere.
pub fn limit_body<B>(body: B, max: u64) -> impl http_body::Body<Data = Bytes, Error = BodyError>
where
    B: http_body::Body<Data = Bytes>,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    Limited::new(body, usize::try_from(max).unwrap_or(usize::MAX)).map_err(move |e| {
        if e.is::<http_body_util::LengthLimitError>() {
            BodyError::TooLarge(max)
        } else {
            BodyError::Read(e.to_string())
        }
    })
}

/// Shared handle to a policy, as held by one execution.
pub type SharedPolicy = Arc<OutboundPolicy>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_match_host_port_and_suffix() {
        let p = HostPattern::parse("api.example.com").unwrap();
        assert!(p.matches("api.example.com", 443));
        assert!(p.matches("API.example.com", 8080));
        assert!(!p.matches("evil.com", 443));
        let p = HostPattern::parse("127.0.0.1:8080").unwrap();
        assert!(p.matches("127.0.0.1", 8080));
        assert!(!p.matches("127.0.0.1", 8081));
        let p = HostPattern::parse("*.example.com").unwrap();
        assert!(p.matches("a.example.com", 443));
        assert!(!p.matches("example.com", 443));
        assert!(!p.matches("aexample.com", 443));
        let p = HostPattern::parse("[::1]:9000").unwrap();
        assert!(p.matches("[::1]", 9000));
        assert!(HostPattern::parse("a*b.com").is_none());
        assert!(HostPattern::parse("http://x").is_none());
        assert_eq!(
            HostPattern::parse("*.x.io:1").unwrap().to_string(),
            "*.x.io:1"
        );
    }

    #[test]
    fn policy_needs_both_declaration_and_grant() {
        let policy = OutboundPolicy {
            subject: "plugin t@1.0.0".into(),
            declared: Some(vec![HostPattern::parse("a.com").unwrap()]),
            granted: vec![HostPattern::parse("*").unwrap()],
            max_requests: 1,
            max_response_bytes: 10,
        };
        assert!(policy.check(&"https://a.com/x".parse().unwrap()).is_ok());
        let err = policy
            .check(&"https://b.com/x".parse().unwrap())
            .unwrap_err();
        assert!(err.to_string().contains("declares"), "{err}");
        let policy = OutboundPolicy {
            granted: vec![],
            ..policy
        };
        let err = policy
            .check(&"https://a.com/x".parse().unwrap())
            .unwrap_err();
        assert!(err.to_string().contains("allow_hosts"), "{err}");
        let err = policy.check(&"ftp://a.com/x".parse().unwrap()).unwrap_err();
        assert!(matches!(err, OutboundError::InvalidRequest(_)));
    }
}
