//! `POST /v1/chatbots/{bot}/sessions/{session}/events`: a webhook chatbot reporting outside
//! a turn: replies it sends later, and the end of a session (closed, to an agent, ended by
//! the person). The body has the shape of the bot's answer to a turn,
//! `{"replies": [...], "end": "closed"}`, so a bot reports the same way in both.
//!
//! The bot proves itself with its secret (`[server.chatbots.<bot>] secret`), exactly as a
//! channel webhook does: an HMAC-SHA256 of the body, or the secret as a bearer token.
//! Operator API keys are not accepted here.

use crate::AppState;
use crate::auth::KeyError;
use crate::inbound::authenticate;
use crate::problem::{FieldError, Problem, RawBody, parse};
use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use flowhost::answers::{Answers, BotEvent, EndReason};
use flowhost::config::ChatbotHookConfig;
use serde::Deserialize;
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap};

/// The chatbots that may call back, with their secrets.
pub(crate) struct BotSecrets(HashMap<String, String>);

impl BotSecrets {
    /// Resolves `[server.chatbots]` (reading environment variables now).
    pub(crate) fn from_config(
        config: &BTreeMap<String, ChatbotHookConfig>,
    ) -> Result<Self, KeyError> {
        let mut secrets = HashMap::new();
        for (bot, hook) in config {
            let secret = hook.secret.value().unwrap_or_default();
            if secret.is_empty() {
                return Err(KeyError::ChatbotSecret { bot: bot.clone() });
            }
            secrets.insert(bot.clone(), secret);
        }
        Ok(BotSecrets(secrets))
    }
}

/// What a bot reports.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Report {
    #[serde(default)]
    replies: Vec<String>,
    #[serde(default)]
    end: Option<String>,
}

/// `POST /v1/chatbots/{bot}/sessions/{session}/events`: the replies are sent to the person
/// (in order, through the channel's connector), then the session ends if `end` says so and
/// its participant goes on by the exit of the reason. `200` with what was done; `404` for a
/// session that is not the bot's; `409` when it has ended; `422` for an `end` a bot cannot
/// give or an empty reply.
pub async fn report(
    State(state): State<AppState>,
    Path((bot, session_id)): Path<(String, String)>,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> Result<Json<Value>, Problem> {
    let Some(secret) = state.bots().0.get(&bot) else {
        return Err(Problem::not_found(format!(
            "chatbot {bot:?} takes no callbacks here; give it a secret in [server.chatbots.{bot}]"
        )));
    };
    authenticate(secret, "the chatbot's secret", &headers, &body)?;
    let report: Report = parse(&body)?;
    let end = match report.end.as_deref() {
        None => None,
        Some(end) => Some(EndReason::from_bot(end).ok_or_else(|| {
            Problem::invalid(
                format!("end {end:?} is not a way a chatbot ends a session"),
                vec![FieldError {
                    path: "end".into(),
                    message: "use closed, to-agent or ended-by-user".into(),
                }],
            )
        })?),
    };
    if let Some(i) = report.replies.iter().position(|r| r.trim().is_empty()) {
        return Err(Problem::invalid(
            "a reply is empty",
            vec![FieldError {
                path: format!("replies[{i}]"),
                message: "write the reply, or leave it out".into(),
            }],
        ));
    }
    let engine = state.engine();
    let session = Answers::session(engine.store(), &session_id)
        .await?
        .filter(|s| s.bot_id == bot)
        .ok_or_else(|| {
            Problem::not_found(format!("chatbot {bot:?} has no session {session_id:?}"))
        })?;
    if let Some(reason) = session.ended {
        return Err(Problem::new(
            StatusCode::CONFLICT,
            format!(
                "session {session_id:?} has ended ({}); the person's next message starts a new one",
                reason.as_str()
            ),
        ));
    }
    let inbound = state.runtime().inbound();
    for text in &report.replies {
        inbound
            .chatbot_event(&session_id, &BotEvent::Reply { text: text.clone() })
            .await?;
    }
    let mut woken = Vec::new();
    if let Some(reason) = end {
        woken = inbound
            .chatbot_event(&session_id, &BotEvent::End { reason })
            .await?
            .into_iter()
            .map(|p| p.id)
            .collect();
    }
    state.outbox().nudge();
    Ok(Json(json!({
        "session": session_id,
        "replies": report.replies.len(),
        "ended": end.map(EndReason::as_str),
        "participants": woken,
    })))
}
