//! Sending what bots and agents write to the person, through each channel's [`Connector`].
//!
//! The message log is the outbox: a bot's or an agent's message is stored as `pending`
//! before anything is sent, so a crash loses none. An [`Outbox`] hands pending messages to
//! their channel's connector and records each outcome on the message: `sent` (with the
//! provider's id, when it gave one), a retry after a backoff, or `failed` with the reason.
//!
//! - Messages to one person from one sender go out in the order they were written; one
//!   waiting for a retry holds back those after it. Different conversations go out side by
//!   side.
//! - Sending is at least once: a crash after the connector accepted a message and before the
//!   outcome was stored sends it again. [`HttpConnector`] gives the message id as
//!   `Idempotency-Key` so the provider can drop the repeat.
//! - A channel without a connector keeps its messages pending (and says so once); they go
//!   out once one is configured.
//!
//! [`HttpConnector`] POSTs each message as JSON to an endpoint the operator configures,
//! through the one outbound policy point. Another kind of connector (a wasm component, say)
//! implements [`Connector`] and is given to [`Outbox::new`] the same way.

use crate::{Author, Channel, LoggedMessage, MESSAGE_KIND, SendState, Sending, log_message};
use flowhost_engine::Engine;
use flowhost_outbound::{BufferedRequest, HostPattern, HttpClient, OutboundError, OutboundPolicy};
use flowhost_store::{Record, StoreError};
use flowhost_types::BoxFuture;
use flowhost_types::clock::Millis;
use serde::Serialize;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Notify;
use tokio::task::JoinSet;

/// A message handed to a connector.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Outgoing {
    /// The message log's id; the same on every attempt.
    pub message_id: String,
    /// Channel.
    pub channel: Channel,
    /// The person's address on the channel: a phone number's digits, an email address, an
    /// external id.
    pub to: String,
    /// Our sender.
    pub from: String,
    /// Text.
    pub text: String,
    /// `bot` or `agent`.
    pub author: Author,
    /// The chatbot or agent that wrote it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub by: Option<String>,
}

impl Outgoing {
    fn of(m: &LoggedMessage) -> Self {
        Outgoing {
            message_id: m.id.clone(),
            channel: m.channel,
            to: m
                .contact
                .split_once(':')
                .map_or(m.contact.as_str(), |(_, v)| v)
                .to_owned(),
            from: m.sender.clone(),
            text: m.text.clone(),
            author: m.author,
            by: m.by.clone(),
        }
    }
}

/// What a connector did with a message it accepted.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Sent {
    /// The provider's id for it, when it gave one.
    pub provider_id: Option<String>,
}

/// Why a connector did not take a message.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum SendError {
    /// Worth trying again (a timeout, a connection failure, 429, 5xx), not before `after`
    /// when the provider said so.
    #[error("{reason}")]
    Retry {
        /// What happened.
        reason: String,
        /// The wait the provider asked for.
        after: Option<Duration>,
    },
    /// Trying again would not help (the provider refused it, the policy denies the
    /// endpoint).
    #[error("{0}")]
    Refused(String),
}

/// Sends messages on a channel.
pub trait Connector: Send + Sync {
    /// Sends one message.
    fn send<'a>(&'a self, message: &'a Outgoing) -> BoxFuture<'a, Result<Sent, SendError>>;
}

/// When to try a message again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryRule {
    /// Attempts in all, the first included.
    pub max_attempts: u32,
    /// The wait after the first failed attempt; it doubles after each one.
    pub backoff: Duration,
    /// The longest wait.
    pub max_backoff: Duration,
}

impl Default for RetryRule {
    fn default() -> Self {
        RetryRule {
            max_attempts: 6,
            backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(300),
        }
    }
}

impl RetryRule {
    /// The wait after `attempts` failed attempts, or the provider's wait when it asked for
    /// one (never longer than `max_backoff`).
    pub fn delay(&self, attempts: u32, asked: Option<Duration>) -> Duration {
        let doubled = self
            .backoff
            .saturating_mul(2u32.saturating_pow(attempts.saturating_sub(1)));
        asked.unwrap_or(doubled).min(self.max_backoff)
    }
}

/// A channel's connector and its retry rule.
#[derive(Clone)]
pub struct Route {
    /// Sends the channel's messages.
    pub connector: Arc<dyn Connector>,
    /// When to try again.
    pub retry: RetryRule,
}

/// The messages to one person from one sender on one channel: sent in order.
type Thread = (Channel, String, String);

/// What a thread being sent is held as ([`Engine::holding`]).
const THREAD_HOLD: &str = "message-thread";

/// A thread being sent; when it is done (or its task ends any other way), the thread is free
/// again and the outbox looks at once for what came meanwhile.
struct InFlight {
    busy: Arc<Mutex<HashSet<Thread>>>,
    thread: Thread,
    outbox: Outbox,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.busy
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&self.thread);
        self.outbox.nudge();
    }
}

/// Finds pending messages and sends them through their channels' connectors. Cheap to clone.
#[derive(Clone)]
pub struct Outbox {
    inner: Arc<Inner>,
}

struct Inner {
    engine: Engine,
    routes: HashMap<Channel, Route>,
    wake: Notify,
    /// Channels already reported as having no connector.
    unrouted: Mutex<HashSet<Channel>>,
}

impl Outbox {
    /// An outbox over the engine's message log, sending by `routes`.
    pub fn new(engine: Engine, routes: HashMap<Channel, Route>) -> Self {
        Outbox {
            inner: Arc::new(Inner {
                engine,
                routes,
                wake: Notify::new(),
                unrouted: Mutex::new(HashSet::new()),
            }),
        }
    }

    /// Asks [`Outbox::run`] to look for pending messages now rather than at its next tick.
    pub fn nudge(&self) {
        self.inner.wake.notify_one();
    }

    /// Sends pending messages until `shutdown` completes: every `every`, and at once when
    /// nudged. A thread still sending is not started again (when it finishes, the outbox
    /// looks again at once); on shutdown, sends in flight finish.
    pub async fn run(self, every: Duration, shutdown: impl Future<Output = ()>) {
        let mut tasks = JoinSet::new();
        let busy: Arc<Mutex<HashSet<Thread>>> = Arc::default();
        tokio::pin!(shutdown);
        loop {
            let sending = busy.lock().unwrap_or_else(|e| e.into_inner()).clone();
            match self.due_threads(&sending).await {
                Ok(threads) => {
                    for (thread, messages) in threads {
                        busy.lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .insert(thread.clone());
                        let done = InFlight {
                            busy: busy.clone(),
                            thread,
                            outbox: self.clone(),
                        };
                        tasks.spawn(async move {
                            if let Err(e) = done.outbox.send_thread(&done.thread, messages).await
                            {
                                tracing::warn!(error = %e, "recording a sent message; it is sent again");
                            }
                            drop(done);
                        });
                    }
                }
                Err(e) => tracing::warn!(error = %e, "looking for messages to send"),
            }
            while tasks.try_join_next().is_some() {}
            tokio::select! {
                () = &mut shutdown => break,
                () = self.inner.wake.notified() => {}
                () = tokio::time::sleep(every) => {}
            }
        }
        while tasks.join_next().await.is_some() {}
    }

    /// Pending messages by thread, in order, up to each thread's first one not due yet;
    /// threads in `sending` and on channels without a connector are left alone.
    async fn due_threads(
        &self,
        sending: &HashSet<Thread>,
    ) -> Result<Vec<(Thread, Vec<LoggedMessage>)>, StoreError> {
        let store = self.inner.engine.store();
        let now = self.inner.engine.now();
        let pending = store
            .records(MESSAGE_KIND, None, Some(SendState::Pending.as_str()), None)
            .await?;
        let mut threads: BTreeMap<Thread, (usize, Vec<LoggedMessage>, bool)> = BTreeMap::new();
        for (order, record) in pending.iter().enumerate() {
            let message: LoggedMessage = record.parse()?;
            if !self.inner.routes.contains_key(&message.channel) {
                self.report_unrouted(message.channel);
                continue;
            }
            let thread = (
                message.channel,
                message.contact.clone(),
                crate::sender_key(&message.sender),
            );
            if sending.contains(&thread) {
                continue;
            }
            let (_, messages, held) = threads
                .entry(thread)
                .or_insert_with(|| (order, Vec::new(), false));
            let due = message
                .sending
                .as_ref()
                .and_then(|s| s.next_attempt_at)
                .is_none_or(|at| at <= now);
            *held |= !due;
            if !*held {
                messages.push(message);
            }
        }
        let mut due: Vec<_> = threads
            .into_iter()
            .filter(|(_, (_, messages, _))| !messages.is_empty())
            .map(|(thread, (order, messages, _))| (order, thread, messages))
            .collect();
        // The thread with the oldest message first.
        due.sort_by_key(|(order, ..)| *order);
        Ok(due.into_iter().map(|(_, t, m)| (t, m)).collect())
    }

    fn report_unrouted(&self, channel: Channel) {
        let mut unrouted = self
            .inner
            .unrouted
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if unrouted.insert(channel) {
            tracing::warn!(
                %channel,
                "bot and agent messages on this channel stay pending: it has no connector; add [server.channels.{channel}.deliver] to flowhost.toml"
            );
        }
    }

    /// Sends a thread's messages in order; stops at one that waits for a retry. Processes
    /// sharing the store take turns: the thread is held while it is sent, and each message
    /// is read again first, in case another process sent it meanwhile.
    async fn send_thread(
        &self,
        (channel, contact, sender): &Thread,
        messages: Vec<LoggedMessage>,
    ) -> Result<(), StoreError> {
        let engine = &self.inner.engine;
        let thread = format!("{channel}:{contact}:{sender}");
        let sent = engine
            .holding(THREAD_HOLD, &thread, async {
                for message in messages {
                    let Some(now) = self::message(engine, &message.id).await? else {
                        break;
                    };
                    if now.sending != message.sending {
                        // Another process tried it since it was listed; list again.
                        break;
                    }
                    if self.attempt(message).await? == SendState::Pending {
                        break;
                    }
                }
                Ok(())
            })
            .await?;
        sent.unwrap_or(Ok(()))
    }

    /// One attempt at one message, recorded on it.
    async fn attempt(&self, mut message: LoggedMessage) -> Result<SendState, StoreError> {
        let route = &self.inner.routes[&message.channel];
        let outcome = route.connector.send(&Outgoing::of(&message)).await;
        let now = self.inner.engine.now();
        let sending = message.sending.get_or_insert_with(Sending::pending);
        sending.attempts += 1;
        sending.next_attempt_at = None;
        match outcome {
            Ok(sent) => {
                sending.state = SendState::Sent;
                sending.sent_at = Some(now);
                sending.provider_id = sent.provider_id;
                sending.last_error = None;
            }
            Err(SendError::Refused(reason)) => {
                sending.state = SendState::Failed;
                sending.last_error = Some(reason);
            }
            Err(SendError::Retry { reason, after }) => {
                if sending.attempts >= route.retry.max_attempts {
                    sending.state = SendState::Failed;
                    sending.last_error = Some(format!(
                        "{reason} (gave up after {} attempts)",
                        sending.attempts
                    ));
                } else {
                    let wait = route.retry.delay(sending.attempts, after);
                    sending.next_attempt_at = Some(now + wait.as_millis() as Millis);
                    sending.last_error = Some(reason);
                }
            }
        }
        let state = sending.state;
        let result = match state {
            SendState::Pending => "retry",
            done => done.as_str(),
        };
        metrics::counter!(
            "flowhost_messages_sent_total",
            "channel" => message.channel.as_str(),
            "result" => result,
        )
        .increment(1);
        if state == SendState::Failed {
            tracing::warn!(
                message = %message.id,
                channel = %message.channel,
                reason = sending.last_error.as_deref().unwrap_or_default(),
                "message not sent"
            );
        }
        log_message(self.inner.engine.store(), &message).await?;
        Ok(state)
    }

    /// How many messages wait to be sent.
    pub async fn pending(&self) -> Result<usize, StoreError> {
        Ok(self
            .inner
            .engine
            .store()
            .records(MESSAGE_KIND, None, Some(SendState::Pending.as_str()), None)
            .await?
            .len())
    }
}

/// A message from the log, by id.
pub async fn message(engine: &Engine, id: &str) -> Result<Option<LoggedMessage>, StoreError> {
    engine
        .store()
        .record(MESSAGE_KIND, id)
        .await?
        .as_ref()
        .map(Record::parse)
        .transpose()
}

/// Sends each message as a JSON `POST` ([`Outgoing`], camelCase) to an endpoint, with the
/// operator's headers and `Idempotency-Key: <messageId>`, through the outbound policy (the
/// endpoint's host is granted; the operator's network rules still apply).
///
/// A 2xx answer is sent; its body may name the provider's id as `{"id": ...}` or
/// `{"messageId": ...}`. 408, 429 and 5xx answers, timeouts and connection failures are
/// tried again (after `Retry-After` seconds when given); other answers are refused.
pub struct HttpConnector {
    url: String,
    headers: Vec<(String, String)>,
    timeout: Duration,
    policy: OutboundPolicy,
    client: HttpClient,
}

impl HttpConnector {
    /// A connector to `url` for `channel`, adding `headers` to every request; `Err` says
    /// what is wrong with the URL.
    pub fn new(
        channel: Channel,
        url: &str,
        headers: Vec<(String, String)>,
        timeout: Duration,
        client: HttpClient,
    ) -> Result<Self, String> {
        let policy = endpoint_policy(format!("the {channel} connector"), url)?;
        for (name, _) in &headers {
            http::HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| format!("header name {name:?} is not a valid HTTP header name"))?;
        }
        Ok(HttpConnector {
            url: url.to_owned(),
            headers,
            timeout,
            policy,
            client,
        })
    }
}

/// The provider's id in a 2xx body, if it gave one.
fn provider_id(body: &[u8]) -> Option<String> {
    let value: serde_json::Value = serde_json::from_slice(body).ok()?;
    ["id", "messageId"]
        .iter()
        .find_map(|k| value.get(k))
        .and_then(|v| match v {
            serde_json::Value::String(s) => Some(s.clone()),
            serde_json::Value::Number(n) => Some(n.to_string()),
            _ => None,
        })
}

impl Connector for HttpConnector {
    fn send<'a>(&'a self, message: &'a Outgoing) -> BoxFuture<'a, Result<Sent, SendError>> {
        Box::pin(async move {
            let body = serde_json::to_vec(message).expect("messages serialize");
            post_json(
                &self.client,
                &self.policy,
                &self.url,
                &message.message_id,
                &self.headers,
                body,
                self.timeout,
            )
            .await
        })
    }
}

/// The policy for `POST`s to an endpoint the operator (or an API caller holding an operator
/// key) named: that endpoint's host is granted, one request, a small answer. The client's
/// network rules still apply.
pub fn endpoint_policy(subject: String, url: &str) -> Result<OutboundPolicy, String> {
    let uri: http::Uri = url.parse().map_err(|e| format!("url {url:?}: {e}"))?;
    if !matches!(uri.scheme_str(), Some("http" | "https")) {
        return Err(format!("url {url:?} must start with http:// or https://"));
    }
    let (host, port) =
        flowhost_outbound::url_host_port(&uri).ok_or_else(|| format!("url {url:?} has no host"))?;
    Ok(OutboundPolicy {
        subject,
        declared: None,
        granted: HostPattern::parse(&format!("{host}:{port}"))
            .into_iter()
            .collect(),
        max_requests: 1,
        max_response_bytes: 64 * 1024,
    })
}

/// `POST`s a JSON body with `Idempotency-Key: key` and `headers`, and reads the answer as
/// [`HttpConnector`] does: 2xx is sent (with the provider's id when the body names one);
/// 408, 429, 5xx, timeouts and connection failures are worth a retry (after `Retry-After`
/// seconds when given); anything else is refused.
pub async fn post_json(
    client: &HttpClient,
    policy: &OutboundPolicy,
    url: &str,
    key: &str,
    headers: &[(String, String)],
    body: Vec<u8>,
    timeout: Duration,
) -> Result<Sent, SendError> {
    let mut all = vec![
        ("content-type".to_owned(), "application/json".to_owned()),
        ("idempotency-key".to_owned(), key.to_owned()),
    ];
    all.extend(headers.iter().cloned());
    let request = BufferedRequest {
        method: "POST".into(),
        url: url.to_owned(),
        headers: all,
        body: Some(body),
        timeout,
        max_redirects: 0,
    };
    let response = flowhost_outbound::send_buffered(client, policy, request)
        .await
        .map_err(|e| match e {
            OutboundError::Timeout
            | OutboundError::ConnectFailed(_)
            | OutboundError::Connection(_) => SendError::Retry {
                reason: format!("{url}: {e}"),
                after: None,
            },
            other => SendError::Refused(format!("{url}: {other}")),
        })?;
    match response.status {
        200..=299 => Ok(Sent {
            provider_id: provider_id(&response.body),
        }),
        408 | 429 | 500..=599 => Err(SendError::Retry {
            reason: format!("{url} answered {}", response.status),
            after: response
                .header("retry-after")
                .and_then(|s| s.trim().parse::<u64>().ok())
                .map(Duration::from_secs),
        }),
        status => Err(SendError::Refused(format!(
            "{url} answered {status}: {}",
            String::from_utf8_lossy(&response.body[..response.body.len().min(200)])
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_its_ceiling_and_follows_the_provider() {
        let rule = RetryRule {
            max_attempts: 10,
            backoff: Duration::from_millis(100),
            max_backoff: Duration::from_millis(350),
        };
        let waits: Vec<u128> = (1..=4).map(|n| rule.delay(n, None).as_millis()).collect();
        assert_eq!(waits, [100, 200, 350, 350]);
        assert_eq!(
            rule.delay(1, Some(Duration::from_millis(300))).as_millis(),
            300
        );
        assert_eq!(
            rule.delay(1, Some(Duration::from_secs(60))).as_millis(),
            350
        );
    }

    #[test]
    fn the_provider_id_is_read_from_id_or_message_id() {
        assert_eq!(provider_id(br#"{"id": "abc"}"#).as_deref(), Some("abc"));
        assert_eq!(provider_id(br#"{"messageId": 42}"#).as_deref(), Some("42"));
        assert_eq!(provider_id(b"OK"), None);
        assert_eq!(provider_id(b""), None);
    }
}
