//! Running sessions: opening one for a participant, passing the person's messages to the
//! bot, applying what a bot reports later, and stopping a bot with its sessions.

use super::*;

impl Answers {
    /// Opens a session for a participant and sends the first message. Returns the session
    /// (ended with [`EndReason::SessionNotStarted`] if the bot failed, or with the bot's own
    /// end if it ended at once), the participants woken because their session on the same
    /// contact and sender ended, and why it did not start, if it did not.
    pub(crate) async fn start_session(
        &self,
        store: &dyn StateStore,
        bot: &Chatbot,
        participant_id: &str,
        contact_text: &str,
        message: &str,
        now: Millis,
    ) -> Result<(Session, Vec<String>, Option<String>), StoreError> {
        let contact = bot
            .channel
            .contact(contact_text)
            .map_err(|e| StoreError::Corrupt {
                what: "chatbot contact".into(),
                reason: e,
            })?;
        let mut woken = Vec::new();
        if let Some(old) = Self::running_session(store, bot.channel, &contact, &bot.sender).await? {
            woken.extend(Self::end_session(store, &old.id, EndReason::EndedExternally, now).await?);
        }
        let mut session = Session {
            id: format!("s-{}", uuid::Uuid::new_v4().simple()),
            bot_id: bot.id.clone(),
            participant_id: participant_id.to_owned(),
            channel: bot.channel,
            contact: contact_text.to_owned(),
            sender: bot.sender.clone(),
            ended: None,
            started_at: now,
            last_activity: now,
            timeout_ms: parse_duration(&bot.session_timeout).unwrap_or(900_000),
        };
        // The person's message is in the log already (it came in); the bot gets it with
        // the element's context.
        let backend = self.backend(bot);
        let failure = match backend.turn(&session, BotTurn::Start(message)).await {
            Ok(answer) => {
                for reply in &answer.replies {
                    self.log(store, &session, Author::Bot, Some(&bot.id), reply, now)
                        .await?;
                }
                session.ended = answer.end;
                None
            }
            Err(e) => {
                session.ended = Some(EndReason::SessionNotStarted);
                Some(e)
            }
        };
        Self::save_session(store, &session).await?;
        Ok((session, woken, failure))
    }

    pub(super) async fn log(
        &self,
        store: &dyn StateStore,
        s: &Session,
        author: Author,
        by: Option<&str>,
        text: &str,
        now: Millis,
    ) -> Result<(), StoreError> {
        let contact = s.parsed_contact()?;
        log_message(
            store,
            &LoggedMessage {
                id: new_message_id(),
                channel: s.channel,
                contact: contact.key(),
                sender: s.sender.clone(),
                author,
                by: by.map(str::to_owned),
                text: text.to_owned(),
                at: now,
                sending: (author != Author::Person).then(Sending::pending),
            },
        )
        .await
    }

    /// Passes a person's message to their running session: the bot answers, the session's
    /// deadline moves, and a session the bot ends wakes its participant. Returns the ids
    /// woken and the bot's failure, if it failed (the session carries on).
    pub(crate) async fn message(
        &self,
        store: &dyn StateStore,
        mut session: Session,
        text: &str,
        now: Millis,
    ) -> Result<(Vec<String>, Option<String>), StoreError> {
        self.log(store, &session, Author::Person, None, text, now)
            .await?;
        let bot = Self::chatbot(store, &session.bot_id).await?;
        let Some(bot) = bot.filter(|b| b.status == BotStatus::Active) else {
            return Ok((
                Self::end_session(store, &session.id, EndReason::Deactivated, now).await?,
                None,
            ));
        };
        let answer = self
            .backend(&bot)
            .turn(&session, BotTurn::Message(text))
            .await;
        session.last_activity = now;
        Self::save_session(store, &session).await?;
        match answer {
            Ok(answer) => {
                for reply in &answer.replies {
                    self.log(store, &session, Author::Bot, Some(&bot.id), reply, now)
                        .await?;
                }
                if let Some(end) = answer.end {
                    return Ok((Self::end_session(store, &session.id, end, now).await?, None));
                }
                store
                    .set_deadline(&session.wait_key(), now + session.timeout_ms)
                    .await?;
                Ok((Vec::new(), None))
            }
            Err(e) => {
                store
                    .set_deadline(&session.wait_key(), now + session.timeout_ms)
                    .await?;
                Ok((Vec::new(), Some(e)))
            }
        }
    }

    /// Applies an event a bot reported outside a turn; returns the ids woken.
    pub(crate) async fn event(
        &self,
        store: &dyn StateStore,
        session_id: &str,
        event: &BotEvent,
        now: Millis,
    ) -> Result<Vec<String>, AnswersError> {
        let session = Self::session(store, session_id)
            .await?
            .ok_or_else(|| AnswersError::Invalid(format!("no chatbot session {session_id:?}")))?;
        if session.ended.is_some() {
            return Err(AnswersError::Invalid(format!(
                "chatbot session {session_id:?} has ended"
            )));
        }
        match event {
            BotEvent::Reply { text } => {
                self.log(
                    store,
                    &session,
                    Author::Bot,
                    Some(&session.bot_id),
                    text,
                    now,
                )
                .await?;
                let mut session = session;
                session.last_activity = now;
                Self::save_session(store, &session).await?;
                store
                    .set_deadline(&session.wait_key(), now + session.timeout_ms)
                    .await?;
                Ok(Vec::new())
            }
            BotEvent::End { reason } => {
                if !matches!(
                    reason,
                    EndReason::Closed | EndReason::AgentRedirectFailed | EndReason::EndedByUser
                ) {
                    return Err(AnswersError::Invalid(format!(
                        "a chatbot cannot end a session as {}; use closed, agent-redirect-failed or ended-by-user",
                        reason.as_str()
                    )));
                }
                Ok(Self::end_session(store, session_id, *reason, now).await?)
            }
        }
    }

    /// Stops a chatbot: its running sessions end as [`EndReason::Deactivated`]. Returns the
    /// ids woken.
    pub(crate) async fn stop(
        store: &dyn StateStore,
        bot_id: &str,
        now: Millis,
    ) -> Result<Vec<String>, AnswersError> {
        let mut bot = Self::chatbot(store, bot_id)
            .await?
            .ok_or_else(|| AnswersError::Invalid(format!("no chatbot {bot_id:?}")))?;
        bot.status = BotStatus::Stopped;
        Self::save_chatbot(store, &bot).await?;
        let mut woken = Vec::new();
        for s in Self::running_sessions_of(store, bot_id).await? {
            woken.extend(Self::end_session(store, &s.id, EndReason::Deactivated, now).await?);
        }
        Ok(woken)
    }
}
