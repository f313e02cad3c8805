//! `variables`: the participant's flow variables, read and written by the plugin.

use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};

/// Largest serialized value a plugin may store in one variable.
const MAX_VALUE_BYTES: usize = 1 << 20;

/// A copy of the participant's variables for one execution. Changes reach the participant
/// only if the execution succeeds, so a failed step leaves its variables as they were.
#[derive(Debug, Default)]
pub struct VariablesCap {
    values: BTreeMap<String, Value>,
    changed: BTreeSet<String>,
}

/// A variable too large to store.
#[derive(Debug, thiserror::Error)]
#[error("variable `{name}` would hold {bytes} bytes; the limit is {MAX_VALUE_BYTES}")]
pub struct ValueTooLarge {
    name: String,
    bytes: usize,
}

impl VariablesCap {
    /// Starts from the participant's current variables.
    pub fn new(values: BTreeMap<String, Value>) -> Self {
        VariablesCap {
            values,
            changed: BTreeSet::new(),
        }
    }

    /// A variable's value.
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.values.get(name)
    }

    /// Sets a variable, refusing values over the size limit.
    pub fn set(&mut self, name: String, value: Value) -> Result<(), ValueTooLarge> {
        let bytes = match &value {
            Value::String(s) => s.len(),
            Value::Array(_) | Value::Object(_) => value.to_string().len(),
            _ => 0,
        };
        if bytes > MAX_VALUE_BYTES {
            return Err(ValueTooLarge { name, bytes });
        }
        if self.values.get(&name) != Some(&value) {
            self.changed.insert(name.clone());
            self.values.insert(name, value);
        }
        Ok(())
    }

    /// Every variable.
    pub fn all(&self) -> impl Iterator<Item = (&String, &Value)> {
        self.values.iter()
    }

    /// The variables after the execution and the names that changed.
    pub fn into_parts(self) -> (BTreeMap<String, Value>, BTreeSet<String>) {
        (self.values, self.changed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn tracks_changes_and_ignores_same_value() {
        let mut vars = VariablesCap::new(BTreeMap::from([("a".to_owned(), json!(1))]));
        vars.set("a".into(), json!(1)).unwrap();
        vars.set("b".into(), json!("x")).unwrap();
        assert_eq!(vars.get("b"), Some(&json!("x")));
        let (values, changed) = vars.into_parts();
        assert_eq!(values.len(), 2);
        assert_eq!(changed.into_iter().collect::<Vec<_>>(), ["b"]);
    }

    #[test]
    fn refuses_huge_values() {
        let mut vars = VariablesCap::default();
        let err = vars
            .set("big".into(), Value::String("x".repeat(MAX_VALUE_BYTES + 1)))
            .unwrap_err();
        assert!(err.to_string().contains("`big`"));
    }
}
