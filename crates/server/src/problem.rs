//! Errors as `application/problem+json` (RFC 9457), each with what went wrong, where (the
//! request field or the JSON path into the body) and what to do; and the JSON body extractor
//! that reports a malformed body at its path.

use axum::extract::{FromRequest, Request};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use flowhost::engine::EngineError;
use flowhost::flow::{FlowError, Issue};
use flowhost::store::StoreError;
use serde::Serialize;
use serde::de::DeserializeOwned;

/// One problem with a request.
#[derive(Debug, Serialize)]
pub struct Problem {
    /// What kind of problem, as a short sentence.
    pub title: String,
    /// The HTTP status.
    pub status: u16,
    /// What went wrong here and what to do.
    pub detail: String,
    /// Every problem found in the body, at its JSON path (flow validation, a batch of
    /// participants).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
}

/// A problem at one place in the request.
#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct FieldError {
    /// The JSON path into the body (`participants[2].contact`), or the header or parameter.
    pub path: String,
    /// What is wrong and what to do.
    pub message: String,
}

impl From<Issue> for FieldError {
    fn from(issue: Issue) -> Self {
        FieldError {
            path: issue.path,
            message: issue.message,
        }
    }
}

impl Problem {
    /// A problem with `status` and `detail`.
    pub fn new(status: StatusCode, detail: impl Into<String>) -> Self {
        Problem {
            title: status.canonical_reason().unwrap_or("Error").to_owned(),
            status: status.as_u16(),
            detail: detail.into(),
            errors: Vec::new(),
        }
    }

    /// 400: the request cannot be read.
    pub fn bad_request(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, detail)
    }

    /// 404: no such thing.
    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, detail)
    }

    /// 422: read, but not acceptable; `errors` say where.
    pub fn invalid(detail: impl Into<String>, errors: Vec<FieldError>) -> Self {
        Problem {
            errors,
            ..Self::new(StatusCode::UNPROCESSABLE_ENTITY, detail)
        }
    }

    /// 422 unless `value` has more than blanks: `path` is the field, `what` says what to put.
    pub fn require(value: &str, path: &str, what: &str) -> Result<(), Problem> {
        if value.trim().is_empty() {
            return Err(Problem::invalid(
                format!("{path} is empty; {what}"),
                vec![FieldError {
                    path: path.into(),
                    message: what.into(),
                }],
            ));
        }
        Ok(())
    }

    /// 500: the service failed. The cause is logged; the caller learns only that it failed.
    pub fn internal(cause: &dyn std::fmt::Display) -> Self {
        tracing::error!(error = %cause, "request failed");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "the service failed to answer; nothing was changed unless the response said so. Try again; the service log has the cause",
        )
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut response = (status, axum::Json(&self)).into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        response
    }
}

impl From<EngineError> for Problem {
    fn from(e: EngineError) -> Self {
        match e {
            EngineError::UnknownFlow(_)
            | EngineError::UnknownVersion { .. }
            | EngineError::UnknownParticipant(_) => Problem::not_found(e.to_string()),
            EngineError::FlowNotActive { .. } | EngineError::StatusChange { .. } => {
                Problem::new(StatusCode::CONFLICT, e.to_string())
            }
            EngineError::NoEntryPoint { .. } | EngineError::Rejected(_) => {
                Problem::invalid(e.to_string(), Vec::new())
            }
            EngineError::KeyReused { .. } => Problem::invalid(
                e.to_string(),
                vec![FieldError {
                    path: "Idempotency-Key".into(),
                    message: "used before for a different request".into(),
                }],
            ),
            EngineError::Invalid(flow) => Problem::from(flow),
            EngineError::Store(store) => Problem::from(store),
            other => Problem::internal(&other),
        }
    }
}

impl From<FlowError> for Problem {
    fn from(e: FlowError) -> Self {
        match e {
            FlowError::Parse { path, message, .. } => {
                Problem::bad_request(format!("{path}: {message}"))
            }
            FlowError::Invalid { issues, .. } => Problem::invalid(
                format!(
                    "the flow has {} problem(s); each is listed under `errors` at its JSON path",
                    issues.len()
                ),
                issues.into_iter().map(FieldError::from).collect(),
            ),
            other => Problem::internal(&other),
        }
    }
}

impl From<StoreError> for Problem {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict(_) => Problem::new(StatusCode::CONFLICT, e.to_string()),
            StoreError::Unusable { .. } => {
                tracing::error!(error = %e, "request failed");
                Problem::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "the service's database cannot be used now (the service log says why); nothing was changed; try again later",
                )
            }
            other => Problem::internal(&other),
        }
    }
}

/// The raw body: too large is 413 (with what to do), as a problem like every other error.
pub struct RawBody(pub axum::body::Bytes);

impl<S: Send + Sync> FromRequest<S> for RawBody {
    type Rejection = Problem;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        axum::body::Bytes::from_request(req, state)
            .await
            .map(RawBody)
            .map_err(|rejection| {
                let status = rejection.status();
                if status == StatusCode::PAYLOAD_TOO_LARGE {
                    Problem::new(
                        status,
                        "the request body is larger than the service accepts ([server] max_body_bytes); send fewer items per request",
                    )
                } else {
                    Problem::new(status, rejection.body_text())
                }
            })
    }
}

/// A JSON body: too large is 413, not JSON or not the expected shape is 400 naming the
/// JSON path where reading stopped.
pub struct Body<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Body<T> {
    type Rejection = Problem;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let RawBody(bytes) = RawBody::from_request(req, state).await?;
        parse(&bytes).map(Body)
    }
}

/// Reads JSON, naming the path where it stopped on error.
pub fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, Problem> {
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        let message = inner.to_string();
        let message = message.split(" at line ").next().unwrap_or_default();
        let place = if path == "." {
            "the body".to_owned()
        } else {
            path.clone()
        };
        Problem {
            errors: vec![FieldError {
                path,
                message: message.to_owned(),
            }],
            ..Problem::bad_request(format!(
                "{place}: {message} (line {}, column {}); send a JSON body of the documented shape",
                inner.line(),
                inner.column()
            ))
        }
    })
}
