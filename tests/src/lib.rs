//! Shared test support: the components built from source by `build.rs`, and a real HTTP server
//! on 127.0.0.1 that records what it received.

pub use flowhost::testing::{Answer, Received, Reply, TestServer, TlsIdentity};

/// Paths of the components built from `tests/plugins/*` and `plugins/*`.
pub mod components {
    include!(concat!(env!("OUT_DIR"), "/components.rs"));
}
