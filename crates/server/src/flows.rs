//! `/v1/flows`: deploy (validated exactly as `flowhost validate` does, every problem at its
//! JSON path), list, get, change status, analytics.

use crate::AppState;
use crate::problem::{Body, FieldError, Problem, RawBody};
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use flowhost::flow::{FlowDef, FlowStatus};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// One flow in the list.
#[derive(Serialize)]
struct Summary {
    id: String,
    name: String,
    status: FlowStatus,
    elements: usize,
}

/// `POST /v1/flows`: the body is a flow definition. 201 with its warnings; 400 when it is
/// not a flow, 422 with every problem when it does not validate.
pub async fn deploy(
    State(state): State<AppState>,
    RawBody(body): RawBody,
) -> Result<impl IntoResponse, Problem> {
    let text = std::str::from_utf8(&body)
        .map_err(|_| Problem::bad_request("the body is not UTF-8 text; send the flow as JSON"))?;
    let def = FlowDef::parse(text, "request body")?;
    let compiled = state.engine().deploy(def, "request body").await?;
    tracing::info!(flow = %compiled.def.id, status = compiled.def.status.as_str(), "flow deployed");
    let warnings: Vec<FieldError> = compiled
        .warnings
        .iter()
        .cloned()
        .map(FieldError::from)
        .collect();
    Ok((
        StatusCode::CREATED,
        Json(json!({
            "id": compiled.def.id,
            "status": compiled.def.status,
            "warnings": warnings,
        })),
    ))
}

/// `GET /v1/flows`.
pub async fn list(State(state): State<AppState>) -> Result<Json<Value>, Problem> {
    let engine = state.engine();
    let mut flows = Vec::new();
    for id in engine.flow_ids() {
        let def = engine.flow_def(&id)?;
        flows.push(Summary {
            id: def.id,
            name: def.name,
            status: def.status,
            elements: def.elements.len(),
        });
    }
    Ok(Json(json!({ "flows": flows })))
}

/// `GET /v1/flows/{id}`: the definition as deployed.
pub async fn get(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<FlowDef>, Problem> {
    Ok(Json(state.engine().flow_def(&id)?))
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

/// `GET /v1/flows/{id}/analytics`: per element, entered, left per exit, waiting now.
pub async fn analytics(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, Problem> {
    let elements = state.engine().analytics(&id).await?;
    Ok(Json(json!({ "flow": id, "elements": elements })))
}
