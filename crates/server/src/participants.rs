//! Participants, modelled on Infobip's Flow API: add 1–1000 people to a flow's API entry
//! point in one call (by People id, by contact, or inline, each with variables), with an
//! `Idempotency-Key` so a retried call adds nobody twice; get one, its journey, list a
//! flow's by status, find a person's.
//!
//! Added participants are committed to the store before the answer (`202 Accepted`), then
//! run in the background; the scheduler finds any that were not started (after a restart).

use crate::AppState;
use crate::problem::{FieldError, Problem, RawBody, parse};
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use flowhost::engine::{AdmitKey, EngineError};
use flowhost::flow::FlowStatus;
use flowhost::person::{Contact, People, Person};
use flowhost::store::{ParticipantState, Status};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

/// Most participants one call may add.
pub const MAX_PER_CALL: usize = 1000;

/// The limit on calls adding participants.
pub(crate) type RateLimit = governor::DefaultDirectRateLimiter;

/// `per_second` calls a second, as many at once (0 is taken as 1).
pub(crate) fn rate_limit(per_second: u32) -> RateLimit {
    let n = std::num::NonZeroU32::new(per_second).unwrap_or(std::num::NonZeroU32::MIN);
    governor::RateLimiter::direct(governor::Quota::per_second(n))
}

/// 429 with when to come back, or `None` when the call may go on.
fn over_rate(limit: &RateLimit) -> Option<Response> {
    use governor::clock::{Clock, DefaultClock};
    let not_until = limit.check().err()?;
    let wait = not_until.wait_time_from(DefaultClock::default().now());
    let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    let mut response = Problem::new(
        StatusCode::TOO_MANY_REQUESTS,
        format!(
            "too many calls adding participants; retry after {seconds} s, or send up to {MAX_PER_CALL} per call ([server] participant_calls_per_second)"
        ),
    )
    .into_response();
    response.headers_mut().insert(
        axum::http::header::RETRY_AFTER,
        HeaderValue::from(seconds.max(1)),
    );
    Some(response)
}

/// Longest idempotency key accepted.
const MAX_KEY_LEN: usize = 255;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AddRequest {
    participants: Vec<Entrant>,
    /// Called back when each participant finishes.
    #[serde(default)]
    notify_url: Option<String>,
}

/// One person to add: exactly one of `person_id` (kept in People), `contact` (a phone
/// number, an email address, or `external-id:...`; found in People or added to it) or
/// `person` (inline, not kept in People), and the flow variables to start with.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Entrant {
    #[serde(default)]
    person_id: Option<String>,
    #[serde(default)]
    contact: Option<String>,
    #[serde(default)]
    person: Option<Person>,
    #[serde(default)]
    variables: BTreeMap<String, Value>,
}

/// Who an entrant is, once checked.
enum Who {
    Known(Person),
    Contact(Contact),
    Inline(Person),
}

/// `POST /v1/flows/{id}/participants`.
pub async fn add(
    State(state): State<AppState>,
    Path(flow_id): Path<String>,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> Result<Response, Problem> {
    if let Some(busy) = over_rate(state.admissions()) {
        return Ok(busy);
    }
    let key = idempotency_key(&headers)?;
    let request: AddRequest = parse(&body)?;
    if request.participants.is_empty() || request.participants.len() > MAX_PER_CALL {
        return Err(Problem::invalid(
            format!(
                "a call adds 1 to {MAX_PER_CALL} participants; this one has {}",
                request.participants.len()
            ),
            vec![FieldError {
                path: "participants".into(),
                message: format!("give 1 to {MAX_PER_CALL} items; split larger batches"),
            }],
        ));
    }
    if let Some(url) = &request.notify_url
        && let Err(message) = crate::notify::check_url(url)
    {
        return Err(Problem::invalid(
            format!("notify_url cannot be called: {message}"),
            vec![FieldError {
                path: "notify_url".into(),
                message: "give an http or https URL to POST each participant's end to".into(),
            }],
        ));
    }
    let engine = state.engine();
    // A flow that cannot take them is refused before People is touched.
    let def = engine.flow_def(&flow_id)?;
    if def.status != FlowStatus::Active {
        return Err(EngineError::FlowNotActive {
            id: flow_id,
            status: def.status,
        }
        .into());
    }
    // Every item is checked before anything is written, so a bad item changes nothing.
    let people = People::new(engine.store());
    let mut errors = Vec::new();
    let mut checked = Vec::with_capacity(request.participants.len());
    for (i, entrant) in request.participants.into_iter().enumerate() {
        match who(&people, &entrant, i).await {
            Ok(who) => checked.push((who, entrant.variables)),
            Err(e) => errors.push(e),
        }
    }
    if !errors.is_empty() {
        return Err(Problem::invalid(
            format!(
                "{} of the participants cannot be added; nobody was added. Each problem is under `errors` at its JSON path",
                errors.len()
            ),
            errors,
        ));
    }
    let mut entrants = Vec::with_capacity(checked.len());
    for (who, variables) in checked {
        let person = match who {
            Who::Known(p) | Who::Inline(p) => p,
            Who::Contact(contact) => {
                people
                    .find_or_create(&contact)
                    .await
                    .map_err(|e| Problem::internal(&e))?
                    .0
            }
        };
        entrants.push((person, variables));
    }
    let fingerprint = hex::encode(Sha256::digest(&body));
    let admit_key = key.as_deref().map(|key| AdmitKey {
        key,
        fingerprint: &fingerprint,
    });
    let admitted = engine.admit(&flow_id, entrants, admit_key).await?;
    if let Some(url) = &request.notify_url {
        // Before they run, so that no finish comes first (the sweep would find it, later).
        state
            .notifier()
            .arm(&flow_id, url, &admitted.participants, !admitted.repeated)
            .await?;
    }
    if !admitted.repeated {
        tracing::info!(flow = %flow_id, added = admitted.participants.len(), "participants added");
        state.run_soon(admitted.participants.clone());
    }
    let mut response = (
        StatusCode::ACCEPTED,
        Json(json!({ "flow": flow_id, "participants": admitted.participants })),
    )
        .into_response();
    if admitted.repeated {
        response
            .headers_mut()
            .insert("idempotent-replayed", HeaderValue::from_static("true"));
    }
    Ok(response)
}

/// The `Idempotency-Key` header, when sent.
fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, Problem> {
    let Some(value) = headers.get("idempotency-key") else {
        return Ok(None);
    };
    let bad = |message: &str| Problem {
        errors: vec![FieldError {
            path: "Idempotency-Key".into(),
            message: message.into(),
        }],
        ..Problem::bad_request(format!("Idempotency-Key: {message}"))
    };
    let key = value
        .to_str()
        .map_err(|_| bad("must be printable ASCII (a UUID is a good key)"))?;
    if key.is_empty() || key.len() > MAX_KEY_LEN {
        return Err(bad(&format!(
            "must be 1 to {MAX_KEY_LEN} characters (a UUID is a good key)"
        )));
    }
    Ok(Some(key.to_owned()))
}

/// Checks one entrant without writing anything.
async fn who(people: &People<'_>, entrant: &Entrant, i: usize) -> Result<Who, FieldError> {
    let at = |field: &str, message: String| FieldError {
        path: format!("participants[{i}]{field}"),
        message,
    };
    match (&entrant.person_id, &entrant.contact, &entrant.person) {
        (Some(id), None, None) => match people.get(id).await {
            Ok(Some(person)) => Ok(Who::Known(person)),
            Ok(None) => Err(at(
                ".person_id",
                format!("no person {id:?} in People; add them first, or give a contact instead"),
            )),
            Err(e) => Err(at(".person_id", e.to_string())),
        },
        (None, Some(contact), None) => Contact::guess(contact)
            .map(Who::Contact)
            .map_err(|e| at(".contact", e)),
        (None, None, Some(person)) => {
            for phone in &person.phones {
                Contact::phone(phone).map_err(|e| at(".person.phones", e))?;
            }
            for email in &person.emails {
                Contact::email(email).map_err(|e| at(".person.emails", e))?;
            }
            Ok(Who::Inline(person.clone()))
        }
        _ => Err(at(
            "",
            "give exactly one of person_id, contact or person".into(),
        )),
    }
}

/// A participant as the API shows it.
#[derive(Serialize)]
pub struct ParticipantView {
    id: String,
    flow: String,
    /// The version of the flow it runs on.
    version: u32,
    status: Status,
    current: Option<String>,
    waiting_until: Option<i64>,
    steps: u64,
    person: Person,
    variables: BTreeMap<String, Value>,
    /// The `notify_url` callback, when the participant was added with one.
    #[serde(skip_serializing_if = "Option::is_none")]
    notification: Option<Value>,
}

impl From<ParticipantState> for ParticipantView {
    fn from(p: ParticipantState) -> Self {
        ParticipantView {
            id: p.id,
            flow: p.flow_id,
            version: p.flow_version,
            status: p.status,
            current: p.current,
            waiting_until: p.waiting_until,
            steps: p.steps,
            person: p.person,
            variables: p.variables,
            notification: None,
        }
    }
}

/// `GET /v1/participants/{id}`.
pub async fn get(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<ParticipantView>, Problem> {
    let mut view: ParticipantView = state.engine().participant(&id).await?.into();
    view.notification = crate::notify::state_of(state.engine(), &id).await?;
    Ok(Json(view))
}

/// `GET /v1/participants/{id}/journey`: every step with its element, exit, timing,
/// variables changed, logs and errors.
pub async fn journey(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, Problem> {
    let engine = state.engine();
    // 404 for a participant that does not exist, rather than an empty journey.
    engine.participant(&id).await?;
    let journey = engine.journey(&id).await?;
    Ok(Json(json!({ "participant": id, "journey": journey })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// Comma-separated statuses; all when absent.
    #[serde(default)]
    status: Option<String>,
}

/// `GET /v1/flows/{id}/participants[?status=waiting,queued]`: ids, oldest first.
pub async fn list(
    State(state): State<AppState>,
    Path(flow_id): Path<String>,
    Query(query): Query<ListQuery>,
) -> Result<Json<Value>, Problem> {
    let engine = state.engine();
    engine.flow_def(&flow_id)?;
    let statuses = match &query.status {
        None => vec![
            Status::Running,
            Status::Queued,
            Status::Waiting,
            Status::Completed,
            Status::Failed,
            Status::Canceled,
        ],
        Some(list) => list
            .split(',')
            .map(|s| {
                Status::parse(s.trim()).ok_or_else(|| Problem {
                    errors: vec![FieldError {
                        path: "status".into(),
                        message: format!("unknown status {s:?}"),
                    }],
                    ..Problem::bad_request(format!(
                        "status: unknown status {s:?}; use running, queued, waiting, completed, failed or canceled, comma-separated"
                    ))
                })
            })
            .collect::<Result<_, _>>()?,
    };
    let ids = engine.store().participants_of(&flow_id, &statuses).await?;
    Ok(Json(json!({ "flow": flow_id, "participants": ids })))
}

/// Most participants `GET /v1/participants` answers with.
const MAX_OF_PERSON: usize = 500;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ByPerson {
    #[serde(default)]
    person: Option<String>,
    #[serde(default)]
    contact: Option<String>,
    #[serde(default)]
    limit: Option<usize>,
}

/// `GET /v1/participants?person=ID` or `?contact=+385911234567` (`&limit=N`, default 50,
/// at most 500): the person's participants in every flow, newest first.
pub async fn of_person(
    State(state): State<AppState>,
    Query(query): Query<ByPerson>,
) -> Result<Json<Value>, Problem> {
    let engine = state.engine();
    let person_id = match (query.person, query.contact) {
        (Some(id), None) => id,
        (None, Some(contact)) => crate::people::by_contact(&state, &contact).await?.id,
        _ => {
            return Err(Problem::bad_request(
                "give exactly one of person (a People id) or contact (a phone number, email or external id)",
            ));
        }
    };
    let limit = query.limit.unwrap_or(50).clamp(1, MAX_OF_PERSON);
    let ids = engine
        .store()
        .participants_of_person(&person_id, limit)
        .await?;
    let mut participants = Vec::with_capacity(ids.len());
    for id in ids {
        // One finished and pruned since the list was read is left out.
        match engine.participant(&id).await {
            Ok(p) => participants.push(ParticipantView::from(p)),
            Err(EngineError::UnknownParticipant(_)) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(Json(
        json!({ "person": person_id, "participants": participants }),
    ))
}
