//! Conversations with live agents: the `start-conversation` element opens one with a tag,
//! and agents list them by tag, assign, reply and close them.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! use flowhost_messaging::conversations::{ConversationStatus, Conversations};
//! use flowhost_store_sqlite::SqliteStore;
//!
//! let store = SqliteStore::in_memory().unwrap();
//! let agents = Conversations::new(&store);
//! agents.create_tag("data-verification").await.unwrap();
//! let open = agents.list(Some("data-verification"), Some(ConversationStatus::Open));
//! assert!(open.await.unwrap().is_empty());
//! # }
//! ```

use crate::person::Contact;
use crate::{Author, Channel, LoggedMessage, Sending, log_message, new_message_id, sender_key};
use flowhost_store::{Record, StateStore, StoreError};
use flowhost_types::clock::Millis;
use serde::{Deserialize, Serialize};

pub(crate) const KIND: &str = "conversation";
const TAG_KIND: &str = "tag";

/// Where a conversation stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ConversationStatus {
    /// Waiting for an agent.
    Open,
    /// An agent has it.
    Assigned,
    /// Done.
    Closed,
}

impl ConversationStatus {
    /// Its name.
    pub fn as_str(self) -> &'static str {
        match self {
            ConversationStatus::Open => "open",
            ConversationStatus::Assigned => "assigned",
            ConversationStatus::Closed => "closed",
        }
    }
}

/// A conversation between a person and live agents.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Conversation {
    /// Id.
    pub id: String,
    /// What it is about.
    pub tag: String,
    /// Status.
    pub status: ConversationStatus,
    /// The agent it is assigned to.
    pub agent: Option<String>,
    /// Channel.
    pub channel: Channel,
    /// The person's contact on the channel, as written.
    pub contact: String,
    /// Our sender.
    pub sender: String,
    /// The person's id in People, if they have one.
    pub person_id: Option<String>,
    /// The flow and participant that started it.
    pub flow_id: String,
    /// Participant id.
    pub participant_id: String,
    /// Messages: the recent ones before it started, then everything since.
    pub messages: Vec<LoggedMessage>,
    /// Opened at.
    pub created_at: Millis,
    /// Closed at.
    pub closed_at: Option<Millis>,
}

/// The lookup key of a contact's conversations on a channel and sender.
pub(crate) fn conversation_key(channel: Channel, contact: &Contact, sender: &str) -> String {
    format!("{channel}:{}:{}", contact.key(), sender_key(sender))
}

/// Why an agent action was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConversationError {
    /// No such conversation.
    #[error("no conversation {0:?}; `flowhost conversations list` shows them")]
    NotFound(String),
    /// The action does not fit the conversation's status or input.
    #[error("{0}")]
    Refused(String),
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The agents' view of conversations, over the engine's store.
pub struct Conversations<'a> {
    store: &'a dyn StateStore,
}

impl<'a> Conversations<'a> {
    /// Conversations kept in `store`.
    pub fn new(store: &'a dyn StateStore) -> Self {
        Conversations { store }
    }

    /// Creates a tag (creating one that exists is fine).
    pub async fn create_tag(&self, name: &str) -> Result<(), ConversationError> {
        let name = name.trim();
        if name.is_empty() || name.len() > 100 {
            return Err(ConversationError::Refused(
                "a tag needs 1 to 100 characters".into(),
            ));
        }
        self.store
            .put_record(&Record {
                kind: TAG_KIND.into(),
                id: name.to_owned(),
                key: String::new(),
                status: String::new(),
                body: serde_json::json!({"name": name}),
            })
            .await?;
        Ok(())
    }

    /// Whether a tag exists.
    pub async fn tag_exists(&self, name: &str) -> Result<bool, ConversationError> {
        Ok(self.store.record(TAG_KIND, name.trim()).await?.is_some())
    }

    /// Every tag, oldest first.
    pub async fn tags(&self) -> Result<Vec<String>, ConversationError> {
        Ok(self
            .store
            .records(TAG_KIND, None, None, None)
            .await?
            .into_iter()
            .map(|r| r.id)
            .collect())
    }

    /// Conversations, oldest first, optionally of one tag and/or status.
    pub async fn list(
        &self,
        tag: Option<&str>,
        status: Option<ConversationStatus>,
    ) -> Result<Vec<Conversation>, ConversationError> {
        let all = self
            .store
            .records(KIND, None, status.map(ConversationStatus::as_str), None)
            .await?;
        let mut out = Vec::new();
        for r in all {
            let c: Conversation = r.parse()?;
            if tag.is_none_or(|t| c.tag == t) {
                out.push(c);
            }
        }
        Ok(out)
    }

    /// One conversation.
    pub async fn get(&self, id: &str) -> Result<Conversation, ConversationError> {
        self.store
            .record(KIND, id)
            .await?
            .ok_or_else(|| ConversationError::NotFound(id.to_owned()))?
            .parse()
            .map_err(Into::into)
    }

    /// The open or assigned conversation of a contact on a channel and sender.
    pub async fn active_for(
        &self,
        channel: Channel,
        contact: &Contact,
        sender: &str,
    ) -> Result<Option<Conversation>, ConversationError> {
        let key = conversation_key(channel, contact, sender);
        for status in [ConversationStatus::Open, ConversationStatus::Assigned] {
            if let Some(r) = self
                .store
                .records(KIND, Some(&key), Some(status.as_str()), Some(1))
                .await?
                .pop()
            {
                return Ok(Some(r.parse()?));
            }
        }
        Ok(None)
    }

    pub(crate) async fn save(&self, c: &Conversation) -> Result<(), ConversationError> {
        let contact = c
            .channel
            .contact(&c.contact)
            .map_err(ConversationError::Refused)?;
        self.store
            .put_record(&Record {
                kind: KIND.into(),
                id: c.id.clone(),
                key: conversation_key(c.channel, &contact, &c.sender),
                status: c.status.as_str().into(),
                body: serde_json::to_value(c).expect("conversations serialize"),
            })
            .await?;
        Ok(())
    }

    /// Assigns a conversation to an agent (reassigning is fine until it is closed).
    pub async fn assign(&self, id: &str, agent: &str) -> Result<Conversation, ConversationError> {
        let mut c = self.get(id).await?;
        if c.status == ConversationStatus::Closed {
            return Err(ConversationError::Refused(format!(
                "conversation {id:?} is closed"
            )));
        }
        if agent.trim().is_empty() {
            return Err(ConversationError::Refused("name the agent".into()));
        }
        c.status = ConversationStatus::Assigned;
        c.agent = Some(agent.trim().to_owned());
        self.save(&c).await?;
        Ok(c)
    }

    /// An agent's reply: added to the conversation and the message log. The conversation
    /// must be assigned (to anyone) and not closed.
    pub async fn reply(
        &self,
        id: &str,
        text: &str,
        now: Millis,
    ) -> Result<Conversation, ConversationError> {
        let mut c = self.get(id).await?;
        let agent = match (c.status, &c.agent) {
            (ConversationStatus::Assigned, Some(agent)) => agent.clone(),
            (ConversationStatus::Closed, _) => {
                return Err(ConversationError::Refused(format!(
                    "conversation {id:?} is closed"
                )));
            }
            _ => {
                return Err(ConversationError::Refused(format!(
                    "conversation {id:?} is not assigned; assign it to an agent first"
                )));
            }
        };
        let contact = c
            .channel
            .contact(&c.contact)
            .map_err(ConversationError::Refused)?;
        let message = LoggedMessage {
            id: new_message_id(),
            channel: c.channel,
            contact: contact.key(),
            sender: c.sender.clone(),
            author: Author::Agent,
            by: Some(agent),
            text: text.to_owned(),
            at: now,
            sending: Some(Sending::pending()),
        };
        log_message(self.store, &message).await?;
        c.messages.push(message);
        self.save(&c).await?;
        Ok(c)
    }

    /// Closes a conversation.
    pub async fn close(&self, id: &str, now: Millis) -> Result<Conversation, ConversationError> {
        let mut c = self.get(id).await?;
        if c.status == ConversationStatus::Closed {
            return Err(ConversationError::Refused(format!(
                "conversation {id:?} is closed already"
            )));
        }
        c.status = ConversationStatus::Closed;
        c.closed_at = Some(now);
        self.save(&c).await?;
        Ok(c)
    }
}
