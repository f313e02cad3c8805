//! The scheduler: the engine's long-running loop. Every round it loads the flows deployed,
//! changed or paused through other processes since the last one (only those: the store
//! stamps each save), then resumes every participant that is due:
//! waits that ended, Call API delivery windows that opened, sending-speed queues whose slot
//! came, retries, chatbot sessions that timed out, and participants queued by Add to Flow or
//! an inbound message; and it does the background work still recorded (requests sent
//! without waiting) that no one is doing. `flowhost resume --watch` runs it; a server runs it the same way.
//!
//! It stops when its shutdown future completes: a round under way finishes first (no step is
//! cut short), no new round starts, and background requests are waited for.

use super::Engine;
use flowhost_store::ParticipantState;
use std::future::Future;
use std::time::Duration;

/// What one round did.
#[derive(Debug, Default)]
pub struct Round {
    /// How many participants were resumed.
    pub count: usize,
    /// The participants resumed, in their state after running; empty when the scheduler
    /// does not keep them ([`Scheduler::keep_states`]).
    pub resumed: Vec<ParticipantState>,
    /// Flows loaded because they were saved since the round before.
    pub flows: Vec<String>,
    /// What went wrong without stopping the loop: flows that no longer load, a round that
    /// failed (the next round tries again).
    pub problems: Vec<String>,
}

/// Runs rounds every `every` until told to stop.
pub struct Scheduler {
    engine: Engine,
    every: Duration,
    keep_states: bool,
}

impl Scheduler {
    /// A scheduler for `engine` with a round every `every` (at least 10 ms).
    pub fn new(engine: Engine, every: Duration) -> Self {
        Scheduler {
            engine,
            every: every.max(Duration::from_millis(10)),
            keep_states: true,
        }
    }

    /// Whether each [`Round`] keeps the states of the participants it resumed (it does
    /// unless told otherwise). A service that only counts them says no: then a round's
    /// memory does not grow with the number of participants due.
    pub fn keep_states(mut self, keep: bool) -> Self {
        self.keep_states = keep;
        self
    }

    /// One round: reload deployed flows, resume what is due.
    pub async fn round(&self) -> Round {
        let mut round = Round::default();
        match self.engine.load_changed_flows().await {
            Ok((flows, errors)) => {
                round.flows = flows;
                round
                    .problems
                    .extend(errors.iter().map(ToString::to_string));
            }
            Err(e) => round.problems.push(e.to_string()),
        }
        let resumed = if self.keep_states {
            self.engine.resume_due().await.map(|resumed| {
                round.count = resumed.len();
                round.resumed = resumed;
            })
        } else {
            self.engine
                .resume_due_each(|_| {})
                .await
                .map(|count| round.count = count)
        };
        // A participant of a flow this engine cannot run stays waiting; the next round
        // tries the rest again.
        if let Err(e) = resumed {
            round.problems.push(e.to_string());
        }
        // Background work a crashed or stopped process left recorded.
        if let Err(e) = self.engine.send_background().await {
            round.problems.push(e.to_string());
        }
        for problem in &round.problems {
            tracing::warn!(%problem, "scheduler round");
        }
        round
    }

    /// Runs rounds until `shutdown` completes, handing each round to `each`. The first round
    /// starts at once; the next ones every `every`, or sooner when the store signals work
    /// from another process ([`work_signals`](flowhost_store::ParticipantStore::work_signals)).
    pub async fn run(self, shutdown: impl Future<Output = ()>, mut each: impl FnMut(Round)) {
        let mut tick = tokio::time::interval(self.every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut signals = self.engine.store().work_signals();
        tokio::pin!(shutdown);
        loop {
            let trigger = tokio::select! {
                biased;
                _ = &mut shutdown => break,
                _ = tick.tick() => "tick",
                () = signalled(&mut signals) => {
                    tick.reset();
                    "signal"
                }
            };
            metrics::counter!("flowhost_scheduler_rounds_total", "trigger" => trigger).increment(1);
            each(self.round().await);
        }
        tracing::info!("scheduler stopped; waiting for background requests");
        self.engine.finish_background().await;
    }
}

/// Completes when the store signals work; never when it has no signals (or stopped giving
/// them).
async fn signalled(signals: &mut Option<tokio::sync::watch::Receiver<u64>>) {
    if let Some(receiver) = signals
        && receiver.changed().await.is_ok()
    {
        return;
    }
    *signals = None;
    std::future::pending().await
}
