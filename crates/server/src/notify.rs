//! `notify_url`: a callback when each participant added with one finishes.
//!
//! Adding participants with a `notify_url` arms one notification per participant, stored
//! before the call is answered. When the engine announces that a participant finished
//! (completed, failed or canceled), its notification becomes due, and the sender `POST`s it
//! through the outbound policy with `Idempotency-Key: <participant id>`, retrying by
//! `[server.notify]` as channel connectors do. A sweep at start and every [`SWEEP_EVERY`]
//! finds finishes that were not announced (the service stopped in between, or the listener
//! fell behind), so a callback is sent at least once.

use flowhost::config::NotifyConfig;
use flowhost::delivery::{RetryRule, SendError, endpoint_policy, post_json};
use flowhost::engine::Engine;
use flowhost::outbound::HttpClient;
use flowhost::store::{Record, StoreError};
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::collections::HashSet;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Notify;
use tokio::sync::broadcast::error::RecvError;
use tokio::task::JoinSet;

const KIND: &str = "notify";
const ARMED: &str = "armed";
const DUE: &str = "due";
const SENT: &str = "sent";
const FAILED: &str = "failed";

/// How often armed notifications are checked against their participants.
pub(crate) const SWEEP_EVERY: Duration = Duration::from_secs(30);

/// Longest `notify_url` accepted.
pub(crate) const MAX_URL_LEN: usize = 2048;

/// One participant's notification.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Notification {
    url: String,
    flow: String,
    participant: String,
    #[serde(default)]
    attempts: u32,
    #[serde(default)]
    next_attempt_at: Option<i64>,
    #[serde(default)]
    last_error: Option<String>,
}

/// A notification being sent; when its task ends, however it ends, the participant is free
/// again and the sender looks at once for what is due (its retry, say).
struct Sending {
    busy: Arc<Mutex<HashSet<String>>>,
    participant: String,
    notifier: Arc<Notifier>,
}

impl Drop for Sending {
    fn drop(&mut self) {
        self.busy
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&self.participant);
        self.notifier.wake.notify_one();
    }
}

/// Arms, and sends, `notify_url` callbacks.
pub(crate) struct Notifier {
    engine: Engine,
    client: HttpClient,
    retry: RetryRule,
    timeout: Duration,
    wake: Notify,
}

/// Why a `notify_url` cannot be used; a message for the caller.
pub(crate) fn check_url(url: &str) -> Result<(), String> {
    if url.len() > MAX_URL_LEN {
        return Err(format!("must be at most {MAX_URL_LEN} characters"));
    }
    endpoint_policy(String::new(), url).map(|_| ())
}

impl Notifier {
    pub(crate) fn new(engine: Engine, client: HttpClient, config: &NotifyConfig) -> Self {
        Notifier {
            engine,
            client,
            retry: RetryRule {
                max_attempts: config.max_attempts.max(1),
                backoff: Duration::from_millis(config.backoff_ms),
                max_backoff: Duration::from_millis(config.max_backoff_ms),
            },
            timeout: Duration::from_millis(config.timeout_ms),
            wake: Notify::new(),
        }
    }

    /// Arms a notification to `url` for each participant that has none yet (a retried call
    /// arms nothing twice). `new` participants were just added and have none, so nothing is
    /// looked up for them.
    pub(crate) async fn arm(
        &self,
        flow: &str,
        url: &str,
        participants: &[String],
        new: bool,
    ) -> Result<(), StoreError> {
        let store = self.engine.store();
        for id in participants {
            if !new && store.record(KIND, id).await?.is_some() {
                continue;
            }
            let n = Notification {
                url: url.to_owned(),
                flow: flow.to_owned(),
                participant: id.clone(),
                attempts: 0,
                next_attempt_at: None,
                last_error: None,
            };
            save(store, &n, ARMED).await?;
        }
        Ok(())
    }

    /// Listens for finished participants and sends their notifications until `shutdown`
    /// completes; sends in flight then finish.
    pub(crate) async fn run(self: Arc<Self>, every: Duration, shutdown: impl Future<Output = ()>) {
        let mut finished = self.engine.finished();
        let mut tasks = JoinSet::new();
        let busy: Arc<Mutex<HashSet<String>>> = Arc::default();
        let mut sweep = tokio::time::interval(SWEEP_EVERY);
        let mut tick = tokio::time::interval(every);
        tokio::pin!(shutdown);
        loop {
            // Finishes only mark notifications due (and wake the sender once for a burst of
            // them); the due ones are looked up on a tick or a wake.
            tokio::select! {
                () = &mut shutdown => break,
                got = finished.recv() => {
                    match got {
                        Ok(done) => self.due(&done.participant).await,
                        Err(RecvError::Lagged(_)) => self.sweep().await,
                        Err(RecvError::Closed) => break,
                    }
                    continue;
                }
                _ = sweep.tick() => {
                    self.sweep().await;
                    continue;
                }
                _ = tick.tick() => {}
                () = self.wake.notified() => {}
            }
            while tasks.try_join_next().is_some() {}
            let due = match self.due_now().await {
                Ok(due) => due,
                Err(e) => {
                    tracing::warn!(error = %e, "looking for notifications to send");
                    continue;
                }
            };
            for n in due {
                if !busy
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(n.participant.clone())
                {
                    continue;
                }
                let done = Sending {
                    busy: busy.clone(),
                    participant: n.participant.clone(),
                    notifier: self.clone(),
                };
                tasks.spawn(async move {
                    done.notifier.send_held(n).await;
                    drop(done);
                });
            }
        }
        while tasks.join_next().await.is_some() {}
    }

    /// Makes a participant's armed notification due.
    async fn due(&self, participant: &str) {
        let store = self.engine.store();
        let armed = match store.record(KIND, participant).await {
            Ok(Some(r)) if r.status == ARMED => r,
            Ok(_) => return,
            Err(e) => {
                tracing::warn!(error = %e, %participant, "reading a notification; the sweep finds it");
                return;
            }
        };
        match armed.parse::<Notification>() {
            Ok(n) => match save(store, &n, DUE).await {
                Ok(()) => self.wake.notify_one(),
                Err(e) => {
                    tracing::warn!(error = %e, %participant, "saving a notification; the sweep finds it")
                }
            },
            Err(e) => tracing::warn!(error = %e, "a stored notification cannot be read"),
        }
    }

    /// Makes due the armed notifications whose participants have finished.
    async fn sweep(&self) {
        let armed = match self
            .engine
            .store()
            .records(KIND, None, Some(ARMED), None)
            .await
        {
            Ok(armed) => armed,
            Err(e) => {
                tracing::warn!(error = %e, "sweeping notifications");
                return;
            }
        };
        for record in armed {
            if let Ok(Some(p)) = self.engine.store().participant(&record.id).await
                && p.status.is_final()
            {
                self.due(&record.id).await;
            }
        }
    }

    async fn due_now(&self) -> Result<Vec<Notification>, StoreError> {
        let now = self.engine.now();
        let mut due = Vec::new();
        for record in self
            .engine
            .store()
            .records(KIND, None, Some(DUE), None)
            .await?
        {
            let n: Notification = record.parse()?;
            if n.next_attempt_at.is_none_or(|at| at <= now) {
                due.push(n);
            }
        }
        Ok(due)
    }

    /// One attempt, unless another process sharing the store is making it or made it since
    /// `n` was read: the notification is held while it is sent, and read again first.
    async fn send_held(&self, n: Notification) {
        let engine = &self.engine;
        let participant = n.participant.clone();
        let held = engine
            .holding(KIND, &participant, async {
                let now = engine.store().record(KIND, &participant).await?;
                let unchanged = now
                    .filter(|r| r.status == DUE)
                    .and_then(|r| r.parse::<Notification>().ok())
                    .is_some_and(|now| now.attempts == n.attempts);
                if unchanged {
                    self.send(n).await;
                }
                Ok::<_, StoreError>(())
            })
            .await;
        if let Err(e) = held.and_then(|sent| sent.unwrap_or(Ok(()))) {
            tracing::warn!(error = %e, "sending a notification; trying again later");
        }
    }

    /// One attempt, recorded.
    async fn send(&self, mut n: Notification) {
        let store = self.engine.store();
        let outcome = match self.engine.store().participant(&n.participant).await {
            Ok(Some(p)) => {
                let body = json!({
                    "participantId": p.id,
                    "flowId": p.flow_id,
                    "status": p.status,
                    "personId": (!p.person.id.is_empty()).then_some(&p.person.id),
                    "variables": p.variables,
                    "notifiedAt": self.engine.now(),
                });
                let policy = match endpoint_policy(format!("the notify_url of {}", p.id), &n.url) {
                    Ok(policy) => policy,
                    Err(e) => {
                        self.finish(n, FAILED, Some(e)).await;
                        return;
                    }
                };
                post_json(
                    &self.client,
                    &policy,
                    &n.url,
                    &p.id,
                    &[],
                    body.to_string().into_bytes(),
                    self.timeout,
                )
                .await
            }
            Ok(None) => Err(SendError::Refused(
                "the participant no longer exists".into(),
            )),
            Err(e) => {
                tracing::warn!(error = %e, participant = %n.participant, "reading a participant to notify; retried");
                return;
            }
        };
        n.attempts += 1;
        let result = match outcome {
            Ok(_) => "sent",
            Err(SendError::Refused(_)) => "failed",
            Err(SendError::Retry { .. }) if n.attempts >= self.retry.max_attempts => "failed",
            Err(SendError::Retry { .. }) => "retry",
        };
        metrics::counter!("flowhost_notifications_total", "result" => result).increment(1);
        match outcome {
            Ok(_) => self.finish(n, SENT, None).await,
            Err(SendError::Refused(reason)) => self.finish(n, FAILED, Some(reason)).await,
            Err(SendError::Retry { reason, .. }) if n.attempts >= self.retry.max_attempts => {
                let reason = format!("{reason} (gave up after {} attempts)", n.attempts);
                self.finish(n, FAILED, Some(reason)).await;
            }
            Err(SendError::Retry { reason, after }) => {
                let wait = self.retry.delay(n.attempts, after);
                n.next_attempt_at = Some(self.engine.now() + wait.as_millis() as i64);
                n.last_error = Some(reason);
                if let Err(e) = save(store, &n, DUE).await {
                    tracing::warn!(error = %e, "saving a notification's retry");
                }
            }
        }
    }

    async fn finish(&self, mut n: Notification, status: &str, reason: Option<String>) {
        if let Some(reason) = &reason {
            tracing::warn!(participant = %n.participant, url = %n.url, %reason, "notification not sent");
        }
        n.next_attempt_at = None;
        n.last_error = reason;
        if let Err(e) = save(self.engine.store(), &n, status).await {
            tracing::warn!(error = %e, "saving a sent notification; it is sent again");
        }
    }
}

async fn save(
    store: &dyn flowhost::store::StateStore,
    n: &Notification,
    status: &str,
) -> Result<(), StoreError> {
    store
        .put_record(&Record {
            kind: KIND.into(),
            id: n.participant.clone(),
            key: n.flow.clone(),
            status: status.into(),
            body: serde_json::to_value(n).expect("notifications serialize"),
        })
        .await
}

/// A participant's notification as the API shows it: `armed`, `due`, `sent` or `failed`,
/// with its attempts and last error; `None` when it has none.
pub(crate) async fn state_of(
    engine: &Engine,
    participant: &str,
) -> Result<Option<serde_json::Value>, StoreError> {
    Ok(engine.store().record(KIND, participant).await?.map(|r| {
        json!({
            "url": r.body["url"],
            "state": r.status,
            "attempts": r.body["attempts"],
            "lastError": r.body["last_error"],
        })
    }))
}
