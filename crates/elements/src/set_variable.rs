//! `set-variable`: sets flow variables to given values.
//!
//! `{"set": {"greeting": "Hello {{person.firstName}}", "tries": 0, "copy": "{{points}}"}}`;
//! strings may hold placeholders ([`crate::template`]; a string that is one placeholder keeps
//! the value's JSON type). Exit `next`; a missing placeholder value takes `error`.

use super::{BoxFuture, Element, ElementType, StepInput, StepOutcome, StepResult, parse_config};
use flowhost_flow::template::{JsonTemplate, Ref, Scope};
use flowhost_flow::{ElementDef, Issue};
use serde::Deserialize;
use serde_json::{Map, Value};

pub(crate) struct SetVariableType;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    set: Map<String, Value>,
}

struct SetVariable(Vec<(String, JsonTemplate)>);

impl ElementType for SetVariableType {
    fn build(&self, def: &ElementDef) -> Result<Box<dyn Element>, Vec<Issue>> {
        let config: Config = parse_config(def)?;
        if config.set.is_empty() {
            return Err(vec![Issue::new(
                "config.set",
                "is empty; name at least one variable",
            )]);
        }
        let mut values = Vec::new();
        let mut issues = Vec::new();
        for (name, value) in &config.set {
            let path = format!("config.set.{name}");
            match JsonTemplate::parse(value, &path) {
                Ok(t) if t.refs().iter().any(|r| matches!(r, Ref::Secret(_))) => issues.push(
                    Issue::new(path, "secrets cannot be copied into flow variables"),
                ),
                Ok(t) => values.push((name.clone(), t)),
                Err((path, e)) => issues.push(Issue::new(path, e)),
            }
        }
        if !issues.is_empty() {
            return Err(issues);
        }
        Ok(Box::new(SetVariable(values)))
    }
}

impl Element for SetVariable {
    /// Pure: it only reads and sets the participant's own state.
    fn has_effects(&self) -> bool {
        false
    }

    fn exits(&self) -> Vec<String> {
        vec!["next".into(), super::ERROR_EXIT.into()]
    }

    fn run<'a>(&'a self, input: StepInput<'a>) -> BoxFuture<'a, StepResult> {
        Box::pin(async move {
            let scope = Scope::new(input.variables, input.person);
            let mut result = StepResult::exit("next");
            for (name, template) in &self.0 {
                match template.render(&scope) {
                    Ok(v) => {
                        result.set.insert(name.clone(), v);
                    }
                    Err(e) => {
                        return StepResult::new(StepOutcome::Failed(format!(
                            "cannot set {name}: {e}"
                        )));
                    }
                }
            }
            result
        })
    }
}
