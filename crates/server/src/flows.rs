//! `/v1/flows`: deploy (validated exactly as `flowhost validate` does, every problem at its
//! JSON path), list, get, change status, analytics, and moving participants to the current
//! version.
//!
//! A deployed definition that differs from the current one (in more than its status) is a
//! new version; participants already inside keep the version they entered until moved.

use crate::AppState;
use crate::problem::{Body, FieldError, Problem, RawBody};
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use flowhost::flow::{FlowDef, FlowStatus};
use flowhost::store::StatusCounts;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// One flow in the list.
#[derive(Serialize)]
struct Summary {
    id: String,
    name: String,
    status: FlowStatus,
    version: u32,
    elements: usize,
    /// Its participants (of every version) by status.
    participants: StatusCounts,
    /// Participants that failed in the last hour.
    failed_last_hour: u64,
}

/// `?version=N`: one version of a flow; the current one when absent.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Version {
    #[serde(default)]
    version: Option<u32>,
}

/// `POST /v1/flows`: the body is a flow definition. 201 with its version and warnings (200
/// when the definition is the one deployed already: nothing changes but, perhaps, its
/// status); 400 when it is not a flow, 422 with every problem when it does not validate.
pub async fn deploy(
    State(state): State<AppState>,
    RawBody(body): RawBody,
) -> Result<impl IntoResponse, Problem> {
    let text = std::str::from_utf8(&body)
        .map_err(|_| Problem::bad_request("the body is not UTF-8 text; send the flow as JSON"))?;
    let def = FlowDef::parse(text, "request body")?;
    let engine = state.engine();
    let before = engine.flow_at(&def.id, 0).await.ok().map(|f| f.version);
    let compiled = engine.deploy(def, "request body").await?;
    let new = before != Some(compiled.version);
    tracing::info!(
        flow = %compiled.def.id,
        version = compiled.version,
        new,
        status = compiled.def.status.as_str(),
        "flow deployed"
    );
    let warnings: Vec<FieldError> = compiled
        .warnings
        .iter()
        .cloned()
        .map(FieldError::from)
        .collect();
    Ok((
        if new {
            StatusCode::CREATED
        } else {
            StatusCode::OK
        },
        Json(json!({
            "id": compiled.def.id,
            "version": compiled.version,
            "status": compiled.def.status,
            "warnings": warnings,
        })),
    ))
}

/// `GET /v1/flows`.
pub async fn list(State(state): State<AppState>) -> Result<Json<Value>, Problem> {
    let engine = state.engine();
    let mut flows = Vec::new();
    let hour_ago = engine.clock().now_ms() - 3_600_000;
    for id in engine.flow_ids() {
        let flow = engine.flow_at(&id, 0).await?;
        let participants = engine.store().status_counts(&id, hour_ago).await?;
        flows.push(Summary {
            id: flow.def.id.clone(),
            name: flow.def.name.clone(),
            status: flow.def.status,
            version: flow.version,
            elements: flow.def.elements.len(),
            participants,
            failed_last_hour: participants.failed_since,
        });
    }
    Ok(Json(json!({ "flows": flows })))
}

/// `GET /v1/flows/{id}[?version=N]`: the definition as deployed (an earlier version with the
/// flow's status now), its version in the `Flow-Version` header.
pub async fn get(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(query): Query<Version>,
) -> Result<impl IntoResponse, Problem> {
    let flow = state
        .engine()
        .flow_at(&id, query.version.unwrap_or(0))
        .await?;
    Ok((
        [("flow-version", flow.version.to_string())],
        Json(flow.def.clone()),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StatusChange {
    status: FlowStatus,
}

/// `PUT /v1/flows/{id}/status` with `{"status": "active"}`: the lifecycle change, with the
/// activation checks when activating; 409 when the change is not allowed.
pub async fn set_status(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Body(change): Body<StatusChange>,
) -> Result<Json<Value>, Problem> {
    state.engine().set_flow_status(&id, change.status).await?;
    tracing::info!(flow = %id, status = change.status.as_str(), "flow status changed");
    Ok(Json(json!({ "id": id, "status": change.status })))
}

/// `GET /v1/flows/{id}/analytics[?version=N]`: per element of the version (the current one
/// when absent), entered, left per exit, waiting now.
pub async fn analytics(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(query): Query<Version>,
) -> Result<Json<Value>, Problem> {
    let engine = state.engine();
    let version = match query.version {
        Some(v) => v,
        None => engine.flow_at(&id, 0).await?.version,
    };
    let elements = engine.version_analytics(&id, version).await?;
    Ok(Json(
        json!({ "flow": id, "version": version, "elements": elements }),
    ))
}

/// `POST /v1/flows/{id}/participants/move`: moves the participants waiting or queued in
/// earlier versions to the current one, where they continue at the same element; those
/// whose element is not there (or has another type) stay, each with why.
pub async fn move_participants(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<flowhost::engine::Moved>, Problem> {
    let moved = state.engine().move_to_current(&id).await?;
    tracing::info!(
        flow = %id,
        version = moved.version,
        moved = moved.moved.len(),
        stayed = moved.stayed.len(),
        "participants moved to the current version"
    );
    Ok(Json(moved))
}

/// `POST /v1/flows/{id}/chatbot-sender`: "Update chatbot sender". Each Start chatbot element
/// whose own sender differs from the Evaluate inbound message element before it takes that
/// element's sender, and the flow is deployed as a new version. `200` with the changes and
/// the version (no change: the version stays).
pub async fn update_chatbot_sender(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, Problem> {
    let engine = state.engine();
    let current = engine.flow_at(&id, 0).await?;
    let mut def = current.def.clone();
    let changes = flowhost::messaging::elements::update_chatbot_senders(&mut def);
    let version = if changes.is_empty() {
        current.version
    } else {
        let source = format!("flow {id:?}");
        engine.deploy(def, &source).await?.version
    };
    Ok(Json(
        json!({ "id": id, "version": version, "changed": changes }),
    ))
}
