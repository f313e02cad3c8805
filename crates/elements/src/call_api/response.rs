//! Reading the response into flow variables (headers, status, JSONPath, the whole body)
//! and choosing the exit, in the documented precedence.

use super::*;

impl CallApi {
    /// Maps the response into variables and picks the exit.
    pub(super) fn finish(
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
