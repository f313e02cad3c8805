//! Running the participants that are due: claimed in batches of one statement each, run side
//! by side, the next batch claimed while the last one runs; those resuming in an element
//! whose queue is first in, first out (a sending speed) one after another, in the order they
//! fell due.

use super::*;
use flowhost_store::Claim;
use std::collections::VecDeque;
use tokio::sync::oneshot;

/// Participants claimed in one statement.
const CLAIM_BATCH: usize = 256;

/// What one claimed participant's run gave: its batch and place in the claim order, then
/// its own result and those of the participants it entered or woke.
type Ran = (
    usize,
    usize,
    Result<Option<ParticipantState>, EngineError>,
    Result<Vec<ParticipantState>, EngineError>,
);

impl Engine {
    /// Resumes every waiting participant whose time has come (and queued ones); returns
    /// their new states, in the order they were claimed (each followed by the participants
    /// it entered or woke). See [`Engine::resume_due_each`], which hands them over as they
    /// finish instead of keeping them all.
    pub async fn resume_due(&self) -> Result<Vec<ParticipantState>, EngineError> {
        let mut resumed = Vec::new();
        self.resume_due_ordered(|order, state| resumed.push((order, state)))
            .await?;
        // Stable: a participant's follow-ups stay after it.
        resumed.sort_by_key(|(order, _)| *order);
        Ok(resumed.into_iter().map(|(_, state)| state).collect())
    }

    /// Resumes every waiting participant whose time has come (and queued ones), handing each
    /// new state to `each` as its run finishes; returns how many. They run up to
    /// [`RUN_AT_ONCE`] at a time, so one waiting for a plugin or an HTTP answer holds up only
    /// itself, and their writes share commits; the next batch is claimed while the last one
    /// runs. Participants resuming in an element that keeps order
    /// ([`Element::resumes_in_order`]) go on one after another in the order they fell due.
    /// Memory stays flat however many are due: nothing is kept once handed over.
    pub async fn resume_due_each(
        &self,
        mut each: impl FnMut(ParticipantState),
    ) -> Result<usize, EngineError> {
        let mut count = 0;
        self.resume_due_ordered(|_, state| {
            count += 1;
            each(state);
        })
        .await?;
        Ok(count)
    }

    /// [`Engine::resume_due_each`], with each state's place in the claim order.
    ///
    /// The next batch is claimed while the lanes of the last ones run, as soon as fewer than
    /// [`RUN_AT_ONCE`] wait to start: the runs do not wait for a claim's round trip, and
    /// this engine holds few more claims than it can start (engines sharing the database
    /// split the due work).
    async fn resume_due_ordered(
        &self,
        mut each: impl FnMut(usize, ParticipantState),
    ) -> Result<(), EngineError> {
        let now = self.inner.clock.now_ms();
        let held = self.paused_flows();
        let claim = || {
            self.inner.store.claim_due(
                &self.inner.owner,
                now,
                self.lease_expiry(),
                CLAIM_BATCH,
                &held,
            )
        };
        let mut progress = Progress::default();
        let mut running: tokio::task::JoinSet<Vec<Ran>> = tokio::task::JoinSet::new();
        // Lanes claimed but not started, with their batch, in claim order.
        let mut ready: VecDeque<(Lane, usize)> = VecDeque::new();
        // The last lane of each queue that keeps order: the next one starts after it ends.
        let mut queues: HashMap<(String, String), oneshot::Receiver<()>> = HashMap::new();
        let mut claimed = 0;
        let mut claiming = Some(Box::pin(claim()));
        let mut more = true;
        loop {
            while running.len() < RUN_AT_ONCE
                && let Some((lane, batch)) = ready.pop_front()
            {
                running.spawn(lane.run(self.clone(), now, batch));
            }
            // A batch in which nobody went on (all put back: a flow paused meanwhile) would
            // be claimed again and again: stop at it. So does a failure.
            more &= !progress.stalled && progress.failed.is_none();
            if more && claiming.is_none() && ready.len() < RUN_AT_ONCE {
                claiming = Some(Box::pin(claim()));
            }
            tokio::select! {
                claims = async { claiming.as_mut().expect("checked").await }, if claiming.is_some() => {
                    claiming = None;
                    match claims {
                        Ok(claims) if !claims.is_empty() => {
                            let (batch, size) = (progress.batches.len(), claims.len());
                            progress.batches.push((size, false));
                            // Every claimed participant runs, even after one fails: the
                            // rest would otherwise wait for their leases to expire.
                            for lane in self.lanes(claims, claimed, &mut queues).await {
                                ready.push_back((lane, batch));
                            }
                            claimed += size;
                        }
                        Ok(_) => more = false,
                        Err(e) => {
                            progress.failed.get_or_insert(e.into());
                        }
                    }
                }
                Some(finished) = running.join_next(), if !running.is_empty() => {
                    let ran = finished.expect("a claimed participant's run panicked");
                    progress.settle(ran, &mut each);
                }
                else => break,
            }
        }
        match progress.failed {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// The claims of one batch in lanes: each on its own, except those resuming in an
    /// element that keeps order, which share a lane per flow and element that starts after
    /// the same queue's lane of the batch before.
    async fn lanes(
        &self,
        claims: Vec<Claim>,
        first: usize,
        queues: &mut HashMap<(String, String), oneshot::Receiver<()>>,
    ) -> Vec<Lane> {
        let mut lanes: Vec<Lane> = Vec::new();
        let mut ordered: HashMap<(String, String), usize> = HashMap::new();
        for (i, claim) in claims.into_iter().enumerate() {
            let key = match claim.was {
                Status::Waiting => self.order_key(&claim).await,
                _ => None,
            };
            let Some(key) = key else {
                lanes.push(Lane::new(first + i, claim));
                continue;
            };
            if let Some(&lane) = ordered.get(&key) {
                lanes[lane].claims.push((first + i, claim));
                continue;
            }
            let mut lane = Lane::new(first + i, claim);
            let (done, next) = oneshot::channel();
            lane.after = queues.insert(key.clone(), next);
            lane.done = Some(done);
            ordered.insert(key, lanes.len());
            lanes.push(lane);
        }
        lanes
    }
}

/// How the batches of one [`Engine::resume_due_each`] are getting on.
#[derive(Default)]
struct Progress {
    /// Per batch: claims still running, and whether any of them went on.
    batches: Vec<(usize, bool)>,
    /// A batch ran in which nobody went on.
    stalled: bool,
    /// The first failure; the claims already made still run.
    failed: Option<EngineError>,
}

impl Progress {
    /// Hands over what a lane ran and counts it against its batch.
    fn settle(&mut self, ran: Vec<Ran>, each: &mut impl FnMut(usize, ParticipantState)) {
        for (batch, order, ran, followed) in ran {
            match ran {
                Ok(Some(state)) => {
                    self.batches[batch].1 = true;
                    each(order, state);
                }
                Ok(None) => {}
                // Another engine took it over meanwhile; it goes on there.
                Err(EngineError::Store(flowhost_store::StoreError::LeaseLost { .. })) => {}
                Err(e) => {
                    self.failed.get_or_insert(e);
                }
            }
            match followed {
                Ok(states) => states.into_iter().for_each(|s| each(order, s)),
                Err(e) => {
                    self.failed.get_or_insert(e);
                }
            }
            let (left, went) = &mut self.batches[batch];
            *left -= 1;
            self.stalled |= *left == 0 && !*went;
        }
    }
}

impl Engine {
    /// The queue a participant resuming a wait keeps its place in: its flow and element, if
    /// that element resumes in order. A participant the store did not read with its claim,
    /// or whose flow cannot be built here, is taken to keep order (the safe answer).
    async fn order_key(&self, claim: &Claim) -> Option<(String, String)> {
        let Some(state) = &claim.state else {
            return Some((String::new(), String::new()));
        };
        let current = state.current.clone().unwrap_or_default();
        let keeps_order = match self.flow_at(&state.flow_id, state.flow_version).await {
            Ok(flow) => flow
                .nodes
                .get(&current)
                .is_none_or(|node| node.element.resumes_in_order()),
            Err(_) => true,
        };
        keeps_order.then(|| (state.flow_id.clone(), current))
    }
}

/// Claims run one after another, by one task.
struct Lane {
    claims: Vec<(usize, Claim)>,
    /// Ends when the lane before it in the same queue has run (its sender is dropped).
    after: Option<oneshot::Receiver<()>>,
    /// Dropped when this lane has run, which lets the next lane of its queue start.
    done: Option<oneshot::Sender<()>>,
}

impl Lane {
    fn new(order: usize, claim: Claim) -> Self {
        Lane {
            claims: vec![(order, claim)],
            after: None,
            done: None,
        }
    }

    async fn run(self, engine: Engine, now: Millis, batch: usize) -> Vec<Ran> {
        if let Some(after) = self.after {
            let _ = after.await;
        }
        let mut ran = Vec::with_capacity(self.claims.len());
        for (order, claim) in self.claims {
            let mut follow = Vec::new();
            let own = engine.run_claim(claim, now, &mut follow).await;
            let followed = engine.follow_up(follow).await;
            ran.push((batch, order, own, followed));
        }
        drop(self.done);
        ran
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::element::{
        BoxFuture, ElementType, ElementTypes, StepInput, StepOutcome, StepResult,
    };
    use flowhost_flow::ElementDef;
    use flowhost_types::clock::ManualClock;
    use std::sync::Mutex;
    use std::time::Duration;

    /// Waits an hour; on resuming, notes the participant's `n` and takes a while (longer for
    /// earlier participants), so that participants run side by side would finish out of
    /// order.
    struct Queue {
        resumed: Arc<Mutex<Vec<i64>>>,
        in_order: bool,
    }

    impl Element for Queue {
        fn exits(&self) -> Vec<String> {
            Vec::new()
        }
        fn run<'a>(&'a self, input: StepInput<'a>) -> BoxFuture<'a, StepResult> {
            Box::pin(async move {
                if !input.resumed {
                    return StepResult::new(StepOutcome::Wait(input.now + 3_600_000));
                }
                let n = input.variables["n"].as_i64().unwrap();
                self.resumed.lock().unwrap().push(n);
                tokio::time::sleep(Duration::from_micros(400 - (n % 4) as u64 * 100)).await;
                StepResult::new(StepOutcome::End)
            })
        }
        fn resumes_in_order(&self) -> bool {
            self.in_order
        }
    }

    struct QueueType(Arc<Mutex<Vec<i64>>>, bool);

    impl ElementType for QueueType {
        fn build(&self, _def: &ElementDef) -> Result<Box<dyn Element>, Vec<Issue>> {
            Ok(Box::new(Queue {
                resumed: self.0.clone(),
                in_order: self.1,
            }))
        }
    }

    /// `count` participants admitted in order of `n` into a flow whose one element waits an
    /// hour, run into the wait, then resumed an hour later: the order they resumed in, and
    /// the engine's answers to both rounds (counts).
    async fn resume(count: i64, in_order: bool) -> (Vec<i64>, usize, usize) {
        let resumed = Arc::new(Mutex::new(Vec::new()));
        let mut types = ElementTypes::new();
        types.register("queue", Arc::new(QueueType(resumed.clone(), in_order)));
        let store = Arc::new(flowhost_store_sqlite::SqliteStore::in_memory().unwrap());
        let clock = Arc::new(ManualClock::new(1_000));
        let engine = Engine::new(store, clock.clone(), types);
        let flow = FlowDef::parse(
            r#"{"id": "q", "name": "Q", "entry_points": [{"type": "api", "start": "q"}],
                "elements": [{"id": "q", "type": "queue"}]}"#,
            "q.json",
        )
        .unwrap();
        engine.deploy(flow, "q.json").await.unwrap();
        let entrants = (0..count)
            .map(|n| {
                let vars = BTreeMap::from([("n".to_owned(), Value::from(n))]);
                (Person::default(), vars)
            })
            .collect();
        engine.admit("q", entrants, None).await.unwrap();
        let waiting = engine.resume_due_each(|_| {}).await.unwrap();
        clock.advance_ms(3_600_000);
        let mut ended = 0;
        engine
            .resume_due_each(|p| ended += usize::from(p.status == Status::Completed))
            .await
            .unwrap();
        let order = resumed.lock().unwrap().clone();
        (order, waiting, ended)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_queue_that_keeps_order_resumes_in_order_across_claim_batches() {
        // More than two batches: the next batch is claimed while the one before still runs.
        let count = (CLAIM_BATCH * 2 + 100) as i64;
        let (order, waiting, ended) = resume(count, true).await;
        assert_eq!((waiting, ended), (count as usize, count as usize));
        assert_eq!(order, (0..count).collect::<Vec<_>>());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn elsewhere_participants_resume_side_by_side() {
        let count = (CLAIM_BATCH + 50) as i64;
        let (mut order, waiting, ended) = resume(count, false).await;
        assert_eq!((waiting, ended), (count as usize, count as usize));
        // All of them, but not one after another.
        assert_ne!(order, (0..count).collect::<Vec<_>>());
        order.sort_unstable();
        assert_eq!(order, (0..count).collect::<Vec<_>>());
    }
}
