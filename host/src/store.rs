//! Durable state: the storage API of `flowhost-store` (async traits, claims with leases,
//! the conformance suite) and the embedded backend, [`SqliteStore`].
//!
//! The engine writes through [`StateStore`] after every step, so a participant can be
//! resumed by another engine instance on the same database.

pub use flowhost_store::*;
pub use flowhost_store_sqlite::SqliteStore;
pub use flowhost_types::participant::new_participant_id;
