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
//! engine.deploy(FlowDef::load("flow.json".as_ref())?, "flow.json").await?;
//! let participant = engine.start("my-flow", Default::default(), Default::default()).await?;
//! for step in engine.journey(&participant.id).await? {
//!     println!("{} -> {:?}", step.element_id, step.exit);
//! }
//! # Ok(()) }
//! ```

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

    /// Checks a flow completely (structure, element types, configuration, exits) and builds
    /// it. `source_name` (a file name) prefixes every issue. An active flow also gets the
    /// activation checks that look at the account (chatbots, Answers).
    pub async fn compile(
        &self,
        def: FlowDef,
        source_name: &str,
    ) -> Result<CompiledFlow, FlowError> {
        let activate = def.status == FlowStatus::Active;
        self.compile_as(def, source_name, activate).await
    }

    async fn compile_as(
        &self,
        def: FlowDef,
        source_name: &str,
        activate: bool,
    ) -> Result<CompiledFlow, FlowError> {
        let compiled = self.build(def, source_name)?;
        if activate {
            let issues =
                crate::elements::activation_issues(&compiled.def, self.inner.store.as_ref()).await;
            if !issues.is_empty() {
                return Err(FlowError::Invalid {
                    source_name: source_name.to_owned(),
                    issues,
                });
            }
        }
        Ok(compiled)
    }

    /// The checks that need only the flow and the element types, and the built elements.
    fn build(&self, def: FlowDef, source_name: &str) -> Result<CompiledFlow, FlowError> {
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
    pub async fn deploy(
        &self,
        def: FlowDef,
        source_name: &str,
    ) -> Result<Arc<CompiledFlow>, EngineError> {
        let text = serde_json::to_string(&def).expect("flow definitions serialize");
        let compiled = Arc::new(self.compile(def, source_name).await?);
        self.inner.store.save_flow(&compiled.def.id, &text).await?;
        self.inner
            .flows
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(compiled.def.id.clone(), compiled.clone());
        Ok(compiled)
    }

    /// Loads every flow saved in the store (after a restart). Flows that no longer compile,
    /// e.g. because a plugin is gone, are returned as errors; the rest load.
    pub async fn load_saved_flows(&self) -> Result<Vec<FlowError>, EngineError> {
        let mut errors = Vec::new();
        for (id, text) in self.inner.store.flows().await? {
            let source = format!("saved flow {id:?}");
            // Saved flows were checked when activated; what the account looked like then
            // is not checked again, so their participants can always continue.
            match FlowDef::parse(&text, &source).and_then(|def| self.build(def, &source)) {
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

    /// Enters a person into a flow at its API entry point and runs them until the flow ends
    /// or they wait (and then the participants they entered into other flows).
    pub async fn start(
        &self,
        flow_id: &str,
        person: Person,
        variables: BTreeMap<String, Value>,
    ) -> Result<ParticipantState, EngineError> {
        self.start_at(flow_id, EntryKind::Api, person, variables)
            .await
    }

    /// Enters the person with id `person_id` from People into a flow at its API entry point.
    pub async fn start_person(
        &self,
        flow_id: &str,
        person_id: &str,
        variables: BTreeMap<String, Value>,
    ) -> Result<ParticipantState, EngineError> {
        let person =
            self.inner.store.person(person_id).await?.ok_or_else(|| {
                EngineError::Rejected(format!("no person {person_id:?} in People"))
            })?;
        self.start(flow_id, person, variables).await
    }

    pub(crate) async fn start_at(
        &self,
        flow_id: &str,
        kind: EntryKind,
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
        let entry = flow
            .def
            .entry_points
            .iter()
            .find(|e| e.kind == kind)
            .ok_or(EngineError::NoEntryPoint {
                id: flow_id.to_owned(),
                kind: kind.as_str(),
            })?;
        let state = ParticipantState::new(flow_id, &entry.start, person, variables);
        let lease = self
            .inner
            .store
            .insert_claimed(&state, &self.inner.owner, self.lease_expiry())
            .await?;
        let mut follow = Vec::new();
        let state = self
            .advance(&flow, state, &lease, false, &mut follow)
            .await?;
        self.follow_up(follow).await?;
        Ok(state)
    }

    /// Runs participants entered or woken by the steps just taken, and the ones they enter
    /// or wake in turn, up to [`MAX_FOLLOW_UPS`].
    pub(crate) async fn follow_up(
        &self,
        mut queue: Vec<String>,
    ) -> Result<Vec<ParticipantState>, EngineError> {
        let mut done = Vec::new();
        let mut next = 0;
        while next < queue.len() && next < MAX_FOLLOW_UPS {
            let id = queue[next].clone();
            next += 1;
            match self.run_claimed(&id, &mut queue).await {
                Ok(Some(state)) => done.push(state),
                Ok(None) => {}
                // Put back by `run_claimed`: an engine that has the flow continues it, and
                // the participants after it in the queue still run.
                Err(EngineError::UnknownFlow(flow)) => {
                    tracing::warn!(
                        participant = %id,
                        flow = %flow,
                        "participant waits for a flow this engine has not loaded; an engine that has it will continue it"
                    );
                }
                Err(e) => return Err(e),
            }
        }
        Ok(done)
    }

    /// Claims a waiting or queued participant and runs it; `None` when another engine has it.
    async fn run_claimed(
        &self,
        id: &str,
        follow: &mut Vec<String>,
    ) -> Result<Option<ParticipantState>, EngineError> {
        let now = self.now();
        let Some(claim) = self
            .inner
            .store
            .claim(id, &self.inner.owner, now, self.lease_expiry())
            .await?
        else {
            return Ok(None);
        };
        let before = claim.was;
        let state = self
            .inner
            .store
            .participant(id)
            .await?
            .ok_or_else(|| EngineError::UnknownParticipant(id.to_owned()))?;
        let flow = match self.flow(&state.flow_id) {
            Ok(f) => f,
            Err(e) => {
                // Put it back: a later engine with the flow can resume it.
                let mut state = state;
                state.status = before;
                self.inner.store.release(&claim.lease, &state).await?;
                return Err(e);
            }
        };
        Ok(Some(
            self.advance(
                &flow,
                state,
                &claim.lease,
                before == Status::Waiting,
                follow,
            )
            .await?,
        ))
    }

    /// Resumes every waiting participant whose time has come (and queued ones); returns
    /// their new states.
    pub async fn resume_due(&self) -> Result<Vec<ParticipantState>, EngineError> {
        let now = self.inner.clock.now_ms();
        let mut resumed = Vec::new();
        loop {
            let due = self.inner.store.due(now, 256).await?;
            if due.is_empty() {
                break;
            }
            let mut progressed = false;
            for id in due {
                let mut follow = Vec::new();
                if let Some(state) = self.run_claimed(&id, &mut follow).await? {
                    progressed = true;
                    resumed.push(state);
                }
                resumed.extend(self.follow_up(follow).await?);
            }
            if !progressed {
                break;
            }
        }
        Ok(resumed)
    }

    /// Changes a flow's lifecycle status. Activating runs the activation checks; canceling
    /// stops the participants waiting in it (with a journey entry).
    pub async fn set_flow_status(&self, flow_id: &str, to: FlowStatus) -> Result<(), EngineError> {
        let flow = self.flow(flow_id)?;
        let from = flow.def.status;
        if !from.can_become(to) {
            return Err(EngineError::StatusChange {
                id: flow_id.to_owned(),
                from: from.as_str(),
                to: to.as_str(),
            });
        }
        let mut def = flow.def.clone();
        def.status = to;
        let source = format!("flow {flow_id:?}");
        let activating = to == FlowStatus::Active && from != FlowStatus::Active;
        let compiled = self.compile_as(def, &source, activating).await?;
        let text = serde_json::to_string(&compiled.def).expect("flow definitions serialize");
        self.inner.store.save_flow(flow_id, &text).await?;
        self.inner
            .flows
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(flow_id.to_owned(), Arc::new(compiled));
        if to == FlowStatus::Canceled {
            for id in self
                .inner
                .store
                .participants_of(flow_id, &[Status::Waiting, Status::Queued])
                .await?
            {
                let claim = self
                    .inner
                    .store
                    .claim(&id, &self.inner.owner, self.now(), self.lease_expiry())
                    .await?;
                let Some(claim) = claim else {
                    continue;
                };
                let mut p = self.participant(&id).await?;
                let mut entry = self.entry(&p, p.current.as_deref().unwrap_or("?"), "engine");
                entry.error = Some(format!("flow {flow_id:?} was canceled"));
                p.status = Status::Canceled;
                p.waiting_until = None;
                p.wait_key = None;
                p.current = None;
                p.steps += 1;
                self.inner
                    .store
                    .record_step(&claim.lease, &p, &entry, StepWrite::default())
                    .await?;
            }
        }
        Ok(())
    }

    /// A deployed flow's definition.
    pub fn flow_def(&self, flow_id: &str) -> Result<FlowDef, EngineError> {
        Ok(self.flow(flow_id)?.def.clone())
    }

    /// Ids of the deployed flows.
    pub fn flow_ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = self
            .inner
            .flows
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .keys()
            .cloned()
            .collect();
        ids.sort();
        ids
    }

    /// Per element of a flow, in definition order: participants entered, left per exit, and
    /// waiting now.
    pub async fn analytics(&self, flow_id: &str) -> Result<Vec<ElementAnalytics>, EngineError> {
        let flow = self.flow(flow_id)?;
        let mut counts = self.inner.store.element_counts(flow_id).await?;
        Ok(flow
            .def
            .elements
            .iter()
            .map(|el| ElementAnalytics {
                element_id: el.id.clone(),
                element_type: flow
                    .nodes
                    .get(&el.id)
                    .map_or_else(|| el.kind.clone(), |n| n.type_name.clone()),
                counts: counts.remove(&el.id).unwrap_or_default(),
            })
            .collect())
    }

    /// Takes in a message a person sent to one of our senders and routes it (see
    /// [`crate::messaging`] for the order): to an open agent conversation, a running chatbot
    /// session, participants waiting for it, or flows it starts. Every message is logged.
    pub async fn receive_inbound(
        &self,
        mut message: InboundMessage,
    ) -> Result<Delivery, EngineError> {
        let store = self.inner.store.as_ref();
        let now = self.inner.clock.now_ms();
        let contact = message
            .contact()
            .map_err(|e| EngineError::Rejected(format!("inbound message: from: {e}")))?;
        if message.to.trim().is_empty() {
            return Err(EngineError::Rejected(
                "inbound message: to (our sender) is empty".into(),
            ));
        }
        message.received_at.get_or_insert(now);
        let agents = Conversations::new(store);
        if let Some(mut conversation) = agents
            .active_for(message.channel, &contact, &message.to)
            .await
            .map_err(|e| EngineError::Rejected(e.to_string()))?
        {
            let logged = self.log_inbound(&message, &contact).await?;
            conversation.messages.push(logged);
            agents
                .save(&conversation)
                .await
                .map_err(|e| EngineError::Rejected(e.to_string()))?;
            return Ok(Delivery::Conversation {
                id: conversation.id,
            });
        }
        let mut session =
            Answers::running_session(store, message.channel, &contact, &message.to).await?;
        if let Some(stale) = session.take_if(|s| s.last_activity + s.timeout_ms <= now) {
            // Past its timeout with nobody left to notice (its participant's flow was
            // canceled): it ends now, and the message goes on to the next in line.
            let woken = Answers::end_session(store, &stale.id, EndReason::Expired, now).await?;
            self.follow_up(woken).await?;
        }
        if let Some(session) = session {
            let id = session.id.clone();
            let (woken, failure) = self
                .inner
                .answers
                .message(store, session, &message.text, now)
                .await?;
            if let Some(failure) = failure {
                tracing::warn!(session = %id, %failure, "chatbot failed to answer; the session carries on");
            }
            self.follow_up(woken).await?;
            return Ok(Delivery::Chatbot { session: id });
        }
        self.log_inbound(&message, &contact).await?;
        let key = InboundMessage::wait_key(message.channel, &contact, &message.to);
        let event = serde_json::to_value(&message).expect("messages serialize");
        let woken = store.wake(&key, &event, now).await?;
        if !woken.is_empty() {
            self.follow_up(woken.clone()).await?;
            return Ok(Delivery::Waiting {
                participants: woken,
            });
        }
        let mut started = Vec::new();
        let sender = crate::messaging::sender_key(&message.to);
        for flow_id in self.flow_ids() {
            let Ok(flow) = self.flow(&flow_id) else {
                continue;
            };
            if flow.def.status != FlowStatus::Active {
                continue;
            }
            let takes = flow.def.entry_points.iter().any(|e| {
                e.kind == EntryKind::InboundMessage
                    && e.channel == Some(message.channel)
                    && e.sender.as_deref().map(crate::messaging::sender_key) == Some(sender.clone())
                    && e.keyword
                        .as_deref()
                        .is_none_or(|k| crate::messaging::starts_with_keyword(&message.text, k))
            });
            if !takes {
                continue;
            }
            let (person, _) = People::new(store)
                .find_or_create(&contact)
                .await
                .map_err(|e| EngineError::Rejected(e.to_string()))?;
            let variables =
                BTreeMap::from([(LAST_INBOUND_MESSAGE.to_owned(), message.as_variable())]);
            let p = self
                .start_at(&flow_id, EntryKind::InboundMessage, person, variables)
                .await?;
            started.push(p.id);
        }
        if started.is_empty() {
            Ok(Delivery::Unrouted)
        } else {
            Ok(Delivery::Started {
                participants: started,
            })
        }
    }

    async fn log_inbound(
        &self,
        message: &InboundMessage,
        contact: &crate::person::Contact,
    ) -> Result<LoggedMessage, EngineError> {
        let logged = LoggedMessage {
            id: new_message_id(),
            channel: message.channel,
            contact: contact.key(),
            sender: message.to.clone(),
            author: Author::Person,
            by: None,
            text: message.text.clone(),
            at: message.received_at.unwrap_or_else(|| self.now()),
        };
        log_message(self.inner.store.as_ref(), &logged).await?;
        Ok(logged)
    }

    /// Applies something a chatbot reports outside a turn (a webhook bot replying later,
    /// or ending the session), and runs the participant it wakes.
    pub async fn chatbot_event(
        &self,
        session_id: &str,
        event: &BotEvent,
    ) -> Result<Vec<ParticipantState>, EngineError> {
        let woken = self
            .inner
            .answers
            .event(self.inner.store.as_ref(), session_id, event, self.now())
            .await
            .map_err(|e| EngineError::Rejected(e.to_string()))?;
        self.follow_up(woken).await
    }

    /// Stops (deactivates) a chatbot; participants in its sessions leave by their
    /// `deactivated` exit.
    pub async fn stop_chatbot(&self, bot_id: &str) -> Result<Vec<ParticipantState>, EngineError> {
        let woken = Answers::stop(self.inner.store.as_ref(), bot_id, self.now())
            .await
            .map_err(|e| EngineError::Rejected(e.to_string()))?;
        self.follow_up(woken).await
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

    /// How many participants wait in a flow's element for the reason `kind` (`"queued"`
    /// for a Call API sending-speed queue, `"window"` for its delivery window).
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
            if let Err(e) = engine
                .inner
                .store
                .append_journey(&participant, &entry)
                .await
            {
                tracing::error!(
                    participant = %participant,
                    error = %e,
                    "cannot record the result of a background request in the journey"
                );
            }
        });
    }

    async fn advance(
        &self,
        flow: &CompiledFlow,
        mut p: ParticipantState,
        lease: &Lease,
        mut resumed: bool,
        follow: &mut Vec<String>,
    ) -> Result<ParticipantState, EngineError> {
        p.status = Status::Running;
        p.waiting_until = None;
        p.wait_key = None;
        let mut event = p.event.take();
        // A person kept in People may have changed since (Add to Flow updates attributes).
        if !p.person.id.is_empty()
            && let Some(person) = self.inner.store.person(&p.person.id).await?
        {
            p.person = person;
        }
        for _ in 0..MAX_STEPS_PER_RUN {
            let Some(current) = p.current.clone() else {
                p.status = Status::Completed;
                self.inner.store.release(lease, &p).await?;
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
                self.inner
                    .store
                    .record_step(lease, &p, &entry, StepWrite::default())
                    .await?;
                return Ok(p);
            };
            let now = self.inner.clock.now_ms();
            let started = Instant::now();
            let span = tracing::info_span!(
                "step",
                flow = %flow.def.id,
                element = %current,
                participant = %p.id,
            );
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
                    event: event.as_ref(),
                    flows: self,
                })
                .instrument(span.clone())
                .await;
            let entered = !resumed;
            resumed = false;
            event = None;
            p.element_state = None;
            if let Some(work) = result.background {
                self.spawn_background(&p, &current, &node.type_name, work);
            }
            let duration_us = started.elapsed().as_micros() as u64;
            span.in_scope(|| tracing::debug!(outcome = ?result.outcome, duration_us, "step ran"));
            for (k, v) in &result.set {
                p.variables.insert(k.clone(), v.clone());
            }
            let mut entry = self.entry(&p, &current, &node.type_name);
            entry.duration_us = duration_us;
            entry.variables_changed = result.set;
            entry.logs = result.logs;
            entry.data = result.data;
            let write = StepWrite {
                entered,
                enter: &result.enter,
            };
            follow.extend(result.enter.iter().map(|e| e.id.clone()));
            follow.extend(result.wake);
            let (key, until) = match result.outcome {
                StepOutcome::Wait(until) => (None, Some(until)),
                StepOutcome::WaitFor { key, until } => (Some(key), until),
                outcome => {
                    self.leave(node, &current, outcome, &mut p, &mut entry);
                    p.steps += 1;
                    entry.seq = p.steps;
                    self.inner
                        .store
                        .record_step(lease, &p, &entry, write)
                        .await?;
                    if p.status != Status::Running {
                        return Ok(p);
                    }
                    continue;
                }
            };
            p.element_state = result.state;
            p.status = Status::Waiting;
            p.waiting_until = until;
            p.wait_key = key;
            entry.waiting_until = until;
            p.steps += 1;
            entry.seq = p.steps;
            self.inner
                .store
                .record_step(lease, &p, &entry, write)
                .await?;
            return Ok(p);
        }
        p.status = Status::Failed;
        let mut entry = self.entry(&p, p.current.as_deref().unwrap_or("?"), "engine");
        entry.error = Some(format!(
            "more than {MAX_STEPS_PER_RUN} steps without waiting; the flow loops; add a wait element to the loop"
        ));
        p.steps += 1;
        entry.seq = p.steps;
        self.inner
            .store
            .record_step(lease, &p, &entry, StepWrite::default())
            .await?;
        Ok(p)
    }

    /// Applies an outcome that leaves the element (or ends the participant there).
    fn leave(
        &self,
        node: &Node,
        current: &str,
        outcome: StepOutcome,
        p: &mut ParticipantState,
        entry: &mut JourneyEntry,
    ) {
        match outcome {
            StepOutcome::Exit(exit) => {
                p.current = node.exits.get(&exit).cloned();
                entry.next = p.current.clone();
                entry.exit = Some(exit);
            }
            StepOutcome::Wait(_) | StepOutcome::WaitFor { .. } => {
                unreachable!("waits are handled by the caller")
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
                        tracing::warn!(
                            flow = %p.flow_id,
                            element = %current,
                            participant = %p.id,
                            reason = entry.error.as_deref().unwrap_or_default(),
                            "participant failed: the element failed and its error exit is not connected"
                        );
                        entry.logs.push(LogLine {
                            level: LogLevel::Error,
                            message: format!(
                                "element {current:?} failed and its error exit is not connected; the participant stops here"
                            ),
                        });
                        p.current = None;
                        p.status = Status::Failed;
                        return;
                    }
                }
            }
        }
        if p.current.is_none() {
            p.status = Status::Completed;
        }
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
