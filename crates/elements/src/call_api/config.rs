//! What a Call API element's configuration says, and every check of it, each at its path
//! (`config.url`, `config.response.body.points`, …), before the flow can run.

use super::*;

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
    /// `true` (the default): `Idempotency-Key`; a header name; `false`: none.
    #[serde(default)]
    idempotency_key: Option<KeyHeader>,
}

/// `idempotency_key`: on, off, or the header to send the key in.
#[derive(Deserialize)]
#[serde(untagged)]
enum KeyHeader {
    On(bool),
    Named(String),
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
pub(super) enum BodyFormat {
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
            let message = match shared.unset.get(name) {
                Some(env) => format!(
                    "secret {name:?} is read from the environment variable {env}, which is not set; export it where flowhost runs"
                ),
                None => format!(
                    "secret {name:?} is not configured; the operator adds it under [call_api.secrets] in flowhost.toml"
                ),
            };
            issues.push(Issue::new(path, message));
        }
    }
}

impl ElementType for CallApiType {
    fn run_background(&self, work: Value) -> BoxFuture<'static, BackgroundReport> {
        background::send(self.shared.clone(), work)
    }

    fn build(&self, def: &ElementDef) -> Result<Box<dyn Element>, Vec<Issue>> {
        // What reads is checked too, so one bad field does not hide the others' problems.
        let (config, mut issues) = parse_config_leniently::<Config>(def);
        let Some(config) = config else {
            return Err(issues);
        };
        let shared = &self.shared;

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
        let idempotency_header = match &config.idempotency_key {
            None | Some(KeyHeader::On(true)) => Some(IDEMPOTENCY_HEADER.to_owned()),
            Some(KeyHeader::On(false)) => None,
            Some(KeyHeader::Named(name)) => {
                if http::HeaderName::from_bytes(name.as_bytes()).is_err() {
                    issues.push(Issue::new(
                        "config.idempotency_key",
                        format!("{name:?} is not a valid header name; write true, false or a header name such as \"Idempotency-Key\""),
                    ));
                }
                Some(name.clone())
            }
        };
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
        }

        let window = match &config.schedule.window {
            Some(w) => match Window::new(w) {
                Ok(w) => Some(w),
                Err(problems) => {
                    issues.extend(problems.into_iter().map(|(field, e)| {
                        Issue::new(format!("config.schedule.window.{field}"), e)
                    }));
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
            idempotency_header,
            connected: def.exits.keys().cloned().collect(),
        }))
    }
}
