//! `http` and `wasi:http/outgoing-handler`: outbound HTTP for one execution.
//!
//! Both paths count against the same request budget and go through the same
//! [`OutboundPolicy`](flowhost_outbound::OutboundPolicy). The buffered `http.send` traps when the
//! budget is spent (a limit breach, not something to handle); `wasi:http` cannot trap from its
//! hook, so it refuses the request and marks the execution, which then ends on the error exit.

use flowhost_outbound::{
    self as outbound, BodyError, BufferedRequest, BufferedResponse, HttpClient, OutboundError,
    SharedPolicy,
};
use http_body_util::BodyExt;
use std::time::Duration;
use wasmtime_wasi_http::{Error as WasiHttpError, RequestOptions, WasiHttpHooks};

/// Default timeout of one request when the plugin sets none.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// Bytes of a URL, a method or an error kept for the journey: they may hold what the plugin
/// made up, of any size.
const SHOWN_BYTES: usize = 2048;

fn shown(text: &str) -> String {
    crate::bounds::preview(text, SHOWN_BYTES).into_owned()
}

/// The trap raised when a plugin sends more requests than allowed.
#[derive(Debug, thiserror::Error)]
#[error(
    "more than {max} HTTP requests in one execution; the operator can raise limits.max_http_requests for this plugin"
)]
pub struct RequestLimitExceeded {
    /// The limit.
    pub max: u32,
}

/// The header each request carries, unless the plugin sets it: `<key>:<n>` for its `n`th
/// request, the same when the step runs again after a crash.
pub const IDEMPOTENCY_HEADER: &str = "Idempotency-Key";

/// Outbound HTTP state of one execution.
pub struct HttpCap {
    client: HttpClient,
    policy: SharedPolicy,
    /// `participant:step`, or `None` to send no idempotency keys.
    idempotency_key: Option<String>,
    sent: u32,
    pub(crate) over_limit: bool,
    /// Requests refused by the policy, for the journey.
    pub(crate) denials: Vec<String>,
    /// Every request sent through `http.send`, in order.
    pub(crate) requests: Vec<RequestRecord>,
}

/// One request a plugin sent, for the journey and `flowhost plugins run`: the journey's own
/// record of a request.
pub use flowhost_types::participant::HttpRequestRecord as RequestRecord;

impl HttpCap {
    /// A fresh budget under `policy`, sending through `client`.
    pub fn new(client: HttpClient, policy: SharedPolicy) -> Self {
        HttpCap {
            client,
            policy,
            idempotency_key: None,
            sent: 0,
            over_limit: false,
            denials: Vec::new(),
            requests: Vec::new(),
        }
    }

    /// Each request gets `Idempotency-Key: <key>:<n>` unless the plugin sets that header.
    pub fn with_idempotency_key(mut self, key: Option<String>) -> Self {
        self.idempotency_key = key;
        self
    }

    /// The key of the request just counted, if it should carry one.
    fn next_key(&self, has_header: bool) -> Option<String> {
        let key = self.idempotency_key.as_ref()?;
        (!has_header).then(|| format!("{key}:{}", self.sent))
    }

    /// Requests sent so far.
    pub fn sent(&self) -> u32 {
        self.sent
    }

    fn take_budget(&mut self) -> Result<(), RequestLimitExceeded> {
        if self.sent >= self.policy.max_requests {
            self.over_limit = true;
            return Err(RequestLimitExceeded {
                max: self.policy.max_requests,
            });
        }
        self.sent += 1;
        Ok(())
    }

    /// Sends a buffered request. The outer error is the request budget breach (a trap).
    pub async fn send(
        &mut self,
        method: String,
        url: String,
        mut headers: Vec<(String, String)>,
        body: Option<Vec<u8>>,
        timeout_ms: Option<u32>,
    ) -> Result<Result<BufferedResponse, OutboundError>, RequestLimitExceeded> {
        self.take_budget()?;
        let set = headers
            .iter()
            .any(|(name, _)| name.eq_ignore_ascii_case(IDEMPOTENCY_HEADER));
        if let Some(key) = self.next_key(set) {
            headers.push((IDEMPOTENCY_HEADER.to_owned(), key));
        }
        let (shown_method, shown_url) = (shown(&method), shown(&url));
        let request = BufferedRequest {
            method,
            url,
            headers,
            body,
            timeout: timeout_ms
                .map(|ms| Duration::from_millis(ms.into()))
                .unwrap_or(DEFAULT_TIMEOUT),
            // A plugin sees redirects and decides itself.
            max_redirects: 0,
        };
        let started = std::time::Instant::now();
        let result = outbound::send_buffered(&self.client, &self.policy, request).await;
        if let Err(OutboundError::Denied(reason)) = &result {
            // Refused, not sent: the journey says so as a refusal.
            self.denials.push(shown(reason));
            return Ok(result);
        }
        self.requests.push(RequestRecord {
            method: shown_method,
            url: shown_url,
            status: result.as_ref().ok().map(|r| r.status),
            error: result.as_ref().err().map(|e| shown(&e.to_string())),
            duration_ms: started.elapsed().as_secs_f64() * 1000.0,
        });
        Ok(result)
    }
}

type WasiBody = wasmtime_wasi_http::WasiBody;
type IoFuture = Box<dyn Future<Output = Result<(), WasiHttpError>> + Send>;

impl WasiHttpHooks for HttpCap {
    fn send_request(
        &mut self,
        mut request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        fut: IoFuture,
    ) -> Box<dyn Future<Output = Result<(http::Response<WasiBody>, IoFuture), WasiHttpError>> + Send>
    {
        drop(fut);
        let verdict = match self.take_budget() {
            Err(e) => Err(e.to_string()),
            Ok(()) => outbound::check(&self.client, &self.policy, request.uri())
                .map_err(|e| e.to_string()),
        };
        if let Err(reason) = &verdict {
            self.denials.push(format!("wasi:http: {}", shown(reason)));
        }
        let set = request.headers().contains_key(IDEMPOTENCY_HEADER);
        if let Some(key) = self.next_key(set)
            && let Ok(value) = http::HeaderValue::from_str(&key)
        {
            request.headers_mut().insert(IDEMPOTENCY_HEADER, value);
        }
        let max = self.policy.max_response_bytes;
        let client = self.client.clone();
        let first_byte = options.and_then(|o| o.first_byte_timeout);
        Box::new(async move {
            if verdict.is_err() {
                return Err(WasiHttpError::HttpRequestDenied);
            }
            let request = request.map(|body| {
                body.map_err(|e| Box::new(e) as Box<dyn std::error::Error + Send + Sync>)
                    .boxed_unsync()
            });
            let send = client.send(request);
            let response = match first_byte {
                Some(t) => tokio::time::timeout(t, send)
                    .await
                    .map_err(|_| WasiHttpError::ConnectionReadTimeout)?,
                None => send.await,
            }
            .map_err(|e| match e {
                OutboundError::Denied(_) => WasiHttpError::HttpRequestDenied,
                OutboundError::Timeout => WasiHttpError::ConnectionTimeout,
                other => WasiHttpError::InternalError(Some(other.to_string())),
            })?;
            let response = response.map(|body| {
                outbound::limit_body(body, max)
                    .map_err(|e| match e {
                        BodyError::TooLarge(max) => WasiHttpError::HttpResponseBodySize(Some(max)),
                        other => WasiHttpError::InternalError(Some(other.to_string())),
                    })
                    .boxed_unsync()
            });
            // The pooled client drives the connection itself.
            let io: IoFuture = Box::new(async { Ok(()) });
            Ok((response, io))
        })
    }
}
