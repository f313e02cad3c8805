//! Inbound messages and chatbot events: routing a person's message (see the [crate]
//! documentation for the order) and applying what a chatbot reports, then running the
//! participants that wakes or starts in the engine.

use crate::answers::{Answers, BotEvent, EndReason};
use crate::conversations::Conversations;
use crate::person::{Contact, People};
use crate::{
    Author, Delivery, InboundMessage, LAST_INBOUND_MESSAGE, LoggedMessage, log_message,
    new_message_id,
};
use flowhost_engine::{Engine, EngineError};
use flowhost_flow::{EntryKind, FlowStatus};
use flowhost_outbound::HttpClient;
use flowhost_store::ParticipantState;
use std::collections::BTreeMap;

/// Where inbound messages and chatbot events come in. Cheap to clone.
#[derive(Clone)]
pub struct Inbound {
    engine: Engine,
    answers: Answers,
}

impl Inbound {
    /// Routes into `engine`'s participants; chatbot webhooks are called through `client`.
    pub fn new(engine: Engine, client: HttpClient) -> Self {
        Inbound {
            engine,
            answers: Answers::new(client),
        }
    }

    /// The engine it routes into.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Takes in a message a person sent to one of our senders and routes it (see the
    /// [crate] documentation for the order): to an open agent conversation, a running
    /// chatbot session, participants waiting for it, or flows it starts. Every message is
    /// logged.
    pub async fn receive(&self, mut message: InboundMessage) -> Result<Delivery, EngineError> {
        let store = self.engine.store();
        let now = self.engine.now();
        let contact = message
            .contact()
            .map_err(|e| EngineError::Rejected(format!("inbound message: from: {e}")))?;
        if message.to.trim().is_empty() {
            return Err(EngineError::Rejected(
                "inbound message: to (our sender) is empty".into(),
            ));
        }
        message.received_at.get_or_insert(now);
        let agents = Conversations::new(store);
        if let Some(mut conversation) = agents
            .active_for(message.channel, &contact, &message.to)
            .await
            .map_err(|e| EngineError::Rejected(e.to_string()))?
        {
            let logged = self.log_inbound(&message, &contact).await?;
            conversation.messages.push(logged);
            agents
                .save(&conversation)
                .await
                .map_err(|e| EngineError::Rejected(e.to_string()))?;
            return Ok(Delivery::Conversation {
                id: conversation.id,
            });
        }
        let mut session =
            Answers::running_session(store, message.channel, &contact, &message.to).await?;
        if let Some(stale) = session.take_if(|s| s.last_activity + s.timeout_ms <= now) {
            // Past its timeout with nobody left to notice (its participant's flow was
            // canceled): it ends now, and the message goes on to the next in line.
            let woken = Answers::end_session(store, &stale.id, EndReason::Expired, now).await?;
            self.engine.follow_up(woken).await?;
        }
        if let Some(session) = session {
            let id = session.id.clone();
            let (woken, failure) = self
                .answers
                .message(store, session, &message.text, now)
                .await?;
            if let Some(failure) = failure {
                tracing::warn!(session = %id, %failure, "chatbot failed to answer; the session carries on");
            }
            self.engine.follow_up(woken).await?;
            return Ok(Delivery::Chatbot { session: id });
        }
        self.log_inbound(&message, &contact).await?;
        let key = InboundMessage::wait_key(message.channel, &contact, &message.to);
        let event = serde_json::to_value(&message).expect("messages serialize");
        let woken = store.wake(&key, &event, now).await?;
        if !woken.is_empty() {
            self.engine.follow_up(woken.clone()).await?;
            return Ok(Delivery::Waiting {
                participants: woken,
            });
        }
        let mut started = Vec::new();
        let sender = crate::sender_key(&message.to);
        for flow_id in self.engine.flow_ids() {
            let Ok(def) = self.engine.flow_def(&flow_id) else {
                continue;
            };
            if def.status != FlowStatus::Active {
                continue;
            }
            let takes = def.entry_points.iter().any(|e| {
                e.kind == EntryKind::InboundMessage
                    && e.channel == Some(message.channel)
                    && e.sender.as_deref().map(crate::sender_key) == Some(sender.clone())
                    && e.keyword
                        .as_deref()
                        .is_none_or(|k| crate::starts_with_keyword(&message.text, k))
            });
            if !takes {
                continue;
            }
            let (person, _) = People::new(store)
                .find_or_create(&contact)
                .await
                .map_err(|e| EngineError::Rejected(e.to_string()))?;
            let variables =
                BTreeMap::from([(LAST_INBOUND_MESSAGE.to_owned(), message.as_variable())]);
            let p = self
                .engine
                .start_at(&flow_id, EntryKind::InboundMessage, person, variables)
                .await?;
            started.push(p.id);
        }
        if started.is_empty() {
            Ok(Delivery::Unrouted)
        } else {
            Ok(Delivery::Started {
                participants: started,
            })
        }
    }

    async fn log_inbound(
        &self,
        message: &InboundMessage,
        contact: &Contact,
    ) -> Result<LoggedMessage, EngineError> {
        let logged = LoggedMessage {
            id: new_message_id(),
            channel: message.channel,
            contact: contact.key(),
            sender: message.to.clone(),
            author: Author::Person,
            by: None,
            text: message.text.clone(),
            at: message.received_at.unwrap_or_else(|| self.engine.now()),
            sending: None,
        };
        log_message(self.engine.store(), &logged).await?;
        Ok(logged)
    }

    /// Applies something a chatbot reports outside a turn (a webhook bot replying later,
    /// or ending the session), and runs the participant it wakes.
    pub async fn chatbot_event(
        &self,
        session_id: &str,
        event: &BotEvent,
    ) -> Result<Vec<ParticipantState>, EngineError> {
        let woken = self
            .answers
            .event(self.engine.store(), session_id, event, self.engine.now())
            .await
            .map_err(|e| EngineError::Rejected(e.to_string()))?;
        self.engine.follow_up(woken).await
    }

    /// Stops (deactivates) a chatbot; participants in its sessions leave by their
    /// `deactivated` exit.
    pub async fn stop_chatbot(&self, bot_id: &str) -> Result<Vec<ParticipantState>, EngineError> {
        let woken = Answers::stop(self.engine.store(), bot_id, self.engine.now())
            .await
            .map_err(|e| EngineError::Rejected(e.to_string()))?;
        self.engine.follow_up(woken).await
    }
}
