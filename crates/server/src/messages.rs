//! Outgoing messages: the channels' connectors built from `[server.channels.<c>.deliver]`,
//! and `/v1/messages`, the message log with where each bot's and agent's message stands.

use crate::AppState;
use crate::auth::KeyError;
use crate::inbound::channel_named;
use crate::problem::{FieldError, Problem};
use axum::Json;
use axum::extract::{Path, Query, State};
use flowhost::config::ChannelConfig;
use flowhost::conversations::Conversation;
use flowhost::delivery::{HttpConnector, Outbox, RetryRule, Route, message};
use flowhost::engine::Engine;
use flowhost::messaging::{Channel, LoggedMessage, recent_messages};
use flowhost::outbound::HttpClient;
use flowhost::person::Contact;
use serde::Deserialize;
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

/// The outbox over `engine`, with a connector for each channel that has `deliver`.
pub(crate) fn outbox(
    engine: &Engine,
    client: &HttpClient,
    channels: &BTreeMap<String, ChannelConfig>,
) -> Result<Outbox, KeyError> {
    let mut routes = HashMap::new();
    for (name, config) in channels {
        let Some(deliver) = &config.deliver else {
            continue;
        };
        let channel: Channel =
            channel_named(name).ok_or_else(|| KeyError::Channel { name: name.clone() })?;
        let refuse = |reason: String| KeyError::Connector {
            name: name.clone(),
            reason,
        };
        let mut headers = Vec::new();
        for (header, value) in &deliver.headers {
            let value = value.value().ok_or_else(|| {
                refuse(format!(
                    "headers.{header}: environment variable {} is not set; export it",
                    value.env().unwrap_or_default()
                ))
            })?;
            headers.push((header.clone(), value));
        }
        let connector = HttpConnector::new(
            channel,
            &deliver.url,
            headers,
            Duration::from_millis(deliver.timeout_ms),
            client.clone(),
        )
        .map_err(refuse)?;
        if deliver.max_attempts == 0 {
            return Err(refuse("max_attempts must be at least 1".into()));
        }
        routes.insert(
            channel,
            Route {
                connector: Arc::new(connector),
                retry: RetryRule {
                    max_attempts: deliver.max_attempts,
                    backoff: Duration::from_millis(deliver.backoff_ms),
                    max_backoff: Duration::from_millis(deliver.max_backoff_ms),
                },
            },
        );
    }
    Ok(Outbox::new(engine.clone(), routes))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ByContact {
    contact: String,
    #[serde(default)]
    channel: Option<String>,
    #[serde(default = "default_limit")]
    limit: usize,
}

fn default_limit() -> usize {
    50
}

/// `GET /v1/messages?contact=+385911234567[&channel=sms][&limit=50]`: the newest messages
/// with a person, oldest first, each bot and agent message with its `sending` state.
pub async fn list(
    State(state): State<AppState>,
    Query(query): Query<ByContact>,
) -> Result<Json<Value>, Problem> {
    let field = |path: &str, message: String| Problem {
        errors: vec![FieldError {
            path: path.into(),
            message: message.clone(),
        }],
        ..Problem::bad_request(format!("{path}: {message}"))
    };
    let channel = match &query.channel {
        None => None,
        Some(name) => Some(channel_named(name).ok_or_else(|| {
            field(
                "channel",
                format!("no channel {name:?}; use sms, whatsapp, viber, rcs, telegram, messenger or email"),
            )
        })?),
    };
    let contact = match channel {
        Some(c) => c.contact(&query.contact),
        None => Contact::guess(&query.contact),
    }
    .map_err(|m| field("contact", m))?;
    if !(1..=1000).contains(&query.limit) {
        return Err(field("limit", "give 1 to 1000".into()));
    }
    let messages: Vec<LoggedMessage> =
        recent_messages(state.engine().store(), &contact, query.limit)
            .await?
            .into_iter()
            .filter(|m| channel.is_none_or(|c| m.channel == c))
            .collect();
    Ok(Json(json!({ "messages": messages })))
}

/// `GET /v1/messages/{id}`.
pub async fn get(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<LoggedMessage>, Problem> {
    message(state.engine(), &id)
        .await?
        .map(Json)
        .ok_or_else(|| Problem::not_found(format!("no message {id:?} in the message log")))
}

/// A conversation whose bot and agent messages say where their sending stands now (the
/// conversation keeps each message as it was written; the log has its sending).
pub(crate) async fn with_sending(
    engine: &Engine,
    mut conversation: Conversation,
) -> Result<Conversation, Problem> {
    for m in conversation
        .messages
        .iter_mut()
        .filter(|m| m.sending.is_some())
    {
        if let Some(logged) = message(engine, &m.id).await? {
            m.sending = logged.sending;
        }
    }
    Ok(conversation)
}
