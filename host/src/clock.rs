//! Time, injectable: the engine asks a [`Clock`], so tests move time forward instead of
//! sleeping. The types live in `flowhost-types`.

pub use flowhost_types::clock::*;
