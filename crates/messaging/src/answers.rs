//! Chatbots (Answers): the registry of chatbots on channels and senders, the account's
//! "Answers enabled" switch, chatbot sessions, and the back ends that answer.
//!
//! A `start-chatbot` element opens a session with whatever active chatbot is on the sender
//! at that moment; the participant waits (durably) until the session ends, and leaves by the
//! exit of the end reason. Back ends implement [`ChatbotBackend`]: [`ScriptedBot`] (keyword
//! replies, built in) and [`WebhookBot`] (an external bot over HTTP, through the outbound
//! policy; it may also report later through [`Inbound::chatbot_event`](crate::inbound::Inbound::chatbot_event)).

mod backend;
mod sessions;

use crate::person::Contact;
use crate::{Author, Channel, LoggedMessage, Sending, log_message, new_message_id, sender_key};
use flowhost_flow::parse_duration;
use flowhost_outbound::{BufferedRequest, HostPattern, HttpClient, OutboundPolicy};
use flowhost_store::{Record, StateStore, StoreError};
use flowhost_types::BoxFuture;
use flowhost_types::clock::Millis;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::Duration;

const BOT_KIND: &str = "chatbot";
pub(crate) const SESSION_KIND: &str = "chatbot-session";
const SETTING_KIND: &str = "setting";
const ANSWERS_SETTING: &str = "answers-enabled";

/// Why a chatbot session ended; each is an exit of `start-chatbot` when selected.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum EndReason {
    /// The session could not start (no active chatbot on the sender, Answers off, the bot
    /// failed to answer the first message).
    SessionNotStarted,
    /// A new session started elsewhere (an agent conversation, another chatbot session).
    EndedExternally,
    /// The person did not answer within the chatbot's session timeout.
    Expired,
    /// The chatbot closed it (its Close session step).
    Closed,
    /// The chatbot was stopped while the session ran.
    Deactivated,
    /// The chatbot reached its "to agent" step; agent transfer happens in the flow.
    AgentRedirectFailed,
    /// The person ended it.
    EndedByUser,
}

impl EndReason {
    /// Every reason, in the order the exits are listed.
    pub const ALL: [EndReason; 7] = [
        EndReason::SessionNotStarted,
        EndReason::EndedExternally,
        EndReason::Expired,
        EndReason::Closed,
        EndReason::Deactivated,
        EndReason::AgentRedirectFailed,
        EndReason::EndedByUser,
    ];

    /// Its name, which is also the exit id.
    pub fn as_str(self) -> &'static str {
        match self {
            EndReason::SessionNotStarted => "session-not-started",
            EndReason::EndedExternally => "ended-externally",
            EndReason::Expired => "expired",
            EndReason::Closed => "closed",
            EndReason::Deactivated => "deactivated",
            EndReason::AgentRedirectFailed => "agent-redirect-failed",
            EndReason::EndedByUser => "ended-by-user",
        }
    }

    /// The reason named `s`.
    pub fn parse(s: &str) -> Option<EndReason> {
        Self::ALL.into_iter().find(|r| r.as_str() == s)
    }

    /// The reason a webhook bot gives for ending a session: `closed`, `to-agent` (or its
    /// exit's name, `agent-redirect-failed`) or `ended-by-user`; `None` for anything else,
    /// since a bot cannot end a session otherwise.
    pub fn from_bot(s: &str) -> Option<EndReason> {
        match s {
            "closed" => Some(EndReason::Closed),
            "to-agent" | "agent-redirect-failed" => Some(EndReason::AgentRedirectFailed),
            "ended-by-user" => Some(EndReason::EndedByUser),
            _ => None,
        }
    }
}

/// Whether a chatbot takes sessions.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BotStatus {
    /// Takes sessions.
    Active,
    /// Deactivated.
    Stopped,
}

/// A chatbot on one channel and sender.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Chatbot {
    /// Id.
    pub id: String,
    /// Display name.
    #[serde(default)]
    pub name: String,
    /// Channel (a text channel).
    pub channel: Channel,
    /// Sender it answers on.
    pub sender: String,
    /// Status.
    #[serde(default = "active")]
    pub status: BotStatus,
    /// How long a session waits for the person before it expires (`15m`).
    #[serde(default = "default_timeout")]
    pub session_timeout: String,
    /// What answers.
    pub backend: BackendConfig,
}

fn active() -> BotStatus {
    BotStatus::Active
}

fn default_timeout() -> String {
    "15m".into()
}

/// The back end of a chatbot.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case", deny_unknown_fields)]
pub enum BackendConfig {
    /// The built-in [`ScriptedBot`].
    Scripted(Script),
    /// An external bot: [`WebhookBot`].
    Webhook {
        /// Where session events are POSTed.
        url: String,
        /// Milliseconds to wait for its answer.
        #[serde(default = "webhook_timeout")]
        timeout_ms: u64,
    },
}

fn webhook_timeout() -> u64 {
    5_000
}

/// A scripted chatbot: replies by keyword, and words that close the session, ask for an
/// agent, or end it. Keywords match whole words, in any case.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Script {
    /// Sent when the session starts, before the answer to the first message.
    pub greeting: Option<String>,
    /// Keyword → reply.
    pub replies: BTreeMap<String, String>,
    /// Sent when nothing matches.
    pub fallback: Option<String>,
    /// Words that make the bot close the session (its Close session step), with the reply
    /// sent before closing.
    pub close: BTreeMap<String, String>,
    /// Words that reach the bot's "to agent" step.
    pub to_agent: Vec<String>,
    /// Words with which the person ends the session.
    pub end: Vec<String>,
}

/// One chatbot session.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Session {
    /// Id.
    pub id: String,
    /// The chatbot.
    pub bot_id: String,
    /// The participant waiting for it.
    pub participant_id: String,
    /// Channel.
    pub channel: Channel,
    /// The person's contact, as written.
    pub contact: String,
    /// Sender.
    pub sender: String,
    /// Why it ended; `None` while it runs.
    pub ended: Option<EndReason>,
    /// Started at.
    pub started_at: Millis,
    /// Last message either way.
    pub last_activity: Millis,
    /// Session timeout.
    pub timeout_ms: Millis,
}

impl Session {
    /// The wait key of the participant in the session.
    pub fn wait_key(&self) -> String {
        format!("chatbot:{}", self.id)
    }

    /// The person's contact, parsed for the channel (it parsed when the session started).
    fn parsed_contact(&self) -> Result<Contact, StoreError> {
        self.channel
            .contact(&self.contact)
            .map_err(|e| StoreError::Corrupt {
                what: format!("chatbot session {:?}", self.id),
                reason: e,
            })
    }
}

pub use backend::{BotAnswer, BotTurn, ChatbotBackend, ScriptedBot, WebhookBot};

/// Something a bot reports outside a turn ([`Inbound::chatbot_event`](crate::inbound::Inbound::chatbot_event)).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum BotEvent {
    /// A message to the person.
    Reply {
        /// Text.
        text: String,
    },
    /// The session ends.
    End {
        /// Why: closed, agent-redirect-failed or ended-by-user.
        reason: EndReason,
    },
}

/// Why a chatbot request was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AnswersError {
    /// Bad input.
    #[error("{0}")]
    Invalid(String),
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The chatbot registry and sessions. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Answers {
    client: HttpClient,
}

fn bot_key(channel: Channel, sender: &str) -> String {
    format!("{channel}:{}", sender_key(sender))
}

fn session_key(channel: Channel, contact: &Contact, sender: &str) -> String {
    format!("{channel}:{}:{}", contact.key(), sender_key(sender))
}

impl Answers {
    /// Sessions whose webhook bots are reached through `client`.
    pub fn new(client: HttpClient) -> Self {
        Answers { client }
    }

    /// Whether Answers is enabled for the account (off until enabled).
    pub async fn enabled(store: &dyn StateStore) -> Result<bool, StoreError> {
        Ok(store
            .record(SETTING_KIND, ANSWERS_SETTING)
            .await?
            .is_some_and(|r| r.body == serde_json::json!(true)))
    }

    /// Turns Answers on or off for the account.
    pub async fn set_enabled(store: &dyn StateStore, on: bool) -> Result<(), StoreError> {
        store
            .put_record(&Record {
                kind: SETTING_KIND.into(),
                id: ANSWERS_SETTING.into(),
                key: String::new(),
                status: String::new(),
                body: serde_json::json!(on),
            })
            .await
    }

    /// Adds or replaces a chatbot after checking it.
    pub async fn save_chatbot(store: &dyn StateStore, bot: &Chatbot) -> Result<(), AnswersError> {
        if bot.id.trim().is_empty() {
            return Err(AnswersError::Invalid("chatbot id is empty".into()));
        }
        if !bot.channel.is_text() {
            return Err(AnswersError::Invalid(format!(
                "chatbot {:?}: channel {} is not a text channel; use sms, whatsapp, viber, rcs, telegram or messenger",
                bot.id, bot.channel
            )));
        }
        if bot.sender.trim().is_empty() {
            return Err(AnswersError::Invalid(format!(
                "chatbot {:?}: sender is empty",
                bot.id
            )));
        }
        if parse_duration(&bot.session_timeout).is_none_or(|ms| ms <= 0) {
            return Err(AnswersError::Invalid(format!(
                "chatbot {:?}: session_timeout {:?} is not a duration such as \"15m\"",
                bot.id, bot.session_timeout
            )));
        }
        if let BackendConfig::Webhook { url, .. } = &bot.backend {
            let uri: http::Uri = url
                .parse()
                .map_err(|e| AnswersError::Invalid(format!("chatbot {:?}: url: {e}", bot.id)))?;
            if !matches!(uri.scheme_str(), Some("http" | "https")) || uri.host().is_none() {
                return Err(AnswersError::Invalid(format!(
                    "chatbot {:?}: url {url:?} must be an http or https URL",
                    bot.id
                )));
            }
        }
        store
            .put_record(&Record {
                kind: BOT_KIND.into(),
                id: bot.id.clone(),
                key: bot_key(bot.channel, &bot.sender),
                status: match bot.status {
                    BotStatus::Active => "active",
                    BotStatus::Stopped => "stopped",
                }
                .into(),
                body: serde_json::to_value(bot).expect("chatbots serialize"),
            })
            .await?;
        Ok(())
    }

    /// Every chatbot.
    pub async fn chatbots(store: &dyn StateStore) -> Result<Vec<Chatbot>, StoreError> {
        store
            .records(BOT_KIND, None, None, None)
            .await?
            .iter()
            .map(Record::parse)
            .collect()
    }

    /// A chatbot by id.
    pub async fn chatbot(store: &dyn StateStore, id: &str) -> Result<Option<Chatbot>, StoreError> {
        store
            .record(BOT_KIND, id)
            .await?
            .map(|r| r.parse())
            .transpose()
    }

    /// The active chatbot on a channel and sender (the newest, if several).
    pub async fn active_chatbot(
        store: &dyn StateStore,
        channel: Channel,
        sender: &str,
    ) -> Result<Option<Chatbot>, StoreError> {
        store
            .records(
                BOT_KIND,
                Some(&bot_key(channel, sender)),
                Some("active"),
                Some(1),
            )
            .await?
            .pop()
            .map(|r| r.parse())
            .transpose()
    }

    /// A session by id.
    pub async fn session(store: &dyn StateStore, id: &str) -> Result<Option<Session>, StoreError> {
        store
            .record(SESSION_KIND, id)
            .await?
            .map(|r| r.parse())
            .transpose()
    }

    /// The running session of a contact on a channel and sender.
    pub async fn running_session(
        store: &dyn StateStore,
        channel: Channel,
        contact: &Contact,
        sender: &str,
    ) -> Result<Option<Session>, StoreError> {
        store
            .records(
                SESSION_KIND,
                Some(&session_key(channel, contact, sender)),
                Some("running"),
                Some(1),
            )
            .await?
            .pop()
            .map(|r| r.parse())
            .transpose()
    }

    /// Sessions of a chatbot that still run.
    pub async fn running_sessions_of(
        store: &dyn StateStore,
        bot_id: &str,
    ) -> Result<Vec<Session>, StoreError> {
        let mut out = Vec::new();
        for r in store
            .records(SESSION_KIND, None, Some("running"), None)
            .await?
        {
            let s: Session = r.parse()?;
            if s.bot_id == bot_id {
                out.push(s);
            }
        }
        Ok(out)
    }

    async fn save_session(store: &dyn StateStore, s: &Session) -> Result<(), StoreError> {
        store.put_record(&Self::session_record(s)?).await
    }

    /// A session as the store keeps it.
    fn session_record(s: &Session) -> Result<Record, StoreError> {
        let contact = s.parsed_contact()?;
        Ok(Record {
            kind: SESSION_KIND.into(),
            id: s.id.clone(),
            key: session_key(s.channel, &contact, &s.sender),
            status: if s.ended.is_some() {
                "ended"
            } else {
                "running"
            }
            .into(),
            body: serde_json::to_value(s).expect("sessions serialize"),
        })
    }

    /// Ends a running session and wakes the participant waiting in it; returns the ids
    /// woken. Ending an ended session does nothing.
    pub async fn end_session(
        store: &dyn StateStore,
        session_id: &str,
        reason: EndReason,
        now: Millis,
    ) -> Result<Vec<String>, StoreError> {
        let Some(mut s) = Self::session(store, session_id).await? else {
            return Ok(Vec::new());
        };
        if s.ended.is_some() {
            return Ok(Vec::new());
        }
        s.ended = Some(reason);
        s.last_activity = now;
        // One write: a crash cannot leave the session ended and its participant waiting.
        store
            .wake_saving(
                &s.wait_key(),
                &serde_json::json!({"end": reason}),
                now,
                &Self::session_record(&s)?,
            )
            .await
    }

    /// The back end of a chatbot.
    pub fn backend(&self, bot: &Chatbot) -> Box<dyn ChatbotBackend> {
        match &bot.backend {
            BackendConfig::Scripted(script) => Box::new(ScriptedBot(script.clone())),
            BackendConfig::Webhook { url, timeout_ms } => {
                Box::new(WebhookBot::new(url, *timeout_ms, self.client.clone()))
            }
        }
    }
}
