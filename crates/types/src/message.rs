//! Messages between people and senders: channels, inbound messages, the entries of the
//! message log, and where the engine delivered an inbound message.

use crate::clock::Millis;
use crate::person::{Contact, ContactKind};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A messaging channel.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Channel {
    /// SMS.
    Sms,
    /// WhatsApp.
    Whatsapp,
    /// Viber.
    Viber,
    /// RCS.
    Rcs,
    /// Telegram.
    Telegram,
    /// Facebook Messenger.
    Messenger,
    /// Email.
    Email,
}

impl Channel {
    /// Its name.
    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Sms => "sms",
            Channel::Whatsapp => "whatsapp",
            Channel::Viber => "viber",
            Channel::Rcs => "rcs",
            Channel::Telegram => "telegram",
            Channel::Messenger => "messenger",
            Channel::Email => "email",
        }
    }

    /// The kind of contact that addresses a person on it.
    pub fn contact_kind(self) -> ContactKind {
        match self {
            Channel::Email => ContactKind::Email,
            Channel::Telegram | Channel::Messenger => ContactKind::ExternalId,
            _ => ContactKind::Phone,
        }
    }

    /// Whether chatbots can run on it (text conversations, not email).
    pub fn is_text(self) -> bool {
        self != Channel::Email
    }

    /// A person's contact on this channel, parsed from `text`.
    pub fn contact(self, text: &str) -> Result<Contact, String> {
        Contact::parse(self.contact_kind(), text)
    }
}

impl std::fmt::Display for Channel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(self.as_str())
    }
}

/// Normalises a sender for matching: phone-like senders to digits, others trimmed and in
/// lowercase, so `+44 7491 163443` and `447491163443` are the same sender.
pub fn sender_key(sender: &str) -> String {
    match Contact::phone(sender) {
        Ok(c) => c.value,
        Err(_) => sender.trim().to_lowercase(),
    }
}

/// Whether the first word of `text` is `keyword`, in any case, ignoring punctuation around it
/// (`"Yes!"` starts with the keyword `yes`).
pub fn starts_with_keyword(text: &str, keyword: &str) -> bool {
    text.split_whitespace().next().is_some_and(|w| {
        w.trim_matches(|c: char| !c.is_alphanumeric())
            .to_lowercase()
            == keyword.trim().to_lowercase()
    })
}

/// A message a person sent to one of our senders.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InboundMessage {
    /// Channel.
    pub channel: Channel,
    /// The person's contact (phone number, email, external id).
    pub from: String,
    /// Our sender it was sent to.
    pub to: String,
    /// Text.
    pub text: String,
    /// When it was received; the engine's clock when absent.
    #[serde(default)]
    pub received_at: Option<Millis>,
}

impl InboundMessage {
    /// The person's contact, parsed for the channel.
    pub fn contact(&self) -> Result<Contact, String> {
        self.channel.contact(&self.from)
    }

    /// The wait key of participants waiting for a message from `contact` to `sender` on
    /// `channel`.
    pub fn wait_key(channel: Channel, contact: &Contact, sender: &str) -> String {
        format!("inbound:{channel}:{}:{}", contact.key(), sender_key(sender))
    }

    /// The `LastInboundMessage` variable: text, channel, from, to and receivedAt.
    pub fn as_variable(&self) -> Value {
        serde_json::json!({
            "text": self.text,
            "channel": self.channel,
            "from": self.from,
            "to": self.to,
            "receivedAt": self.received_at,
        })
    }
}

/// The variable `evaluate-inbound` stores the message in.
pub const LAST_INBOUND_MESSAGE: &str = "LastInboundMessage";

/// Who wrote a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Author {
    /// The person.
    Person,
    /// A chatbot.
    Bot,
    /// A live agent.
    Agent,
}

/// A message in the log.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LoggedMessage {
    /// Id.
    pub id: String,
    /// Channel.
    pub channel: Channel,
    /// The person's contact key ([`Contact::key`]).
    pub contact: String,
    /// Our sender.
    pub sender: String,
    /// Who wrote it.
    pub author: Author,
    /// The agent or chatbot that wrote it, if one did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by: Option<String>,
    /// Text.
    pub text: String,
    /// When.
    pub at: Millis,
    /// Sending it to the person through the channel's connector: what a bot or an agent
    /// wrote has it, what the person wrote does not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sending: Option<Sending>,
}

/// Where sending a bot's or an agent's message to the person stands.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Sending {
    /// Pending, sent or failed.
    pub state: SendState,
    /// Attempts made so far.
    pub attempts: u32,
    /// When the next attempt is due, while pending after a failed one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_attempt_at: Option<Millis>,
    /// Why the last attempt failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// When the connector accepted it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sent_at: Option<Millis>,
    /// The id the channel provider gave it, when it gave one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider_id: Option<String>,
}

impl Sending {
    /// Not attempted yet.
    pub fn pending() -> Self {
        Sending {
            state: SendState::Pending,
            attempts: 0,
            next_attempt_at: None,
            last_error: None,
            sent_at: None,
            provider_id: None,
        }
    }
}

/// The state of a message's sending.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SendState {
    /// Waiting for its first or next attempt.
    Pending,
    /// The channel's connector accepted it.
    Sent,
    /// Given up: the connector refused it, or every attempt failed.
    Failed,
}

impl SendState {
    /// Its name.
    pub fn as_str(self) -> &'static str {
        match self {
            SendState::Pending => "pending",
            SendState::Sent => "sent",
            SendState::Failed => "failed",
        }
    }
}

/// A fresh message id.
pub fn new_message_id() -> String {
    format!("m-{}", uuid::Uuid::new_v4().simple())
}

/// Where the engine delivered an inbound message.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "to", rename_all = "kebab-case")]
pub enum Delivery {
    /// Added to an open agent conversation.
    Conversation {
        /// Conversation id.
        id: String,
    },
    /// Sent to a running chatbot session.
    Chatbot {
        /// Session id.
        session: String,
    },
    /// Woke participants waiting in `evaluate-inbound` elements.
    Waiting {
        /// Their ids.
        participants: Vec<String>,
    },
    /// Started flows at their inbound-message entry points.
    Started {
        /// The new participants' ids.
        participants: Vec<String>,
    },
    /// Nothing took it (it is in the message log).
    Unrouted,
}
