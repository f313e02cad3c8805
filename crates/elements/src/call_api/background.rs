//! Requests sent without waiting for the response (`"wait_for_response": false`): kept with
//! the step as what to send, secrets as `[secret:NAME]` markers, then sent once the step is
//! committed (again after a crash, with the same idempotency key), retried by the element's
//! `retry` rules, and reported in the journey.

use super::*;
use flowhost_types::clock::{Clock, SystemClock};

/// A request to send later, as the step keeps it.
#[derive(serde::Serialize, Deserialize)]
struct Later {
    method: String,
    url: String,
    headers: Vec<(String, String)>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    body: Option<String>,
    timeout_ms: u64,
    max_redirects: u8,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    retry: Option<Retry>,
}

/// What the step keeps to send `request` later: no secret values in it.
pub(super) fn keep(request: &BufferedRequest, retry: Option<&Retry>, secrets: &Secrets) -> Value {
    let later = Later {
        method: request.method.clone(),
        url: secrets.redact(&request.url),
        headers: request
            .headers
            .iter()
            .map(|(k, v)| (k.clone(), secrets.redact(v)))
            .collect(),
        body: request
            .body
            .as_ref()
            .map(|b| secrets.redact(&String::from_utf8_lossy(b))),
        timeout_ms: request.timeout.as_millis() as u64,
        max_redirects: request.max_redirects,
        retry: retry.cloned(),
    };
    serde_json::to_value(later).expect("JSON values serialize")
}

/// Sends what [`keep`] kept, retrying by its rules; the report for the journey, redacted.
pub(super) fn send(shared: Arc<Shared>, work: Value) -> BoxFuture<'static, BackgroundReport> {
    Box::pin(async move {
        let later: Later = match serde_json::from_value(work) {
            Ok(l) => l,
            Err(e) => {
                return BackgroundReport {
                    error: Some(format!("request not sent: it was kept unreadable ({e})")),
                    ..BackgroundReport::default()
                };
            }
        };
        let secrets = &shared.secrets;
        let summary = format!("{} {}", later.method, later.url);
        let request = BufferedRequest {
            method: later.method.clone(),
            url: secrets.restore(&later.url),
            headers: later
                .headers
                .iter()
                .map(|(k, v)| (k.clone(), secrets.restore(v)))
                .collect(),
            body: later.body.as_ref().map(|b| secrets.restore(b).into_bytes()),
            timeout: Duration::from_millis(later.timeout_ms),
            max_redirects: later.max_redirects,
        };
        let idempotent = matches!(later.method.as_str(), "GET" | "HEAD" | "PUT" | "DELETE");
        let first_at = SystemClock.now_ms();
        let mut report = BackgroundReport::default();
        for attempt in 1.. {
            let started = Instant::now();
            let outcome =
                outbound::send_buffered(&shared.client, &shared.policy, request.clone()).await;
            let elapsed = started.elapsed();
            let ms = elapsed.as_millis();
            report.requests.push(super::sent_record(
                later.method.clone(),
                later.url.clone(),
                &outcome,
                elapsed,
            ));
            let now = SystemClock.now_ms();
            let delay = match (&later.retry, retryable(idempotent, &outcome)) {
                (Some(retry), true) => {
                    let after = outcome
                        .as_ref()
                        .ok()
                        .and_then(|r| r.header("retry-after"))
                        .and_then(|v| parse_retry_after(v, now));
                    retry.next_delay(attempt, first_at, now, after)
                }
                _ => None,
            };
            let what = match &outcome {
                Ok(r) => format!("HTTP {}", r.status),
                Err(e) => e.to_string(),
            };
            if let Some(delay) = delay {
                report.logs.push(info(format!(
                    "attempt {attempt}: {summary}: {what} in {ms} ms (background); retrying in {delay} ms"
                )));
                tokio::time::sleep(Duration::from_millis(delay as u64)).await;
                continue;
            }
            match outcome {
                Ok(resp) => {
                    report.logs.push(info(format!(
                        "{summary}: HTTP {} in {ms} ms (background)",
                        resp.status
                    )));
                    report.data = Some(json!({
                        "request": summary,
                        "status": resp.status,
                        "attempts": attempt,
                    }));
                }
                Err(e) => report.error = Some(format!("{summary} (background): {e}")),
            }
            break;
        }
        shared.redact_logs(&mut report.logs);
        shared.redact_requests(&mut report.requests);
        if let Some(d) = &mut report.data {
            secrets.redact_value(d);
        }
        report.error = report.error.map(|e| secrets.redact(&e));
        report
    })
}

/// Whether an attempt that ended so may be tried again: nothing was sent, or an idempotent
/// request was told to come back (429, 503).
pub(super) fn retryable(
    idempotent: bool,
    outcome: &Result<BufferedResponse, OutboundError>,
) -> bool {
    match outcome {
        Err(OutboundError::ConnectFailed(_)) => true,
        Ok(r) => idempotent && matches!(r.status, 429 | 503),
        Err(_) => false,
    }
}
