//! A plugin's self-description, independent of the WIT version it was built against.

use serde::Serialize;
use serde_json::Value;

/// The id of the exit every element has, where the host routes failures.
pub use flowhost_types::ERROR_EXIT;

/// What a configuration field accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FieldKind {
    /// A string.
    Text,
    /// A number.
    Number,
    /// `true` or `false`.
    Boolean,
    /// Any JSON value.
    Json,
}

impl FieldKind {
    /// Whether `value` has this kind.
    pub fn accepts(self, value: &Value) -> bool {
        match self {
            FieldKind::Text => value.is_string(),
            FieldKind::Number => value.is_number(),
            FieldKind::Boolean => value.is_boolean(),
            FieldKind::Json => true,
        }
    }

    /// The name used in messages.
    pub fn name(self) -> &'static str {
        match self {
            FieldKind::Text => "text",
            FieldKind::Number => "number",
            FieldKind::Boolean => "boolean",
            FieldKind::Json => "json",
        }
    }
}

/// One configuration field.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ConfigField {
    /// Key in the element's `config` object.
    pub name: String,
    /// Label for flow authors.
    pub label: String,
    /// Longer description.
    pub description: String,
    /// What it accepts.
    pub kind: FieldKind,
    /// Whether flows must set it.
    pub required: bool,
    /// Value used when the flow leaves it out.
    pub default: Option<Value>,
    /// Set by the operator in `flowhost.toml`, never in flows.
    pub secret: bool,
}

/// One exit.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ExitDecl {
    /// Id used in the flow's `exits` map.
    pub id: String,
    /// Label for flow authors.
    pub label: String,
}

/// A plugin's manifest, as returned by `describe`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Manifest {
    /// Plugin id.
    pub id: String,
    /// Plugin version.
    pub version: semver::Version,
    /// Display name.
    pub name: String,
    /// Description.
    pub description: String,
    /// Configuration fields.
    pub config: Vec<ConfigField>,
    /// Exits, including `error`.
    pub exits: Vec<ExitDecl>,
    /// Outbound hosts the plugin declares.
    pub hosts: Vec<String>,
}

/// Whether `id` is a valid plugin id: lowercase ASCII letters, digits and `-`, starting with
/// a letter.
pub fn valid_id(id: &str) -> bool {
    id.starts_with(|c: char| c.is_ascii_lowercase())
        && id
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}
