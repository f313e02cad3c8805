//! `evaluate-inbound`: waits for the participant's next message on a channel, from their
//! contact to a sender, and leaves by the first condition it meets.
//!
//! ```json
//! {"channel": "whatsapp", "sender": "447491163443", "timeout": "1d",
//!  "conditions": [
//!    {"exit": "yes", "type": "keyword", "value": "yes"},
//!    {"exit": "code", "type": "regex", "value": "^[0-9]{4}$"},
//!    {"exit": "help", "type": "contains", "value": "help"}]}
//! ```
//!
//! Condition types: `any` (any message), `keyword` (the first word, any case), `equals` (the
//! whole text, any case, trimmed), `contains` (any case), `regex`. Exits: one per condition,
//! `other` (a message no condition meets), `timeout`, and `error` when the person has no
//! contact for the channel. The message is stored in the `LastInboundMessage` variable
//! (text, channel, from, to, receivedAt). The wait is durable.

use crate::person::{ContactKind, Person};
use crate::{Channel, InboundMessage, LAST_INBOUND_MESSAGE};
use flowhost_engine::element::{
    BoxFuture, Element, ElementType, StepInput, StepOutcome, StepResult, parse_config,
};
use flowhost_flow::parse_duration;
use flowhost_flow::{ElementDef, Issue};
use flowhost_store::ElementState;
use flowhost_types::clock::Millis;
use serde::Deserialize;

pub(crate) struct EvaluateInboundType;

/// An evaluate-inbound element's configuration.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Config {
    pub channel: Channel,
    pub sender: String,
    #[serde(default)]
    conditions: Vec<ConditionDef>,
    #[serde(default = "default_timeout")]
    timeout: String,
}

fn default_timeout() -> String {
    "1d".into()
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConditionDef {
    exit: String,
    #[serde(rename = "type")]
    kind: ConditionKind,
    #[serde(default)]
    value: Option<String>,
}

#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
enum ConditionKind {
    Any,
    Keyword,
    Equals,
    Contains,
    Regex,
}

enum Test {
    Any,
    Keyword(String),
    Equals(String),
    Contains(String),
    Regex(regex::Regex),
}

impl Test {
    fn meets(&self, text: &str) -> bool {
        match self {
            Test::Any => true,
            Test::Keyword(k) => crate::starts_with_keyword(text, k),
            Test::Equals(v) => text.trim().to_lowercase() == *v,
            Test::Contains(v) => text.to_lowercase().contains(v.as_str()),
            Test::Regex(r) => r.is_match(text),
        }
    }
}

struct EvaluateInbound {
    channel: Channel,
    sender: String,
    conditions: Vec<(String, Test)>,
    timeout_ms: Millis,
}

const FIXED_EXITS: [&str; 3] = ["other", "timeout", flowhost_types::ERROR_EXIT];

impl ElementType for EvaluateInboundType {
    fn build(&self, def: &ElementDef) -> Result<Box<dyn Element>, Vec<Issue>> {
        let config: Config = parse_config(def)?;
        let mut issues = Vec::new();
        if config.sender.trim().is_empty() {
            issues.push(Issue::new(
                "config.sender",
                "is empty; name the sender messages are sent to",
            ));
        }
        let timeout_ms = match parse_duration(&config.timeout) {
            Some(ms) if ms > 0 => ms,
            _ => {
                issues.push(Issue::new(
                    "config.timeout",
                    format!(
                        "{:?} is not a duration such as \"1d\" or \"30m\"",
                        config.timeout
                    ),
                ));
                0
            }
        };
        let mut conditions = Vec::new();
        for (i, c) in config.conditions.iter().enumerate() {
            let path = format!("config.conditions[{i}]");
            if FIXED_EXITS.contains(&c.exit.as_str()) || c.exit.is_empty() {
                issues.push(Issue::new(
                    format!("{path}.exit"),
                    format!("{:?} is reserved or empty; name the exit after the condition, e.g. \"yes\"", c.exit),
                ));
            } else if conditions.iter().any(|(e, _)| *e == c.exit) {
                issues.push(Issue::new(
                    format!("{path}.exit"),
                    format!(
                        "{:?} is the exit of an earlier condition; exits must differ",
                        c.exit
                    ),
                ));
            }
            let value = c.value.as_deref().map(str::trim).filter(|v| !v.is_empty());
            let test = match (c.kind, value) {
                (ConditionKind::Any, _) => Test::Any,
                (_, None) => {
                    issues.push(Issue::new(
                        format!("{path}.value"),
                        "is missing; this condition type compares the message with a value",
                    ));
                    continue;
                }
                (ConditionKind::Keyword, Some(v)) => Test::Keyword(v.to_lowercase()),
                (ConditionKind::Equals, Some(v)) => Test::Equals(v.to_lowercase()),
                (ConditionKind::Contains, Some(v)) => Test::Contains(v.to_lowercase()),
                (ConditionKind::Regex, Some(v)) => match regex::Regex::new(v) {
                    Ok(r) => Test::Regex(r),
                    Err(e) => {
                        issues.push(Issue::new(
                            format!("{path}.value"),
                            format!(
                                "is not a regular expression: {}",
                                e.to_string().lines().last().unwrap_or("")
                            ),
                        ));
                        continue;
                    }
                },
            };
            conditions.push((c.exit.clone(), test));
        }
        if !issues.is_empty() {
            return Err(issues);
        }
        Ok(Box::new(EvaluateInbound {
            channel: config.channel,
            sender: config.sender,
            conditions,
            timeout_ms,
        }))
    }
}

/// A person's first contact of a kind, as written.
pub(crate) fn contact_of(person: &Person, kind: ContactKind) -> Option<String> {
    match kind {
        ContactKind::Phone => person.phones.first().cloned(),
        ContactKind::Email => person.emails.first().cloned(),
        ContactKind::ExternalId => person.external_id.clone(),
    }
}

impl Element for EvaluateInbound {
    fn exits(&self) -> Vec<String> {
        self.conditions
            .iter()
            .map(|(e, _)| e.clone())
            .chain(FIXED_EXITS.iter().map(|e| e.to_string()))
            .collect()
    }

    fn run<'a>(&'a self, input: StepInput<'a>) -> BoxFuture<'a, StepResult> {
        Box::pin(async move {
            if input.resumed {
                let Some(event) = input.event else {
                    return StepResult::exit("timeout");
                };
                let message: InboundMessage = match serde_json::from_value(event.clone()) {
                    Ok(m) => m,
                    Err(e) => {
                        return StepResult::new(StepOutcome::Failed(format!(
                            "the event that woke the participant is not a message: {e}"
                        )));
                    }
                };
                let exit = self
                    .conditions
                    .iter()
                    .find(|(_, t)| t.meets(&message.text))
                    .map_or("other", |(e, _)| e.as_str());
                let mut result = StepResult::exit(exit);
                result
                    .set
                    .insert(LAST_INBOUND_MESSAGE.into(), message.as_variable());
                return result;
            }
            let kind = self.channel.contact_kind();
            let contact = contact_of(input.person, kind)
                .ok_or_else(|| {
                    format!("the person has no {} for {}", kind.describe(), self.channel)
                })
                .and_then(|c| self.channel.contact(&c));
            match contact {
                Ok(contact) => {
                    let mut result = StepResult::new(StepOutcome::WaitFor {
                        key: InboundMessage::wait_key(self.channel, &contact, &self.sender),
                        until: Some(input.now + self.timeout_ms),
                    });
                    result.state = Some(ElementState::reason("inbound"));
                    result
                }
                Err(e) => StepResult::new(StepOutcome::Failed(format!(
                    "cannot wait for a message: {e}; add one to the person's profile"
                ))),
            }
        })
    }
}

/// The channel and sender of an evaluate-inbound element, for checks across elements.
pub(crate) fn channel_and_sender(def: &ElementDef) -> Option<(Channel, String)> {
    let config: Config = parse_config(def).ok()?;
    Some((config.channel, config.sender))
}
