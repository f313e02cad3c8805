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
//! let engine = Engine::new(store, Arc::new(SystemClock), ElementTypes::builtins_only());
//! engine.deploy(FlowDef::load("flow.json".as_ref())?, "flow.json")?;
//! let participant = engine.start("my-flow", Default::default(), Default::default()).await?;
//! for step in engine.journey(&participant.id)? {
//!     println!("{} -> {:?}", step.element_id, step.exit);
//! }
//! # Ok(()) }
//! ```

use crate::clock::{Clock, Millis};
use crate::elements::{
    BackgroundReport, ERROR_EXIT, Element, ElementTypes, StepInput, StepOutcome,
};
use crate::flow::{FlowDef, FlowError, FlowStatus, Issue};
use crate::person::Person;
use crate::plugin::capabilities::{LogLevel, LogLine};
use crate::store::{JourneyEntry, ParticipantState, StateStore, Status, StoreError};
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, RwLock};
use std::time::Instant;

/// Steps one participant may take in one go without waiting; more means the flow loops.
pub const MAX_STEPS_PER_RUN: usize = 1000;

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
    clock: Arc<dyn Clock>,
    types: ElementTypes,
    flows: RwLock<HashMap<String, Arc<CompiledFlow>>>,
    background: std::sync::Mutex<tokio::task::JoinSet<()>>,
}

impl Engine {
    /// An engine over `store`, telling time by `clock`, knowing `types`.
    pub fn new(store: Arc<dyn StateStore>, clock: Arc<dyn Clock>, types: ElementTypes) -> Self {
        Engine {
            inner: Arc::new(Inner {
                store,
                clock,
                types,
                flows: RwLock::new(HashMap::new()),
                background: Default::default(),
            }),
        }
    }

    /// Checks a flow completely (structure, element types, configuration, exits) and builds
    /// it. `source_name` (a file name) prefixes every issue.
    pub fn compile(&self, def: FlowDef, source_name: &str) -> Result<CompiledFlow, FlowError> {
        let mut issues = def.check_structure();
        let mut warnings = Vec::new();
        let mut nodes = HashMap::new();
        for (i, el) in def.elements.iter().enumerate() {
            let (type_name, ty) = match self.inner.types.resolve(&el.kind) {
                Ok(t) => t,
                Err(message) => {
                    issues.push(Issue::new(format!("elements[{i}].type"), message));
                    continue;
                }
            };
            let built = ty.build(el);
            let declared = match &built {
                Ok(element) => element.exits(),
                Err(_) => ty.known_exits().unwrap_or_default(),
            };
            let check_exits = built.is_ok() || ty.known_exits().is_some();
            if let Err(found) = &built {
                issues.extend(found.iter().map(|is| Issue {
                    path: format!("elements[{i}].{}", is.path),
                    message: format!("(element {:?}) {}", el.id, is.message),
                }));
            }
            for exit in el.exits.keys() {
                if check_exits && !declared.contains(exit) {
                    issues.push(Issue::new(
                        format!("elements[{i}].exits.{exit}"),
                        format!(
                            "element {:?} ({type_name}) has no exit {exit:?}; its exits: {}",
                            el.id,
                            if declared.is_empty() {
                                "none".to_owned()
                            } else {
                                declared.join(", ")
                            }
                        ),
                    ));
                }
            }
            if let Ok(element) = built {
                warnings.extend(element.warnings().into_iter().map(|w| Issue {
                    path: format!("elements[{i}].{}", w.path),
                    message: format!("(element {:?}) {}", el.id, w.message),
                }));
                nodes.insert(
                    el.id.clone(),
                    Node {
                        type_name,
                        element,
                        exits: el.exits.clone(),
                    },
                );
            }
        }
        if issues.is_empty() {
            Ok(CompiledFlow {
                def,
                warnings,
                nodes,
            })
        } else {
            Err(FlowError::Invalid {
                source_name: source_name.to_owned(),
                issues,
            })
        }
    }

    /// Validates, saves (so another engine on the same store can resume its participants)
    /// and activates a flow, replacing an earlier version with the same id.
    pub fn deploy(
        &self,
        def: FlowDef,
        source_name: &str,
    ) -> Result<Arc<CompiledFlow>, EngineError> {
        let text = serde_json::to_string(&def).expect("flow definitions serialize");
        let compiled = Arc::new(self.compile(def, source_name)?);
        self.inner.store.save_flow(&compiled.def.id, &text)?;
        self.inner
            .flows
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(compiled.def.id.clone(), compiled.clone());
        Ok(compiled)
    }

    /// Loads every flow saved in the store (after a restart). Flows that no longer compile,
    /// e.g. because a plugin is gone, are returned as errors; the rest load.
    pub fn load_saved_flows(&self) -> Result<Vec<FlowError>, EngineError> {
        let mut errors = Vec::new();
        for (id, text) in self.inner.store.flows()? {
            let source = format!("saved flow {id:?}");
            match FlowDef::parse(&text, &source).and_then(|def| self.compile(def, &source)) {
                Ok(flow) => {
                    self.inner
                        .flows
                        .write()
                        .unwrap_or_else(|e| e.into_inner())
                        .insert(id, Arc::new(flow));
                }
                Err(e) => errors.push(e),
            }
        }
        Ok(errors)
    }

    fn flow(&self, id: &str) -> Result<Arc<CompiledFlow>, EngineError> {
        self.inner
            .flows
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(id)
            .cloned()
            .ok_or_else(|| EngineError::UnknownFlow(id.to_owned()))
    }

    /// Enters a person into a flow at its first API entry point and runs them until the flow
    /// ends or they wait.
    pub async fn start(
        &self,
        flow_id: &str,
        person: Person,
        variables: BTreeMap<String, Value>,
    ) -> Result<ParticipantState, EngineError> {
        let flow = self.flow(flow_id)?;
        if flow.def.status != FlowStatus::Active {
            return Err(EngineError::FlowNotActive {
                id: flow_id.to_owned(),
                status: flow.def.status,
            });
        }
        let start = flow.def.entry_points[0].start.clone();
        let state = ParticipantState {
            id: format!("p-{}", uuid::Uuid::new_v4().simple()),
            flow_id: flow_id.to_owned(),
            person,
            variables,
            current: Some(start),
            status: Status::Running,
            waiting_until: None,
            steps: 0,
            element_state: None,
        };
        self.inner.store.insert_participant(&state)?;
        self.advance(&flow, state, false).await
    }

    /// Resumes every waiting participant whose time has come; returns their new states.
    pub async fn resume_due(&self) -> Result<Vec<ParticipantState>, EngineError> {
        let now = self.inner.clock.now_ms();
        let mut resumed = Vec::new();
        loop {
            let due = self.inner.store.due(now, 256)?;
            if due.is_empty() {
                break;
            }
            let mut progressed = false;
            for id in due {
                if !self.inner.store.claim(&id)? {
                    continue;
                }
                progressed = true;
                let state = self
                    .inner
                    .store
                    .participant(&id)?
                    .ok_or_else(|| EngineError::UnknownParticipant(id.clone()))?;
                let flow = match self.flow(&state.flow_id) {
                    Ok(f) => f,
                    Err(e) => {
                        // Put it back: a later engine with the flow can resume it.
                        let mut state = state;
                        state.status = Status::Waiting;
                        self.inner.store.save_participant(&state)?;
                        return Err(e);
                    }
                };
                resumed.push(self.advance(&flow, state, true).await?);
            }
            if !progressed {
                break;
            }
        }
        Ok(resumed)
    }

    /// The current time by the engine's clock.
    pub fn now(&self) -> Millis {
        self.inner.clock.now_ms()
    }

    /// A participant's state.
    pub fn participant(&self, id: &str) -> Result<ParticipantState, EngineError> {
        self.inner
            .store
            .participant(id)?
            .ok_or_else(|| EngineError::UnknownParticipant(id.to_owned()))
    }

    /// A participant's journey.
    pub fn journey(&self, id: &str) -> Result<Vec<JourneyEntry>, EngineError> {
        Ok(self.inner.store.journey(id)?)
    }

    /// How many participants wait in a flow's element for the reason `kind` (`"queued"`
    /// for a Call API sending-speed queue, `"window"` for its delivery window).
    pub fn waiting_count(
        &self,
        flow_id: &str,
        element_id: &str,
        kind: &str,
    ) -> Result<u64, EngineError> {
        Ok(self.inner.store.count_waiting(flow_id, element_id, kind)?)
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

    fn spawn_background(
        &self,
        p: &ParticipantState,
        element_id: &str,
        type_name: &str,
        work: crate::elements::BoxFuture<'static, BackgroundReport>,
    ) {
        let engine = self.clone();
        let mut entry = self.entry(p, element_id, type_name);
        let participant = p.id.clone();
        let mut tasks = self
            .inner
            .background
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        // Finished tasks are dropped as new ones come, so the set stays small.
        while tasks.try_join_next().is_some() {}
        tasks.spawn(async move {
            let started = Instant::now();
            let report = work.await;
            entry.at_ms = engine.inner.clock.now_ms();
            entry.duration_us = started.elapsed().as_micros() as u64;
            entry.logs = report.logs;
            entry.data = report.data;
            entry.error = report.error;
            if let Err(e) = engine.inner.store.append_journey(&participant, &entry) {
                eprintln!("flowhost: cannot record background result for {participant}: {e}");
            }
        });
    }

    async fn advance(
        &self,
        flow: &CompiledFlow,
        mut p: ParticipantState,
        mut resumed: bool,
    ) -> Result<ParticipantState, EngineError> {
        p.status = Status::Running;
        p.waiting_until = None;
        for _ in 0..MAX_STEPS_PER_RUN {
            let Some(current) = p.current.clone() else {
                p.status = Status::Completed;
                self.inner.store.save_participant(&p)?;
                return Ok(p);
            };
            let Some(node) = flow.nodes.get(&current) else {
                // Only reachable when a redeployed flow dropped the element someone waits in.
                p.status = Status::Failed;
                let mut entry = self.entry(&p, &current, "?");
                entry.error = Some(format!(
                    "element {current:?} is no longer in flow {:?}",
                    flow.def.id
                ));
                p.steps += 1;
                p.current = None;
                self.inner.store.record_step(&p, &entry)?;
                return Ok(p);
            };
            let now = self.inner.clock.now_ms();
            let started = Instant::now();
            let result = node
                .element
                .run(StepInput {
                    flow_id: &flow.def.id,
                    element_id: &current,
                    participant_id: &p.id,
                    person: &p.person,
                    variables: &p.variables,
                    now,
                    resumed,
                    state: p.element_state.as_ref(),
                    store: self.inner.store.as_ref(),
                })
                .await;
            resumed = false;
            p.element_state = None;
            if let Some(work) = result.background {
                self.spawn_background(&p, &current, &node.type_name, work);
            }
            let duration_us = started.elapsed().as_micros() as u64;
            for (k, v) in &result.set {
                p.variables.insert(k.clone(), v.clone());
            }
            let mut entry = self.entry(&p, &current, &node.type_name);
            entry.duration_us = duration_us;
            entry.variables_changed = result.set;
            entry.logs = result.logs;
            entry.data = result.data;
            let mut finished = false;
            match result.outcome {
                StepOutcome::Exit(exit) => {
                    p.current = node.exits.get(&exit).cloned();
                    entry.next = p.current.clone();
                    entry.exit = Some(exit);
                }
                StepOutcome::Wait(until) => {
                    p.element_state = result.state;
                    p.status = Status::Waiting;
                    p.waiting_until = Some(until);
                    entry.waiting_until = Some(until);
                    p.steps += 1;
                    entry.seq = p.steps;
                    self.inner.store.record_step(&p, &entry)?;
                    return Ok(p);
                }
                StepOutcome::End => {
                    p.current = None;
                }
                StepOutcome::Failed(reason) => {
                    entry.error = Some(reason);
                    match node.exits.get(ERROR_EXIT) {
                        Some(next) => {
                            p.current = Some(next.clone());
                            entry.next = p.current.clone();
                            entry.exit = Some(ERROR_EXIT.to_owned());
                        }
                        None => {
                            entry.logs.push(LogLine {
                                level: LogLevel::Error,
                                message: format!(
                                    "element {current:?} failed and its error exit is not connected; the participant stops here"
                                ),
                            });
                            p.current = None;
                            p.status = Status::Failed;
                            finished = true;
                        }
                    }
                }
            }
            if p.current.is_none() && !finished {
                p.status = Status::Completed;
                finished = true;
            }
            p.steps += 1;
            entry.seq = p.steps;
            self.inner.store.record_step(&p, &entry)?;
            if finished {
                return Ok(p);
            }
        }
        p.status = Status::Failed;
        let mut entry = self.entry(&p, p.current.as_deref().unwrap_or("?"), "engine");
        entry.error = Some(format!(
            "more than {MAX_STEPS_PER_RUN} steps without waiting; the flow loops; add a wait element to the loop"
        ));
        p.steps += 1;
        entry.seq = p.steps;
        self.inner.store.record_step(&p, &entry)?;
        Ok(p)
    }

    /// A journey entry for the participant's next step, to be filled in.
    fn entry(&self, p: &ParticipantState, element_id: &str, element_type: &str) -> JourneyEntry {
        JourneyEntry {
            seq: p.steps + 1,
            at_ms: self.inner.clock.now_ms(),
            element_id: element_id.to_owned(),
            element_type: element_type.to_owned(),
            exit: None,
            next: None,
            variables_changed: BTreeMap::new(),
            logs: Vec::new(),
            data: None,
            error: None,
            waiting_until: None,
            duration_us: 0,
        }
    }
}
