//! `variables`: the participant's flow variables, read and written by the plugin, within the
//! operator's limits on how many one execution sets and how large they are.

use crate::bounds::{LimitExceeded, json_len};
use crate::config::Limits;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};

/// A copy of the participant's variables for one execution. Changes reach the participant
/// only if the execution succeeds, so a failed step leaves its variables as they were.
#[derive(Debug)]
pub struct VariablesCap {
    values: BTreeMap<String, Value>,
    changed: BTreeSet<String>,
    limits: VariableLimits,
    /// Bytes of all variables, counted at the first set.
    total: Option<u64>,
}

/// The limits [`VariablesCap`] keeps.
#[derive(Clone, Copy, Debug)]
pub struct VariableLimits {
    /// See [`Limits::max_variables_set`].
    pub max_set: u32,
    /// See [`Limits::max_variable_bytes`].
    pub max_one: u64,
    /// See [`Limits::max_variables_bytes`].
    pub max_all: u64,
}

impl From<&Limits> for VariableLimits {
    fn from(l: &Limits) -> Self {
        VariableLimits {
            max_set: l.max_variables_set,
            max_one: l.max_variable_bytes,
            max_all: l.max_variables_bytes,
        }
    }
}

impl VariableLimits {
    /// The weight of one variable, or why it is too large.
    fn check_one(&self, name: &str, value: &Value) -> Result<u64, LimitExceeded> {
        let one = weight(name, value);
        if one > self.max_one {
            return Err(LimitExceeded::bytes(
                format!(
                    "variable `{}`",
                    crate::bounds::preview(name, crate::bounds::PREVIEW_BYTES)
                ),
                one,
                "max_variable_bytes",
                self.max_one,
            ));
        }
        Ok(one)
    }

    /// Whether all variables may go from `before` to `after` bytes: within the total, or no
    /// larger than they were.
    fn check_all(&self, before: u64, after: u64) -> Result<(), LimitExceeded> {
        if after > self.max_all && after > before {
            return Err(LimitExceeded::bytes(
                "all variables of the participant",
                after,
                "max_variables_bytes",
                self.max_all,
            ));
        }
        Ok(())
    }

    /// Whether a host element may set `set` on top of the participant's `current` variables
    /// (Call API's response mapping: the values come from outside). Sizes only: the number
    /// of variables such an element sets is the flow author's, not the outside's.
    pub fn check_sets(
        &self,
        current: &BTreeMap<String, Value>,
        set: &BTreeMap<String, Value>,
    ) -> Result<(), LimitExceeded> {
        let mut added = 0;
        for (name, value) in set {
            added += self.check_one(name, value)?;
        }
        let (mut kept, mut replaced) = (0, 0);
        for (name, value) in current {
            if set.contains_key(name) {
                replaced += weight(name, value);
            } else {
                kept += weight(name, value);
            }
        }
        self.check_all(kept + replaced, kept + added)
    }
}

impl Default for VariableLimits {
    fn default() -> Self {
        (&Limits::default()).into()
    }
}

impl Default for VariablesCap {
    fn default() -> Self {
        VariablesCap::new(BTreeMap::new(), VariableLimits::default())
    }
}

/// What one variable weighs: its name and its value as JSON.
fn weight(name: &str, value: &Value) -> u64 {
    name.len() as u64 + json_len(value)
}

impl VariablesCap {
    /// Starts from the participant's current variables.
    pub fn new(values: BTreeMap<String, Value>, limits: VariableLimits) -> Self {
        VariablesCap {
            values,
            changed: BTreeSet::new(),
            limits,
            total: None,
        }
    }

    /// A variable's value.
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.values.get(name)
    }

    /// Sets a variable, refusing one over the limits: too large, one variable too many, or
    /// a participant whose variables would grow past their total.
    pub fn set(&mut self, name: String, value: Value) -> Result<(), LimitExceeded> {
        let one = self.limits.check_one(&name, &value)?;
        if self.values.get(&name) == Some(&value) {
            return Ok(());
        }
        if !self.changed.contains(&name) && self.changed.len() >= self.limits.max_set as usize {
            return Err(LimitExceeded::variables_set(
                self.changed.len() as u64 + 1,
                self.limits.max_set.into(),
            ));
        }
        let values = &self.values;
        let total = *self
            .total
            .get_or_insert_with(|| values.iter().map(|(k, v)| weight(k, v)).sum());
        let before = self.values.get(&name).map_or(0, |v| weight(&name, v));
        let after = total - before + one;
        self.limits.check_all(total, after)?;
        self.total = Some(after);
        self.changed.insert(name.clone());
        self.values.insert(name, value);
        Ok(())
    }

    /// Every variable.
    pub fn all(&self) -> impl Iterator<Item = (&String, &Value)> {
        self.values.iter()
    }

    /// The variables after the execution and the names that changed, taken out: what is
    /// left is empty.
    pub fn take_parts(&mut self) -> (BTreeMap<String, Value>, BTreeSet<String>) {
        (
            std::mem::take(&mut self.values),
            std::mem::take(&mut self.changed),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn cap(
        values: BTreeMap<String, Value>,
        max_set: u32,
        max_one: u64,
        max_all: u64,
    ) -> VariablesCap {
        VariablesCap::new(
            values,
            VariableLimits {
                max_set,
                max_one,
                max_all,
            },
        )
    }

    #[test]
    fn tracks_changes_and_ignores_same_value() {
        let mut vars = VariablesCap::new(
            BTreeMap::from([("a".to_owned(), json!(1))]),
            (&Limits::default()).into(),
        );
        vars.set("a".into(), json!(1)).unwrap();
        vars.set("b".into(), json!("x")).unwrap();
        assert_eq!(vars.get("b"), Some(&json!("x")));
        let (values, changed) = vars.take_parts();
        assert_eq!(values.len(), 2);
        assert_eq!(changed.into_iter().collect::<Vec<_>>(), ["b"]);
    }

    #[test]
    fn refuses_what_is_over_a_limit() {
        let mut vars = cap(BTreeMap::new(), 2, 10, 20);
        let err = vars.set("big".into(), json!("x".repeat(20))).unwrap_err();
        assert_eq!(
            (err.what.as_str(), err.seen, err.setting),
            ("variable `big`", 25, "max_variable_bytes")
        );
        vars.set("a".into(), json!(1)).unwrap();
        vars.set("a".into(), json!(2)).unwrap();
        vars.set("b".into(), json!(1)).unwrap();
        let err = vars.set("c".into(), json!(1)).unwrap_err();
        assert_eq!((err.seen, err.setting), (3, "max_variables_set"));

        // The participant already carries 16 bytes; 4 more pass, 9 more do not.
        let start = BTreeMap::from([("old".to_owned(), json!("x".repeat(11)))]);
        let mut vars = cap(start, 10, 10, 20);
        vars.set("n".into(), json!(123)).unwrap();
        let err = vars.set("m".into(), json!(12345678)).unwrap_err();
        assert_eq!((err.seen, err.setting), (29, "max_variables_bytes"));
        // Shrinking is always allowed, even over the total.
        let mut vars = cap(
            BTreeMap::from([("old".to_owned(), json!("x".repeat(30)))]),
            10,
            100,
            20,
        );
        vars.set("old".into(), json!("y".repeat(25))).unwrap();
    }

    #[test]
    fn checks_what_a_host_element_sets() {
        let limits = VariableLimits {
            max_set: 1,
            max_one: 10,
            max_all: 20,
        };
        let current = BTreeMap::from([("old".to_owned(), json!("x".repeat(11)))]);
        let set = |pairs: &[(&str, Value)]| -> BTreeMap<String, Value> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.clone()))
                .collect()
        };
        assert!(
            limits
                .check_sets(&current, &set(&[("a", json!(1)), ("b", json!(2))]))
                .is_ok()
        );
        let err = limits
            .check_sets(&current, &set(&[("a", json!("y".repeat(20)))]))
            .unwrap_err();
        assert_eq!(err.setting, "max_variable_bytes");
        let err = limits
            .check_sets(&current, &set(&[("a", json!(1234567)), ("b", json!(1))]))
            .unwrap_err();
        assert_eq!((err.setting, err.seen), ("max_variables_bytes", 26));
        // Replacing the large one with a small one fits.
        assert!(
            limits
                .check_sets(&current, &set(&[("old", json!(1)), ("a", json!(1234567))]))
                .is_ok()
        );
    }
}
