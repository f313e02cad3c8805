//! Durable state: flows, participants and their journeys.
//!
//! The engine writes through the [`StateStore`] trait after every step, so a participant can
//! be resumed by another engine instance on the same database. [`SqliteStore`] is the embedded
//! implementation; a PostgreSQL one implements the same trait.

mod sqlite;

pub use sqlite::SqliteStore;

use crate::clock::Millis;
use crate::person::Person;
use crate::plugin::capabilities::LogLine;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;

/// Where a participant stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Being advanced by an engine right now.
    Running,
    /// Waiting until `waiting_until`, then resumes at `current`.
    Waiting,
    /// Reached the end of the flow.
    Completed,
    /// Stopped by an error no exit handled.
    Failed,
}

impl Status {
    /// The name stored and printed.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Running => "running",
            Status::Waiting => "waiting",
            Status::Completed => "completed",
            Status::Failed => "failed",
        }
    }

    fn parse(s: &str) -> Option<Status> {
        Some(match s {
            "running" => Status::Running,
            "waiting" => Status::Waiting,
            "completed" => Status::Completed,
            "failed" => Status::Failed,
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
    /// queue position); `None` otherwise. A `"kind"` field names the reason for waiting.
    pub element_state: Option<Value>,
}

/// One step of a participant's journey.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct JourneyEntry {
    /// Position in the journey, from 1.
    pub seq: u64,
    /// When the step ended.
    pub at_ms: Millis,
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
}

/// A failure of the store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The database failed.
    #[error("state database: {0}")]
    Database(String),
    /// Stored data could not be read back.
    #[error("state database holds unreadable data for {what}: {reason}")]
    Corrupt {
        /// Which record.
        what: String,
        /// Why.
        reason: String,
    },
}

/// Durable state behind the engine.
pub trait StateStore: Send + Sync {
    /// Saves a flow definition (JSON text) so another instance can load it.
    fn save_flow(&self, id: &str, definition: &str) -> Result<(), StoreError>;
    /// Every saved flow, as `(id, definition)`.
    fn flows(&self) -> Result<Vec<(String, String)>, StoreError>;
    /// Inserts a new participant.
    fn insert_participant(&self, p: &ParticipantState) -> Result<(), StoreError>;
    /// Saves a participant and appends one journey entry, atomically.
    fn record_step(&self, p: &ParticipantState, entry: &JourneyEntry) -> Result<(), StoreError>;
    /// Saves a participant's state without a journey entry.
    fn save_participant(&self, p: &ParticipantState) -> Result<(), StoreError>;
    /// A participant.
    fn participant(&self, id: &str) -> Result<Option<ParticipantState>, StoreError>;
    /// Ids of waiting participants due at `now`, oldest first.
    fn due(&self, now: Millis, limit: usize) -> Result<Vec<String>, StoreError>;
    /// Moves a waiting participant to running; `false` when another engine took it first.
    fn claim(&self, id: &str) -> Result<bool, StoreError>;
    /// A participant's journey.
    fn journey(&self, id: &str) -> Result<Vec<JourneyEntry>, StoreError>;
    /// Appends a journey entry without changing the participant (a background request
    /// finishing after the participant moved on). The entry's `seq` is assigned here.
    fn append_journey(&self, participant_id: &str, entry: &JourneyEntry) -> Result<(), StoreError>;
    /// Takes the next send slot of a rate-limited queue: the later of `now` and the queue's
    /// next free time; the queue's next free time moves `interval_ms` past the slot.
    fn take_slot(
        &self,
        queue: &str,
        now: Millis,
        interval_ms: Millis,
    ) -> Result<Millis, StoreError>;
    /// How many participants wait in an element of a flow, for the reason `kind` (the
    /// `"kind"` of their element state).
    fn count_waiting(&self, flow_id: &str, element_id: &str, kind: &str)
    -> Result<u64, StoreError>;
}

pub(crate) fn parse_status(s: &str) -> Result<Status, StoreError> {
    Status::parse(s).ok_or_else(|| StoreError::Corrupt {
        what: "participant status".into(),
        reason: format!("unknown status {s:?}"),
    })
}
