//! `/v1/people`: create, replace and read People profiles, by id or by contact.

use crate::AppState;
use crate::problem::{Body, FieldError, Problem};
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use flowhost::person::{Contact, People, PeopleError, Person};
use serde::Deserialize;

impl From<PeopleError> for Problem {
    fn from(e: PeopleError) -> Self {
        match e {
            PeopleError::Invalid(message) => Problem::invalid(
                format!("the person cannot be saved: {message}"),
                vec![FieldError {
                    path: "person".into(),
                    message,
                }],
            ),
            PeopleError::NotFound(_) => Problem::not_found(e.to_string()),
            PeopleError::Store(store) => Problem::from(store),
            other => Problem::internal(&other),
        }
    }
}

/// `POST /v1/people`: a new profile (an empty `id` gets a fresh one). 201 with the profile;
/// 422 when a contact or attribute is not acceptable; 409 when a contact belongs to
/// someone else.
pub async fn create(
    State(state): State<AppState>,
    Body(person): Body<Person>,
) -> Result<(StatusCode, Json<Person>), Problem> {
    let people = People::new(state.engine().store());
    Ok((StatusCode::CREATED, Json(people.create(person).await?)))
}

/// `PUT /v1/people/{id}`: replaces a profile; the body's `id`, when given, must match.
pub async fn replace(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Body(mut person): Body<Person>,
) -> Result<Json<Person>, Problem> {
    if !person.id.is_empty() && person.id != id {
        return Err(Problem::invalid(
            format!("the body's id {:?} is not the path's {id:?}", person.id),
            vec![FieldError {
                path: "id".into(),
                message: "leave it out, or give the id of the path".into(),
            }],
        ));
    }
    person.id = id.clone();
    let people = People::new(state.engine().store());
    if people.get(&id).await?.is_none() {
        return Err(Problem::not_found(format!(
            "no person {id:?} in People; create them with POST /v1/people"
        )));
    }
    Ok(Json(people.save(person).await?))
}

/// `GET /v1/people/{id}`.
pub async fn get(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Person>, Problem> {
    People::new(state.engine().store())
        .get(&id)
        .await?
        .map(Json)
        .ok_or_else(|| Problem::not_found(format!("no person {id:?} in People")))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ByContact {
    contact: String,
}

/// `GET /v1/people?contact=+385911234567`: the profile with that contact.
pub async fn find(
    State(state): State<AppState>,
    Query(query): Query<ByContact>,
) -> Result<Json<Person>, Problem> {
    by_contact(&state, &query.contact).await.map(Json)
}

/// The person in People with `contact` (the query parameter `contact`): 400 when it is not a
/// contact, 404 when nobody has it.
pub(crate) async fn by_contact(state: &AppState, contact: &str) -> Result<Person, Problem> {
    let parsed = Contact::guess(contact).map_err(|message| Problem {
        errors: vec![FieldError {
            path: "contact".into(),
            message: message.clone(),
        }],
        ..Problem::bad_request(format!("contact: {message}"))
    })?;
    People::new(state.engine().store())
        .find(&parsed)
        .await?
        .ok_or_else(|| Problem::not_found(format!("nobody in People has the contact {contact:?}")))
}
