//! `exit`: ends the flow for the participant.

use super::{BoxFuture, Element, ElementType, StepInput, StepOutcome, StepResult, parse_config};
use flowhost_flow::{ElementDef, Issue};
use serde::Deserialize;

pub(crate) struct ExitType;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {}

struct Exit;

impl ElementType for ExitType {
    fn build(&self, def: &ElementDef) -> Result<Box<dyn Element>, Vec<Issue>> {
        let Config {} = parse_config(def)?;
        Ok(Box::new(Exit))
    }
}

impl Element for Exit {
    /// Pure: it only reads and sets the participant's own state.
    fn has_effects(&self) -> bool {
        false
    }

    fn exits(&self) -> Vec<String> {
        Vec::new()
    }

    fn run<'a>(&'a self, _input: StepInput<'a>) -> BoxFuture<'a, StepResult> {
        Box::pin(async { StepResult::new(StepOutcome::End) })
    }
}
