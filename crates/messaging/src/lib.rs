//! Messaging: the people who take part in flows ([`person`]), the message log, live-agent
//! [`conversations`], chatbots and their sessions ([`answers`]), the routing of inbound
//! messages ([`inbound`]), and the elements that use them ([`elements`]: Evaluate inbound
//! message, Start a Conversation, Start chatbot). It runs participants through the engine
//! it is given; the engine knows nothing of it.
//!
//! Inbound messages enter through [`Inbound::receive`](inbound::Inbound::receive) (and
//! `flowhost inbound`), which routes each one, in this order, to:
//! 1. the open agent conversation of that contact on that channel and sender;
//! 2. the running chatbot session of that contact on that channel and sender;
//! 3. participants waiting for it in an `evaluate-inbound` element;
//! 4. active flows with an `inbound-message` entry point on that channel and sender.
//!
//! The values (channels, messages, deliveries) live in `flowhost-types`; this crate keeps
//! the message log in the engine's store.
#![deny(missing_docs)]

pub mod answers;
pub mod conversations;
pub mod delivery;
pub mod elements;
pub mod inbound;
pub mod person;
pub mod retention;

pub use flowhost_types::message::*;
pub use inbound::Inbound;

use crate::person::Contact;
use flowhost_store::{Record, StateStore, StoreError};

pub(crate) const MESSAGE_KIND: &str = "message";

/// Appends a message to the log.
pub async fn log_message(
    store: &dyn StateStore,
    message: &LoggedMessage,
) -> Result<(), StoreError> {
    store
        .put_record(&Record {
            kind: MESSAGE_KIND.into(),
            id: message.id.clone(),
            key: message.contact.clone(),
            // What waits to be sent is found by its status.
            status: message
                .sending
                .as_ref()
                .map_or("", |s| s.state.as_str())
                .into(),
            body: serde_json::to_value(message).expect("messages serialize"),
        })
        .await
}

/// The newest `limit` messages with a contact, oldest first.
pub async fn recent_messages(
    store: &dyn StateStore,
    contact: &Contact,
    limit: usize,
) -> Result<Vec<LoggedMessage>, StoreError> {
    store
        .records(MESSAGE_KIND, Some(&contact.key()), None, Some(limit))
        .await?
        .iter()
        .map(Record::parse)
        .collect()
}
