//! The flow engine: participants advance element by element; after every step the
//! participant's state and one journey entry are written to the [`StateStore`].
//!
//! It owns four jobs: compiling and deploying flows (`compile.rs`, and `saved.rs` for the
//! flows saved in the store), running participants (`run.rs`, and `due.rs` for the ones that
//! are due), the [`scheduler`] that resumes due participants until shut down, and analytics. What it runs is behind the [`element`] traits; it knows no element,
//! no plugin host and no messaging service, and it talks to any backend of the storage API.
//!
//! An element type is registered once; a flow names it by its `type`:
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use flowhost_engine::Engine;
//! use flowhost_engine::element::{
//!     BoxFuture, Element, ElementType, ElementTypes, StepInput, StepOutcome, StepResult,
//! };
//! use flowhost_flow::{ElementDef, FlowDef, Issue};
//! use flowhost_store_sqlite::SqliteStore;
//! use flowhost_types::clock::ManualClock;
//! use flowhost_types::person::Person;
//! use std::sync::Arc;
//!
//! /// Greets the person and ends the flow.
//! struct Greet;
//!
//! impl Element for Greet {
//!     fn exits(&self) -> Vec<String> {
//!         Vec::new()
//!     }
//!     fn run<'a>(&'a self, input: StepInput<'a>) -> BoxFuture<'a, StepResult> {
//!         Box::pin(async move {
//!             let mut result = StepResult::new(StepOutcome::End);
//!             let greeting = format!("Hello, {}", input.person.id);
//!             result.set.insert("greeting".into(), greeting.into());
//!             result
//!         })
//!     }
//! }
//!
//! struct GreetType;
//!
//! impl ElementType for GreetType {
//!     fn build(&self, _def: &ElementDef) -> Result<Box<dyn Element>, Vec<Issue>> {
//!         Ok(Box::new(Greet))
//!     }
//! }
//!
//! let mut types = ElementTypes::new();
//! types.register("greet", Arc::new(GreetType));
//! let store = Arc::new(SqliteStore::in_memory()?);
//! let engine = Engine::new(store, Arc::new(ManualClock::new(0)), types);
//! let flow = FlowDef::parse(
//!     r#"{"id": "hello", "name": "Hello",
//!         "entry_points": [{"type": "api", "start": "greet"}],
//!         "elements": [{"id": "greet", "type": "greet"}]}"#,
//!     "hello.json",
//! )?;
//! engine.deploy(flow, "hello.json").await?;
//! let ada = Person { id: "ada".into(), ..Person::default() };
//! let participant = engine.start("hello", ada, Default::default()).await?;
//! assert_eq!(participant.variables["greeting"], "Hello, ada");
//! assert_eq!(engine.journey(&participant.id).await?.len(), 1);
//! # Ok(()) }
//! ```

#![deny(missing_docs)]

mod background;
mod compile;
mod due;
pub mod element;
mod held;
mod run;
mod saved;
pub mod scheduler;

use element::{
    BackgroundReport, ERROR_EXIT, Element, ElementType, ElementTypes, FlowDirectory, StepInput,
    StepOutcome,
};
use flowhost_flow::{EntryKind, FlowDef, FlowError, FlowStatus, Issue};
use flowhost_store::{
    ElementCounts, JourneyEntry, Lease, ParticipantState, StateStore, Status, StepRecord,
    StepWrite, StoreError,
};
use flowhost_types::clock::{Clock, Millis};
use flowhost_types::log::{LogLevel, LogLine};
use flowhost_types::person::Person;
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, RwLock};
use std::time::Instant;
use tracing::Instrument;

/// Steps one participant may take in one go without waiting; more means the flow loops.
pub const MAX_STEPS_PER_RUN: usize = 1000;

/// How long a claim on a participant lasts by default ([`Engine::with_lease`]). A step that
/// runs longer renews it every third of it; a participant whose engine crashed is taken over
/// by the scheduler once its lease has expired.
pub const LEASE_MS: Millis = 30_000;

/// Claimed participants a scheduler round runs at a time ([`Engine::resume_due`]). Their
/// writes share group commits, so more at once means fewer commits: 128 released due
/// participants about 15% faster than 32 on SQLite; 256 no faster (docs/BENCHMARKS.md).
pub const RUN_AT_ONCE: usize = 128;

/// Participants one call runs after the one it was about (entered by Add to Flow, woken by
/// an event); the rest stay queued for [`Engine::resume_due`].
pub const MAX_FOLLOW_UPS: usize = 1000;

/// A failure of the engine itself (not of an element, which ends on its error exit).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EngineError {
    /// The flow is not deployed.
    #[error("no flow {0:?} is deployed; deploy it first (flowhost run FLOW.json deploys it)")]
    UnknownFlow(String),
    /// The flow has no such version.
    #[error("flow {id:?} has no version {version}; its versions are 1 to {current}")]
    UnknownVersion {
        /// Flow id.
        id: String,
        /// The version asked for.
        version: u32,
        /// The current version.
        current: u32,
    },
    /// The flow does not accept participants.
    #[error("flow {id:?} is {status:?}, so participants cannot enter; set \"status\": \"active\"")]
    FlowNotActive {
        /// Flow id.
        id: String,
        /// Its status.
        status: FlowStatus,
    },
    /// No such participant.
    #[error("no participant {0:?}")]
    UnknownParticipant(String),
    /// The flow has no entry point of the kind asked for.
    #[error(
        "flow {id:?} has no {kind} entry point; add {{\"type\": \"{kind}\", \"start\": \"<element id>\"}} to its entry_points"
    )]
    NoEntryPoint {
        /// Flow id.
        id: String,
        /// The kind (`api`, …).
        kind: &'static str,
    },
    /// A lifecycle change that is not allowed.
    #[error(
        "flow {id:?} cannot go from {from} to {to}; allowed: draft -> active -> finished, active <-> paused, paused -> finished, and draft, active or paused -> canceled"
    )]
    StatusChange {
        /// Flow id.
        id: String,
        /// Current status.
        from: &'static str,
        /// Asked status.
        to: &'static str,
    },
    /// An idempotency key came again with a different request.
    #[error(
        "idempotency key {key:?} was already used for a different request; send a new key for a new request"
    )]
    KeyReused {
        /// The key.
        key: String,
    },
    /// A request about people, conversations or chatbots that cannot be done.
    #[error("{0}")]
    Rejected(String),
    /// The flow cannot run.
    #[error(transparent)]
    Invalid(#[from] FlowError),
    /// The state database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The caller's idempotency key of a request that enters participants
/// ([`Engine::admit`]), and a digest of the request.
#[derive(Clone, Copy, Debug)]
pub struct AdmitKey<'a> {
    /// The key, unique per request within the flow.
    pub key: &'a str,
    /// A digest of what was asked, so a key reused for another request is refused.
    pub fingerprint: &'a str,
}

/// Who [`Engine::admit`] entered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Admitted {
    /// The participants' ids, in the order asked.
    pub participants: Vec<String>,
    /// The request was a retry: these were entered by the first one, nobody now.
    pub repeated: bool,
}

struct Node {
    type_name: String,
    ty: Arc<dyn ElementType>,
    element: Box<dyn Element>,
    exits: BTreeMap<String, String>,
}

/// A validated flow, its elements built and ready to run.
pub struct CompiledFlow {
    /// The definition.
    pub def: FlowDef,
    /// Its version: 1 when first deployed, one more for each changed definition.
    pub version: u32,
    /// Things allowed but probably a mistake, at their JSON paths.
    pub warnings: Vec<Issue>,
    nodes: HashMap<String, Node>,
}

impl CompiledFlow {
    /// Each element's type as the flow names it (`plugin:crm`) and as it resolved when the
    /// flow was built (`plugin:crm@1.2.0`), by element id.
    pub fn element_types(&self) -> Vec<(&str, &str, &str)> {
        self.def
            .elements
            .iter()
            .filter_map(|el| {
                let node = self.nodes.get(&el.id)?;
                Some((el.id.as_str(), el.kind.as_str(), node.type_name.as_str()))
            })
            .collect()
    }

    /// What each element type of the flow finds wrong with activating it, once per type.
    async fn activation_issues(&self) -> Vec<Issue> {
        let mut seen = std::collections::BTreeSet::new();
        let mut issues = Vec::new();
        for el in &self.def.elements {
            let Some(node) = self.nodes.get(&el.id) else {
                continue;
            };
            if seen.insert(node.type_name.as_str()) {
                issues.extend(node.ty.activation_issues(&self.def).await);
            }
        }
        issues
    }
}

impl std::fmt::Debug for CompiledFlow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CompiledFlow")
            .field("id", &self.def.id)
            .field("elements", &self.def.elements.len())
            .field("warnings", &self.warnings)
            .finish()
    }
}

/// The engine. Cheap to clone.
#[derive(Clone)]
pub struct Engine {
    inner: Arc<Inner>,
}

struct Inner {
    store: Arc<dyn StateStore>,
    /// This engine's name in the leases it takes.
    owner: String,
    /// How long its leases last.
    lease_ms: Millis,
    clock: Arc<dyn Clock>,
    types: ElementTypes,
    flows: RwLock<HashMap<String, Arc<CompiledFlow>>>,
    /// The latest flow change loaded from the store ([`SavedFlow::changed`](flowhost_store::SavedFlow::changed)).
    flows_seen: std::sync::atomic::AtomicU64,
    /// Earlier versions of flows that participants still run on, built when first needed.
    earlier: RwLock<HashMap<(String, u32), Arc<CompiledFlow>>>,
    /// Saved flows that did not build here, by id.
    unbuilt: std::sync::Mutex<BTreeMap<String, UnbuiltFlow>>,
    background: std::sync::Mutex<tokio::task::JoinSet<()>>,
    /// The records of background work this engine is doing now, by id.
    doing: std::sync::Mutex<std::collections::HashSet<String>>,
    /// Participants that finished, as their last step is committed.
    finished: tokio::sync::broadcast::Sender<Finished>,
}

/// A saved flow this engine could not build: deployed through another node that has a
/// plugin this one lacks, or saved before a plugin it names was removed here.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct UnbuiltFlow {
    /// The flow's id.
    pub flow: String,
    /// The version saved.
    pub version: u32,
    /// Its status as saved.
    pub status: FlowStatus,
    /// Why it did not build, in one line.
    pub reason: String,
}

impl UnbuiltFlow {
    /// Whether its participants may still need to run (it is not a draft, nor canceled).
    pub fn still_runs(&self) -> bool {
        self.status.has_participants_to_run()
    }
}

/// A participant that has finished (completed, failed or canceled), announced by
/// [`Engine::finished`] once its last step is committed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finished {
    /// Participant id.
    pub participant: String,
    /// Its flow.
    pub flow: String,
    /// [`Status::Completed`], [`Status::Failed`] or [`Status::Canceled`].
    pub status: Status,
}

/// Finishes kept for a slow listener; one that falls further behind is told it lagged.
const FINISHED_BACKLOG: usize = 4096;

/// What [`Engine::move_to_current`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Moved {
    /// The version they were moved to.
    pub version: u32,
    /// The participants moved.
    pub moved: Vec<String>,
    /// The participants that stay in their version, with why.
    pub stayed: Vec<Stayed>,
}

/// A participant left in its version.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Stayed {
    /// Participant id.
    pub participant: String,
    /// The version it stays in.
    pub version: u32,
    /// Why it was not moved.
    pub reason: String,
}

/// Analytics of one element.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ElementAnalytics {
    /// Element id.
    pub element_id: String,
    /// Element type.
    pub element_type: String,
    /// Entered, left per exit, waiting now.
    #[serde(flatten)]
    pub counts: ElementCounts,
}

impl Engine {
    /// An engine over `store`, telling time by `clock`, knowing `types`.
    pub fn new(
        store: Arc<dyn StateStore>,
        clock: Arc<dyn Clock>,
        types: impl Into<ElementTypes>,
    ) -> Self {
        let types = types.into();
        Engine {
            inner: Arc::new(Inner {
                store,
                owner: format!("engine-{}", uuid::Uuid::new_v4().simple()),
                lease_ms: LEASE_MS,
                clock,
                types,
                flows: RwLock::new(HashMap::new()),
                flows_seen: Default::default(),
                earlier: RwLock::new(HashMap::new()),
                unbuilt: Default::default(),
                background: Default::default(),
                doing: Default::default(),
                finished: tokio::sync::broadcast::channel(FINISHED_BACKLOG).0,
            }),
        }
    }

    /// Participants finishing from now on, announced after their last step is committed.
    /// Best effort: a listener that falls more than a few thousand behind gets
    /// [`RecvError::Lagged`](tokio::sync::broadcast::error::RecvError::Lagged) and must read
    /// what it missed from the store.
    pub fn finished(&self) -> tokio::sync::broadcast::Receiver<Finished> {
        self.inner.finished.subscribe()
    }

    /// Announces `p` when it has finished.
    fn announce(&self, p: &ParticipantState) {
        if p.status.is_final() {
            // Nobody listening is fine.
            let _ = self.inner.finished.send(Finished {
                participant: p.id.clone(),
                flow: p.flow_id.clone(),
                status: p.status,
            });
        }
    }

    /// The engine's store.
    pub fn store(&self) -> &dyn StateStore {
        self.inner.store.as_ref()
    }

    /// The clock the engine tells time by.
    pub fn clock(&self) -> &dyn Clock {
        self.inner.clock.as_ref()
    }

    /// The name this engine claims participants under.
    pub fn owner(&self) -> &str {
        &self.inner.owner
    }

    /// The engine with leases of `ms` (the default is [`LEASE_MS`]): how long after a crash
    /// another engine takes over its participants. Called before the engine is cloned.
    ///
    /// # Panics
    ///
    /// When the engine has been cloned already.
    pub fn with_lease(mut self, ms: Millis) -> Self {
        Arc::get_mut(&mut self.inner)
            .expect("Engine::with_lease is called before the engine is shared")
            .lease_ms = ms.max(3);
        self
    }

    /// When a lease taken now expires.
    fn lease_expiry(&self) -> Millis {
        self.now() + self.inner.lease_ms
    }

    /// Runs `step`, renewing `lease` every third of its length while it runs; a lease found
    /// lost (another engine took the participant over) abandons the step.
    async fn renewing<T>(
        &self,
        lease: &Lease,
        step: impl std::future::Future<Output = T>,
    ) -> Result<T, EngineError> {
        let every = std::time::Duration::from_millis((self.inner.lease_ms / 3) as u64);
        // The renewals run beside the step, never instead of it: a step in the middle of a
        // write holds a connection (and perhaps a row lock) that a renewal may be waiting
        // for.
        let renewals = async {
            loop {
                tokio::time::sleep(every).await;
                match self.inner.store.renew(lease, self.lease_expiry()).await {
                    Ok(_) => {}
                    Err(e @ flowhost_store::StoreError::LeaseLost { .. }) => return e,
                    // The next renewal may get through; the lease has two thirds left.
                    Err(e) => tracing::warn!(
                        participant = %lease.participant,
                        error = %e,
                        "cannot renew a lease; trying again"
                    ),
                }
            }
        };
        tokio::select! {
            biased;
            out = step => Ok(out),
            lost = renewals => Err(lost.into()),
        }
    }

    /// Does `work` while holding `kind`/`id` ([`RecordStore::hold`](flowhost_store::RecordStore::hold))
    /// for this engine, renewing the hold every third of the lease length and letting go
    /// after: among the processes sharing the store, one does a piece of work at a time.
    /// `None` when another process holds it (and `work` is not started). A hold lost while
    /// `work` runs (the store did not answer for a whole lease) is logged, and `work` goes
    /// on: work done under a hold is at least once, with its idempotency key.
    pub async fn holding<T>(
        &self,
        kind: &str,
        id: &str,
        work: impl std::future::Future<Output = T>,
    ) -> Result<Option<T>, StoreError> {
        let store = &self.inner.store;
        let owner = &self.inner.owner;
        if !store
            .hold(kind, id, owner, self.now(), self.lease_expiry())
            .await?
        {
            return Ok(None);
        }
        let every = std::time::Duration::from_millis((self.inner.lease_ms / 3) as u64);
        // Renewed beside the work, never instead of it (see `renewing`).
        let renewals = async {
            loop {
                tokio::time::sleep(every).await;
                match store
                    .hold(kind, id, owner, self.now(), self.lease_expiry())
                    .await
                {
                    Ok(true) => {}
                    Ok(false) => tracing::warn!(
                        kind,
                        id,
                        "another process took this work over; it may be done twice"
                    ),
                    Err(e) => {
                        tracing::warn!(kind, id, error = %e, "cannot renew a hold; trying again")
                    }
                }
            }
        };
        let out = tokio::select! {
            biased;
            out = work => out,
            never = renewals => never,
        };
        if let Err(e) = store.let_go(kind, id, owner).await {
            tracing::warn!(kind, id, error = %e, "cannot let go of a hold; it expires");
        }
        Ok(Some(out))
    }

    /// The current time by the engine's clock.
    pub fn now(&self) -> Millis {
        self.inner.clock.now_ms()
    }

    /// A participant's state.
    pub async fn participant(&self, id: &str) -> Result<ParticipantState, EngineError> {
        self.inner
            .store
            .participant(id)
            .await?
            .ok_or_else(|| EngineError::UnknownParticipant(id.to_owned()))
    }

    /// A participant's journey.
    pub async fn journey(&self, id: &str) -> Result<Vec<JourneyEntry>, EngineError> {
        Ok(self.inner.store.journey(id).await?)
    }

    /// How many participants wait in a flow's element for the reason `kind`, as the element
    /// names it in its [`ElementState`](flowhost_store::ElementState) (Call API: `queued` in
    /// its sending-speed queue, `window` outside its delivery window, `retry` between
    /// attempts).
    pub async fn waiting_count(
        &self,
        flow_id: &str,
        element_id: &str,
        kind: &str,
    ) -> Result<u64, EngineError> {
        Ok(self
            .inner
            .store
            .count_waiting(flow_id, element_id, kind)
            .await?)
    }
}

impl FlowDirectory for Engine {
    fn existing_flow_start(&self, flow_id: &str) -> Result<element::FlowEntry, String> {
        let flow = self
            .flow(flow_id)
            .map_err(|_| format!("flow {flow_id:?} is not deployed"))?;
        if flow.def.status != FlowStatus::Active {
            return Err(format!(
                "flow {flow_id:?} is {}, not active",
                flow.def.status.as_str()
            ));
        }
        flow.def
            .entry_points
            .iter()
            .find(|e| e.kind == EntryKind::ExistingFlow)
            .map(|e| element::FlowEntry {
                version: flow.version,
                start: e.start.clone(),
            })
            .ok_or_else(|| format!("flow {flow_id:?} has no existing-flow entry point"))
    }
}

/// The step counter (by flow, element and how it left) and the step duration histogram.
fn record_step_metrics(flow: &str, element: &str, outcome: &StepOutcome, started: Instant) {
    let left = match outcome {
        StepOutcome::Exit(exit) => exit.clone(),
        StepOutcome::Wait(_) | StepOutcome::WaitFor { .. } => "wait".to_owned(),
        StepOutcome::End => "end".to_owned(),
        StepOutcome::Failed(_) => ERROR_EXIT.to_owned(),
    };
    let (flow, element) = (flow.to_owned(), element.to_owned());
    metrics::histogram!(
        "flowhost_step_duration_seconds",
        "flow" => flow.clone(),
        "element" => element.clone()
    )
    .record(started.elapsed().as_secs_f64());
    metrics::counter!("flowhost_steps_total", "flow" => flow, "element" => element, "exit" => left)
        .increment(1);
}
