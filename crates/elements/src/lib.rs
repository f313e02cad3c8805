//! The built-in elements, one file each, and the plugin adapter: everything a flow's
//! `type` names except the messaging elements, which live with the services they use in
//! `flowhost-messaging`.
//!
//! [`builtins`] gives every built-in type the services it uses when it is built (Call API
//! its send-slot queues, the outbound client and the operator's `[call_api]` settings; Add to
//! Flow the people; the messaging elements their conversations and chatbots) and, with
//! [`Builtins::with_plugins`], resolves `plugin:<id>[@<version>]` in the plugins in use.
//! The traits every element implements are the engine's ([`Element`], [`ElementType`]); they
//! are re-exported here.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! use flowhost_elements::builtins;
//! use flowhost_engine::Engine;
//! use flowhost_store_sqlite::SqliteStore;
//! use flowhost_types::clock::SystemClock;
//! use std::sync::Arc;
//!
//! let store = Arc::new(SqliteStore::in_memory().unwrap());
//! let engine = Engine::new(store.clone(), Arc::new(SystemClock), builtins(store));
//! assert!(engine.flow_ids().is_empty());
//! # }
//! ```
#![deny(missing_docs)]

mod add_to_flow;
mod branch;
pub mod call_api;
mod exit;
mod plugin;
mod set_variable;
mod wait;

pub use flowhost_engine::element::{
    BackgroundReport, BoxFuture, ERROR_EXIT, Element, ElementType, ElementTypes, FlowDirectory,
    NoFlows, StepInput, StepOutcome, StepResult, TypeSource, parse_config, parse_config_leniently,
};
pub use plugin::PluginElementType;

use flowhost_outbound::HttpClient;
use flowhost_plugin_host::{PluginHost, PluginSet};
use flowhost_store::StateStore;
use std::sync::Arc;

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

/// The built-in element types with their services, and the plugins, on their way to be the
/// engine's [`ElementTypes`] (`Engine::new` takes it as it is).
#[derive(Clone)]
pub struct Builtins {
    types: ElementTypes,
    store: Arc<dyn StateStore>,
}

/// The built-ins, keeping their shared state in `store`, with the default outbound client
/// and `[call_api]` settings, and no plugins (`plugin:` types are refused with a message
/// saying so).
pub fn builtins(store: Arc<dyn StateStore>) -> Builtins {
    let mut types = ElementTypes::new();
    types.register("exit", Arc::new(exit::ExitType));
    types.register("branch", Arc::new(branch::BranchType));
    types.register("set-variable", Arc::new(set_variable::SetVariableType));
    types.register("wait", Arc::new(wait::WaitType));
    types.register(
        "add-to-flow",
        Arc::new(add_to_flow::AddToFlowType::new(store.clone())),
    );
    types.add_source("plugin:", Arc::new(plugin::PluginTypes::none()));
    Builtins { types, store }
        .with_call_api(
            HttpClient::with_defaults(),
            &call_api::CallApiConfig::default(),
        )
        .expect("default Call API settings are valid")
}

impl Builtins {
    /// Uses `client` for Call API elements (under the operator's `[call_api]` settings) and
    /// for chatbot webhooks.
    pub fn with_call_api(
        mut self,
        client: HttpClient,
        config: &call_api::CallApiConfig,
    ) -> Result<Self, call_api::CallApiConfigError> {
        self.types.register(
            "call-api",
            Arc::new(call_api::CallApiType::new(
                client.clone(),
                self.store.clone(),
                config,
            )?),
        );
        flowhost_messaging::elements::register(&mut self.types, self.store.clone(), client);
        Ok(self)
    }

    /// Resolves `plugin:<id>[@<version>]` in the snapshot of `plugins` current when a flow
    /// compiles, run by `host`.
    pub fn with_plugins(mut self, host: PluginHost, plugins: PluginSet) -> Self {
        self.types
            .add_source("plugin:", Arc::new(plugin::PluginTypes::new(host, plugins)));
        self
    }

    /// The element types.
    pub fn types(&self) -> &ElementTypes {
        &self.types
    }
}

impl From<Builtins> for ElementTypes {
    fn from(b: Builtins) -> Self {
        b.types
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_published_schema_names_every_built_in() {
        let schema: serde_json::Value =
            serde_json::from_str(include_str!("../../../docs/flow.schema.json")).unwrap();
        let names: Vec<&str> = schema["$defs"]["element"]["properties"]["type"]["anyOf"][0]["enum"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        assert_eq!(names, super::BUILTINS);
    }
}
