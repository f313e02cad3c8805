//! flowhost: a customer-messaging flow engine whose custom elements are sandboxed WebAssembly
//! components.
//!
//! This crate is the composition root ([`runtime`]: the operator's `flowhost.toml` in
//! [`config`] to a store, a plugin host, the elements, the engine and inbound routing) and the
//! one place that re-exports the workspace's crates under short paths:
//!
//! - [`flow`] (`flowhost-flow`): flow definitions and their validation; [`template`]:
//!   `{{placeholder}}` syntax shared by elements; [`jsonpath`]: RFC 9535 paths.
//! - [`engine`] (`flowhost-engine`): participants advancing element by element, the element
//!   traits, the scheduler; their state in a [`store`] (`flowhost-store`, and the SQLite
//!   backend).
//! - [`elements`] (`flowhost-elements`): built-in elements and the plugin adapter.
//! - [`messaging`] (`flowhost-messaging`): inbound messages and their routing; [`person`]:
//!   People profiles; [`conversations`]: live-agent conversations; [`answers`]: chatbots and
//!   their sessions.
//! - [`plugin`] (`flowhost-plugin-host`): the sandboxed host for custom elements.
//! - [`outbound`] (`flowhost-outbound`): the single policy point for outbound HTTP;
//!   [`secrets`]: operator secrets and their redaction.
//! - [`testing`]: a recording HTTP server and a harness that runs one plugin without a flow;
//!   [`demo`]: emulators of the APIs the sample plugins call; [`scaffold`]: new plugin crates.
#![deny(missing_docs)]

pub use flowhost_messaging::answers;
pub mod clock;
pub mod config;
pub use flowhost_messaging::conversations;
pub use flowhost_messaging::delivery;
pub mod demo;
pub use flowhost_elements as elements;
pub use flowhost_engine as engine;
pub use flowhost_flow as flow;
pub use flowhost_flow::{jsonpath, template};
pub use flowhost_messaging as messaging;
pub use flowhost_messaging::person;
pub use flowhost_outbound as outbound;
pub use flowhost_outbound::secrets;
pub use flowhost_plugin_host as plugin;
pub mod reload;
pub mod retention;
pub mod runtime;
pub mod scaffold;
pub mod store;
pub mod testing;
