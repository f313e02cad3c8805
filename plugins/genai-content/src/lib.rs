//! Sample element: generates a personalised message through an OpenAI-compatible chat
//! completions API and saves it in a flow variable.
//!
//! Build: `cargo build --release --target wasm32-wasip2 -p genai-content`, then copy
//! `target/wasm32-wasip2/release/genai_content.wasm` into `plugins/` (`./dev demo` does both
//! and runs it against a local emulator). See this crate's README.

use flowhost_sdk::http::{HttpError, Request, Response};
use flowhost_sdk::{
    Context, Element, Error, Exit, Field, Manifest, config, export_element, json, log, template,
    variables,
};
use serde::Deserialize;
use std::time::Duration;

/// The public API, used when the operator sets no `base_url`.
const DEFAULT_BASE_URL: &str = "https://api.openai.com/v1";
/// A 429 with a longer `Retry-After` is not worth waiting for inside one execution.
const MAX_RETRY_WAIT_S: u64 = 1;

struct GenAiContent;

#[derive(Deserialize)]
struct Settings {
    prompt: String,
    #[serde(default)]
    system: Option<String>,
    #[serde(default)]
    model: Option<String>,
    max_tokens: f64,
    temperature: f64,
    output_variable: String,
    timeout_ms: f64,
}

#[derive(Deserialize)]
struct Completion {
    choices: Vec<Choice>,
}

#[derive(Deserialize)]
struct Choice {
    message: Message,
    #[serde(default)]
    finish_reason: Option<String>,
}

#[derive(Deserialize)]
struct Message {
    #[serde(default)]
    content: Option<String>,
    #[serde(default)]
    refusal: Option<String>,
}

#[derive(Deserialize, Default)]
struct ApiError {
    #[serde(default)]
    error: ApiErrorBody,
}

#[derive(Deserialize, Default)]
struct ApiErrorBody {
    #[serde(default)]
    message: String,
    #[serde(default)]
    code: Option<String>,
}

fn api_error(response: &Response) -> String {
    let e = response.json::<ApiError>().unwrap_or_default().error;
    format!(
        "{} ({})",
        e.message,
        e.code.unwrap_or_else(|| response.status.to_string())
    )
}

impl Element for GenAiContent {
    fn manifest() -> Manifest {
        Manifest::new("genai-content", env!("CARGO_PKG_VERSION"), "Generate content")
            .description(
                "Writes a personalised message with a chat completions model and saves it in a variable",
            )
            .config(
                Field::text("prompt")
                    .label("Prompt; {{variable}} and {{person.attribute}} are filled in")
                    .required(),
            )
            .config(Field::text("system").label("System instructions"))
            .config(Field::text("model").label("Model (default: the operator's model setting)"))
            .config(Field::number("max_tokens").default_value(200))
            .config(Field::number("temperature").default_value(0.7))
            .config(Field::text("output_variable").default_value("content"))
            .config(Field::number("timeout_ms").default_value(1500))
            .config(Field::secret("api_key").label("API key").required())
            .exit("generated", "Generated")
            .exit("refused", "Refused or filtered")
            .host("api.openai.com")
            .host("setting:base_url")
    }

    fn execute(ctx: &Context) -> Result<Exit, Error> {
        let s: Settings = ctx.config()?;
        let prompt = template::render(&s.prompt, ctx)?;
        let model = s
            .model
            .or_else(|| config::setting("model"))
            .ok_or_else(|| {
                Error::config("no model: set `model` in the flow or the operator's `model` setting")
            })?;
        let mut messages = Vec::new();
        if let Some(system) = &s.system {
            messages.push(json!({"role": "system", "content": template::render(system, ctx)?}));
        }
        messages.push(json!({"role": "user", "content": prompt}));
        let body = json!({
            "model": model,
            "messages": messages,
            "max_tokens": s.max_tokens as u32,
            "temperature": s.temperature,
        });
        let base = config::setting("base_url").unwrap_or_else(|| DEFAULT_BASE_URL.to_owned());
        let url = format!("{}/chat/completions", base.trim_end_matches('/'));
        let key = config::require_secret("api_key")?;
        let send = || {
            Request::post(&url)
                .bearer(&key)
                .json(&body)
                .timeout_ms(s.timeout_ms as u32)
                .send()
                .map_err(|e| match e {
                    HttpError::Timeout => Error::failed(format!(
                        "the model did not answer within {} ms; raise timeout_ms (and the plugin's deadline_ms)",
                        s.timeout_ms
                    )),
                    other => Error::from(other),
                })
        };
        let mut response = send()?;
        if response.status == 429 {
            let wait = response
                .header("retry-after")
                .and_then(|v| v.trim().parse::<u64>().ok());
            match wait {
                Some(seconds) if seconds <= MAX_RETRY_WAIT_S => {
                    log::warn(&format!("rate limited; retrying once after {seconds} s"));
                    std::thread::sleep(Duration::from_secs(seconds));
                    response = send()?;
                }
                _ => {}
            }
            if response.status == 429 {
                return Err(Error::failed(format!(
                    "rate limited by the model API: {}; retry later",
                    api_error(&response)
                )));
            }
        }
        if !response.is_success() {
            return Err(Error::failed(format!(
                "model API answered {}: {}",
                response.status,
                api_error(&response)
            )));
        }
        let completion: Completion = response.json()?;
        let choice = completion
            .choices
            .into_iter()
            .next()
            .ok_or_else(|| Error::failed("the model API returned no choices"))?;
        let finish = choice.finish_reason.unwrap_or_default();
        if let Some(refusal) = choice.message.refusal {
            log::info(&format!("the model refused: {refusal}"));
            return Ok(Exit::to("refused").with_data(json!({"reason": "refusal"})));
        }
        if finish == "content_filter" {
            return Ok(Exit::to("refused").with_data(json!({"reason": "content_filter"})));
        }
        let content = choice
            .message
            .content
            .ok_or_else(|| Error::failed("the model returned no content"))?;
        if finish == "length" {
            log::warn("the message was cut at max_tokens");
        }
        variables::set(&s.output_variable, content.as_str());
        Ok(Exit::to("generated").with_data(json!({"finish_reason": finish, "model": model})))
    }
}

export_element!(GenAiContent);
