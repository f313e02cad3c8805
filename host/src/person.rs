//! People who take part in flows.

use serde::{Deserialize, Serialize};

/// A person: contact information plus standard and custom attributes.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase", deny_unknown_fields)]
pub struct Person {
    /// Identifier, unique in this flowhost.
    pub id: String,
    /// Phone numbers.
    pub phones: Vec<String>,
    /// Email addresses.
    pub emails: Vec<String>,
    /// Identifier in an external system.
    pub external_id: Option<String>,
    /// Attributes such as `firstName`, `lastName`, `country`, and custom ones.
    pub attributes: serde_json::Map<String, serde_json::Value>,
}
