//! `branch`: picks an exit by conditions on variables and person attributes. Conditions are
//! tried in order; the first whose checks all hold wins; otherwise the `otherwise` exit.
//!
//! ```json
//! {"conditions": [
//!    {"exit": "vip", "all": [{"variable": "tier", "op": "equals", "value": "gold"}]},
//!    {"exit": "local", "all": [{"attribute": "country", "op": "equals", "value": "HR"}]}
//! ]}
//! ```
//! Operators: `equals`, `not_equals`, `contains`, `greater_than`, `less_than`, `exists`,
//! `not_exists`.

use super::{BoxFuture, Element, ElementType, StepInput, StepResult, parse_config};
use flowhost_flow::{ElementDef, Issue};
use serde::Deserialize;
use serde_json::Value;

pub(crate) struct BranchType;

const OTHERWISE: &str = "otherwise";

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    conditions: Vec<Condition>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Condition {
    exit: String,
    all: Vec<Check>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Check {
    variable: Option<String>,
    attribute: Option<String>,
    op: Op,
    #[serde(default)]
    value: Value,
}

#[derive(Clone, Copy, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Op {
    Equals,
    NotEquals,
    Contains,
    GreaterThan,
    LessThan,
    Exists,
    NotExists,
}

struct Branch(Config);

impl ElementType for BranchType {
    fn build(&self, def: &ElementDef) -> Result<Box<dyn Element>, Vec<Issue>> {
        let config: Config = parse_config(def)?;
        let mut issues = Vec::new();
        for (i, cond) in config.conditions.iter().enumerate() {
            if cond.exit == OTHERWISE || cond.exit == super::ERROR_EXIT {
                issues.push(Issue::new(
                    format!("config.conditions[{i}].exit"),
                    format!(
                        "{:?} is reserved; name the exit after the case it handles",
                        cond.exit
                    ),
                ));
            }
            for (j, check) in cond.all.iter().enumerate() {
                if check.variable.is_some() == check.attribute.is_some() {
                    issues.push(Issue::new(
                        format!("config.conditions[{i}].all[{j}]"),
                        "give exactly one of \"variable\" or \"attribute\"",
                    ));
                }
            }
        }
        if issues.is_empty() {
            Ok(Box::new(Branch(config)))
        } else {
            Err(issues)
        }
    }
}

fn holds(check: &Check, input: &StepInput<'_>) -> bool {
    let subject = match (&check.variable, &check.attribute) {
        (Some(name), _) => input.variables.get(name),
        (_, Some(name)) => input.person.attributes.get(name),
        _ => None,
    };
    let present = subject.is_some_and(|v| !v.is_null());
    match check.op {
        Op::Exists => present,
        Op::NotExists => !present,
        Op::Equals => subject.is_some_and(|v| loosely_equal(v, &check.value)),
        Op::NotEquals => !subject.is_some_and(|v| loosely_equal(v, &check.value)),
        Op::Contains => match (subject, &check.value) {
            (Some(Value::String(s)), Value::String(needle)) => {
                s.to_lowercase().contains(&needle.to_lowercase())
            }
            (Some(Value::Array(items)), needle) => items.iter().any(|i| loosely_equal(i, needle)),
            _ => false,
        },
        Op::GreaterThan | Op::LessThan => {
            let (Some(a), Some(b)) = (subject.and_then(number), number(&check.value)) else {
                return false;
            };
            if matches!(check.op, Op::GreaterThan) {
                a > b
            } else {
                a < b
            }
        }
    }
}

fn number(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// Equal as JSON, or as numbers when one side is a numeric string (`"3"` equals `3`).
fn loosely_equal(a: &Value, b: &Value) -> bool {
    a == b || matches!((number(a), number(b)), (Some(x), Some(y)) if x == y)
}

impl Element for Branch {
    /// Pure: it only reads and sets the participant's own state.
    fn has_effects(&self) -> bool {
        false
    }

    fn exits(&self) -> Vec<String> {
        let mut exits: Vec<String> = self.0.conditions.iter().map(|c| c.exit.clone()).collect();
        exits.push(OTHERWISE.into());
        exits
    }

    fn run<'a>(&'a self, input: StepInput<'a>) -> BoxFuture<'a, StepResult> {
        Box::pin(async move {
            let exit = self
                .0
                .conditions
                .iter()
                .find(|c| c.all.iter().all(|check| holds(check, &input)))
                .map(|c| c.exit.as_str())
                .unwrap_or(OTHERWISE);
            StepResult::exit(exit)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use flowhost_messaging::person::Person;
    use serde_json::json;
    use std::collections::BTreeMap;

    fn branch(config: Value) -> Box<dyn Element> {
        let def = ElementDef {
            id: "b".into(),
            kind: "branch".into(),
            config: config.as_object().unwrap().clone(),
            exits: BTreeMap::new(),
        };
        BranchType
            .build(&def)
            .map_err(|e| format!("{e:?}"))
            .unwrap()
    }

    async fn pick(element: &dyn Element, vars: Value, attrs: Value) -> String {
        let person = Person {
            attributes: attrs.as_object().unwrap().clone(),
            ..Person::default()
        };
        let variables: BTreeMap<String, Value> = serde_json::from_value(vars).unwrap();
        let input = StepInput {
            flow_id: "f",
            element_id: "b",
            participant_id: "p",
            person: &person,
            variables: &variables,
            now: 0,
            resumed: false,
            state: None,
            event: None,
            flows: &crate::NoFlows,
            step: 1,
        };
        match element.run(input).await.outcome {
            super::super::StepOutcome::Exit(e) => e,
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn first_matching_condition_wins_and_otherwise_catches_the_rest() {
        let b = branch(json!({"conditions": [
            {"exit": "gold", "all": [{"variable": "tier", "op": "equals", "value": "gold"},
                                      {"variable": "spend", "op": "greater_than", "value": 100}]},
            {"exit": "croatia", "all": [{"attribute": "country", "op": "equals", "value": "HR"}]},
            {"exit": "vip", "all": [{"variable": "tags", "op": "contains", "value": "vip"}]},
            {"exit": "named", "all": [{"attribute": "firstName", "op": "exists"}]},
            {"exit": "cheap", "all": [{"variable": "spend", "op": "less_than", "value": "10"}]},
            {"exit": "not-blue", "all": [{"variable": "colour", "op": "not_equals", "value": "blue"},
                                          {"variable": "colour", "op": "exists"}]},
            {"exit": "anon", "all": [{"attribute": "firstName", "op": "not_exists"},
                                      {"variable": "note", "op": "contains", "value": "HELLO"}]}
        ]}));
        assert_eq!(b.exits().last().unwrap(), "otherwise");
        let none = json!({});
        assert_eq!(
            pick(&*b, json!({"tier": "gold", "spend": "150"}), none.clone()).await,
            "gold"
        );
        assert_eq!(
            pick(
                &*b,
                json!({"tier": "gold", "spend": 50}),
                json!({"country": "HR"})
            )
            .await,
            "croatia"
        );
        assert_eq!(
            pick(&*b, json!({"tags": ["new", "vip"]}), none.clone()).await,
            "vip"
        );
        assert_eq!(
            pick(&*b, json!({}), json!({"firstName": "Ada"})).await,
            "named"
        );
        assert_eq!(pick(&*b, json!({"spend": 3}), none.clone()).await, "cheap");
        assert_eq!(
            pick(&*b, json!({"colour": "red"}), none.clone()).await,
            "not-blue"
        );
        assert_eq!(
            pick(
                &*b,
                json!({"colour": "blue", "note": "well hello there"}),
                none.clone()
            )
            .await,
            "anon"
        );
        assert_eq!(
            pick(&*b, json!({"colour": "blue"}), json!({"firstName": null})).await,
            "otherwise"
        );
    }

    #[test]
    fn reserved_exits_and_ambiguous_subjects_are_refused() {
        let def = ElementDef {
            id: "b".into(),
            kind: "branch".into(),
            config: json!({"conditions": [
                {"exit": "otherwise", "all": []},
                {"exit": "x", "all": [{"variable": "a", "attribute": "b", "op": "exists"}]}
            ]})
            .as_object()
            .unwrap()
            .clone(),
            exits: BTreeMap::new(),
        };
        let issues = BranchType.build(&def).err().unwrap();
        let paths: Vec<&str> = issues.iter().map(|i| i.path.as_str()).collect();
        assert_eq!(
            paths,
            ["config.conditions[0].exit", "config.conditions[1].all[0]"]
        );
    }
}
