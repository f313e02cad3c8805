//! The flow engine: participants advance element by element; after every step the
//! participant's state and one journey entry are written to the [`StateStore`].
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! use flowhost::clock::SystemClock;
//! use flowhost::elements::ElementTypes;
//! use flowhost::engine::Engine;
//! use flowhost::flow::FlowDef;
//! use flowhost::store::SqliteStore;
//! use std::sync::Arc;
//!
//! let store = Arc::new(SqliteStore::open("flowhost.db".as_ref())?);
//! let types = ElementTypes::builtins(store.clone());
//! let engine = Engine::new(store, Arc::new(SystemClock), types);
//! engine.deploy(FlowDef::load("flow.json".as_ref())?, "flow.json").await?;
//! let participant = engine.start("my-flow", Default::default(), Default::default()).await?;
//! for step in engine.journey(&participant.id).await? {
//!     println!("{} -> {:?}", step.element_id, step.exit);
//! }
//! # Ok(()) }
//! ```

mod compile;
mod inbound;
mod run;
pub mod scheduler;

use crate::answers::{Answers, BotEvent, EndReason};
use crate::clock::{Clock, Millis};
use crate::conversations::Conversations;
use crate::elements::{
    BackgroundReport, ERROR_EXIT, Element, ElementTypes, FlowDirectory, StepInput, StepOutcome,
};
use crate::flow::{EntryKind, FlowDef, FlowError, FlowStatus, Issue};
use crate::messaging::{
    Author, Delivery, InboundMessage, LAST_INBOUND_MESSAGE, LoggedMessage, log_message,
    new_message_id,
};
use crate::person::People;
use crate::person::Person;
use crate::plugin::capabilities::{LogLevel, LogLine};
use crate::store::{
    ElementCounts, JourneyEntry, Lease, ParticipantState, StateStore, Status, StepWrite, StoreError,
};
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, RwLock};
use std::time::Instant;
use tracing::Instrument;

/// Steps one participant may take in one go without waiting; more means the flow loops.
pub const MAX_STEPS_PER_RUN: usize = 1000;

/// How long a claim on a participant lasts. Nothing reclaims an expired lease yet (a crashed
/// engine's running participants stay running); the lease is recorded so that fencing and
/// recovery can build on it.
pub const LEASE_MS: Millis = 5 * 60_000;

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
        "flow {id:?} cannot go from {from} to {to}; allowed: draft -> active -> finished, draft or active -> canceled"
    )]
    StatusChange {
        /// Flow id.
        id: String,
        /// Current status.
        from: &'static str,
        /// Asked status.
        to: &'static str,
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

struct Node {
    type_name: String,
    element: Box<dyn Element>,
    exits: BTreeMap<String, String>,
}

/// A validated flow, its elements built and ready to run.
pub struct CompiledFlow {
    /// The definition.
    pub def: FlowDef,
    /// Things allowed but probably a mistake, at their JSON paths.
    pub warnings: Vec<Issue>,
    nodes: HashMap<String, Node>,
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
    clock: Arc<dyn Clock>,
    types: ElementTypes,
    flows: RwLock<HashMap<String, Arc<CompiledFlow>>>,
    background: std::sync::Mutex<tokio::task::JoinSet<()>>,
    answers: Answers,
}

/// Analytics of one element.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
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
    pub fn new(store: Arc<dyn StateStore>, clock: Arc<dyn Clock>, types: ElementTypes) -> Self {
        let answers = Answers::new(types.http().clone());
        Engine {
            inner: Arc::new(Inner {
                store,
                owner: format!("engine-{}", uuid::Uuid::new_v4().simple()),
                clock,
                types,
                flows: RwLock::new(HashMap::new()),
                background: Default::default(),
                answers,
            }),
        }
    }

    /// The engine's store.
    pub fn store(&self) -> &dyn StateStore {
        self.inner.store.as_ref()
    }

    /// The name this engine claims participants under.
    pub fn owner(&self) -> &str {
        &self.inner.owner
    }

    /// When a lease taken now expires.
    fn lease_expiry(&self) -> Millis {
        self.now() + LEASE_MS
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
    /// names it in its [`ElementState`](crate::store::ElementState) (for Call API:
    /// [`WAITING_QUEUED`](crate::elements::call_api::WAITING_QUEUED) in the sending-speed
    /// queue, [`WAITING_WINDOW`](crate::elements::call_api::WAITING_WINDOW) outside the delivery
    /// window, [`WAITING_RETRY`](crate::elements::call_api::WAITING_RETRY) between attempts).
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

    /// Waits until all background work started so far (requests of Call API elements that
    /// do not wait for the response) has finished and is in the journeys.
    pub async fn finish_background(&self) {
        loop {
            let mut tasks = std::mem::take(
                &mut *self
                    .inner
                    .background
                    .lock()
                    .unwrap_or_else(|e| e.into_inner()),
            );
            if tasks.is_empty() {
                return;
            }
            while tasks.join_next().await.is_some() {}
        }
    }
}

impl FlowDirectory for Engine {
    fn existing_flow_start(&self, flow_id: &str) -> Result<String, String> {
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
            .map(|e| e.start.clone())
            .ok_or_else(|| format!("flow {flow_id:?} has no existing-flow entry point"))
    }
}
