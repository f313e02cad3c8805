//! `POST /v1/channels/{channel}/messages`: customers' messages from a channel provider's
//! webhook, routed exactly as `flowhost inbound` routes them (an open agent conversation, a
//! running chatbot session, participants waiting for it, flows it starts).
//!
//! A webhook proves it comes from the provider with the channel's secret
//! (`[server.channels.<channel>] secret`): an HMAC-SHA256 of the raw body, in hex, as
//! `X-Flowhost-Signature: sha256=<hex>`, or the secret itself as `Authorization: Bearer`.
//! Operator API keys are not accepted here, and channel secrets are not accepted elsewhere.
//!
//! Providers retry. A `message_id` seen before is acknowledged with the first answer and not
//! routed again: the answer is kept after routing, so a crash between the two routes the
//! retried message again rather than losing it.

use crate::AppState;
use crate::auth::KeyError;
use crate::problem::{FieldError, Problem, RawBody, parse};
use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use flowhost::config::ChannelConfig;
use flowhost::messaging::{Channel, InboundMessage};
use flowhost::store::IdempotentRequest;
use hmac::{Hmac, KeyInit, Mac};
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Mutex;

/// Longest provider message id accepted.
const MAX_ID_LEN: usize = 255;

/// The channels that take webhooks, with their secrets; and the messages being routed now.
pub(crate) struct ChannelHooks {
    secrets: HashMap<Channel, String>,
    routing: Mutex<HashSet<(Channel, String)>>,
}

impl ChannelHooks {
    /// Resolves `[server.channels]` (reading environment variables now).
    pub(crate) fn from_config(config: &BTreeMap<String, ChannelConfig>) -> Result<Self, KeyError> {
        let mut secrets = HashMap::new();
        for (name, hook) in config {
            let channel =
                channel_named(name).ok_or_else(|| KeyError::Channel { name: name.clone() })?;
            let Some(source) = &hook.secret else {
                continue;
            };
            let secret = source.value().unwrap_or_default();
            if secret.is_empty() {
                return Err(KeyError::ChannelSecret { name: name.clone() });
            }
            secrets.insert(channel, secret);
        }
        Ok(ChannelHooks {
            secrets,
            routing: Mutex::new(HashSet::new()),
        })
    }
}

/// The channel with this name in configuration and URLs (`sms`, `whatsapp`, …).
pub(crate) fn channel_named(name: &str) -> Option<Channel> {
    serde_json::from_value(Value::String(name.to_owned())).ok()
}

/// What a provider sends.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Webhook {
    /// The customer's contact.
    from: String,
    /// Our sender it was sent to.
    to: String,
    text: String,
    /// The provider's id of the message.
    message_id: String,
    /// When the provider received it (ms since the epoch); now when absent.
    #[serde(default)]
    received_at: Option<i64>,
}

/// Releases a message's place among those being routed, however routing ends.
struct Routing<'a> {
    hooks: &'a ChannelHooks,
    id: (Channel, String),
}

impl Drop for Routing<'_> {
    fn drop(&mut self) {
        self.hooks
            .routing
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&self.id);
    }
}

/// `POST /v1/channels/{channel}/messages`.
pub async fn receive(
    State(state): State<AppState>,
    Path(name): Path<String>,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> Result<Response, Problem> {
    let hooks = state.hooks();
    let channel = channel_named(&name).ok_or_else(|| {
        Problem::not_found(format!(
            "no channel {name:?}; channels: sms, whatsapp, viber, rcs, telegram, messenger, email"
        ))
    })?;
    let Some(secret) = hooks.secrets.get(&channel) else {
        return Err(Problem::not_found(format!(
            "channel {name} takes no webhooks here; give it a secret in [server.channels.{name}]"
        )));
    };
    authenticate(secret, "the channel's secret", &headers, &body)?;
    let hook: Webhook = parse(&body)?;
    if hook.message_id.trim().is_empty() || hook.message_id.len() > MAX_ID_LEN {
        return Err(Problem::invalid(
            format!(
                "message_id must be 1 to {MAX_ID_LEN} characters: the provider's id of the message"
            ),
            vec![FieldError {
                path: "message_id".into(),
                message: "give the provider's message id, so a retried webhook is routed once"
                    .into(),
            }],
        ));
    }
    let id = (channel, hook.message_id.clone());
    if !hooks
        .routing
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(id.clone())
    {
        let mut busy = Problem::new(
            StatusCode::CONFLICT,
            format!(
                "message {:?} is being routed now; retry it shortly",
                hook.message_id
            ),
        )
        .into_response();
        busy.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        return Ok(busy);
    }
    let _routing = Routing { hooks, id };
    let engine = state.engine();
    let scope = format!("inbound:{channel}");
    if let Some(earlier) = engine
        .store()
        .idempotent_answer(&scope, &hook.message_id)
        .await?
    {
        let mut response = Json(earlier.answer).into_response();
        response
            .headers_mut()
            .insert("idempotent-replayed", HeaderValue::from_static("true"));
        return Ok(response);
    }
    let delivery = state
        .runtime()
        .inbound()
        .receive(InboundMessage {
            channel,
            from: hook.from,
            to: hook.to,
            text: hook.text,
            received_at: hook.received_at,
        })
        .await?;
    tracing::info!(%channel, message_id = %hook.message_id, ?delivery, "inbound message routed");
    // A chatbot may have answered.
    state.outbox().nudge();
    let answer = json!({ "message_id": hook.message_id, "delivery": delivery });
    let fingerprint = hex::encode(Sha256::digest(&body));
    engine
        .store()
        .insert_queued(
            &[],
            Some(IdempotentRequest {
                scope: &scope,
                key: &hook.message_id,
                fingerprint: &fingerprint,
                answer: &answer,
                at: engine.now(),
            }),
        )
        .await?;
    Ok(Json(answer).into_response())
}

/// Checks the signature or the token against `secret`, which is `whose` (`the channel's
/// secret`): an HMAC-SHA256 of the exact body in `X-Flowhost-Signature: sha256=<hex>`, or
/// the secret itself as a bearer token.
pub(crate) fn authenticate(
    secret: &str,
    whose: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(), Problem> {
    let refuse = |detail: String| {
        let mut p = Problem::new(StatusCode::UNAUTHORIZED, detail);
        p.errors.push(FieldError {
            path: "X-Flowhost-Signature".into(),
            message: format!("sha256=<hex HMAC-SHA256 of the body with {whose}>"),
        });
        p
    };
    if let Some(signature) = headers.get("x-flowhost-signature") {
        let malformed = || refuse("X-Flowhost-Signature must be sha256=<hex>".into());
        let hex_digest = signature
            .to_str()
            .ok()
            .and_then(|s| s.strip_prefix("sha256="))
            .ok_or_else(malformed)?;
        let digest = hex::decode(hex_digest.trim()).map_err(|_| malformed())?;
        let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes())
            .expect("HMAC takes keys of any length");
        mac.update(body);
        // Constant time.
        return mac.verify_slice(&digest).map_err(|_| {
            refuse(format!(
                "the signature does not match the body; sign the exact bytes sent with {whose}"
            ))
        });
    }
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    match token {
        // Digests compared, so timing says nothing about the secret.
        Some(token) if Sha256::digest(token.trim()) == Sha256::digest(secret) => Ok(()),
        Some(_) => Err(refuse(format!("the bearer token is not {whose}"))),
        None => Err(refuse(format!(
            "sign the body (X-Flowhost-Signature: sha256=<hex HMAC-SHA256>) or send {whose} as a bearer token"
        ))),
    }
}
