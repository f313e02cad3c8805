//! `wait`: pauses the participant for a duration, durably: the participant is stored as
//! waiting and any engine on the same database resumes it when the time comes.
//!
//! `{"duration": "2h"}` (units `s`, `m`, `h`, `d`); exit `next`.

use super::{BoxFuture, Element, ElementType, StepInput, StepOutcome, StepResult, parse_config};
use crate::clock::Millis;
use crate::flow::{ElementDef, Issue};
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

/// Parses `90s`, `15m`, `2h`, `1d` into milliseconds.
pub(crate) fn parse_duration(text: &str) -> Option<Millis> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit())?;
    let (n, unit) = text.split_at(split);
    let n: Millis = n.parse().ok()?;
    let unit_ms = match unit {
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => return None,
    };
    n.checked_mul(unit_ms)
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

#[cfg(test)]
mod tests {
    use super::parse_duration;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90s"), Some(90_000));
        assert_eq!(parse_duration("2h"), Some(7_200_000));
        assert_eq!(parse_duration("1d"), Some(86_400_000));
        assert_eq!(parse_duration("5"), None);
        assert_eq!(parse_duration("m"), None);
        assert_eq!(parse_duration("5w"), None);
    }
}
