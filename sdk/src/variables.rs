//! The participant's flow variables, as JSON values.

use crate::bindings::flowhost::element::variables as raw;
use crate::{Json, json_to_value, value_to_json};

/// A variable's value, or `None` when it is not set.
pub fn get(name: &str) -> Option<Json> {
    raw::get(name).map(value_to_json)
}

/// A variable as text: strings as they are, other values as JSON.
pub fn get_str(name: &str) -> Option<String> {
    get(name).map(|v| match v {
        Json::String(s) => s,
        other => other.to_string(),
    })
}

/// Sets a variable; later elements and the journey see the new value.
pub fn set(name: &str, value: impl Into<Json>) {
    raw::set(name, &json_to_value(value.into()));
}

/// Every variable of the participant.
pub fn list() -> Vec<(String, Json)> {
    raw::all()
        .into_iter()
        .map(|(k, v)| (k, value_to_json(v)))
        .collect()
}
