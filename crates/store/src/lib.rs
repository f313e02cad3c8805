//! The storage API of flowhost: what the engine, the elements and the messaging services keep
//! durably, as async traits, one per concern, apart from any database.
//!
//! - [`FlowStore`]: deployed flow definitions.
//! - [`ParticipantStore`]: participants, their journeys and analytics counters, claims with
//!   leases, waits and wake-ups by key.
//! - [`QueueStore`]: send slots of rate-limited queues.
//! - [`PeopleStore`]: People profiles, found by id or by any contact.
//! - [`RecordStore`]: small JSON documents with a lookup key and a status (the message log,
//!   conversations, chatbots and their sessions, account settings).
//!
//! [`StateStore`] is all of them together; the engine holds an `Arc<dyn StateStore>`. A
//! backend is a crate of its own (`flowhost-store-sqlite`) that implements these traits and
//! runs the [`conformance`] suite in its tests, so a new backend is added without touching
//! the engine or the elements.
//!
//! # Claims and leases
//!
//! A participant runs only while someone holds its [`Lease`]: an owner (an engine instance),
//! an expiry, and a fencing epoch that grows with every claim. [`ParticipantStore::claim`]
//! takes a waiting or queued participant; [`ParticipantStore::insert_claimed`] creates one
//! already claimed. Every write of a running participant ([`ParticipantStore::record_step`],
//! [`ParticipantStore::release`], [`ParticipantStore::renew`]) names the lease, and fails with
//! [`StoreError::LeaseLost`] and writes nothing when the participant has been claimed since.
//! Writing a participant that no longer runs (waiting, completed, failed) ends the lease.
//!
//! ```
//! use flowhost_store::{Lease, StoreError};
//!
//! fn describe(e: &StoreError) -> &'static str {
//!     match e {
//!         StoreError::LeaseLost { .. } => "another engine runs this participant now",
//!         _ => "the database failed",
//!     }
//! }
//! let lost = StoreError::LeaseLost { participant: "p-1".into(), epoch: 3 };
//! assert_eq!(describe(&lost), "another engine runs this participant now");
//! # let _ = Lease { participant: "p-1".into(), owner: "node-a".into(), expires_at: 0, epoch: 3 };
//! ```
//!
//! (One file of more than 600 lines: the traits and the types they pass are the API, read
//! in one place; the conformance suite is in its own module.)
#![deny(missing_docs)]
// One file of more than 600 lines: it is the storage contract (every trait, with the value
// types its methods take and return), read as one by whoever writes a backend.

#[cfg(any(feature = "conformance", doc))]
pub mod conformance;

pub use flowhost_types::participant::{
    ElementCounts, ElementState, HttpRequestRecord, JourneyEntry, ParticipantState, Status,
};

use async_trait::async_trait;
use flowhost_types::clock::Millis;
use flowhost_types::person::Person;
use serde_json::Value;
use std::collections::BTreeMap;

/// A boxed error from a backend's driver, kept as the source of a [`StoreError`].
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// A failure of the store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The database failed while doing `context`. The driver's error is kept as `cause`
    /// and also written into the message (not chained as `source()`), so the one line an
    /// operator sees says both what was being done and why it failed.
    #[error("state database: {context}: {cause}")]
    Database {
        /// What the store was doing (`opening flowhost.db`, `recording a step`).
        context: String,
        /// The driver's error.
        cause: BoxError,
    },
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
    /// The participant was claimed again since this lease was taken (its lease expired and
    /// another engine took it over): the write is refused and nothing was written.
    #[error(
        "participant {participant:?} is no longer held under lease epoch {epoch}; another engine claimed it, so this step's result is dropped"
    )]
    LeaseLost {
        /// Participant id.
        participant: String,
        /// The epoch of the lost lease.
        epoch: u64,
    },
    /// The database cannot be used as it is: read-only, its disk full, locked by another
    /// program, damaged. The line names the file, what is wrong and what to do. Nothing was
    /// written by the call that failed; later calls try again, so the service recovers once
    /// the operator has fixed it.
    #[error("state database {database}: {problem} ({context}); {fix}")]
    Unusable {
        /// The file.
        database: String,
        /// What is wrong, in words.
        problem: String,
        /// What the store was doing.
        context: String,
        /// What to do about it.
        fix: String,
    },
    /// The store was shut down (its worker is gone).
    #[error("state database is closed")]
    Closed,
}

impl StoreError {
    /// A database failure with what the store was doing.
    pub fn database(context: impl Into<String>, cause: impl Into<BoxError>) -> Self {
        StoreError::Database {
            context: context.into(),
            cause: cause.into(),
        }
    }

    /// Stored data that does not parse.
    pub fn corrupt(what: impl Into<String>, reason: impl std::fmt::Display) -> Self {
        StoreError::Corrupt {
            what: what.into(),
            reason: reason.to_string(),
        }
    }
}

/// What a committed step survives (`durability` in flowhost.toml).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Durability {
    /// A committed step survives the process crashing (kill -9); the last steps before the
    /// machine loses power may not. (SQLite: WAL with `synchronous = NORMAL`.)
    #[default]
    Fast,
    /// A committed step survives the machine losing power too, at the cost of a disk flush
    /// per commit. (SQLite: `synchronous = FULL`.)
    Full,
}

/// The right to advance one participant: held by `owner` until `expires_at`, under `epoch`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lease {
    /// Participant id.
    pub participant: String,
    /// Who holds it (an engine instance's id).
    pub owner: String,
    /// When it expires, unless renewed.
    pub expires_at: Millis,
    /// Fencing epoch: grows with every claim of the participant, so a write under an older
    /// lease is refused.
    pub epoch: u64,
}

/// A successful claim.
#[derive(Clone, Debug, PartialEq)]
pub struct Claim {
    /// The lease now held.
    pub lease: Lease,
    /// How the participant goes on: [`Status::Waiting`] (resumes in its element, with its
    /// state and event) or [`Status::Queued`] (enters its element).
    pub was: Status,
    /// 0, or how many times in a row the participant was taken over from an owner whose
    /// lease expired before it committed its step: the step about to run may have run
    /// before, up to its outside effects.
    pub retried: u32,
    /// The participant as claimed, when the store read it with the claim
    /// ([`ParticipantStore::claim_due`] does): saves the runner a read of its own. Its
    /// person is the one People keeps under the person's id, when People has one (it may
    /// have changed since the participant entered), else the participant's own.
    pub state: Option<ParticipantState>,
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
    /// Counted in the element's [`ElementCounts::details`], one each.
    pub tally: &'a [String],
    /// Records written with the step: work it leaves to do once it is committed (a request
    /// sent without waiting for its response), so a crash cannot lose it.
    pub records: &'a [Record],
}

/// One step of a run written by [`ParticipantStore::record_steps`]: its journey entry and
/// what else it wrote.
#[derive(Clone, Copy, Debug)]
pub struct StepRecord<'a> {
    /// The journey entry (its `seq` is assigned by the store).
    pub entry: &'a JourneyEntry,
    /// Counters and participants entered.
    pub write: StepWrite<'a>,
}

/// A request that enters participants, identified by its caller's idempotency key: a
/// retry with the same key enters nobody again and gets the first answer back.
#[derive(Clone, Copy, Debug)]
pub struct IdempotentRequest<'a> {
    /// What the key is unique within (for example, the flow the participants enter).
    pub scope: &'a str,
    /// The caller's key.
    pub key: &'a str,
    /// A digest of the request, so a key reused for a different request is told apart.
    pub fingerprint: &'a str,
    /// The answer to keep for retries.
    pub answer: &'a Value,
    /// When the request came (kept, so old keys can be pruned).
    pub at: Millis,
}

/// The answer kept for an idempotency key seen before.
#[derive(Clone, Debug, PartialEq)]
pub struct EarlierAnswer {
    /// The fingerprint of the request that first used the key.
    pub fingerprint: String,
    /// Its answer.
    pub answer: Value,
}

/// How many of a flow's participants stand where ([`ParticipantStore::status_counts`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct StatusCounts {
    /// Being advanced now.
    pub running: u64,
    /// Entered, not started yet.
    pub queued: u64,
    /// Waiting for a time or an event.
    pub waiting: u64,
    /// Reached the end.
    pub completed: u64,
    /// Stopped by an error.
    pub failed: u64,
    /// Stopped with their flow.
    pub canceled: u64,
    /// Of the failed, those that failed at the time asked about or later.
    #[serde(skip)]
    pub failed_since: u64,
}

impl StatusCounts {
    /// Adds `n` participants with `status`.
    pub fn add(&mut self, status: Status, n: u64) {
        *match status {
            Status::Running => &mut self.running,
            Status::Queued => &mut self.queued,
            Status::Waiting => &mut self.waiting,
            Status::Completed => &mut self.completed,
            Status::Failed => &mut self.failed,
            Status::Canceled => &mut self.canceled,
        } += n;
    }
}

/// A flow as deployed now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SavedFlow {
    /// Flow id.
    pub id: String,
    /// Its current version, from 1.
    pub version: u32,
    /// The definition (JSON text).
    pub definition: String,
    /// When it was last saved, as a number that every save makes larger than all before
    /// (in commit order), so [`FlowStore::flows_changed_since`] misses none.
    pub changed: u64,
}

/// Deployed flow definitions, every version kept: participants run on the version they
/// entered.
#[async_trait]
pub trait FlowStore: Send + Sync {
    /// Saves version `version` of a flow (JSON text) and makes it the current one, so another
    /// instance can load it; saving a version again replaces its definition (a status
    /// change).
    async fn save_flow(&self, id: &str, version: u32, definition: &str) -> Result<(), StoreError>;
    /// Every flow's current version, by id.
    async fn flows(&self) -> Result<Vec<SavedFlow>, StoreError>;
    /// The flows saved after `changed` (a [`SavedFlow::changed`] seen before; 0 for all),
    /// oldest change first: what another process deployed or paused since.
    async fn flows_changed_since(&self, changed: u64) -> Result<Vec<SavedFlow>, StoreError>;
    /// One version of a flow, as saved last.
    async fn flow_version(&self, id: &str, version: u32) -> Result<Option<String>, StoreError>;
}

/// Participants, their journeys, claims, waits and analytics counters.
#[async_trait]
pub trait ParticipantStore: Send + Sync {
    /// Wake-ups from other processes sharing this store: the value changes soon after
    /// another process commits work that any engine may take (participants queued or woken,
    /// a flow saved), so a scheduler can run a round before its next tick. A hint, not a
    /// queue: the work is found by the next round in any case. `None` (the default) when
    /// the backend has no way to tell (one process per database).
    fn work_signals(&self) -> Option<tokio::sync::watch::Receiver<u64>> {
        None
    }

    /// Inserts a new participant already claimed by `owner` until `expires_at` (its status
    /// is stored as [`Status::Running`]), and returns the lease.
    async fn insert_claimed(
        &self,
        p: &ParticipantState,
        owner: &str,
        expires_at: Millis,
    ) -> Result<Lease, StoreError>;

    /// Inserts a new participant with the journey entries of its first run of steps, as
    /// [`ParticipantStore::insert_claimed`] then [`ParticipantStore::record_steps`] would, and
    /// returns the lease: while `p` is [`Status::Running`], `owner` holds it until
    /// `expires_at`; otherwise `p` is stored as it is, unclaimed. The engine inserts a
    /// participant entered by an API call this way, so a run of steps without outside effects
    /// from the entry point to a wait or the end is one write.
    ///
    /// The default makes those two calls, in two transactions; a backend that can make them
    /// one should.
    async fn insert_with_steps(
        &self,
        p: &ParticipantState,
        owner: &str,
        expires_at: Millis,
        steps: &[StepRecord<'_>],
    ) -> Result<Lease, StoreError> {
        let lease = self.insert_claimed(p, owner, expires_at).await?;
        self.record_steps(&lease, p, steps).await?;
        Ok(lease)
    }

    /// Inserts new participants as [`Status::Queued`] (due at once), all or none, in one
    /// transaction with `request`'s key and answer. When the key was seen before in its
    /// scope, nothing is inserted and the earlier request's answer comes back instead.
    async fn insert_queued(
        &self,
        participants: &[ParticipantState],
        request: Option<IdempotentRequest<'_>>,
    ) -> Result<Option<EarlierAnswer>, StoreError>;

    /// The answer kept for an idempotency key, if the key was seen in its scope. Services
    /// whose work is not one transaction (routing an inbound message) look here first and
    /// keep their answer with [`ParticipantStore::insert_queued`] (no participants) after.
    async fn idempotent_answer(
        &self,
        scope: &str,
        key: &str,
    ) -> Result<Option<EarlierAnswer>, StoreError>;

    /// Claims a waiting or queued participant for `owner` until `expires_at`: it becomes
    /// [`Status::Running`] under a new epoch. A running participant whose lease expired by
    /// `now` is claimed too (its owner crashed or lost the database): it goes on from its
    /// last committed step, as it would have then ([`Claim::was`]), and
    /// [`Claim::retried`] counts the takeover. `None` when it is not waiting, queued or
    /// expired (another engine took it first, or it finished).
    async fn claim(
        &self,
        id: &str,
        owner: &str,
        now: Millis,
        expires_at: Millis,
    ) -> Result<Option<Claim>, StoreError>;

    /// Claims, in one statement, up to `limit` of the participants [`ParticipantStore::due`]
    /// would list, for `owner` until `expires_at`, each as [`ParticipantStore::claim`] would;
    /// oldest first. Participants another engine is claiming at the same moment are left to
    /// it, so engines sharing a database split the due work instead of queueing on it.
    async fn claim_due(
        &self,
        owner: &str,
        now: Millis,
        expires_at: Millis,
        limit: usize,
        held: &[String],
    ) -> Result<Vec<Claim>, StoreError>;

    /// Extends a lease to `expires_at` (a step that runs long); the lease with its new
    /// expiry, or [`StoreError::LeaseLost`].
    async fn renew(&self, lease: &Lease, expires_at: Millis) -> Result<Lease, StoreError>;

    /// Saves a participant and appends the journey entries of a run of steps (their `seq`
    /// assigned here, in order), with what else each step wrote, in one transaction, under
    /// `lease`: all of it or, with [`StoreError::LeaseLost`], none. A participant saved as
    /// anything but [`Status::Running`] no longer holds the lease.
    ///
    /// The engine writes steps without outside effects together with the steps around
    /// them: running them again after a crash changes nothing, and one transaction is cheaper
    /// than several.
    async fn record_steps(
        &self,
        lease: &Lease,
        p: &ParticipantState,
        steps: &[StepRecord<'_>],
    ) -> Result<(), StoreError>;

    /// [`ParticipantStore::record_steps`] for one step.
    async fn record_step(
        &self,
        lease: &Lease,
        p: &ParticipantState,
        entry: &JourneyEntry,
        write: StepWrite<'_>,
    ) -> Result<(), StoreError> {
        self.record_steps(lease, p, &[StepRecord { entry, write }])
            .await
    }

    /// Saves a participant's state without a journey entry and gives up the lease (a
    /// participant put back because this engine cannot run its flow, or one that completed).
    async fn release(&self, lease: &Lease, p: &ParticipantState) -> Result<(), StoreError>;

    /// Appends the report of work a step left (written with it as a record of `kind` and
    /// `id`) to a participant's journey and removes the record, in one transaction; `false`,
    /// writing nothing, when the record is gone (the work was reported already).
    async fn finish_record(
        &self,
        participant_id: &str,
        entry: &JourneyEntry,
        kind: &str,
        id: &str,
    ) -> Result<bool, StoreError>;

    /// Removes up to `limit` finished participants (completed, failed, canceled) whose last
    /// step was recorded before `before`, with their journeys; how many. Analytics counters
    /// stay as they are.
    async fn prune_finished(&self, before: Millis, limit: usize) -> Result<usize, StoreError>;

    /// Forgets up to `limit` idempotency keys first used before `before`; how many.
    async fn prune_idempotency_keys(
        &self,
        before: Millis,
        limit: usize,
    ) -> Result<usize, StoreError>;

    /// A participant.
    async fn participant(&self, id: &str) -> Result<Option<ParticipantState>, StoreError>;

    /// Ids of waiting participants due at `now`, of queued ones and of running ones whose
    /// lease expired by `now`, oldest first, at most `limit`, leaving out the participants of
    /// the flows in `held` (paused flows, whose participants stay where they are).
    async fn due(
        &self,
        now: Millis,
        limit: usize,
        held: &[String],
    ) -> Result<Vec<String>, StoreError>;

    /// Hands `event` to every participant waiting on `key` and makes them due at `now`;
    /// returns their ids, sorted.
    async fn wake(&self, key: &str, event: &Value, now: Millis) -> Result<Vec<String>, StoreError>;

    /// [`ParticipantStore::wake`], saving `record` in the same transaction: what ends (a
    /// chatbot session) and who waited for it move on together or not at all.
    async fn wake_saving(
        &self,
        key: &str,
        event: &Value,
        now: Millis,
        record: &Record,
    ) -> Result<Vec<String>, StoreError>;

    /// Moves the deadline of every participant waiting on `key` to `until`.
    async fn set_deadline(&self, key: &str, until: Millis) -> Result<(), StoreError>;

    /// Ids of a flow's participants with one of `statuses`, oldest first.
    async fn participants_of(
        &self,
        flow_id: &str,
        statuses: &[Status],
    ) -> Result<Vec<String>, StoreError>;

    /// How many of a flow's participants have each status (statuses with none are left
    /// out), and how many failed at `failed_since` or later. Served by an index, not by
    /// reading journeys.
    async fn status_counts(
        &self,
        flow_id: &str,
        failed_since: Millis,
    ) -> Result<StatusCounts, StoreError>;

    /// Ids of the participants of the person `person_id`, in any flow, newest first, at
    /// most `limit`.
    async fn participants_of_person(
        &self,
        person_id: &str,
        limit: usize,
    ) -> Result<Vec<String>, StoreError>;

    /// Analytics of a flow's elements, by element id: of one version, or of all of them.
    async fn element_counts(
        &self,
        flow_id: &str,
        version: Option<u32>,
    ) -> Result<BTreeMap<String, ElementCounts>, StoreError>;

    /// Moves a participant that nobody runs (waiting or queued) to another version of its
    /// flow; `false` when it is not waiting or queued now (it runs, or finished).
    async fn set_flow_version(&self, id: &str, version: u32) -> Result<bool, StoreError>;

    /// A participant's journey, in order.
    async fn journey(&self, id: &str) -> Result<Vec<JourneyEntry>, StoreError>;

    /// Appends a journey entry without changing the participant (a background request
    /// finishing after the participant moved on). The entry's `seq` is assigned here.
    async fn append_journey(
        &self,
        participant_id: &str,
        entry: &JourneyEntry,
    ) -> Result<(), StoreError>;

    /// How many participants wait in an element of a flow for the reason `kind` (the
    /// [`ElementState::reason`] their
    /// element gave).
    async fn count_waiting(
        &self,
        flow_id: &str,
        element_id: &str,
        kind: &str,
    ) -> Result<u64, StoreError>;
}

/// Send slots of rate-limited queues (a Call API element's sending speed).
#[async_trait]
pub trait QueueStore: Send + Sync {
    /// Takes the next send slot of `queue` for `holder` (a participant's step): the later of
    /// `now` and the queue's next free time; the queue's next free time moves `interval_ms`
    /// past the slot. Atomic, so two engines never get the same slot; and a holder that asks
    /// again (its step runs again after a crash) gets the slot it took, so no slot is lost
    /// and none is taken twice. Holds are forgotten a day after their slot.
    async fn take_slot(
        &self,
        queue: &str,
        holder: &str,
        now: Millis,
        interval_ms: Millis,
    ) -> Result<Millis, StoreError>;
}

/// People profiles, found by id or by any of their contacts.
#[async_trait]
pub trait PeopleStore: Send + Sync {
    /// Inserts or replaces a person and indexes their contacts; a contact that belongs to
    /// another person is a [`StoreError::Conflict`] and nothing is written.
    async fn save_person(&self, person: &Person) -> Result<(), StoreError>;
    /// A person by id.
    async fn person(&self, id: &str) -> Result<Option<Person>, StoreError>;
    /// The person with a contact, by its normalised key
    /// ([`flowhost_types::person::Contact::key`]).
    async fn person_by_contact(&self, key: &str) -> Result<Option<Person>, StoreError>;
}

/// Small JSON documents with one lookup key and a status: messages, conversations, tags,
/// chatbots, chatbot sessions, account settings. Each service owns the shape of its kind.
#[async_trait]
pub trait RecordStore: Send + Sync {
    /// Inserts or replaces a record.
    async fn put_record(&self, r: &Record) -> Result<(), StoreError>;
    /// Takes hold of the work `kind`/`id` (a record to send, a thread of messages) for
    /// `owner` until `until`, so that one process among those sharing the store does it:
    /// `false` when another owner holds it until after `now`. Holding it again renews the
    /// hold. Holds are kept apart from records; one that is not let go expires.
    async fn hold(
        &self,
        kind: &str,
        id: &str,
        owner: &str,
        now: Millis,
        until: Millis,
    ) -> Result<bool, StoreError>;
    /// Lets go of a hold of `owner`'s (another's is left as it is).
    async fn let_go(&self, kind: &str, id: &str, owner: &str) -> Result<(), StoreError>;
    /// A record by kind and id.
    async fn record(&self, kind: &str, id: &str) -> Result<Option<Record>, StoreError>;
    /// Removes up to `limit` records of `kind` with one of `statuses` whose body's number
    /// `time_field` (a top-level field) is before `before`; how many.
    async fn prune_records(
        &self,
        kind: &str,
        statuses: &[&str],
        time_field: &str,
        before: Millis,
        limit: usize,
    ) -> Result<usize, StoreError>;

    /// Records of a kind, optionally only those with a key and/or a status, in insertion
    /// order; with `last`, only the newest that many.
    async fn records(
        &self,
        kind: &str,
        key: Option<&str>,
        status: Option<&str>,
        last: Option<usize>,
    ) -> Result<Vec<Record>, StoreError>;
}

/// Everything the engine and its services keep: one backend implements every concern.
pub trait StateStore:
    FlowStore + ParticipantStore + QueueStore + PeopleStore + RecordStore
{
}

impl<T: FlowStore + ParticipantStore + QueueStore + PeopleStore + RecordStore> StateStore for T {}

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
        serde_json::from_value(self.body.clone())
            .map_err(|e| StoreError::corrupt(format!("{} {:?}", self.kind, self.id), e))
    }
}

/// Says that a due participant was left out of a claim because its stored row cannot be
/// read (`why`). A claim goes on with the rest rather than fail: one damaged row would
/// otherwise stop all due work, as it is due again (its lease expires) with every claim.
/// It stays claimed until its lease expires, then is tried again, and said again.
pub fn left_out_of_claim(participant: &str, why: &StoreError) {
    tracing::error!(
        participant,
        error = %why,
        "a due participant's stored state cannot be read, so it does not run; it is tried \
         again when its lease expires: repair or remove its row"
    );
}

/// A stored participant status, or [`StoreError::Corrupt`].
pub fn parse_status(s: &str) -> Result<Status, StoreError> {
    Status::parse(s)
        .ok_or_else(|| StoreError::corrupt("participant status", format!("unknown status {s:?}")))
}
