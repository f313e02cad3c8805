//! `set-variable`: sets flow variables to given values.
//!
//! `{"set": {"greeting": "hello", "tries": 0}}`; exit `next`.

use super::{BoxFuture, Element, ElementType, StepInput, StepResult, parse_config};
use crate::flow::{ElementDef, Issue};
use serde::Deserialize;
use serde_json::{Map, Value};

pub(crate) struct SetVariableType;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    set: Map<String, Value>,
}

struct SetVariable(Config);

impl ElementType for SetVariableType {
    fn build(&self, def: &ElementDef) -> Result<Box<dyn Element>, Vec<Issue>> {
        let config: Config = parse_config(def)?;
        if config.set.is_empty() {
            return Err(vec![Issue::new(
                "config.set",
                "is empty; name at least one variable",
            )]);
        }
        Ok(Box::new(SetVariable(config)))
    }
}

impl Element for SetVariable {
    fn exits(&self) -> Vec<String> {
        vec!["next".into()]
    }

    fn run<'a>(&'a self, _input: StepInput<'a>) -> BoxFuture<'a, StepResult> {
        Box::pin(async {
            let mut result = StepResult::exit("next");
            result.set = self
                .0
                .set
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            result
        })
    }
}
