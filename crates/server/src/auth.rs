//! API keys: every request but liveness carries `Authorization: Bearer <key>`. The service
//! keeps only the keys' SHA-256 digests; a key from the environment is hashed when the
//! service starts. A request without a known key gets 401 and nothing happens.

use crate::problem::Problem;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use flowhost::config::ApiKeyConfig;
use sha2::{Digest, Sha256};
use std::sync::Arc;

/// Why the configured keys cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// No key is configured, so nobody could call the API.
    #[error(
        "[server] api_keys is empty, so nobody could call the API; add {{ name = \"ops\", sha256 = \"...\" }} (`echo -n KEY | flowhost serve --hash-key` prints the digest) or {{ name = \"ops\", env = \"FLOWHOST_API_KEY\" }}"
    )]
    None,
    /// A key names neither or both sources.
    #[error(
        "[server] api_keys: key {name:?} needs exactly one of sha256 = \"<hex digest>\" or env = \"<VARIABLE>\""
    )]
    Source {
        /// The key's name.
        name: String,
    },
    /// A digest is not 64 hex digits.
    #[error(
        "[server] api_keys: key {name:?}: sha256 must be 64 hex digits (`echo -n KEY | flowhost serve --hash-key` prints it)"
    )]
    Digest {
        /// The key's name.
        name: String,
    },
    /// `[server.channels.<name>]` names no channel.
    #[error(
        "[server.channels.{name}]: no such channel; use sms, whatsapp, viber, rcs, telegram, messenger or email"
    )]
    Channel {
        /// The name given.
        name: String,
    },
    /// A channel's webhook secret is empty, or its environment variable is not set.
    #[error(
        "[server.channels.{name}] secret is empty or its environment variable is not set; set it, or remove the channel"
    )]
    ChannelSecret {
        /// The channel.
        name: String,
    },
    /// A chatbot's callback secret is empty, or its environment variable is not set.
    #[error(
        "[server.chatbots.{bot}] secret is empty or its environment variable is not set; set it, or remove the chatbot"
    )]
    ChatbotSecret {
        /// The chatbot's id.
        bot: String,
    },
    /// A channel's connector cannot be built.
    #[error("[server.channels.{name}.deliver] {reason}")]
    Connector {
        /// The channel.
        name: String,
        /// What is wrong and what to do.
        reason: String,
    },
    /// The environment variable is not set or empty.
    #[error(
        "[server] api_keys: key {name:?}: environment variable {env} is not set; export it or use sha256"
    )]
    Env {
        /// The key's name.
        name: String,
        /// The variable.
        env: String,
    },
}

/// The digests of the accepted keys, with their names.
#[derive(Clone, Debug)]
pub struct ApiKeys {
    keys: Arc<Vec<(String, [u8; 32])>>,
}

/// The SHA-256 of a key, in hex: what `[server] api_keys` holds.
pub fn hash_key(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

impl ApiKeys {
    /// Resolves the configured keys (reading environment variables now).
    pub fn from_config(config: &[ApiKeyConfig]) -> Result<Self, KeyError> {
        if config.is_empty() {
            return Err(KeyError::None);
        }
        let mut keys = Vec::new();
        for key in config {
            let digest = match (&key.sha256, &key.env) {
                (Some(hex), None) => {
                    let mut digest = [0u8; 32];
                    hex::decode_to_slice(hex.trim(), &mut digest).map_err(|_| {
                        KeyError::Digest {
                            name: key.name.clone(),
                        }
                    })?;
                    digest
                }
                (None, Some(env)) => {
                    let value = std::env::var(env).unwrap_or_default();
                    if value.is_empty() {
                        return Err(KeyError::Env {
                            name: key.name.clone(),
                            env: env.clone(),
                        });
                    }
                    Sha256::digest(value.as_bytes()).into()
                }
                _ => {
                    return Err(KeyError::Source {
                        name: key.name.clone(),
                    });
                }
            };
            keys.push((key.name.clone(), digest));
        }
        Ok(ApiKeys {
            keys: Arc::new(keys),
        })
    }

    /// The name of the key presented, if it is one of ours. Digests are compared, so the
    /// comparison's timing says nothing about a key.
    fn holder(&self, presented: &str) -> Option<&str> {
        let digest: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        self.keys
            .iter()
            .find(|(_, d)| *d == digest)
            .map(|(name, _)| name.as_str())
    }
}

/// Refuses a request without a known key; logs which key called (never the key).
pub async fn require_key(State(keys): State<ApiKeys>, req: Request, next: Next) -> Response {
    let presented = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let Some(holder) = presented.and_then(|key| keys.holder(key.trim())) else {
        let detail = if presented.is_some() {
            "the API key in Authorization is not one of the service's keys; check [server] api_keys"
        } else {
            "send an API key as `Authorization: Bearer <key>`; keys are set in [server] api_keys"
        };
        let mut response = Problem::new(StatusCode::UNAUTHORIZED, detail).into_response();
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        return response;
    };
    tracing::debug!(key = holder, method = %req.method(), path = %req.uri().path(), "request");
    next.run(req).await
}
