//! Sample element: registers the participant for a webinar on a Zoom-style API
//! (`POST /v2/webinars/{webinarId}/registrants`) and saves the join link.
//!
//! Build: `cargo build --release --target wasm32-wasip2 -p webinar-registration`, then copy
//! `target/wasm32-wasip2/release/webinar_registration.wasm` into `plugins/` (`./dev demo`
//! does both and runs it against a local emulator). See this crate's README.

use flowhost_sdk::http::Request;
use flowhost_sdk::{
    Context, Element, Error, Exit, Field, Json, Manifest, config, export_element, json, log,
    variables,
};
use serde::Deserialize;

/// The public API, used when the operator sets no `base_url`.
const DEFAULT_BASE_URL: &str = "https://api.zoom.us";

struct WebinarRegistration;

#[derive(Deserialize)]
struct Settings {
    webinar_id: String,
}

#[derive(Deserialize)]
struct Registered {
    registrant_id: String,
    join_url: String,
}

#[derive(Deserialize, Default)]
struct ApiError {
    #[serde(default)]
    code: u32,
    #[serde(default)]
    message: String,
}

impl Element for WebinarRegistration {
    fn manifest() -> Manifest {
        Manifest::new(
            "webinar-registration",
            env!("CARGO_PKG_VERSION"),
            "Webinar registration",
        )
        .description("Registers the participant for a webinar and saves join_url and registrant_id")
        .config(Field::text("webinar_id").label("Webinar ID").required())
        .config(
            Field::secret("api_token")
                .label("API access token")
                .required(),
        )
        .exit("registered", "Registered")
        .exit("already-registered", "Already registered")
        .exit("not-found", "Webinar not found")
        .exit("full", "Webinar full")
        .host("api.zoom.us")
        .host("setting:base_url")
    }

    fn execute(ctx: &Context) -> Result<Exit, Error> {
        let settings: Settings = ctx.config()?;
        let person = ctx.person();
        let email = person
            .email()
            .ok_or_else(|| Error::failed("the person has no email address to register"))?;
        let first_name = person
            .attribute_str("firstName")
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| email.split('@').next().unwrap_or(email));
        let mut body = json!({"email": email, "first_name": first_name});
        if let Some(last) = person.attribute_str("lastName") {
            body["last_name"] = Json::from(last);
        }
        let base = config::setting("base_url").unwrap_or_else(|| DEFAULT_BASE_URL.to_owned());
        let token = config::require_secret("api_token")?;
        let url = format!(
            "{}/v2/webinars/{}/registrants",
            base.trim_end_matches('/'),
            settings.webinar_id
        );
        log::info(&format!(
            "registering {email} for webinar {}",
            settings.webinar_id
        ));
        let response = Request::post(&url).bearer(&token).json(&body).send()?;
        let api_error = || response.json::<ApiError>().unwrap_or_default();
        match response.status {
            200 | 201 => {
                let r: Registered = response.json()?;
                variables::set("join_url", r.join_url.as_str());
                variables::set("registrant_id", r.registrant_id.as_str());
                Ok(Exit::to("registered").with_data(json!({"registrant_id": r.registrant_id})))
            }
            409 => Ok(Exit::to("already-registered")),
            404 if api_error().code == 3001 => Ok(Exit::to("not-found")),
            400 if api_error().code == 3035 => Ok(Exit::to("full")),
            // Zoom reports an existing registrant with code 3027 on some accounts.
            _ if api_error().code == 3027 => Ok(Exit::to("already-registered")),
            status => {
                let e = api_error();
                Err(Error::failed(format!(
                    "webinar API answered {status} (code {}): {}",
                    e.code, e.message
                )))
            }
        }
    }
}

export_element!(WebinarRegistration);
