//! Operator secrets, and the one way their values are kept out of journeys, logs, error
//! messages and stored variables: every secret value is replaced by `[secret:NAME]`.

use serde::Deserialize;
use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::Arc;

/// Named secret values. Cheap to clone.
#[derive(Clone, Default)]
pub struct Secrets(Arc<BTreeMap<String, String>>);

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.0.keys()).finish()
    }
}

impl From<BTreeMap<String, String>> for Secrets {
    fn from(map: BTreeMap<String, String>) -> Self {
        Secrets(Arc::new(map))
    }
}

impl From<Arc<BTreeMap<String, String>>> for Secrets {
    fn from(map: Arc<BTreeMap<String, String>>) -> Self {
        Secrets(map)
    }
}

impl Secrets {
    /// A secret's value.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }

    /// Whether a secret of this name exists.
    pub fn contains(&self, name: &str) -> bool {
        self.0.contains_key(name)
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The values by name.
    pub fn as_map(&self) -> &BTreeMap<String, String> {
        &self.0
    }

    /// `text` with every secret value replaced by `[secret:NAME]`.
    pub fn redact(&self, text: &str) -> String {
        let mut text = text.to_owned();
        self.redact_in_place(&mut text);
        text
    }

    /// Redacts `text` where it is; allocates only when a secret is found.
    pub fn redact_in_place(&self, text: &mut String) {
        for (name, value) in self.0.iter() {
            if !value.is_empty() && text.contains(value.as_str()) {
                *text = text.replace(value.as_str(), &format!("[secret:{name}]"));
            }
        }
    }

    /// `text` with every `[secret:NAME]` of a known secret replaced by its value: the
    /// reverse of [`Secrets::redact`], for a request kept redacted until it is sent.
    pub fn restore(&self, text: &str) -> String {
        let mut text = text.to_owned();
        for (name, value) in self.0.iter() {
            let marker = format!("[secret:{name}]");
            if text.contains(&marker) {
                text = text.replace(&marker, value);
            }
        }
        text
    }

    /// Redacts every string inside a JSON value.
    pub fn redact_value(&self, value: &mut Value) {
        match value {
            Value::String(s) => self.redact_in_place(s),
            Value::Array(items) => items.iter_mut().for_each(|v| self.redact_value(v)),
            Value::Object(map) => map.values_mut().for_each(|v| self.redact_value(v)),
            _ => {}
        }
    }
}

/// A secret's value: inline, or read from an environment variable at start-up.
#[derive(Clone, Deserialize)]
#[serde(untagged)]
pub enum SecretSource {
    /// The value itself.
    Value(String),
    /// The name of an environment variable holding the value.
    Env {
        /// Variable name.
        env: String,
    },
}

impl std::fmt::Debug for SecretSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SecretSource::Value(_) => f.write_str("<redacted>"),
            SecretSource::Env { env } => write!(f, "env:{env}"),
        }
    }
}

impl SecretSource {
    /// The value: inline, or read from the environment now; `None` when the variable is not
    /// set.
    pub fn value(&self) -> Option<String> {
        match self {
            SecretSource::Value(s) => Some(s.clone()),
            SecretSource::Env { env } => std::env::var(env).ok(),
        }
    }

    /// The environment variable it is read from, when that variable is not set.
    pub fn unset_env(&self) -> Option<&str> {
        match self {
            SecretSource::Env { env } if std::env::var_os(env).is_none() => Some(env),
            _ => None,
        }
    }

    /// The environment variable it is read from, if it is read from one.
    pub fn env(&self) -> Option<&str> {
        match self {
            SecretSource::Env { env } => Some(env),
            SecretSource::Value(_) => None,
        }
    }
}

/// Resolves secret sources to their values; a variable that is not set leaves its secret out
/// (the flows that use it say so when they are checked).
pub fn resolve(secrets: &BTreeMap<String, SecretSource>) -> BTreeMap<String, String> {
    secrets
        .iter()
        .filter_map(|(k, v)| Some((k.clone(), v.value()?)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn redacts_text_and_json_and_hides_values_from_debug() {
        let s = Secrets::from(BTreeMap::from([("token".to_owned(), "s3cr3t".to_owned())]));
        assert_eq!(s.redact("Bearer s3cr3t!"), "Bearer [secret:token]!");
        assert_eq!(
            s.restore("Bearer [secret:token]! [secret:other]"),
            "Bearer s3cr3t! [secret:other]"
        );
        let mut v = json!({"a": ["x s3cr3t", 1], "b": "clean"});
        s.redact_value(&mut v);
        assert_eq!(v, json!({"a": ["x [secret:token]", 1], "b": "clean"}));
        assert_eq!(format!("{s:?}"), r#"{"token"}"#);
    }
}
