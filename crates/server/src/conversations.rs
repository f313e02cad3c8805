//! `/v1/conversations`: the agents' side of Start a Conversation. List by tag and status,
//! read one with its messages, assign, reply, close.

use crate::AppState;
use crate::messages::with_sending;
use crate::problem::{Body, Problem};
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use flowhost::conversations::{Conversation, ConversationError, ConversationStatus, Conversations};
use serde::Deserialize;
use serde_json::{Value, json};

impl From<ConversationError> for Problem {
    fn from(e: ConversationError) -> Self {
        match e {
            ConversationError::NotFound(_) => Problem::not_found(e.to_string()),
            ConversationError::Refused(_) => Problem::new(StatusCode::CONFLICT, e.to_string()),
            ConversationError::Store(store) => Problem::from(store),
            other => Problem::internal(&other),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    #[serde(default)]
    tag: Option<String>,
    #[serde(default)]
    status: Option<ConversationStatus>,
}

/// `GET /v1/conversations[?tag=billing&status=open]`, oldest first.
pub async fn list(
    State(state): State<AppState>,
    Query(query): Query<ListQuery>,
) -> Result<Json<Value>, Problem> {
    let agents = Conversations::new(state.engine().store());
    let found = agents.list(query.tag.as_deref(), query.status).await?;
    Ok(Json(json!({ "conversations": found })))
}

/// `GET /v1/conversations/{id}`: with every message (customer, bot and agent), each bot and
/// agent message with where its sending stands.
pub async fn get(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Conversation>, Problem> {
    let agents = Conversations::new(state.engine().store());
    let conversation = agents.get(&id).await?;
    Ok(Json(with_sending(state.engine(), conversation).await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Assign {
    agent: String,
}

/// `POST /v1/conversations/{id}/assign` with `{"agent": "maja"}`.
pub async fn assign(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Body(body): Body<Assign>,
) -> Result<Json<Conversation>, Problem> {
    Problem::require(
        &body.agent,
        "agent",
        "name the agent who takes the conversation",
    )?;
    let agents = Conversations::new(state.engine().store());
    Ok(Json(agents.assign(&id, body.agent.trim()).await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Reply {
    text: String,
}

/// `POST /v1/conversations/{id}/replies` with `{"text": "..."}`: the assigned agent's reply,
/// added to the conversation and the message log, and sent through the channel's connector
/// after the answer (its `sending` is `pending` here). 409 when it is not assigned or closed.
pub async fn reply(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Body(body): Body<Reply>,
) -> Result<(StatusCode, Json<Conversation>), Problem> {
    Problem::require(&body.text, "text", "write the reply")?;
    let engine = state.engine();
    let agents = Conversations::new(engine.store());
    let conversation = agents.reply(&id, &body.text, engine.now()).await?;
    state.outbox().nudge();
    Ok((StatusCode::CREATED, Json(conversation)))
}

/// `POST /v1/conversations/{id}/close`.
pub async fn close(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Conversation>, Problem> {
    let engine = state.engine();
    let agents = Conversations::new(engine.store());
    Ok(Json(agents.close(&id, engine.now()).await?))
}
