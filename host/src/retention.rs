//! Retention: how long what is done is kept (`[retention]` in flowhost.toml), and the pruning
//! that removes the rest in small batches, each its own short write, so steps running
//! meanwhile wait for one batch at most. Analytics counters are kept apart and stay exact.
//!
//! ```toml
//! [retention]
//! finished_participants_days = 30   # completed, failed and canceled, with their journeys
//! messages_days = 30                # the message log (messages still to be sent stay)
//! closed_conversations_days = 90
//! ended_sessions_days = 30          # chatbot sessions
//! idempotency_keys_hours = 24       # retries of POST .../participants with the same key
//! every_ms = 60000                  # how often `flowhost serve` prunes
//! ```
//!
//! 0 keeps that kind forever. `flowhost prune` prunes once.

use crate::messaging::retention::{CLOSED_CONVERSATIONS, Done, ENDED_SESSIONS, MESSAGES};
use crate::store::{StateStore, StoreError};
use flowhost_types::clock::Millis;
use serde::Deserialize;

const DAY: Millis = 24 * HOUR;
const HOUR: Millis = 3_600_000;

/// `[retention]`: how long what is done is kept.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct RetentionConfig {
    /// Days a finished participant (completed, failed, canceled) and its journey are kept
    /// after its last step; Infobip keeps flow reports 30 days.
    pub finished_participants_days: u32,
    /// Days a message stays in the log once sent (or failed, or received).
    pub messages_days: u32,
    /// Days a closed agent conversation is kept.
    pub closed_conversations_days: u32,
    /// Days an ended chatbot session is kept.
    pub ended_sessions_days: u32,
    /// Hours an idempotency key of `POST /v1/flows/{id}/participants` is remembered.
    pub idempotency_keys_hours: u32,
    /// How often `flowhost serve` prunes, in milliseconds.
    pub every_ms: u64,
    /// Rows removed per write.
    pub batch: usize,
}

impl Default for RetentionConfig {
    fn default() -> Self {
        RetentionConfig {
            finished_participants_days: 30,
            messages_days: 30,
            closed_conversations_days: 90,
            ended_sessions_days: 30,
            idempotency_keys_hours: 24,
            every_ms: 60_000,
            batch: 500,
        }
    }
}

/// What one pruning removed.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Pruned {
    /// Finished participants, with their journeys.
    pub participants: usize,
    /// Messages from the log.
    pub messages: usize,
    /// Closed conversations.
    pub conversations: usize,
    /// Ended chatbot sessions.
    pub sessions: usize,
    /// Idempotency keys.
    pub idempotency_keys: usize,
}

impl Pruned {
    /// Everything removed.
    pub fn total(&self) -> usize {
        self.participants
            + self.messages
            + self.conversations
            + self.sessions
            + self.idempotency_keys
    }
}

/// Removes what is older than `config` keeps, as of `now`, batch by batch.
pub async fn prune(
    store: &dyn StateStore,
    now: Millis,
    config: &RetentionConfig,
) -> Result<Pruned, StoreError> {
    let batch = config.batch.max(1);
    let before = |days: u32, unit: Millis| (days > 0).then(|| now - Millis::from(days) * unit);
    let mut pruned = Pruned::default();
    if let Some(before) = before(config.finished_participants_days, DAY) {
        pruned.participants = batches(batch, || store.prune_finished(before, batch)).await?;
    }
    let records = |done: Done, days: u32| async move {
        match before(days, DAY) {
            Some(before) => {
                batches(batch, || {
                    store.prune_records(done.kind, done.statuses, done.since, before, batch)
                })
                .await
            }
            None => Ok(0),
        }
    };
    pruned.messages = records(MESSAGES, config.messages_days).await?;
    pruned.conversations = records(CLOSED_CONVERSATIONS, config.closed_conversations_days).await?;
    pruned.sessions = records(ENDED_SESSIONS, config.ended_sessions_days).await?;
    if let Some(before) = before(config.idempotency_keys_hours, HOUR) {
        pruned.idempotency_keys =
            batches(batch, || store.prune_idempotency_keys(before, batch)).await?;
    }
    for (what, n) in [
        ("participants", pruned.participants),
        ("messages", pruned.messages),
        ("conversations", pruned.conversations),
        ("sessions", pruned.sessions),
        ("idempotency_keys", pruned.idempotency_keys),
    ] {
        metrics::counter!("flowhost_pruned_total", "what" => what).increment(n as u64);
    }
    Ok(pruned)
}

/// Runs `one` until a batch comes back short, letting other work in between; the sum.
async fn batches<F, Fut>(batch: usize, mut one: F) -> Result<usize, StoreError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<usize, StoreError>>,
{
    let mut total = 0;
    loop {
        let n = one().await?;
        total += n;
        if n < batch {
            return Ok(total);
        }
        tokio::task::yield_now().await;
    }
}
