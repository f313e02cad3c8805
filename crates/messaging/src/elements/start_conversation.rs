//! `start-conversation`: hands the participant to live agents by opening a conversation
//! with a tag, the channel, and their recent messages.
//!
//! ```json
//! {"tag": "data-verification", "create_tag": true, "recent_messages": 10}
//! ```
//!
//! - `tag`: an existing tag; with `create_tag: true` it is created on the spot if missing.
//! - `channel` and `sender`: where the conversation happens; both default to those of the
//!   `LastInboundMessage` variable (set by `evaluate-inbound`), and the contact is the one
//!   that message came from, else the person's contact for the channel.
//! - `recent_messages` (default 10): how many earlier messages with the contact the
//!   conversation starts with.
//!
//! A chatbot session the contact has on that channel and sender ends ("ended externally").
//! Exits: `started` (with the conversation id in the journey), `failed` (unknown tag, no
//! channel or contact, a conversation already open for the contact).

use super::evaluate_inbound::contact_of;
use crate::answers::{Answers, EndReason};
use crate::conversations::{Conversation, ConversationStatus, Conversations};
use crate::{Channel, InboundMessage, LAST_INBOUND_MESSAGE, recent_messages};
use flowhost_engine::element::{
    BoxFuture, Element, ElementType, StepInput, StepResult, parse_config,
};
use flowhost_flow::{ElementDef, Issue};
use flowhost_store::StateStore;
use serde::Deserialize;
use std::sync::Arc;

pub(crate) struct StartConversationType {
    /// Conversations, the message log and chatbot sessions.
    store: Arc<dyn StateStore>,
}

impl StartConversationType {
    pub(crate) fn new(store: Arc<dyn StateStore>) -> Self {
        StartConversationType { store }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    tag: String,
    #[serde(default)]
    create_tag: bool,
    #[serde(default)]
    channel: Option<Channel>,
    #[serde(default)]
    sender: Option<String>,
    #[serde(default = "ten")]
    recent_messages: usize,
}

fn ten() -> usize {
    10
}

struct StartConversation {
    config: Config,
    store: Arc<dyn StateStore>,
}

impl ElementType for StartConversationType {
    fn build(&self, def: &ElementDef) -> Result<Box<dyn Element>, Vec<Issue>> {
        let config: Config = parse_config(def)?;
        let mut issues = Vec::new();
        if config.tag.trim().is_empty() {
            issues.push(Issue::new(
                "config.tag",
                "is empty; name the tag agents see",
            ));
        }
        if config.channel.is_some() != config.sender.is_some() {
            issues.push(Issue::new(
                "config",
                "give both channel and sender, or neither (then they come from LastInboundMessage)",
            ));
        }
        if config.recent_messages > 100 {
            issues.push(Issue::new("config.recent_messages", "is more than 100"));
        }
        if !issues.is_empty() {
            return Err(issues);
        }
        Ok(Box::new(StartConversation {
            config,
            store: self.store.clone(),
        }))
    }
}

fn failed(reason: String) -> StepResult {
    let mut r = StepResult::exit("failed");
    r.data = Some(serde_json::json!({ "failed": reason }));
    r
}

impl Element for StartConversation {
    fn exits(&self) -> Vec<String> {
        vec!["started".into(), "failed".into()]
    }

    fn run<'a>(&'a self, input: StepInput<'a>) -> BoxFuture<'a, StepResult> {
        Box::pin(async move {
            let config = &self.config;
            let last: Option<InboundMessage> = input
                .variables
                .get(LAST_INBOUND_MESSAGE)
                .and_then(|v| serde_json::from_value(v.clone()).ok());
            let (channel, sender) = match (&config.channel, &config.sender, &last) {
                (Some(c), Some(s), _) => (*c, s.clone()),
                (_, _, Some(m)) => (m.channel, m.to.clone()),
                _ => {
                    return failed(
                        "no channel: set config.channel and config.sender, or put an evaluate-inbound element before this one".into(),
                    );
                }
            };
            let contact_text = last
                .as_ref()
                .filter(|m| m.channel == channel)
                .map(|m| m.from.clone())
                .or_else(|| contact_of(input.person, channel.contact_kind()));
            let Some(contact_text) = contact_text else {
                return failed(format!("the person has no contact for {channel}"));
            };
            let contact = match channel.contact(&contact_text) {
                Ok(c) => c,
                Err(e) => return failed(e),
            };
            let agents = Conversations::new(&*self.store);
            let tag = config.tag.trim();
            let outcome = async {
                if !agents.tag_exists(tag).await? {
                    if config.create_tag {
                        agents.create_tag(tag).await?;
                    } else {
                        return Ok(Err(format!(
                            "tag {tag:?} does not exist; create it (flowhost conversations tag {tag}) or set create_tag"
                        )));
                    }
                }
                if let Some(open) = agents.active_for(channel, &contact, &sender).await? {
                    return Ok(Err(format!(
                        "conversation {} is already {} for {contact} on {channel}",
                        open.id,
                        open.status.as_str()
                    )));
                }
                let messages = recent_messages(&*self.store, &contact, config.recent_messages)
                    .await?
                    .into_iter()
                    .filter(|m| m.channel == channel)
                    .collect();
                let conversation = Conversation {
                    id: format!("c-{}", uuid::Uuid::new_v4().simple()),
                    tag: tag.to_owned(),
                    status: ConversationStatus::Open,
                    agent: None,
                    channel,
                    contact: contact_text.clone(),
                    sender: sender.clone(),
                    person_id: Some(input.person.id.clone()).filter(|id| !id.is_empty()),
                    flow_id: input.flow_id.to_owned(),
                    participant_id: input.participant_id.to_owned(),
                    messages,
                    created_at: input.now,
                    closed_at: None,
                };
                agents.save(&conversation).await?;
                let mut woken = Vec::new();
                if let Some(session) =
                    Answers::running_session(&*self.store, channel, &contact, &sender).await?
                {
                    woken = Answers::end_session(
                        &*self.store,
                        &session.id,
                        EndReason::EndedExternally,
                        input.now,
                    )
                    .await?;
                }
                Ok::<_, crate::conversations::ConversationError>(Ok((conversation, woken)))
            }
            .await;
            match outcome {
                Ok(Ok((conversation, woken))) => {
                    let mut r = StepResult::exit("started");
                    r.data = Some(serde_json::json!({
                        "conversation": conversation.id,
                        "tag": conversation.tag,
                        "messages": conversation.messages.len(),
                    }));
                    r.wake = woken;
                    r
                }
                Ok(Err(reason)) => failed(reason),
                Err(e) => failed(e.to_string()),
            }
        })
    }
}
