//! `call-api`: sends an HTTP request built from flow data and saves the response into flow
//! variables that steer the rest of the flow.
//!
//! ```json
//! { "id": "crm", "type": "call-api",
//!   "config": {
//!     "url": "https://crm.example.com/contacts/{{person.externalId}}/points",
//!     "method": "POST",
//!     "headers": { "Authorization": "Bearer {{secret.crm_token}}",
//!                  "Content-Type": "application/json" },
//!     "body": { "order": "{{order_id}}", "channel": "sms" },
//!     "response": { "status": "crm_status",
//!                   "headers": { "request_id": "X-Request-Id" },
//!                   "body": { "points": "$.loyalty.points" } },
//!     "retry": { "max_attempts": 3 },
//!     "schedule": { "window": { "start": "09:00", "end": "17:00",
//!                               "time_zone": "Europe/Zagreb", "days": ["mon", "fri"] },
//!                   "rate": { "requests": 100, "per": "minute" } } },
//!   "exits": { "2xx": "thanks", "4xx": "fix-data", "error": "agent" } }
//! ```
//!
//! Exits, first match wins: a 2XX response takes `2xx`; a 4XX takes `4xx` and a 5XX takes
//! `5xx` when those exits are connected; everything else (network error, timeout, TLS, DNS,
//! a refused destination, any other status, a missing placeholder value) takes `error`.
//! With `"wait_for_response": false` the element has the exits `next` (taken at once; the
//! request completes in the background and its result is added to the journey) and `error`.
//!
//! Placeholders follow [`flowhost_flow::template`]. No header is added that the flow does not set,
//! except what HTTP itself needs (`Host`, `Content-Length`). A body is sent as JSON, or as a
//! form when the `Content-Type` header is `application/x-www-form-urlencoded`.

mod background;
mod config;
mod request;
mod response;
mod schedule;
mod settings;

pub use settings::CallApiConfig;

use super::{
    BackgroundReport, BoxFuture, Element, ElementType, StepInput, StepOutcome, StepResult,
    parse_config_leniently,
};
use config::BodyFormat;
use flowhost_flow::jsonpath::JsonPath;
use flowhost_flow::template::{JsonTemplate, Ref, Scope, Template, TemplateError};
use flowhost_flow::{ElementDef, Issue};
use flowhost_outbound::secrets::Secrets;
use flowhost_outbound::{
    self as outbound, BufferedRequest, BufferedResponse, HostPattern, HttpClient, OutboundError,
    OutboundPolicy,
};
use flowhost_plugin_host::capabilities::{IDEMPOTENCY_HEADER, VariableLimits};
use flowhost_store::{ElementState, QueueStore};
use flowhost_types::clock::Millis;
use flowhost_types::log::{LogLevel, LogLine};
use flowhost_types::participant::HttpRequestRecord;
use schedule::{Retry, Window, WindowConfig, parse_retry_after};
use serde::Deserialize;
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Exit for a 2XX response.
pub const EXIT_2XX: &str = "2xx";
/// Exit for a 4XX response, when connected.
pub const EXIT_4XX: &str = "4xx";
/// Exit for a 5XX response, when connected.
pub const EXIT_5XX: &str = "5xx";
/// Exit taken at once when the element does not wait for the response.
pub const EXIT_NEXT: &str = "next";
const EXIT_ERROR: &str = super::ERROR_EXIT;
/// The reason participants wait in the sending-speed queue, for
/// [`Engine::waiting_count`](flowhost_engine::Engine::waiting_count).
pub const WAITING_QUEUED: &str = "queued";
/// The reason participants wait for the delivery window to open.
pub const WAITING_WINDOW: &str = "window";
/// The reason participants wait between attempts.
pub const WAITING_RETRY: &str = "retry";

const DEFAULT_TIMEOUT_MS: u64 = 10_000;
const METHODS: [&str; 6] = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"];
const FORM: &str = "application/x-www-form-urlencoded";

/// Operator settings shared by every Call API element.
struct Shared {
    client: HttpClient,
    /// Where sending-speed slots are taken, shared by every node using the store.
    queues: Arc<dyn QueueStore>,
    policy: OutboundPolicy,
    secrets: Secrets,
    /// Secrets configured from environment variables that are not set, with the variable.
    unset: BTreeMap<String, String>,
    max_redirects: u8,
    variable_limits: VariableLimits,
}

impl Shared {
    fn redact_logs(&self, logs: &mut [LogLine]) {
        for line in logs {
            self.secrets.redact_in_place(&mut line.message);
        }
    }

    fn redact_requests(&self, requests: &mut [HttpRequestRecord]) {
        for r in requests {
            self.secrets.redact_in_place(&mut r.url);
            if let Some(e) = &mut r.error {
                self.secrets.redact_in_place(e);
            }
        }
    }
}

/// The Call API element type, holding the operator's `[call_api]` settings.
pub struct CallApiType {
    shared: Arc<Shared>,
}

/// The operator's `[call_api]` section could not be used.
#[derive(Debug, thiserror::Error)]
#[error(
    "call_api.allow_hosts: {0:?} is not a host pattern; write api.example.com, *.example.com, host:port or *"
)]
pub struct CallApiConfigError(String);

impl CallApiType {
    /// A Call API type sending through `client` under the operator's `config`, taking
    /// sending-speed slots from `queues`.
    pub fn new(
        client: HttpClient,
        queues: Arc<dyn QueueStore>,
        config: &CallApiConfig,
    ) -> Result<Self, CallApiConfigError> {
        let granted = config
            .allow_hosts
            .iter()
            .map(|h| HostPattern::parse(h).ok_or_else(|| CallApiConfigError(h.clone())))
            .collect::<Result<_, _>>()?;
        Ok(CallApiType {
            shared: Arc::new(Shared {
                client,
                queues,
                policy: OutboundPolicy {
                    subject: "Call API".into(),
                    declared: None,
                    granted,
                    max_requests: u32::MAX,
                    max_response_bytes: config.max_response_bytes,
                },
                secrets: Secrets::from(config.secret_values()),
                unset: config.unset_secrets(),
                max_redirects: config.max_redirects,
                variable_limits: config.variable_limits,
            }),
        })
    }
}

enum Body {
    None,
    Json(JsonTemplate),
    Form(Vec<(String, JsonTemplate)>),
}

struct Mapping {
    status: Option<String>,
    headers: Vec<(String, String)>,
    body: Vec<(String, JsonPath)>,
    whole_body: Option<(String, BodyFormat)>,
}

struct CallApi {
    shared: Arc<Shared>,
    url: Template,
    method: http::Method,
    headers: Vec<(String, Template)>,
    body: Body,
    wait: bool,
    timeout: Duration,
    mapping: Mapping,
    window: Option<Window>,
    /// Milliseconds between two sends.
    rate: Option<(Millis, String)>,
    retry: Option<Retry>,
    /// The header the request's idempotency key goes in, unless `headers` sets it.
    idempotency_header: Option<String>,
    connected: BTreeSet<String>,
}

fn info(message: String) -> LogLine {
    LogLine {
        level: LogLevel::Info,
        message,
    }
}

fn warn(message: String) -> LogLine {
    LogLine {
        level: LogLevel::Warn,
        message,
    }
}

/// Why a participant waits in a Call API element: kept as its element state, so analytics
/// count the queue and the participants outside the delivery window.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Waiting {
    /// Outside the delivery window, until it opens.
    Window,
    /// In the sending-speed queue, holding a slot.
    Queued,
    /// Until the next attempt.
    Retry(RetryState),
}

/// Between attempts: the data kept with the `retry` reason.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, Deserialize)]
struct RetryState {
    /// The attempt that failed, from 1.
    attempt: u32,
    /// When the first attempt was made (`max_total_ms` counts from it).
    first_at: Millis,
    /// The first attempt's idempotency key, which every attempt sends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    key: Option<String>,
}

impl Waiting {
    fn state(&self) -> ElementState {
        match self {
            Waiting::Window => ElementState::reason(WAITING_WINDOW),
            Waiting::Queued => ElementState::reason(WAITING_QUEUED),
            Waiting::Retry(retry) => ElementState::new(WAITING_RETRY, retry),
        }
    }

    fn from_state(state: &ElementState) -> Option<Waiting> {
        match state.reason.as_str() {
            WAITING_WINDOW => Some(Waiting::Window),
            WAITING_QUEUED => Some(Waiting::Queued),
            WAITING_RETRY => state.data_as().map(Waiting::Retry),
            _ => None,
        }
    }
}

impl CallApi {
    fn waiting(&self, until: Millis, why: Waiting, log: String) -> StepResult {
        let mut r = StepResult::new(StepOutcome::Wait(until));
        r.state = Some(why.state());
        r.logs.push(info(log));
        r
    }

    async fn step(&self, input: &StepInput<'_>) -> StepResult {
        let waited = input
            .state
            .filter(|_| input.resumed)
            .and_then(Waiting::from_state);
        if let Some(Waiting::Retry(retry)) = waited {
            let key = retry.key.unwrap_or_else(|| input.idempotency_key(1));
            return self
                .attempt(input, retry.attempt + 1, retry.first_at, key)
                .await;
        }
        if let Some(w) = &self.window
            && !w.contains(input.now)
        {
            return match w.next_open(input.now) {
                Some(open) => self.waiting(
                    open,
                    Waiting::Window,
                    format!(
                        "outside the delivery window; waits until it opens at {}",
                        w.local(open)
                    ),
                ),
                None => StepResult::new(StepOutcome::Failed(
                    "the delivery window never opens; check schedule.window.days".into(),
                )),
            };
        }
        // A participant coming back from the queue already holds its slot.
        if let Some((interval, rate)) = &self.rate
            && waited != Some(Waiting::Queued)
        {
            let queue = format!("call-api:{}:{}", input.flow_id, input.element_id);
            match self
                .shared
                .queues
                .take_slot(&queue, &input.idempotency_base(), input.now, *interval)
                .await
            {
                Ok(slot) if slot > input.now => {
                    return self.waiting(
                        slot,
                        Waiting::Queued,
                        format!(
                            "sending speed {rate}: queued, sends in {} ms",
                            slot - input.now
                        ),
                    );
                }
                Ok(_) => {}
                Err(e) => return StepResult::new(StepOutcome::Failed(e.to_string())),
            }
        }
        self.attempt(input, 1, input.now, input.idempotency_key(1))
            .await
    }

    /// Sends attempt `attempt` of the request, with idempotency key `key` (the first
    /// attempt's: every attempt, and a re-run after a crash, sends the same).
    async fn attempt(
        &self,
        input: &StepInput<'_>,
        attempt: u32,
        first_at: Millis,
        key: String,
    ) -> StepResult {
        let scope =
            Scope::new(input.variables, input.person).with_secrets(self.shared.secrets.as_map());
        let mut request = match self.render(&scope) {
            Ok(r) => r,
            Err(e) => {
                return StepResult::new(StepOutcome::Failed(format!("request not sent: {e}")));
            }
        };
        if let Some(header) = &self.idempotency_header
            && !request
                .headers
                .iter()
                .any(|(name, _)| name.eq_ignore_ascii_case(header))
        {
            request.headers.push((header.clone(), key.clone()));
        }
        let summary = format!("{} {}", request.method, request.url);
        if !self.wait {
            let mut result = StepResult::exit(EXIT_NEXT);
            result.logs.push(info(format!(
                "{summary}: sent once this step is saved, without waiting for the response"
            )));
            result.background = Some(background::keep(
                &request,
                self.retry.as_ref(),
                &self.shared.secrets,
            ));
            return result;
        }

        let (method, url) = (request.method.to_string(), request.url.to_string());
        let started = Instant::now();
        let outcome =
            outbound::send_buffered(&self.shared.client, &self.shared.policy, request).await;
        let elapsed = started.elapsed();
        let ms = elapsed.as_millis();
        let sent = sent_record(method, url, &outcome, elapsed);
        let idempotent = matches!(
            self.method,
            http::Method::GET | http::Method::HEAD | http::Method::PUT | http::Method::DELETE
        );
        let retryable = background::retryable(idempotent, &outcome);
        let what = match &outcome {
            Ok(r) => format!("HTTP {}", r.status),
            Err(e) => e.to_string(),
        };
        let line = format!("attempt {attempt}: {summary}: {what} in {ms} ms");
        if retryable && let Some(retry) = &self.retry {
            let retry_after = outcome
                .as_ref()
                .ok()
                .and_then(|r| r.header("retry-after"))
                .and_then(|v| parse_retry_after(v, input.now));
            match retry.next_delay(attempt, first_at, input.now, retry_after) {
                Some(delay) => {
                    let how = if retry_after.is_some() {
                        " (Retry-After)"
                    } else {
                        ""
                    };
                    let mut r = self.waiting(
                        input.now + delay,
                        Waiting::Retry(RetryState {
                            attempt,
                            first_at,
                            key: Some(key),
                        }),
                        format!("{line}; retrying in {delay} ms{how}"),
                    );
                    r.requests.push(sent);
                    return r;
                }
                None => {
                    let mut r = self.finish(outcome, &summary, attempt);
                    r.logs.insert(
                        0,
                        warn(format!(
                            "{line}; no retry left (max_attempts {}, max_total_ms {})",
                            retry.max_attempts, retry.max_total_ms
                        )),
                    );
                    r.requests.push(sent);
                    return r;
                }
            }
        }
        let mut r = self.finish(outcome, &summary, attempt);
        r.logs.insert(0, info(line));
        r.requests.push(sent);
        r
    }
}

/// The journey's record of one request sent (its URL redacted with the rest of the step).
pub(crate) fn sent_record(
    method: String,
    url: String,
    outcome: &Result<BufferedResponse, OutboundError>,
    elapsed: Duration,
) -> HttpRequestRecord {
    HttpRequestRecord {
        method,
        url,
        status: outcome.as_ref().ok().map(|r| r.status),
        error: outcome.as_ref().err().map(|e| e.to_string()),
        duration_ms: elapsed.as_secs_f64() * 1000.0,
    }
}

impl Element for CallApi {
    /// A sending speed's queue is first in, first out.
    fn resumes_in_order(&self) -> bool {
        self.rate.is_some()
    }

    fn exits(&self) -> Vec<String> {
        if self.wait {
            vec![
                EXIT_2XX.into(),
                EXIT_4XX.into(),
                EXIT_5XX.into(),
                EXIT_ERROR.into(),
            ]
        } else {
            vec![EXIT_NEXT.into(), EXIT_ERROR.into()]
        }
    }

    fn run<'a>(&'a self, input: StepInput<'a>) -> BoxFuture<'a, StepResult> {
        Box::pin(async move {
            let mut r = self.step(&input).await;
            let shared = &self.shared;
            // What came from outside fits the limits the operator set for variables.
            if let Err(limit) = shared.variable_limits.check_sets(input.variables, &r.set) {
                r.set.clear();
                r.outcome = StepOutcome::Failed(format!("response mapping: {limit}"));
            }
            // Secrets never reach journeys, variables or messages.
            shared.redact_logs(&mut r.logs);
            shared.redact_requests(&mut r.requests);
            for v in r.set.values_mut() {
                shared.secrets.redact_value(v);
            }
            if let Some(d) = &mut r.data {
                shared.secrets.redact_value(d);
            }
            if let StepOutcome::Failed(reason) = &mut r.outcome {
                shared.secrets.redact_in_place(reason);
            }
            r
        })
    }

    fn warnings(&self) -> Vec<Issue> {
        let mut warnings = Vec::new();
        if self.wait && !self.connected.contains(EXIT_ERROR) {
            warnings.push(Issue::new(
                "exits",
                "no \"error\" exit: a failed request (network error, timeout, or a status no exit takes) stops the participant here; connect exits.error",
            ));
        }
        let typed = self
            .headers
            .iter()
            .any(|(name, _)| name.eq_ignore_ascii_case("content-type"));
        if matches!(self.body, Body::Json(_)) && !typed {
            warnings.push(Issue::new(
                "config.headers",
                "the JSON body is sent without a Content-Type header, and most servers then refuse it; add \"Content-Type\": \"application/json\"",
            ));
        }
        warnings
    }
}
