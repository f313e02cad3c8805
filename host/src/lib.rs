//! flowhost: a customer-messaging flow engine whose custom elements are sandboxed WebAssembly
//! components.
//!
//! - [`flow`]: flow definitions (JSON) and their validation.
//! - [`engine`]: participants advancing element by element, state in a [`store`].
//! - [`elements`]: built-in elements; [`plugin`]: the host for custom elements.
//! - [`outbound`]: the single policy point for outbound HTTP.
//! - [`config`]: the operator's `flowhost.toml`.
#![deny(missing_docs)]

pub mod config;
pub mod outbound;
pub mod person;
pub mod plugin;
