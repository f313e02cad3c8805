//! An OpenAI-compatible chat completions API: `POST /v1/chat/completions`.
//!
//! Auth is `Authorization: Bearer <key>`; a wrong key answers 401 with
//! `{"error": {"code": "invalid_api_key", "type": "invalid_request_error", …}}`, an unknown
//! model 404 with `model_not_found`. The reply is deterministic so tests can check it: the
//! assistant's content is `Hello! ` followed by the last user message, cut to `max_tokens`
//! words (then `finish_reason` is `length`). A user message containing `[filtered]` ends with
//! `finish_reason: "content_filter"`, one containing `[refuse]` carries a `refusal`, one
//! containing `[busy]` answers 429 with `Retry-After: 0` the first time, and one containing
//! `[slow]` answers after 3 seconds.

use crate::testing::{Received, Reply, TestServer};
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

/// Models the emulator serves.
pub const MODELS: &[&str] = &["gpt-4o-mini", "gpt-4o"];

/// The running emulator.
pub struct ChatApi {
    /// The server (its `received()` lists every request).
    pub server: TestServer,
}

impl ChatApi {
    /// Starts the emulator accepting `key`.
    pub async fn start(key: &str) -> ChatApi {
        let expected = format!("Bearer {key}");
        let calls = Arc::new(AtomicU32::new(0));
        let server = TestServer::start_replying(move |r| answer(r, &expected, &calls)).await;
        ChatApi { server }
    }

    /// `http://127.0.0.1:<port>/v1`, the API's base URL.
    pub fn url(&self) -> String {
        format!("{}/v1", self.server.url())
    }
}

fn error(status: u16, kind: &str, code: &str, message: &str) -> Reply {
    Reply::json(
        status,
        &json!({"error": {"message": message, "type": kind, "param": null, "code": code}})
            .to_string(),
    )
}

fn answer(r: &Received, expected: &str, calls: &AtomicU32) -> Reply {
    let n = calls.fetch_add(1, Ordering::SeqCst) + 1;
    if r.header("authorization") != Some(expected) {
        return error(
            401,
            "invalid_request_error",
            "invalid_api_key",
            "Incorrect API key provided.",
        );
    }
    if r.method != "POST" || r.path != "/v1/chat/completions" {
        return error(
            404,
            "invalid_request_error",
            "unknown_url",
            "Unknown request URL.",
        );
    }
    let body: Value = serde_json::from_slice(&r.body).unwrap_or(Value::Null);
    let model = body["model"].as_str().unwrap_or_default().to_owned();
    if !MODELS.contains(&model.as_str()) {
        return error(
            404,
            "invalid_request_error",
            "model_not_found",
            &format!("The model `{model}` does not exist or you do not have access to it."),
        );
    }
    let Some(prompt) = body["messages"]
        .as_array()
        .and_then(|m| m.iter().rev().find(|m| m["role"] == "user"))
        .and_then(|m| m["content"].as_str())
        .map(str::to_owned)
    else {
        return error(
            400,
            "invalid_request_error",
            "invalid_value",
            "messages must contain a user message.",
        );
    };
    if prompt.contains("[busy]") && n % 2 == 1 {
        return error(
            429,
            "requests",
            "rate_limit_exceeded",
            "Rate limit reached for requests.",
        )
        .header("retry-after", "0");
    }
    let max_tokens = body["max_tokens"].as_u64().unwrap_or(256) as usize;
    let words: Vec<&str> = std::iter::once("Hello!")
        .chain(prompt.split_whitespace())
        .collect();
    let (content, mut finish) = if words.len() > max_tokens {
        (words[..max_tokens].join(" "), "length")
    } else {
        (words.join(" "), "stop")
    };
    let mut message = json!({"role": "assistant", "content": content, "refusal": null});
    if prompt.contains("[filtered]") {
        message["content"] = Value::Null;
        finish = "content_filter";
    }
    if prompt.contains("[refuse]") {
        message["content"] = Value::Null;
        message["refusal"] = json!("I can't help with that.");
    }
    let delay = if prompt.contains("[slow]") {
        std::time::Duration::from_secs(3)
    } else {
        std::time::Duration::ZERO
    };
    Reply::json(
        200,
        &json!({
            "id": format!("chatcmpl-{n}"),
            "object": "chat.completion",
            "created": 1_795_000_000,
            "model": model,
            "choices": [{"index": 0, "message": message, "logprobs": null, "finish_reason": finish}],
            "usage": {"prompt_tokens": prompt.split_whitespace().count(),
                      "completion_tokens": words.len().min(max_tokens),
                      "total_tokens": prompt.split_whitespace().count() + words.len().min(max_tokens)},
        })
        .to_string(),
    )
    .after(delay)
}
