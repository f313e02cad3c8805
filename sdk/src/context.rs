//! What the element is given for one execution.

use crate::bindings::flowhost::element::types as wit;
use crate::{Error, Json, value_to_json};
use serde::de::DeserializeOwned;

/// The person a flow runs for.
#[derive(Clone, Debug)]
pub struct Person {
    /// The person's id in flowhost.
    pub id: String,
    /// Phone numbers (E.164 where known).
    pub phones: Vec<String>,
    /// Email addresses.
    pub emails: Vec<String>,
    /// An id in an external system, if any.
    pub external_id: Option<String>,
    /// Standard and custom attributes (`firstName`, `lastName`, `country`, …).
    pub attributes: serde_json::Map<String, Json>,
}

impl Person {
    /// An attribute's value.
    pub fn attribute(&self, name: &str) -> Option<&Json> {
        self.attributes.get(name)
    }

    /// An attribute that holds a string.
    pub fn attribute_str(&self, name: &str) -> Option<&str> {
        self.attributes.get(name).and_then(Json::as_str)
    }

    /// The first email address.
    pub fn email(&self) -> Option<&str> {
        self.emails.first().map(String::as_str)
    }

    /// The first phone number.
    pub fn phone(&self) -> Option<&str> {
        self.phones.first().map(String::as_str)
    }
}

/// One execution of the element for one participant.
#[derive(Clone, Debug)]
pub struct Context {
    flow_id: String,
    element_id: String,
    participant_id: String,
    person: Person,
    config: serde_json::Map<String, Json>,
}

impl Context {
    pub(crate) fn from_wit(inv: wit::Invocation) -> Self {
        let p = inv.person;
        Context {
            flow_id: inv.flow_id,
            element_id: inv.element_id,
            participant_id: inv.participant_id,
            person: Person {
                id: p.id,
                phones: p.phones,
                emails: p.emails,
                external_id: p.external_id,
                attributes: p
                    .attributes
                    .into_iter()
                    .map(|(k, v)| (k, value_to_json(v)))
                    .collect(),
            },
            config: inv
                .config
                .into_iter()
                .map(|(k, v)| (k, value_to_json(v)))
                .collect(),
        }
    }

    /// The flow's id.
    pub fn flow_id(&self) -> &str {
        &self.flow_id
    }

    /// The element's id within the flow.
    pub fn element_id(&self) -> &str {
        &self.element_id
    }

    /// The participant's id (one person's pass through the flow).
    pub fn participant_id(&self) -> &str {
        &self.participant_id
    }

    /// The person the flow runs for.
    pub fn person(&self) -> &Person {
        &self.person
    }

    /// The whole configuration as a typed struct (serde), defaults already applied by the host.
    pub fn config<T: DeserializeOwned>(&self) -> Result<T, Error> {
        serde_json::from_value(Json::Object(self.config.clone()))
            .map_err(|e| Error::config(format!("element `{}`: {e}", self.element_id)))
    }

    /// One configuration value, typed.
    pub fn config_value<T: DeserializeOwned>(&self, name: &str) -> Result<T, Error> {
        let value = self.config.get(name).cloned().unwrap_or(Json::Null);
        serde_json::from_value(value).map_err(|e| {
            Error::config(format!(
                "element `{}`, config field `{name}`: {e}",
                self.element_id
            ))
        })
    }
}
