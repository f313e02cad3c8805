//! Elements: the steps of a flow. Built-ins (one file each) and plugins implement the same
//! [`Element`] trait, so the engine never asks which kind it runs.

mod add_to_flow;
mod branch;
pub mod call_api;
mod evaluate_inbound;
mod exit;
mod plugin;
mod set_variable;
mod start_chatbot;
mod start_conversation;
pub(crate) mod wait;

pub use plugin::PluginElementType;

use crate::clock::Millis;
use crate::flow::{ElementDef, Issue};
use crate::person::Person;
use crate::plugin::capabilities::LogLine;
use crate::plugin::{PluginHost, PluginSet};
use crate::store::{ElementState, StateStore};
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
}

/// What elements may ask about the deployed flows.
pub trait FlowDirectory: Send + Sync {
    /// The element where Add to Flow enters `flow_id` (its Existing Flow entry point), or
    /// why it cannot enter it.
    fn existing_flow_start(&self, flow_id: &str) -> Result<String, String>;
}

/// A directory with no flows, for running one element on its own.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoFlows;

impl FlowDirectory for NoFlows {
    fn existing_flow_start(&self, flow_id: &str) -> Result<String, String> {
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
    /// Wait for an event on `key` (woken through [`crate::store::ParticipantStore::wake`]) or
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
    /// Work that finishes after the participant has moved on; its report is appended to the
    /// journey.
    pub background: Option<BoxFuture<'static, BackgroundReport>>,
    /// Participants to enter into other flows (Add to Flow), written with this step and run
    /// after it.
    pub enter: Vec<crate::store::ParticipantState>,
    /// Participants this step woke (through the store) that the engine should run next.
    pub wake: Vec<String>,
}

impl std::fmt::Debug for StepResult {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StepResult")
            .field("outcome", &self.outcome)
            .field("set", &self.set)
            .field("logs", &self.logs)
            .field("data", &self.data)
            .field("state", &self.state)
            .field("background", &self.background.is_some())
            .field("enter", &self.enter)
            .field("wake", &self.wake)
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
}

/// Names of the built-in element types.
pub const BUILTINS: &[&str] = &[
    "exit",
    "branch",
    "set-variable",
    "wait",
    "call-api",
    "add-to-flow",
    "evaluate-inbound",
    "start-conversation",
    "start-chatbot",
];

/// Every element type the engine knows: the built-ins and the loaded plugins.
///
/// Built-ins get the services they use when they are built, not with each step: Call API
/// its send-slot queues and the outbound client, Add to Flow the people, Start a
/// Conversation the conversations and chatbot sessions, Start chatbot the chatbot registry
/// and its sessions. Each element type takes the narrowest part of the store it needs.
#[derive(Clone)]
pub struct ElementTypes {
    builtins: BTreeMap<&'static str, Arc<dyn ElementType>>,
    plugins: Option<(PluginHost, PluginSet)>,
    store: Arc<dyn StateStore>,
    http: crate::outbound::HttpClient,
}

impl ElementTypes {
    /// The built-ins, keeping their shared state in `store`, with the default outbound
    /// client and `[call_api]` settings.
    pub fn builtins(store: Arc<dyn StateStore>) -> Self {
        let http = crate::outbound::HttpClient::with_defaults();
        let mut builtins: BTreeMap<&'static str, Arc<dyn ElementType>> = BTreeMap::new();
        builtins.insert("exit", Arc::new(exit::ExitType));
        builtins.insert("branch", Arc::new(branch::BranchType));
        builtins.insert("set-variable", Arc::new(set_variable::SetVariableType));
        builtins.insert("wait", Arc::new(wait::WaitType));
        builtins.insert(
            "add-to-flow",
            Arc::new(add_to_flow::AddToFlowType::new(store.clone())),
        );
        builtins.insert(
            "evaluate-inbound",
            Arc::new(evaluate_inbound::EvaluateInboundType),
        );
        builtins.insert(
            "start-conversation",
            Arc::new(start_conversation::StartConversationType::new(
                store.clone(),
            )),
        );
        let types = ElementTypes {
            builtins,
            plugins: None,
            store,
            http: http.clone(),
        };
        types
            .with_call_api(http, &crate::config::CallApiConfig::default())
            .expect("default Call API settings are valid")
    }

    /// Adds the plugins of `plugins`, run by `host`. A flow compiles against the snapshot
    /// current at that moment.
    pub fn with_plugins(mut self, host: PluginHost, plugins: PluginSet) -> Self {
        self.plugins = Some((host, plugins));
        self
    }

    /// Uses the operator's `[call_api]` settings and `client` for Call API elements, and
    /// `client` for chatbot webhooks.
    pub fn with_call_api(
        mut self,
        client: crate::outbound::HttpClient,
        config: &crate::config::CallApiConfig,
    ) -> Result<Self, call_api::CallApiConfigError> {
        self.builtins.insert(
            "start-chatbot",
            Arc::new(start_chatbot::StartChatbotType::new(
                client.clone(),
                self.store.clone(),
            )),
        );
        self.http = client.clone();
        self.builtins.insert(
            "call-api",
            Arc::new(call_api::CallApiType::new(
                client,
                self.store.clone(),
                config,
            )?),
        );
        Ok(self)
    }

    /// The outbound client built-ins use (Call API, chatbot webhooks).
    pub fn http(&self) -> &crate::outbound::HttpClient {
        &self.http
    }

    /// Registers another built-in type (used by later element modules and embedders).
    pub fn register(&mut self, name: &'static str, ty: Arc<dyn ElementType>) {
        self.builtins.insert(name, ty);
    }

    /// The type for a `type` string, with a canonical name for journeys.
    pub fn resolve(&self, kind: &str) -> Result<(String, Arc<dyn ElementType>), String> {
        if let Some(spec) = kind.strip_prefix("plugin:") {
            let (id, version) = match spec.split_once('@') {
                Some((id, v)) => {
                    let v = semver::Version::parse(v).map_err(|e| {
                        format!(
                            "version {v:?} in {kind:?} is not semver ({e}); write plugin:{id}@1.2.3"
                        )
                    })?;
                    (id, Some(v))
                }
                None => (spec, None),
            };
            let Some((host, plugins)) = &self.plugins else {
                return Err(format!(
                    "plugin {id:?} is not loaded (no plugins folder is in use)"
                ));
            };
            let registry = plugins.snapshot();
            let Some(plugin) = registry.get(id, version.as_ref()) else {
                let versions = registry.versions(id);
                return Err(if versions.is_empty() {
                    format!(
                        "plugin {id:?} is not loaded; put its .wasm file in the plugins folder (`flowhost plugins list` shows what is loaded)"
                    )
                } else {
                    format!(
                        "plugin {id:?} has no version {}; loaded versions: {}",
                        version.map(|v| v.to_string()).unwrap_or_default(),
                        versions.join(", ")
                    )
                });
            };
            return Ok((
                format!("plugin:{}", plugin.key()),
                Arc::new(PluginElementType::new(host.clone(), plugin.clone())),
            ));
        }
        self.builtins
            .get(kind)
            .map(|t| (kind.to_owned(), t.clone()))
            .ok_or_else(|| {
                format!(
                    "unknown element type {kind:?}; built-ins are {}, plugins are written plugin:<id>",
                    self.builtins.keys().copied().collect::<Vec<_>>().join(", ")
                )
            })
    }
}

/// Checks that need the whole flow and the account, run when a flow is activated (Start
/// chatbot's placement, sender and chatbot).
pub(crate) async fn activation_issues(
    def: &crate::flow::FlowDef,
    store: &dyn StateStore,
) -> Vec<Issue> {
    start_chatbot::activation_issues(def, store).await
}

/// Parses an element's `config` into `T`, turning serde's complaint into an issue at the
/// right path.
pub(crate) fn parse_config<T: serde::de::DeserializeOwned>(
    def: &ElementDef,
) -> Result<T, Vec<Issue>> {
    let value = Value::Object(def.config.clone());
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let path = if path == "." {
            "config".to_owned()
        } else {
            format!("config.{path}")
        };
        vec![Issue::new(path, e.into_inner().to_string())]
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_published_schema_names_every_built_in() {
        let schema: serde_json::Value =
            serde_json::from_str(include_str!("../../docs/flow.schema.json")).unwrap();
        let names: Vec<&str> = schema["$defs"]["element"]["properties"]["type"]["anyOf"][0]["enum"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        assert_eq!(names, super::BUILTINS);
    }
}
