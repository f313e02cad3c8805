//! A HubSpot-style CRM API (contacts v3 and list memberships).
//!
//! - `POST /crm/v3/objects/contacts/search` with an `EQ` filter on `email` answers
//!   `{"total": n, "results": [{"id", "properties", "createdAt", "updatedAt", "archived"}]}`.
//! - `POST /crm/v3/objects/contacts` `{"properties": {…}}` answers 201; an email that exists
//!   answers 409 `Contact already exists. Existing ID: <id>` (category `CONFLICT`).
//! - `PATCH /crm/v3/objects/contacts/{id}` answers 200, or 404 (`OBJECT_NOT_FOUND`).
//! - `PUT /crm/v3/lists/{listId}/memberships/add` with a JSON array of record ids answers
//!   `{"recordIdsAdded", "recordIdsMissing", "recordsIdsAlreadyMember"}`, or 404.
//!
//! Auth is a private-app token, `Authorization: Bearer <token>`; otherwise 401
//! (`INVALID_AUTHENTICATION`). A property outside the known set answers 400
//! (`VALIDATION_ERROR`), as HubSpot does for undefined properties.

use crate::testing::{Received, Reply, TestServer};
use serde_json::{Map, Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

/// Contact properties the emulator accepts.
pub const PROPERTIES: &[&str] = &[
    "email",
    "firstname",
    "lastname",
    "phone",
    "country",
    "lifecyclestage",
    "company",
];

/// The list that exists, in the seeded data.
pub const LIST_ID: &str = "42";

#[derive(Default)]
struct State {
    contacts: BTreeMap<String, Map<String, Value>>,
    lists: BTreeMap<String, BTreeSet<String>>,
    next_id: u64,
}

/// The running emulator.
pub struct CrmApi {
    /// The server (its `received()` lists every request).
    pub server: TestServer,
    state: Arc<Mutex<State>>,
}

impl CrmApi {
    /// Starts the emulator accepting `token`, with list [`LIST_ID`] and no contacts.
    pub async fn start(token: &str) -> CrmApi {
        let state = Arc::new(Mutex::new(State {
            lists: BTreeMap::from([(LIST_ID.to_owned(), BTreeSet::new())]),
            next_id: 501,
            ..State::default()
        }));
        let shared = state.clone();
        let expected = format!("Bearer {token}");
        let server = TestServer::start_replying(move |r| answer(r, &expected, &shared)).await;
        CrmApi { server, state }
    }

    /// `http://127.0.0.1:<port>`, the API's base URL.
    pub fn url(&self) -> String {
        self.server.url()
    }

    /// Adds a contact directly; returns its id.
    pub fn seed_contact(&self, properties: Value) -> String {
        let mut state = self.state.lock().unwrap();
        let id = state.next_id.to_string();
        state.next_id += 1;
        let props = properties.as_object().cloned().unwrap_or_default();
        state.contacts.insert(id.clone(), props);
        id
    }

    /// A contact's properties.
    pub fn contact(&self, id: &str) -> Option<Map<String, Value>> {
        self.state.lock().unwrap().contacts.get(id).cloned()
    }

    /// Members of a list.
    pub fn list_members(&self, list: &str) -> BTreeSet<String> {
        self.state
            .lock()
            .unwrap()
            .lists
            .get(list)
            .cloned()
            .unwrap_or_default()
    }
}

fn error(status: u16, category: &str, message: &str) -> Reply {
    Reply::json(
        status,
        &json!({"status": "error", "message": message, "correlationId": "00000000-0000-4000-8000-000000000000", "category": category})
            .to_string(),
    )
}

fn record(id: &str, props: &Map<String, Value>) -> Value {
    json!({"id": id, "properties": props, "createdAt": "2026-11-24T10:00:00Z",
           "updatedAt": "2026-11-24T10:00:00Z", "archived": false})
}

fn check_properties(props: &Map<String, Value>) -> Result<(), Reply> {
    match props.keys().find(|k| !PROPERTIES.contains(&k.as_str())) {
        Some(bad) => Err(error(
            400,
            "VALIDATION_ERROR",
            &format!(
                "Property values were not valid: [{{\"isValid\":false,\"message\":\"Property \\\"{bad}\\\" does not exist\",\"name\":\"{bad}\"}}]"
            ),
        )),
        None => Ok(()),
    }
}

fn answer(r: &Received, expected: &str, state: &Mutex<State>) -> Reply {
    if r.header("authorization") != Some(expected) {
        return error(
            401,
            "INVALID_AUTHENTICATION",
            "Authentication credentials not found. This API supports OAuth 2.0 authentication.",
        );
    }
    let body: Value = serde_json::from_slice(&r.body).unwrap_or(Value::Null);
    let path = r.path.split('?').next().unwrap_or_default().to_owned();
    let mut state = state.lock().unwrap();
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    match (r.method.as_str(), segments.as_slice()) {
        ("POST", ["crm", "v3", "objects", "contacts", "search"]) => {
            let email = body["filterGroups"][0]["filters"]
                .as_array()
                .and_then(|f| {
                    f.iter()
                        .find(|f| f["propertyName"] == "email" && f["operator"] == "EQ")
                })
                .and_then(|f| f["value"].as_str())
                .map(str::to_ascii_lowercase);
            let results: Vec<Value> = state
                .contacts
                .iter()
                .filter(|(_, p)| {
                    email.is_some()
                        && p.get("email")
                            .and_then(Value::as_str)
                            .map(str::to_ascii_lowercase)
                            == email
                })
                .map(|(id, p)| record(id, p))
                .collect();
            Reply::json(
                200,
                &json!({"total": results.len(), "results": results}).to_string(),
            )
        }
        ("POST", ["crm", "v3", "objects", "contacts"]) => {
            let props = body["properties"].as_object().cloned().unwrap_or_default();
            if let Err(reply) = check_properties(&props) {
                return reply;
            }
            let email = props
                .get("email")
                .and_then(Value::as_str)
                .map(str::to_ascii_lowercase);
            if let Some((id, _)) = state.contacts.iter().find(|(_, p)| {
                p.get("email")
                    .and_then(Value::as_str)
                    .map(str::to_ascii_lowercase)
                    == email
            }) {
                return error(
                    409,
                    "CONFLICT",
                    &format!("Contact already exists. Existing ID: {id}"),
                );
            }
            let id = state.next_id.to_string();
            state.next_id += 1;
            state.contacts.insert(id.clone(), props.clone());
            Reply::json(201, &record(&id, &props).to_string())
        }
        ("PATCH", ["crm", "v3", "objects", "contacts", id]) => {
            let props = body["properties"].as_object().cloned().unwrap_or_default();
            if let Err(reply) = check_properties(&props) {
                return reply;
            }
            let Some(contact) = state.contacts.get_mut(*id) else {
                return error(404, "OBJECT_NOT_FOUND", "resource not found");
            };
            contact.extend(props);
            let contact = contact.clone();
            Reply::json(200, &record(id, &contact).to_string())
        }
        ("PUT", ["crm", "v3", "lists", list, "memberships", "add"]) => {
            let ids: Vec<String> = body
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|v| v.as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default();
            let known: BTreeSet<String> = state.contacts.keys().cloned().collect();
            let Some(members) = state.lists.get_mut(*list) else {
                return error(
                    404,
                    "OBJECT_NOT_FOUND",
                    &format!("List {list} does not exist."),
                );
            };
            let (mut added, mut missing, mut already) = (vec![], vec![], vec![]);
            for id in ids {
                if !known.contains(&id) {
                    missing.push(id);
                } else if !members.insert(id.clone()) {
                    already.push(id);
                } else {
                    added.push(id);
                }
            }
            Reply::json(
                200,
                &json!({"recordIdsAdded": added, "recordIdsMissing": missing,
                        "recordsIdsAlreadyMember": already})
                .to_string(),
            )
        }
        _ => error(404, "OBJECT_NOT_FOUND", "resource not found"),
    }
}
