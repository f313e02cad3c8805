//! Sample element: creates or updates the participant as a contact in a HubSpot-style CRM
//! (search by email, then create or update), optionally adds it to a list, and saves
//! `crm_contact_id`.
//!
//! Build: `cargo build --release --target wasm32-wasip2 -p crm-sync`, then copy
//! `target/wasm32-wasip2/release/crm_sync.wasm` into `plugins/` (`./dev demo` does both and
//! runs it against a local emulator). See this crate's README.

use flowhost_sdk::http::{Request, Response};
use flowhost_sdk::{
    Context, Element, Error, Exit, Field, Json, JsonObject, Manifest, config, export_element, json,
    log, template, variables,
};
use serde::Deserialize;

/// The public API, used when the operator sets no `base_url`.
const DEFAULT_BASE_URL: &str = "https://api.hubapi.com";

struct CrmSync;

#[derive(Deserialize)]
struct Settings {
    properties: JsonObject,
    #[serde(default)]
    list_id: Option<String>,
}

#[derive(Deserialize)]
struct SearchResult {
    total: u64,
    results: Vec<Record>,
}

#[derive(Deserialize)]
struct Record {
    id: String,
}

fn failed(what: &str, response: &Response) -> Error {
    let message = response.json_value()["message"]
        .as_str()
        .map(str::to_owned)
        .unwrap_or_else(|| response.text());
    Error::failed(format!(
        "CRM {what} answered {}: {message}",
        response.status
    ))
}

impl Element for CrmSync {
    fn manifest() -> Manifest {
        Manifest::new("crm-sync", env!("CARGO_PKG_VERSION"), "CRM sync")
            .description("Creates or updates the person as a CRM contact and saves crm_contact_id")
            .config(
                Field::json("properties")
                    .label(
                        "Contact properties; values may use {{person.attribute}} and {{variable}}",
                    )
                    .default_value(json!({
                        "firstname": "{{person.firstName}}",
                        "lastname": "{{person.lastName}}"
                    })),
            )
            .config(Field::text("list_id").label("Add the contact to this list"))
            .config(
                Field::secret("access_token")
                    .label("Private app access token")
                    .required(),
            )
            .exit("created", "Contact created")
            .exit("updated", "Contact updated")
            .host("api.hubapi.com")
            .host("setting:base_url")
    }

    fn execute(ctx: &Context) -> Result<Exit, Error> {
        let s: Settings = ctx.config()?;
        let email = ctx
            .person()
            .email()
            .ok_or_else(|| Error::failed("the person has no email address to match a contact by"))?
            .to_owned();
        let mut properties = JsonObject::new();
        for (name, value) in &s.properties {
            let value = match value {
                Json::String(t) => Json::String(template::render(t.as_str(), ctx)?),
                other => other.clone(),
            };
            properties.insert(name.clone(), value);
        }
        let base = config::setting("base_url").unwrap_or_else(|| DEFAULT_BASE_URL.to_owned());
        let base = base.trim_end_matches('/');
        let token = config::require_secret("access_token")?;

        let search = Request::post(&format!("{base}/crm/v3/objects/contacts/search"))
            .bearer(&token)
            .json(&json!({
                "filterGroups": [{"filters": [{"propertyName": "email", "operator": "EQ", "value": email}]}],
                "properties": ["email"],
                "limit": 1
            }))
            .send()?;
        if search.status != 200 {
            return Err(failed("search", &search));
        }
        let found: SearchResult = search.json()?;
        let (id, exit) = match found.results.into_iter().next() {
            Some(existing) if found.total > 0 => {
                let r = Request::patch(&format!("{base}/crm/v3/objects/contacts/{}", existing.id))
                    .bearer(&token)
                    .json(&json!({ "properties": properties }))
                    .send()?;
                if r.status != 200 {
                    return Err(failed("update", &r));
                }
                (existing.id, "updated")
            }
            _ => {
                properties.insert("email".into(), Json::String(email.clone()));
                let r = Request::post(&format!("{base}/crm/v3/objects/contacts"))
                    .bearer(&token)
                    .json(&json!({ "properties": properties }))
                    .send()?;
                if r.status != 201 {
                    return Err(failed("create", &r));
                }
                (r.json::<Record>()?.id, "created")
            }
        };
        log::info(&format!("contact {id} {exit}"));
        if let Some(list) = s.list_id.filter(|l| !l.is_empty()) {
            let r = Request::put(&format!("{base}/crm/v3/lists/{list}/memberships/add"))
                .bearer(&token)
                .json(&json!([id]))
                .send()?;
            if r.status != 200 {
                return Err(failed("list membership", &r));
            }
        }
        variables::set("crm_contact_id", id.as_str());
        Ok(Exit::to(exit).with_data(json!({ "contact_id": id })))
    }
}

export_element!(CrmSync);
