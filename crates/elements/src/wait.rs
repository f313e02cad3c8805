//! `wait`: pauses the participant for a duration, durably: the participant is stored as
//! waiting and any engine on the same database resumes it when the time comes.
//!
//! `{"duration": "2h"}` (units `s`, `m`, `h`, `d`); exit `next`.

use super::{BoxFuture, Element, ElementType, StepInput, StepOutcome, StepResult, parse_config};
use flowhost_flow::{ElementDef, Issue, parse_duration};
use flowhost_types::clock::Millis;
use serde::Deserialize;

pub(crate) struct WaitType;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    duration: String,
}

struct Wait {
    ms: Millis,
}

impl ElementType for WaitType {
    fn build(&self, def: &ElementDef) -> Result<Box<dyn Element>, Vec<Issue>> {
        let config: Config = parse_config(def)?;
        match parse_duration(&config.duration) {
            Some(ms) if ms > 0 => Ok(Box::new(Wait { ms })),
            _ => Err(vec![Issue::new(
                "config.duration",
                format!(
                    "{:?} is not a duration; write a positive whole number with s, m, h or d, e.g. \"15m\"",
                    config.duration
                ),
            )]),
        }
    }
}

impl Element for Wait {
    /// Pure: it only reads and sets the participant's own state.
    fn has_effects(&self) -> bool {
        false
    }

    fn exits(&self) -> Vec<String> {
        vec!["next".into()]
    }

    fn run<'a>(&'a self, input: StepInput<'a>) -> BoxFuture<'a, StepResult> {
        Box::pin(async move {
            if input.resumed {
                StepResult::exit("next")
            } else {
                StepResult::new(StepOutcome::Wait(input.now + self.ms))
            }
        })
    }
}
