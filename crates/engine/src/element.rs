//! What the engine runs: the [`Element`] and [`ElementType`] traits that built-ins and
//! plugins both implement, what a step sees ([`StepInput`]) and returns ([`StepResult`]),
//! and [`ElementTypes`], the registry a flow's `type` strings are resolved in.
//!
//! A step returns what must be written with it as data (variables set, participants
//! entered, participants woken, the element's typed state); the engine writes it with the
//! participant's step in one store call. Elements get the services they use (a queue, the
//! people, a chatbot registry) when their type is built, never through the step.

use flowhost_flow::{ElementDef, FlowDef, Issue};
use flowhost_store::{ElementState, ParticipantState};
use flowhost_types::clock::Millis;
use flowhost_types::log::LogLine;
use flowhost_types::participant::HttpRequestRecord;
use flowhost_types::person::Person;
use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::Arc;

/// A boxed, sendable future.
pub use flowhost_types::BoxFuture;

/// The exit the engine takes when an element fails.
pub use flowhost_types::ERROR_EXIT;

/// What an element sees when it runs.
pub struct StepInput<'a> {
    /// Flow id.
    pub flow_id: &'a str,
    /// Element id.
    pub element_id: &'a str,
    /// Participant id.
    pub participant_id: &'a str,
    /// The person.
    pub person: &'a Person,
    /// Flow variables before the step.
    pub variables: &'a BTreeMap<String, Value>,
    /// Now.
    pub now: Millis,
    /// Whether the participant waited in this element and is now resuming.
    pub resumed: bool,
    /// What the element kept when the participant started waiting in it.
    pub state: Option<&'a ElementState>,
    /// The event that woke the participant ([`StepOutcome::WaitFor`]), when one did.
    pub event: Option<&'a Value>,
    /// The other flows, for elements that enter participants into them.
    pub flows: &'a dyn FlowDirectory,
    /// The step's position in the participant's journey (its `seq`): the same when the step
    /// runs again after a takeover, so the idempotency keys of its outside effects are too.
    pub step: u64,
}

impl StepInput<'_> {
    /// `participant:step`: what the idempotency keys of this step's requests start with.
    pub fn idempotency_base(&self) -> String {
        format!("{}:{}", self.participant_id, self.step)
    }

    /// The idempotency key of the step's `n`th outside request (from 1):
    /// `participant:step:n`. A step that runs again after a crash sends the same keys.
    pub fn idempotency_key(&self, n: u32) -> String {
        format!("{}:{n}", self.idempotency_base())
    }
}

/// What elements may ask about the deployed flows.
pub trait FlowDirectory: Send + Sync {
    /// Where Add to Flow enters `flow_id` now: the current version and the element of its
    /// Existing Flow entry point; or why it cannot enter it.
    fn existing_flow_start(&self, flow_id: &str) -> Result<FlowEntry, String>;
}

/// Where a participant enters a flow.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FlowEntry {
    /// The flow's current version.
    pub version: u32,
    /// The element it starts at.
    pub start: String,
}

/// A directory with no flows, for running one element on its own.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoFlows;

impl FlowDirectory for NoFlows {
    fn existing_flow_start(&self, flow_id: &str) -> Result<FlowEntry, String> {
        Err(format!("flow {flow_id:?} is not deployed"))
    }
}

/// How a step ends.
#[derive(Clone, Debug, PartialEq)]
pub enum StepOutcome {
    /// Leave by this exit.
    Exit(String),
    /// Wait until this time, then run the element again with `resumed`.
    Wait(Millis),
    /// Wait for an event on `key` (woken through [`flowhost_store::ParticipantStore::wake`]) or
    /// until `until`, whichever comes first; then run the element again with `resumed` and
    /// the event, if one came.
    WaitFor {
        /// What wakes the participant (`inbound:sms:385911234567:INFO`).
        key: String,
        /// When it resumes without an event; `None`: only an event wakes it.
        until: Option<Millis>,
    },
    /// End the flow for the participant.
    End,
    /// The element failed; the engine takes its `error` exit, or stops the participant.
    Failed(String),
}

/// What a step produced.
pub struct StepResult {
    /// How it ends.
    pub outcome: StepOutcome,
    /// Variables to set.
    pub set: BTreeMap<String, Value>,
    /// Journey log lines.
    pub logs: Vec<LogLine>,
    /// Outcome data for the journey.
    pub data: Option<Value>,
    /// Kept while the participant waits (with [`StepOutcome::Wait`]) and handed back in
    /// [`StepInput::state`] when it resumes; its reason is what analytics count waiting
    /// participants by.
    pub state: Option<ElementState>,
    /// Work to do after the participant has moved on (a request sent without waiting for its
    /// response), as what its element type needs to do it ([`ElementType::run_background`]),
    /// without secret values. It is written with the step, done once the step is committed,
    /// and its report appended to the journey; after a crash, the next process does it.
    pub background: Option<Value>,
    /// Participants to enter into other flows (Add to Flow), written with this step and run
    /// after it.
    pub enter: Vec<ParticipantState>,
    /// Participants this step woke (through the store) that the engine should run next.
    pub wake: Vec<String>,
    /// What the element's analytics count for this step besides its exit (Start chatbot:
    /// `sessions`, and the end reason); see [`ElementCounts::details`](flowhost_store::ElementCounts::details).
    pub tally: Vec<String>,
    /// The HTTP requests the step sent, for the journey (secrets redacted).
    pub requests: Vec<HttpRequestRecord>,
}

impl std::fmt::Debug for StepResult {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StepResult")
            .field("outcome", &self.outcome)
            .field("set", &self.set)
            .field("logs", &self.logs)
            .field("data", &self.data)
            .field("state", &self.state)
            .field("background", &self.background)
            .field("enter", &self.enter)
            .field("wake", &self.wake)
            .field("requests", &self.requests)
            .finish()
    }
}

/// How background work ended, for the journey.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct BackgroundReport {
    /// Log lines.
    pub logs: Vec<LogLine>,
    /// Outcome data.
    pub data: Option<Value>,
    /// Why it failed, if it did.
    pub error: Option<String>,
    /// The HTTP requests it sent (secrets redacted).
    pub requests: Vec<HttpRequestRecord>,
}

impl StepResult {
    /// Ends with `outcome` and nothing else.
    pub fn new(outcome: StepOutcome) -> Self {
        StepResult {
            outcome,
            set: BTreeMap::new(),
            logs: Vec::new(),
            data: None,
            state: None,
            background: None,
            enter: Vec::new(),
            wake: Vec::new(),
            tally: Vec::new(),
            requests: Vec::new(),
        }
    }

    /// Leaves by `exit`.
    pub fn exit(exit: &str) -> Self {
        Self::new(StepOutcome::Exit(exit.to_owned()))
    }
}

/// A configured element, ready to run for any number of participants.
pub trait Element: Send + Sync {
    /// The exits it may take.
    fn exits(&self) -> Vec<String>;
    /// Runs one step for one participant.
    fn run<'a>(&'a self, input: StepInput<'a>) -> BoxFuture<'a, StepResult>;
    /// Things that are allowed but probably a mistake, with paths relative to the element.
    fn warnings(&self) -> Vec<Issue> {
        Vec::new()
    }
    /// Whether a step does anything outside the participant's own state: a request, a
    /// message, a write to state others share. A step without effects is written together
    /// with the steps after it (one store transaction for the run), since running it again
    /// after a crash changes nothing; a step with effects is written before the next one
    /// with effects runs. The default is the safe answer.
    fn has_effects(&self) -> bool {
        true
    }
    /// Whether participants waiting in this element must resume in the order they fell due
    /// (a queue that is first in, first out, such as a sending speed's). Those run one after
    /// another; participants resuming anywhere else run side by side.
    fn resumes_in_order(&self) -> bool {
        false
    }
    /// The flows it enters participants into (Add to Flow's target), checked against the
    /// deployed flows when the flow is validated or deployed.
    fn flows_entered(&self) -> Vec<String> {
        Vec::new()
    }
}

/// A kind of element: checks an element definition and builds the element.
pub trait ElementType: Send + Sync {
    /// Builds the element from its definition, or lists what is wrong with its `config`,
    /// with paths relative to the element (`config.url`).
    fn build(&self, def: &ElementDef) -> Result<Box<dyn Element>, Vec<Issue>>;

    /// The exits known without a valid configuration (a plugin's manifest), so exit mistakes
    /// are reported together with configuration mistakes.
    fn known_exits(&self) -> Option<Vec<String>> {
        None
    }

    /// Does the work a step of this type left ([`StepResult::background`]) once the step is
    /// committed, and reports it for the journey. It may run again after a crash, so what it
    /// sends carries the step's idempotency key.
    fn run_background(&self, work: Value) -> BoxFuture<'static, BackgroundReport> {
        let _ = work;
        Box::pin(async {
            BackgroundReport {
                error: Some("this element type does no background work".into()),
                ..BackgroundReport::default()
            }
        })
    }

    /// Checks that need the whole flow and the account, run once per flow (not per element)
    /// when a flow containing this type is activated: Start chatbot checks its placement,
    /// its sender and that a chatbot answers there. Paths are relative to the flow.
    fn activation_issues<'a>(&'a self, _flow: &'a FlowDef) -> BoxFuture<'a, Vec<Issue>> {
        Box::pin(async { Vec::new() })
    }
}

/// Element types for `type` strings with a prefix (`plugin:<id>[@<version>]`), resolved when
/// a flow compiles: the plugins in use at that moment.
pub trait TypeSource: Send + Sync {
    /// The type for what follows the prefix, with its canonical name for journeys
    /// (`plugin:order-status@1.2.0`), or why there is none.
    fn resolve(&self, spec: &str) -> Result<(String, Arc<dyn ElementType>), String>;
}

/// Every element type the engine knows, by the `type` string flows use: the built-ins by
/// name, and prefixed types from a [`TypeSource`] (plugins). Cheap to clone.
///
/// The composition root fills it (the built-ins with their services, the plugin host's
/// plugins); the engine only looks types up.
#[derive(Clone, Default)]
pub struct ElementTypes {
    builtins: BTreeMap<String, Arc<dyn ElementType>>,
    sources: Vec<(String, Arc<dyn TypeSource>)>,
}

impl ElementTypes {
    /// No types at all.
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers a built-in type under `name`, replacing one of the same name.
    pub fn register(&mut self, name: &str, ty: Arc<dyn ElementType>) {
        self.builtins.insert(name.to_owned(), ty);
    }

    /// Resolves `type` strings starting with `prefix` (`plugin:`) in `source`.
    pub fn add_source(&mut self, prefix: &str, source: Arc<dyn TypeSource>) {
        self.sources.retain(|(p, _)| p != prefix);
        self.sources.push((prefix.to_owned(), source));
    }

    /// The type for a `type` string, with a canonical name for journeys.
    pub fn resolve(&self, kind: &str) -> Result<(String, Arc<dyn ElementType>), String> {
        for (prefix, source) in &self.sources {
            if let Some(spec) = kind.strip_prefix(prefix.as_str()) {
                return source.resolve(spec);
            }
        }
        self.builtins
            .get(kind)
            .map(|t| (kind.to_owned(), t.clone()))
            .ok_or_else(|| {
                let prefixes: String = self
                    .sources
                    .iter()
                    .map(|(p, _)| format!(", or {p}<id>"))
                    .collect();
                format!(
                    "unknown element type {kind:?}; built-ins are {}{prefixes}",
                    self.builtins.keys().cloned().collect::<Vec<_>>().join(", ")
                )
            })
    }
}

/// Parses an element's `config` into `T`, with every field that does not read as an issue
/// at its path (not only the first).
pub fn parse_config<T: serde::de::DeserializeOwned>(def: &ElementDef) -> Result<T, Vec<Issue>> {
    match parse_config_leniently(def) {
        (Some(config), issues) if issues.is_empty() => Ok(config),
        (_, issues) => Err(issues),
    }
}

/// [`parse_config`] that also returns what it read with the bad fields left out, when that
/// reads, so an element can check the rest (a delivery window beside a bad sending speed)
/// and report everything in one go.
pub fn parse_config_leniently<T: serde::de::DeserializeOwned>(
    def: &ElementDef,
) -> (Option<T>, Vec<Issue>) {
    let mut value = Value::Object(def.config.clone());
    let mut issues = Vec::new();
    // Fields left out because they were reported: a "missing field" for one is not news.
    let mut dropped: Vec<(String, String)> = Vec::new();
    for _ in 0..MAX_CONFIG_ISSUES {
        let error = match serde_path_to_error::deserialize::<_, T>(value.clone()) {
            Ok(config) => return (Some(config), issues),
            Err(e) => e,
        };
        let keys: Vec<String> = error
            .path()
            .iter()
            .map(|segment| match segment {
                serde_path_to_error::Segment::Map { key } => Some(key.clone()),
                _ => None,
            })
            .collect::<Option<_>>()
            .unwrap_or_default();
        let at = config_path(&error.path().to_string());
        let message = error.into_inner().to_string();
        let field = |prefix: &str| {
            message
                .strip_prefix(prefix)
                .and_then(|rest| rest.split('`').next())
                .map(str::to_owned)
        };
        // A field missing because it was left out was reported already: leave out what
        // holds it instead. Anything else is reported.
        let already = field("missing field `").is_some_and(|m| dropped.contains(&(at.clone(), m)));
        if !already {
            issues.push(Issue::new(&at, message.clone()));
        }
        // Leave the field (or the object missing one) out and read on, so the problems
        // after it are found too. An unknown field's path ends with its own name.
        let (parent, key) = match (field("unknown field `"), keys.split_last()) {
            (Some(unknown), Some((last, _))) if *last != unknown => (keys.clone(), unknown),
            (_, Some((last, parent))) => (parent.to_vec(), last.clone()),
            (_, None) => return (None, issues),
        };
        let mut object = &mut value;
        for k in &parent {
            match object.get_mut(k) {
                Some(inner) => object = inner,
                None => return (None, issues),
            }
        }
        match object.as_object_mut().and_then(|o| o.remove(&key)) {
            Some(_) => dropped.push((config_path(&parent.join(".")), key)),
            None => return (None, issues),
        }
    }
    (None, issues)
}

/// Most problems one element's `config` reports at once.
const MAX_CONFIG_ISSUES: usize = 20;

/// `config.<path>` for a path in an element's configuration (`.` is the whole of it).
fn config_path(path: &str) -> String {
    if path == "." || path.is_empty() {
        "config".to_owned()
    } else {
        format!("config.{path}")
    }
}
