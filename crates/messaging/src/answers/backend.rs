//! The back ends that answer chatbot turns: the built-in scripted bot and webhook bots
//! reached over HTTP through the outbound policy.

use super::*;

/// What the person (or the flow, first) said to the bot.
#[derive(Clone, Copy, Debug)]
pub enum BotTurn<'a> {
    /// The session starts with this message.
    Start(&'a str),
    /// The person wrote this.
    Message(&'a str),
}

/// A bot's answer to a turn.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BotAnswer {
    /// Messages to send.
    pub replies: Vec<String>,
    /// Set when the session ends with this turn: [`EndReason::Closed`],
    /// [`EndReason::AgentRedirectFailed`] or [`EndReason::EndedByUser`].
    pub end: Option<EndReason>,
}

/// Something that answers chatbot turns.
pub trait ChatbotBackend: Send + Sync {
    /// Answers one turn of `session`.
    fn turn<'a>(
        &'a self,
        session: &'a Session,
        turn: BotTurn<'a>,
    ) -> BoxFuture<'a, Result<BotAnswer, String>>;
}

/// The built-in scripted bot.
pub struct ScriptedBot(pub Script);

fn words(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect()
}

impl ChatbotBackend for ScriptedBot {
    fn turn<'a>(
        &'a self,
        _session: &'a Session,
        turn: BotTurn<'a>,
    ) -> BoxFuture<'a, Result<BotAnswer, String>> {
        Box::pin(async move {
            let script = &self.0;
            let mut answer = BotAnswer::default();
            let text = match turn {
                BotTurn::Start(text) => {
                    answer.replies.extend(script.greeting.clone());
                    text
                }
                BotTurn::Message(text) => text,
            };
            let said = words(text);
            let has = |w: &str| said.contains(&w.to_lowercase());
            if script.end.iter().any(|w| has(w)) {
                answer.end = Some(EndReason::EndedByUser);
            } else if script.to_agent.iter().any(|w| has(w)) {
                answer.end = Some(EndReason::AgentRedirectFailed);
            } else if let Some((_, reply)) = script.close.iter().find(|(w, _)| has(w)) {
                answer.replies.push(reply.clone());
                answer.end = Some(EndReason::Closed);
            } else if let Some((_, reply)) = script.replies.iter().find(|(w, _)| has(w)) {
                answer.replies.push(reply.clone());
            } else if let Some(fallback) = &script.fallback {
                answer.replies.push(fallback.clone());
            }
            Ok(answer)
        })
    }
}

/// An external bot. Each turn is POSTed as JSON
/// `{"session", "event": "start"|"message", "text", "channel", "contact", "sender"}`; a 2xx
/// answer may carry `{"replies": [..], "end": "closed"|"to-agent"|"ended-by-user"}`.
pub struct WebhookBot {
    url: String,
    timeout: Duration,
    client: HttpClient,
}

impl WebhookBot {
    /// A bot at `url`.
    pub fn new(url: &str, timeout_ms: u64, client: HttpClient) -> Self {
        WebhookBot {
            url: url.to_owned(),
            timeout: Duration::from_millis(timeout_ms),
            client,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WebhookAnswer {
    #[serde(default)]
    replies: Vec<String>,
    #[serde(default)]
    end: Option<String>,
}

impl ChatbotBackend for WebhookBot {
    fn turn<'a>(
        &'a self,
        session: &'a Session,
        turn: BotTurn<'a>,
    ) -> BoxFuture<'a, Result<BotAnswer, String>> {
        Box::pin(async move {
            let (event, text) = match turn {
                BotTurn::Start(t) => ("start", t),
                BotTurn::Message(t) => ("message", t),
            };
            let body = serde_json::json!({
                "session": session.id,
                "event": event,
                "text": text,
                "channel": session.channel,
                "contact": session.contact,
                "sender": session.sender,
            });
            let uri: http::Uri = self
                .url
                .parse()
                .map_err(|e| format!("chatbot webhook URL {:?}: {e}", self.url))?;
            let host = flowhost_outbound::url_host_port(&uri)
                .ok_or_else(|| format!("chatbot webhook URL {:?} has no host", self.url))?;
            let policy = OutboundPolicy {
                subject: format!("chatbot {}", session.bot_id),
                declared: None,
                granted: HostPattern::parse(&format!("{}:{}", host.0, host.1))
                    .into_iter()
                    .collect(),
                max_requests: 1,
                max_response_bytes: 1 << 20,
            };
            let response = flowhost_outbound::send_buffered(
                &self.client,
                &policy,
                BufferedRequest {
                    method: "POST".into(),
                    url: self.url.clone(),
                    headers: vec![("content-type".into(), "application/json".into())],
                    body: Some(body.to_string().into_bytes()),
                    timeout: self.timeout,
                    max_redirects: 0,
                },
            )
            .await
            .map_err(|e| format!("chatbot webhook {}: {e}", self.url))?;
            if !(200..300).contains(&response.status) {
                return Err(format!(
                    "chatbot webhook {} answered {}",
                    self.url, response.status
                ));
            }
            if response.body.iter().all(u8::is_ascii_whitespace) {
                return Ok(BotAnswer::default());
            }
            let answer: WebhookAnswer = serde_json::from_slice(&response.body).map_err(|e| {
                format!(
                    "chatbot webhook {} answered something that is not {{\"replies\": [...], \"end\": ...}}: {e}",
                    self.url
                )
            })?;
            let end = match answer.end.as_deref() {
                None => None,
                Some(end) => Some(EndReason::from_bot(end).ok_or_else(|| {
                    format!(
                        "chatbot webhook {} answered end {end:?}; use closed, to-agent or ended-by-user",
                        self.url
                    )
                })?),
            };
            Ok(BotAnswer {
                replies: answer.replies,
                end,
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn scripted_bot_answers_by_keyword() {
        let bot = ScriptedBot(Script {
            greeting: Some("Hi".into()),
            replies: [("hours".to_owned(), "9 to 5".to_owned())].into(),
            fallback: Some("Sorry?".into()),
            close: [("bye".to_owned(), "Bye!".to_owned())].into(),
            to_agent: vec!["agent".into()],
            end: vec!["stop".into()],
        });
        let session = Session {
            id: "s".into(),
            bot_id: "b".into(),
            participant_id: "p".into(),
            channel: Channel::Sms,
            contact: "385911234567".into(),
            sender: "INFO".into(),
            ended: None,
            started_at: 0,
            last_activity: 0,
            timeout_ms: 1,
        };
        let turn = |t| bot.turn(&session, BotTurn::Message(t));
        assert_eq!(turn("Your HOURS?").await.unwrap().replies, ["9 to 5"]);
        assert_eq!(turn("hm").await.unwrap().replies, ["Sorry?"]);
        assert_eq!(turn("ok bye").await.unwrap().end, Some(EndReason::Closed));
        assert_eq!(
            turn("an agent please").await.unwrap().end,
            Some(EndReason::AgentRedirectFailed)
        );
        assert_eq!(
            turn("STOP").await.unwrap().end,
            Some(EndReason::EndedByUser)
        );
        let first = bot.turn(&session, BotTurn::Start("hours")).await.unwrap();
        assert_eq!(first.replies, ["Hi", "9 to 5"]);
        assert_eq!(EndReason::parse("expired"), Some(EndReason::Expired));
    }
}
