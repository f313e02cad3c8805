//! flowhost: a customer-messaging flow engine whose custom elements are sandboxed WebAssembly
//! components.
//!
//! - [`flow`]: flow definitions (JSON) and their validation.
//! - [`engine`]: participants advancing element by element, their state in a [`store`].
//! - [`elements`]: built-in elements and plugin elements behind one trait.
//! - [`person`]: People profiles; [`messaging`]: channels and inbound messages;
//!   [`conversations`]: live-agent conversations; [`answers`]: chatbots and their sessions.
//! - [`plugin`]: the sandboxed host for custom elements.
//! - [`outbound`]: the single policy point for outbound HTTP.
//! - [`template`]: `{{placeholder}}` syntax shared by elements; [`jsonpath`]: RFC 9535 paths.
//! - [`config`]: the operator's `flowhost.toml`; [`runtime`]: the composition root that
//!   turns it into a store, a plugin host and an engine.
//! - [`testing`]: a recording HTTP server and a harness that runs one plugin without a flow.
#![deny(missing_docs)]

pub mod answers;
pub mod clock;
pub mod config;
pub mod conversations;
pub mod demo;
pub mod elements;
pub mod engine;
pub use flowhost_flow as flow;
pub use flowhost_flow::{jsonpath, template};
pub mod messaging;
pub use flowhost_outbound as outbound;
pub use flowhost_outbound::secrets;
pub mod person;
pub use flowhost_plugin_host as plugin;
pub mod runtime;
pub mod scaffold;
pub mod store;
pub mod testing;
