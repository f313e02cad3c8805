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

    fn parse(s: &str) -> Option<Status> {
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
    /// What the participant waits for besides time (`inbound:sms:385911234567:INFO`), so an
    /// event can wake it; `None` when only time does.
    pub wait_key: Option<String>,
    /// The event that woke it (an inbound message, a chatbot session's end), handed to the
    /// element when it resumes.
    pub event: Option<Value>,
}

impl ParticipantState {
    /// A participant about to run `start` in `flow_id`, with a fresh id.
    pub fn new(
        flow_id: &str,
        start: &str,
        person: Person,
        variables: BTreeMap<String, Value>,
    ) -> Self {
        ParticipantState {
            id: new_participant_id(),
            flow_id: flow_id.to_owned(),
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

/// A fresh participant id.
pub fn new_participant_id() -> String {
    format!("p-{}", uuid::Uuid::new_v4().simple())
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
    /// The write would break a uniqueness rule (a contact that belongs to another person).
    #[error("{0}")]
    Conflict(String),
    /// Stored data could not be read back.
    #[error("state database holds unreadable data for {what}: {reason}")]
    Corrupt {
        /// Which record.
        what: String,
        /// Why.
        reason: String,
    },
}

/// What else a step writes, in the same transaction as the participant and its journey entry.
#[derive(Clone, Copy, Debug, Default)]
pub struct StepWrite<'a> {
    /// The participant entered the element in this step (it did not resume in it): counts
    /// towards the element's analytics.
    pub entered: bool,
    /// Participants the step entered into flows (Add to Flow), inserted as
    /// [`Status::Queued`].
    pub enter: &'a [ParticipantState],
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
}

/// Durable state behind the engine.
pub trait StateStore: PeopleStore + RecordStore + Send + Sync {
    /// Saves a flow definition (JSON text) so another instance can load it.
    fn save_flow(&self, id: &str, definition: &str) -> Result<(), StoreError>;
    /// Every saved flow, as `(id, definition)`.
    fn flows(&self) -> Result<Vec<(String, String)>, StoreError>;
    /// Inserts a new participant.
    fn insert_participant(&self, p: &ParticipantState) -> Result<(), StoreError>;
    /// Saves a participant and appends one journey entry, with what else the step wrote,
    /// atomically.
    fn record_step(
        &self,
        p: &ParticipantState,
        entry: &JourneyEntry,
        write: StepWrite<'_>,
    ) -> Result<(), StoreError>;
    /// Saves a participant's state without a journey entry.
    fn save_participant(&self, p: &ParticipantState) -> Result<(), StoreError>;
    /// A participant.
    fn participant(&self, id: &str) -> Result<Option<ParticipantState>, StoreError>;
    /// Ids of waiting participants due at `now`, and of queued ones, oldest first.
    fn due(&self, now: Millis, limit: usize) -> Result<Vec<String>, StoreError>;
    /// Moves a waiting or queued participant to running and says which it was; `None` when
    /// another engine took it first.
    fn claim(&self, id: &str) -> Result<Option<Status>, StoreError>;
    /// Hands `event` to every participant waiting on `key` and makes them due at `now`;
    /// returns their ids.
    fn wake(&self, key: &str, event: &Value, now: Millis) -> Result<Vec<String>, StoreError>;
    /// Moves the deadline of every participant waiting on `key` to `until`.
    fn set_deadline(&self, key: &str, until: Millis) -> Result<(), StoreError>;
    /// Ids of a flow's participants with one of `statuses`.
    fn participants_of(
        &self,
        flow_id: &str,
        statuses: &[Status],
    ) -> Result<Vec<String>, StoreError>;
    /// Analytics of a flow's elements, by element id.
    fn element_counts(&self, flow_id: &str) -> Result<BTreeMap<String, ElementCounts>, StoreError>;
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

/// People profiles, found by id or by any of their contacts.
pub trait PeopleStore {
    /// Inserts or replaces a person and indexes their contacts; a contact that belongs to
    /// another person is a [`StoreError::Conflict`].
    fn save_person(&self, person: &Person) -> Result<(), StoreError>;
    /// A person by id.
    fn person(&self, id: &str) -> Result<Option<Person>, StoreError>;
    /// The person with a contact, by its normalised key ([`crate::person::Contact::key`]).
    fn person_by_contact(&self, key: &str) -> Result<Option<Person>, StoreError>;
}

/// Small JSON documents with one lookup key and a status: messages, conversations, tags,
/// chatbots, chatbot sessions, account settings. Each module owns the shape of its kind.
pub trait RecordStore {
    /// Inserts or replaces a record.
    fn put_record(&self, r: &Record) -> Result<(), StoreError>;
    /// A record by kind and id.
    fn record(&self, kind: &str, id: &str) -> Result<Option<Record>, StoreError>;
    /// Records of a kind, optionally only those with a key and/or a status, in insertion
    /// order; with `last`, only the newest that many.
    fn records(
        &self,
        kind: &str,
        key: Option<&str>,
        status: Option<&str>,
        last: Option<usize>,
    ) -> Result<Vec<Record>, StoreError>;
}

/// One stored document.
#[derive(Clone, Debug, PartialEq)]
pub struct Record {
    /// What it is (`conversation`, `chatbot`, …).
    pub kind: String,
    /// Id, unique within the kind.
    pub id: String,
    /// Lookup key (a contact, a sender); empty when none.
    pub key: String,
    /// Status (`open`, `active`, …); empty when none.
    pub status: String,
    /// The document.
    pub body: Value,
}

impl Record {
    /// The body as `T`.
    pub fn parse<T: serde::de::DeserializeOwned>(&self) -> Result<T, StoreError> {
        serde_json::from_value(self.body.clone()).map_err(|e| StoreError::Corrupt {
            what: format!("{} {:?}", self.kind, self.id),
            reason: e.to_string(),
        })
    }
}

pub(crate) fn parse_status(s: &str) -> Result<Status, StoreError> {
    Status::parse(s).ok_or_else(|| StoreError::Corrupt {
        what: "participant status".into(),
        reason: format!("unknown status {s:?}"),
    })
}
