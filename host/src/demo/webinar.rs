//! A Zoom-style webinar API: `POST /v2/webinars/{webinarId}/registrants`.
//!
//! Auth is `Authorization: Bearer <token>`; a wrong or missing token answers 401 with Zoom's
//! code 124. The body needs `email` and `first_name` (`last_name` optional). Answers, as the
//! public API does: 201 with `id`, `registrant_id`, `join_url`, `topic`, `start_time`; 404 with
//! code 3001 for an unknown webinar; 400 with code 3035 when the webinar is full; 400 with code
//! 300 for a body that fails validation. A second registration with the same email answers 409
//! with code 3027 (an assumption of this emulator, documented in the plugin's README).

use crate::testing::{Received, Reply, TestServer};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

/// A webinar the emulator knows.
#[derive(Clone, Debug)]
pub struct Webinar {
    /// Topic.
    pub topic: String,
    /// Most registrants.
    pub capacity: usize,
    /// Registrants so far: email → registrant id.
    pub registrants: BTreeMap<String, String>,
}

/// The running emulator.
pub struct WebinarApi {
    /// The server (its `received()` lists every request).
    pub server: TestServer,
    webinars: Arc<Mutex<BTreeMap<String, Webinar>>>,
}

/// The webinar with room, in the seeded data.
pub const OPEN_WEBINAR: &str = "81234567890";
/// The webinar that is full, in the seeded data.
pub const FULL_WEBINAR: &str = "89999999999";

impl WebinarApi {
    /// Starts the emulator accepting `token`, with two webinars: [`OPEN_WEBINAR`] and
    /// [`FULL_WEBINAR`].
    pub async fn start(token: &str) -> WebinarApi {
        let mut seed = BTreeMap::new();
        seed.insert(
            OPEN_WEBINAR.to_owned(),
            Webinar {
                topic: "Flows 101".into(),
                capacity: 100,
                registrants: BTreeMap::new(),
            },
        );
        seed.insert(
            FULL_WEBINAR.to_owned(),
            Webinar {
                topic: "Sold out".into(),
                capacity: 1,
                registrants: BTreeMap::from([("first@example.com".into(), "r-first".into())]),
            },
        );
        let webinars = Arc::new(Mutex::new(seed));
        let state = webinars.clone();
        let expected = format!("Bearer {token}");
        let server = TestServer::start_replying(move |r| answer(r, &expected, &state)).await;
        WebinarApi { server, webinars }
    }

    /// `http://127.0.0.1:<port>`, the API's base URL.
    pub fn url(&self) -> String {
        self.server.url()
    }

    /// Registrants of a webinar: email → registrant id.
    pub fn registrants(&self, webinar: &str) -> BTreeMap<String, String> {
        self.webinars.lock().unwrap()[webinar].registrants.clone()
    }
}

fn error(status: u16, code: u32, message: &str) -> Reply {
    Reply::json(
        status,
        &json!({"code": code, "message": message}).to_string(),
    )
}

fn answer(r: &Received, expected: &str, state: &Mutex<BTreeMap<String, Webinar>>) -> Reply {
    if r.header("authorization") != Some(expected) {
        return error(401, 124, "Invalid access token.");
    }
    let path = r.path.split('?').next().unwrap_or_default();
    let Some(id) = path
        .strip_prefix("/v2/webinars/")
        .and_then(|rest| rest.strip_suffix("/registrants"))
    else {
        return error(404, 404, "Not found.");
    };
    if r.method != "POST" {
        return error(405, 405, "Method not allowed.");
    }
    let mut webinars = state.lock().unwrap();
    let Some(webinar) = webinars.get_mut(id) else {
        return error(
            404,
            3001,
            &format!("Webinar {id} not found or has expired."),
        );
    };
    let body: Value = serde_json::from_slice(&r.body).unwrap_or(Value::Null);
    let email = body["email"].as_str().unwrap_or_default().to_owned();
    if !email.contains('@') || body["first_name"].as_str().is_none_or(str::is_empty) {
        return Reply::json(
            400,
            &json!({"code": 300, "message": "Validation Failed.",
                    "errors": [{"field": if email.contains('@') { "first_name" } else { "email" },
                                "message": "Invalid field."}]})
            .to_string(),
        );
    }
    if webinar.registrants.contains_key(&email) {
        return error(409, 3027, &format!("Registrant {email} already exists."));
    }
    if webinar.registrants.len() >= webinar.capacity {
        return error(400, 3035, "Webinar has reached maximum attendee capacity.");
    }
    let registrant_id = format!("r{}{}", id.len(), webinar.registrants.len() + 1);
    webinar.registrants.insert(email, registrant_id.clone());
    Reply::json(
        201,
        &json!({
            "id": id.parse::<u64>().unwrap_or_default(),
            "registrant_id": registrant_id,
            "join_url": format!("https://zoom.example/w/{id}?tk={registrant_id}"),
            "topic": webinar.topic,
            "start_time": "2026-12-10T15:00:00Z",
        })
        .to_string(),
    )
}
