//! Participants: where one person stands in one flow, and the steps of their journey.

use crate::clock::Millis;
use crate::log::LogLine;
use crate::person::Person;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;

/// Where a participant stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Being advanced by an engine right now.
    Running,
    /// Entered (by Add to Flow or an inbound message) and not started yet; the engine that
    /// entered it starts it next, or any engine's `resume_due` does after a crash.
    Queued,
    /// Waiting until `waiting_until` or an event for its `wait_key`, then resumes at
    /// `current`.
    Waiting,
    /// Reached the end of the flow.
    Completed,
    /// Stopped by an error no exit handled.
    Failed,
    /// Stopped because its flow was canceled.
    Canceled,
}

impl Status {
    /// The name stored and printed.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Running => "running",
            Status::Queued => "queued",
            Status::Waiting => "waiting",
            Status::Completed => "completed",
            Status::Failed => "failed",
            Status::Canceled => "canceled",
        }
    }

    /// Whether a participant with it has finished for good (completed, failed, canceled).
    pub fn is_final(self) -> bool {
        matches!(self, Status::Completed | Status::Failed | Status::Canceled)
    }

    /// The status with this stored name.
    pub fn parse(s: &str) -> Option<Status> {
        Some(match s {
            "running" => Status::Running,
            "queued" => Status::Queued,
            "waiting" => Status::Waiting,
            "completed" => Status::Completed,
            "failed" => Status::Failed,
            "canceled" => Status::Canceled,
            _ => return None,
        })
    }
}

/// Everything needed to continue a participant.
#[derive(Clone, Debug, PartialEq)]
pub struct ParticipantState {
    /// Participant id.
    pub id: String,
    /// Flow id.
    pub flow_id: String,
    /// The version of the flow it runs on: the one it entered, until the operator moves it.
    pub flow_version: u32,
    /// The person.
    pub person: Person,
    /// Flow variables.
    pub variables: BTreeMap<String, Value>,
    /// The element to run next (or being waited in); `None` once finished.
    pub current: Option<String>,
    /// Status.
    pub status: Status,
    /// When a waiting participant resumes.
    pub waiting_until: Option<Millis>,
    /// Journey entries so far.
    pub steps: u64,
    /// What the current element keeps while the participant waits in it (a retry count, a
    /// chatbot session); `None` otherwise.
    pub element_state: Option<ElementState>,
    /// What the participant waits for besides time (`inbound:sms:385911234567:INFO`), so an
    /// event can wake it; `None` when only time does.
    pub wait_key: Option<String>,
    /// The event that woke it (an inbound message, a chatbot session's end), handed to the
    /// element when it resumes.
    pub event: Option<Value>,
}

impl ParticipantState {
    /// A participant about to run `start` in version `flow_version` of `flow_id`, with a
    /// fresh id.
    pub fn new(
        flow_id: &str,
        flow_version: u32,
        start: &str,
        person: Person,
        variables: BTreeMap<String, Value>,
    ) -> Self {
        ParticipantState {
            id: new_participant_id(),
            flow_id: flow_id.to_owned(),
            flow_version,
            person,
            variables,
            current: Some(start.to_owned()),
            status: Status::Running,
            waiting_until: None,
            steps: 0,
            element_state: None,
            wait_key: None,
            event: None,
        }
    }
}

/// What an element keeps while a participant waits in it, handed back when the participant
/// resumes there.
///
/// The store keeps [`ElementState::reason`] where it can count by it (analytics show how many
/// wait in a Call API element's queue and how many outside its delivery window) and `data`
/// as the element wrote it, without reading it.
///
/// ```
/// use flowhost_types::participant::ElementState;
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Serialize, Deserialize, PartialEq, Debug)]
/// struct Retry {
///     attempt: u32,
/// }
///
/// let state = ElementState::new("retry", &Retry { attempt: 2 });
/// assert_eq!(state.reason, "retry");
/// assert_eq!(state.data_as::<Retry>(), Some(Retry { attempt: 2 }));
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ElementState {
    /// Why the participant waits, in the element's words (`queued`, `window`, `retry`,
    /// `inbound`, `chatbot`).
    pub reason: String,
    /// The element's own data; `null` when the reason says it all.
    pub data: Value,
}

impl ElementState {
    /// A reason and the element's data, serialized.
    pub fn new(reason: &str, data: &impl Serialize) -> Self {
        ElementState {
            reason: reason.to_owned(),
            // Serializing a plain data struct to a JSON value cannot fail.
            data: serde_json::to_value(data).unwrap_or(Value::Null),
        }
    }

    /// A reason with no data.
    pub fn reason(reason: &str) -> Self {
        ElementState {
            reason: reason.to_owned(),
            data: Value::Null,
        }
    }

    /// The data as the element's own type; `None` when it is not one (written by another
    /// version of the element).
    pub fn data_as<T: serde::de::DeserializeOwned>(&self) -> Option<T> {
        T::deserialize(&self.data).ok()
    }
}

/// A fresh participant id. Time-ordered (UUID v7): participants entered together have ids
/// that sort together, so their rows and journey entries land on the same index pages and a
/// commit of many of them writes few pages.
pub fn new_participant_id() -> String {
    format!("p-{}", uuid::Uuid::now_v7().simple())
}

/// One step of a participant's journey.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct JourneyEntry {
    /// Position in the journey, from 1.
    pub seq: u64,
    /// When the step ended.
    pub at_ms: Millis,
    /// The version of the flow the step ran on (0 in entries written before versions).
    #[serde(default)]
    pub flow_version: u32,
    /// Element id.
    pub element_id: String,
    /// Element type (`wait`, `plugin:happy@1.2.0`, …).
    pub element_type: String,
    /// Exit taken; `None` when the step waits or ends the flow.
    pub exit: Option<String>,
    /// Element id the exit leads to; `None` when the flow ends there.
    pub next: Option<String>,
    /// Variables the step set, with their new values.
    pub variables_changed: BTreeMap<String, Value>,
    /// Log lines.
    pub logs: Vec<LogLine>,
    /// Outcome data from the element.
    pub data: Option<Value>,
    /// Why the element failed, if it did.
    pub error: Option<String>,
    /// Until when the step waits, if it does.
    pub waiting_until: Option<Millis>,
    /// Time the element took, in microseconds.
    pub duration_us: u64,
    /// 0, or how many times the step was started before by an engine that lost its lease
    /// (it crashed) before committing it: its outside effects may have happened before too,
    /// under the same idempotency keys.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub retried: u32,
    /// The HTTP requests the step sent, in order, with secrets redacted.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub requests: Vec<HttpRequestRecord>,
}

/// One HTTP request a step sent (a plugin's, or a Call API attempt), as the journey keeps it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HttpRequestRecord {
    /// `GET`, `POST`, …
    pub method: String,
    /// The URL, with secrets redacted.
    pub url: String,
    /// The response status; `None` when no response came (see `error`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// Why no response came.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// How long it took, in milliseconds.
    pub duration_ms: f64,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// Per-element counts for analytics.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ElementCounts {
    /// Participants that entered the element.
    pub entered: u64,
    /// Participants that left it, per exit.
    pub exits: BTreeMap<String, u64>,
    /// Participants waiting in it now.
    pub waiting: u64,
    /// What the element counts besides its exits (Start chatbot: `sessions` started, and
    /// each end reason, whatever exit it left by).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub details: BTreeMap<String, u64>,
}
