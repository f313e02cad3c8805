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
//! Placeholders follow [`crate::template`]. No header is added that the flow does not set,
//! except what HTTP itself needs (`Host`, `Content-Length`). A body is sent as JSON, or as a
//! form when the `Content-Type` header is `application/x-www-form-urlencoded`.

mod schedule;

use super::{
    BackgroundReport, BoxFuture, Element, ElementType, StepInput, StepOutcome, StepResult,
    parse_config,
};
use crate::clock::Millis;
use crate::config::CallApiConfig;
use crate::flow::{ElementDef, Issue};
use crate::jsonpath::JsonPath;
use crate::outbound::{
    self, BufferedRequest, BufferedResponse, HostPattern, HttpClient, OutboundError, OutboundPolicy,
};
use crate::plugin::capabilities::{LogLevel, LogLine};
use crate::secrets::Secrets;
use crate::template::{JsonTemplate, Ref, Scope, Template, TemplateError};
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

const DEFAULT_TIMEOUT_MS: u64 = 10_000;
const METHODS: [&str; 6] = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"];
const FORM: &str = "application/x-www-form-urlencoded";

/// Operator settings shared by every Call API element.
struct Shared {
    client: HttpClient,
    policy: OutboundPolicy,
    secrets: Secrets,
    max_redirects: u8,
}

impl Shared {
    fn redact_logs(&self, logs: &mut [LogLine]) {
        for line in logs {
            self.secrets.redact_in_place(&mut line.message);
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
    /// A Call API type sending through `client` under the operator's `config`.
    pub fn new(client: HttpClient, config: &CallApiConfig) -> Result<Self, CallApiConfigError> {
        let granted = config
            .allow_hosts
            .iter()
            .map(|h| HostPattern::parse(h).ok_or_else(|| CallApiConfigError(h.clone())))
            .collect::<Result<_, _>>()?;
        Ok(CallApiType {
            shared: Arc::new(Shared {
                client,
                policy: OutboundPolicy {
                    subject: "Call API".into(),
                    declared: None,
                    granted,
                    max_requests: u32::MAX,
                    max_response_bytes: config.max_response_bytes,
                },
                secrets: Secrets::from(config.secret_values()),
                max_redirects: config.max_redirects,
            }),
        })
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    url: String,
    #[serde(default = "default_method")]
    method: String,
    #[serde(default)]
    headers: BTreeMap<String, String>,
    #[serde(default)]
    body: Option<Value>,
    #[serde(default = "yes")]
    wait_for_response: bool,
    #[serde(default)]
    timeout_ms: Option<u64>,
    #[serde(default)]
    response: ResponseConfig,
    #[serde(default)]
    schedule: ScheduleConfig,
    #[serde(default)]
    retry: Option<Retry>,
}

fn default_method() -> String {
    "GET".into()
}

fn yes() -> bool {
    true
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ResponseConfig {
    /// Variable for the status code.
    status: Option<String>,
    /// Variable → response header name.
    #[serde(default)]
    headers: BTreeMap<String, String>,
    /// Variable → JSONPath into the body.
    #[serde(default)]
    body: BTreeMap<String, String>,
    /// Variable for the whole body.
    whole_body: Option<WholeBody>,
}

impl ResponseConfig {
    fn is_empty(&self) -> bool {
        self.status.is_none()
            && self.headers.is_empty()
            && self.body.is_empty()
            && self.whole_body.is_none()
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WholeBody {
    variable: String,
    #[serde(default, rename = "as")]
    format: BodyFormat,
}

#[derive(Clone, Copy, Default, Deserialize, PartialEq)]
#[serde(rename_all = "lowercase")]
enum BodyFormat {
    /// Parsed JSON (text when the body is not JSON).
    #[default]
    Json,
    /// The body as text.
    Text,
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ScheduleConfig {
    window: Option<WindowConfig>,
    rate: Option<RateConfig>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RateConfig {
    requests: u32,
    per: Per,
}

#[derive(Clone, Copy, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Per {
    Minute,
    Hour,
    Day,
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
    connected: BTreeSet<String>,
}

fn check_secrets<'a>(
    shared: &Shared,
    refs: impl IntoIterator<Item = &'a Ref>,
    path: &str,
    issues: &mut Vec<Issue>,
) {
    for r in refs {
        if let Ref::Secret(name) = r
            && !shared.secrets.contains(name)
        {
            issues.push(Issue::new(
                path,
                format!(
                    "secret {name:?} is not configured; the operator adds it under [call_api.secrets] in flowhost.toml"
                ),
            ));
        }
    }
}

impl ElementType for CallApiType {
    fn build(&self, def: &ElementDef) -> Result<Box<dyn Element>, Vec<Issue>> {
        let config: Config = parse_config(def)?;
        let shared = &self.shared;
        let mut issues = Vec::new();

        let url = Template::parse(&config.url).map_err(|e| vec![Issue::new("config.url", e)])?;
        let lower = config.url.trim_start().to_ascii_lowercase();
        if !(lower.starts_with("http://")
            || lower.starts_with("https://")
            || lower.starts_with("{{"))
        {
            issues.push(Issue::new(
                "config.url",
                format!("{:?} is not an http:// or https:// URL", config.url),
            ));
        }
        check_secrets(shared, url.refs(), "config.url", &mut issues);

        let method_name = config.method.to_ascii_uppercase();
        let method = if METHODS.contains(&method_name.as_str()) {
            http::Method::from_bytes(method_name.as_bytes()).expect("known methods parse")
        } else {
            issues.push(Issue::new(
                "config.method",
                format!(
                    "{:?} is not supported; use {}",
                    config.method,
                    METHODS.join(", ")
                ),
            ));
            http::Method::GET
        };

        let mut headers = Vec::new();
        for (name, value) in &config.headers {
            let path = format!("config.headers.{name}");
            if http::HeaderName::from_bytes(name.as_bytes()).is_err() {
                issues.push(Issue::new(&path, "is not a valid header name"));
                continue;
            }
            match Template::parse(value) {
                Ok(t) => {
                    check_secrets(shared, t.refs(), &path, &mut issues);
                    headers.push((name.clone(), t));
                }
                Err(e) => issues.push(Issue::new(&path, e)),
            }
        }
        let form = config.headers.iter().any(|(k, v)| {
            k.eq_ignore_ascii_case("content-type")
                && v.trim().to_ascii_lowercase().starts_with(FORM)
        });

        let body = match &config.body {
            None => Body::None,
            Some(_) if method == http::Method::HEAD => {
                issues.push(Issue::new(
                    "config.body",
                    "a HEAD request has no body; remove it",
                ));
                Body::None
            }
            Some(Value::Object(fields)) if form => {
                let mut pairs = Vec::new();
                for (k, v) in fields {
                    match JsonTemplate::parse(v, &format!("config.body.{k}")) {
                        Ok(t) => {
                            check_secrets(
                                shared,
                                t.refs(),
                                &format!("config.body.{k}"),
                                &mut issues,
                            );
                            pairs.push((k.clone(), t));
                        }
                        Err((path, e)) => issues.push(Issue::new(path, e)),
                    }
                }
                Body::Form(pairs)
            }
            Some(_) if form => {
                issues.push(Issue::new(
                    "config.body",
                    "a form body (Content-Type application/x-www-form-urlencoded) must be key-value pairs: a JSON object",
                ));
                Body::None
            }
            Some(value) => match JsonTemplate::parse(value, "config.body") {
                Ok(t) => {
                    check_secrets(shared, t.refs(), "config.body", &mut issues);
                    Body::Json(t)
                }
                Err((path, e)) => {
                    issues.push(Issue::new(path, e));
                    Body::None
                }
            },
        };

        let timeout_ms = config.timeout_ms.unwrap_or(DEFAULT_TIMEOUT_MS);
        if !(1..=300_000).contains(&timeout_ms) {
            issues.push(Issue::new(
                "config.timeout_ms",
                "must be between 1 and 300000 (5 minutes)",
            ));
        }

        let mut body_paths = Vec::new();
        for (var, expr) in &config.response.body {
            match JsonPath::parse(expr) {
                Ok(p) => body_paths.push((var.clone(), p)),
                Err(e) => issues.push(Issue::new(format!("config.response.body.{var}"), e)),
            }
        }
        for (var, header) in &config.response.headers {
            if http::HeaderName::from_bytes(header.as_bytes()).is_err() {
                issues.push(Issue::new(
                    format!("config.response.headers.{var}"),
                    format!("{header:?} is not a header name"),
                ));
            }
        }

        if !config.wait_for_response {
            if !config.response.is_empty() {
                issues.push(Issue::new(
                    "config.response",
                    "response mappings need \"wait_for_response\": true; without waiting there is no response to map",
                ));
            }
            for exit in [EXIT_2XX, EXIT_4XX, EXIT_5XX] {
                if def.exits.contains_key(exit) {
                    issues.push(Issue::new(
                        format!("exits.{exit}"),
                        format!(
                            "status exits need \"wait_for_response\": true; without waiting the element leaves by \"{EXIT_NEXT}\""
                        ),
                    ));
                }
            }
            if config.retry.is_some() {
                issues.push(Issue::new(
                    "config.retry",
                    "retries need \"wait_for_response\": true",
                ));
            }
        }

        let window = match &config.schedule.window {
            Some(w) => match Window::new(w) {
                Ok(w) => Some(w),
                Err((field, e)) => {
                    issues.push(Issue::new(format!("config.schedule.window.{field}"), e));
                    None
                }
            },
            None => None,
        };
        let rate = match &config.schedule.rate {
            Some(r) if r.requests == 0 => {
                issues.push(Issue::new(
                    "config.schedule.rate.requests",
                    "must be at least 1",
                ));
                None
            }
            Some(r) => {
                let (period, word) = match r.per {
                    Per::Minute => (60_000, "minute"),
                    Per::Hour => (3_600_000, "hour"),
                    Per::Day => (86_400_000, "day"),
                };
                Some((
                    (period + Millis::from(r.requests) - 1) / Millis::from(r.requests),
                    format!("{} per {word}", r.requests),
                ))
            }
            None => None,
        };
        if let Some(r) = &config.retry
            && (r.max_attempts == 0 || r.max_attempts > 20 || r.initial_backoff_ms == 0)
        {
            issues.push(Issue::new(
                "config.retry",
                "max_attempts must be 1 to 20 and initial_backoff_ms above 0",
            ));
        }

        if !issues.is_empty() {
            return Err(issues);
        }
        Ok(Box::new(CallApi {
            shared: self.shared.clone(),
            url,
            method,
            headers,
            body,
            wait: config.wait_for_response,
            timeout: Duration::from_millis(timeout_ms),
            mapping: Mapping {
                status: config.response.status,
                headers: config.response.headers.into_iter().collect(),
                body: body_paths,
                whole_body: config.response.whole_body.map(|w| (w.variable, w.format)),
            },
            window,
            rate,
            retry: config.retry,
            connected: def.exits.keys().cloned().collect(),
        }))
    }
}

/// Form encoding (`application/x-www-form-urlencoded`).
fn form_encode(pairs: &[(String, String)]) -> String {
    fn enc(s: &str, out: &mut String) {
        for b in s.bytes() {
            match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'*' => {
                    out.push(b as char)
                }
                b' ' => out.push('+'),
                _ => out.push_str(&format!("%{b:02X}")),
            }
        }
    }
    let mut out = String::new();
    for (i, (k, v)) in pairs.iter().enumerate() {
        if i > 0 {
            out.push('&');
        }
        enc(k, &mut out);
        out.push('=');
        enc(v, &mut out);
    }
    out
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

impl CallApi {
    fn render(&self, scope: &Scope<'_>) -> Result<BufferedRequest, TemplateError> {
        let url = self.url.render(scope)?;
        let mut headers = Vec::with_capacity(self.headers.len());
        for (name, value) in &self.headers {
            headers.push((name.clone(), value.render(scope)?));
        }
        let body = match &self.body {
            Body::None => None,
            Body::Json(t) => {
                Some(serde_json::to_vec(&t.render(scope)?).expect("JSON values serialize"))
            }
            Body::Form(pairs) => {
                let mut rendered = Vec::with_capacity(pairs.len());
                for (k, v) in pairs {
                    let text = match v.render(scope)? {
                        Value::String(s) => s,
                        other => other.to_string(),
                    };
                    rendered.push((k.clone(), text));
                }
                Some(form_encode(&rendered).into_bytes())
            }
        };
        Ok(BufferedRequest {
            method: self.method.to_string(),
            url,
            headers,
            body,
            timeout: self.timeout,
            max_redirects: self.shared.max_redirects,
        })
    }

    fn waiting(&self, until: Millis, state: Value, log: String) -> StepResult {
        let mut r = StepResult::new(StepOutcome::Wait(until));
        r.state = Some(state);
        r.logs.push(info(log));
        r
    }

    async fn step(&self, input: &StepInput<'_>) -> StepResult {
        let kind = input
            .state
            .filter(|_| input.resumed)
            .and_then(|s| s["kind"].as_str());
        if kind == Some("retry") {
            let state = input.state.expect("retry state");
            let attempt = state["attempt"].as_u64().unwrap_or(1) as u32 + 1;
            let first_at = state["first_at"].as_i64().unwrap_or(input.now);
            return self.attempt(input, attempt, first_at).await;
        }
        if let Some(w) = &self.window
            && !w.contains(input.now)
        {
            return match w.next_open(input.now) {
                Some(open) => self.waiting(
                    open,
                    json!({"kind": "window"}),
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
            && kind != Some("queued")
        {
            let queue = format!("call-api:{}:{}", input.flow_id, input.element_id);
            match input.store.take_slot(&queue, input.now, *interval).await {
                Ok(slot) if slot > input.now => {
                    return self.waiting(
                        slot,
                        json!({"kind": "queued"}),
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
        self.attempt(input, 1, input.now).await
    }

    async fn attempt(&self, input: &StepInput<'_>, attempt: u32, first_at: Millis) -> StepResult {
        let scope =
            Scope::new(input.variables, input.person).with_secrets(self.shared.secrets.as_map());
        let request = match self.render(&scope) {
            Ok(r) => r,
            Err(e) => {
                return StepResult::new(StepOutcome::Failed(format!("request not sent: {e}")));
            }
        };
        let summary = format!("{} {}", request.method, request.url);
        if !self.wait {
            let shared = self.shared.clone();
            let mut result = StepResult::exit(EXIT_NEXT);
            result.logs.push(info(format!(
                "{summary}: sent without waiting for the response"
            )));
            result.background = Some(Box::pin(async move {
                let started = Instant::now();
                let outcome =
                    outbound::send_buffered(&shared.client, &shared.policy, request).await;
                let ms = started.elapsed().as_millis();
                let mut report = match outcome {
                    Ok(resp) => BackgroundReport {
                        logs: vec![info(format!(
                            "{summary}: HTTP {} in {ms} ms (background)",
                            resp.status
                        ))],
                        data: Some(json!({"request": summary, "status": resp.status})),
                        error: None,
                    },
                    Err(e) => BackgroundReport {
                        error: Some(format!("{summary} (background): {e}")),
                        ..Default::default()
                    },
                };
                shared.redact_logs(&mut report.logs);
                if let Some(d) = &mut report.data {
                    shared.secrets.redact_value(d);
                }
                report.error = report.error.map(|e| shared.secrets.redact(&e));
                report
            }));
            return result;
        }

        let started = Instant::now();
        let outcome =
            outbound::send_buffered(&self.shared.client, &self.shared.policy, request).await;
        let ms = started.elapsed().as_millis();
        let idempotent = matches!(
            self.method,
            http::Method::GET | http::Method::HEAD | http::Method::PUT | http::Method::DELETE
        );
        let retryable = match &outcome {
            Err(OutboundError::ConnectFailed(_)) => true,
            Ok(r) => idempotent && matches!(r.status, 429 | 503),
            Err(_) => false,
        };
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
                    return self.waiting(
                        input.now + delay,
                        json!({"kind": "retry", "attempt": attempt, "first_at": first_at}),
                        format!("{line}; retrying in {delay} ms{how}"),
                    );
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
                    return r;
                }
            }
        }
        let mut r = self.finish(outcome, &summary, attempt);
        r.logs.insert(0, info(line));
        r
    }

    /// Maps the response into variables and picks the exit.
    fn finish(
        &self,
        outcome: Result<BufferedResponse, OutboundError>,
        summary: &str,
        attempts: u32,
    ) -> StepResult {
        let response = match outcome {
            Ok(r) => r,
            Err(e) => {
                let mut r = StepResult::new(StepOutcome::Failed(format!("{summary}: {e}")));
                r.data = Some(json!({"request": summary, "attempts": attempts}));
                return r;
            }
        };
        let mut result = StepResult::new(StepOutcome::End);
        let m = &self.mapping;
        if let Some(var) = &m.status {
            result.set.insert(var.clone(), json!(response.status));
        }
        for (var, header) in &m.headers {
            let value = response.header(header).map(|v| Value::String(v.to_owned()));
            if value.is_none() {
                result.logs.push(warn(format!(
                    "{var} set to null: the response has no {header} header"
                )));
            }
            result.set.insert(var.clone(), value.unwrap_or(Value::Null));
        }
        let parsed: Option<Result<Value, String>> = (!m.body.is_empty()
            || m.whole_body
                .as_ref()
                .is_some_and(|(_, f)| *f == BodyFormat::Json))
        .then(|| {
            serde_json::from_slice(&response.body)
                .map_err(|e| format!("the response body is not JSON ({e})"))
        });
        for (var, path) in &m.body {
            let value = match parsed.as_ref().expect("parsed when body mappings exist") {
                Ok(doc) => path.select_scalar(doc),
                Err(e) => Err(e.clone()),
            };
            let value = value.unwrap_or_else(|why| {
                result.logs.push(warn(format!("{var} set to null: {why}")));
                Value::Null
            });
            result.set.insert(var.clone(), value);
        }
        if let Some((var, format)) = &m.whole_body {
            let text = || Value::String(String::from_utf8_lossy(&response.body).into_owned());
            let value = match (format, &parsed) {
                (BodyFormat::Json, Some(Ok(doc))) => doc.clone(),
                _ => text(),
            };
            result.set.insert(var.clone(), value);
        }
        result.data = Some(json!({
            "request": summary,
            "status": response.status,
            "attempts": attempts,
            "redirects": response.redirects,
        }));
        let status = response.status;
        result.outcome = match status {
            200..=299 => StepOutcome::Exit(EXIT_2XX.into()),
            400..=499 if self.connected.contains(EXIT_4XX) => StepOutcome::Exit(EXIT_4XX.into()),
            500..=599 if self.connected.contains(EXIT_5XX) => StepOutcome::Exit(EXIT_5XX.into()),
            _ => StepOutcome::Failed(format!(
                "{summary}: HTTP {status}{}",
                match status {
                    400..=599 => " and no exit for it is connected, so it counts as an error",
                    300..=399 => " (a redirect not followed)",
                    _ => "",
                }
            )),
        };
        result
    }
}

impl Element for CallApi {
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
            // Secrets never reach journeys, variables or messages.
            let shared = &self.shared;
            shared.redact_logs(&mut r.logs);
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
        if self.wait && !self.connected.contains(EXIT_ERROR) {
            vec![Issue::new(
                "exits",
                "no \"error\" exit: a failed request (network error, timeout, or a status no exit takes) stops the participant here; connect exits.error",
            )]
        } else {
            Vec::new()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::form_encode;

    #[test]
    fn form_encoding_escapes_reserved_characters() {
        let pairs = [
            ("name".to_owned(), "Ada Lovelace".to_owned()),
            ("q".to_owned(), "a&b=c/d+é".to_owned()),
        ];
        assert_eq!(
            form_encode(&pairs),
            "name=Ada+Lovelace&q=a%26b%3Dc%2Fd%2B%C3%A9"
        );
    }
}
