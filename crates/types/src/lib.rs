//! Values every part of flowhost shares, with no I/O: the [`clock`], [`person`] profiles and
//! contacts, [`message`]s, [`participant`] state and journey entries, journey [`log`] lines,
//! and [`ERROR_EXIT`].
//!
//! This crate sits at the bottom of the workspace: it depends on no other flowhost crate, so
//! the plugin host, the store, the engine and the elements can all name the same values.
#![deny(missing_docs)]

pub mod clock;
pub mod log;
pub mod message;
pub mod participant;
pub mod person;

use std::future::Future;
use std::pin::Pin;

/// The exit an element leaves by when it fails; every plugin declares it, and the engine
/// takes it (or stops the participant) for a failed step.
pub const ERROR_EXIT: &str = "error";

/// A boxed, sendable future.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;
