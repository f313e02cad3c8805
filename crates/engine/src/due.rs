//! Running the participants that are due, in batches claimed in one statement, side by
//! side; those resuming in an element whose queue is first in, first out (a sending speed)
//! one after another, in the order they fell due.

use super::*;

impl Engine {
    /// Resumes every waiting participant whose time has come (and queued ones); returns
    /// their new states, in the order they were claimed. They run up to [`RUN_AT_ONCE`] at a
    /// time, so one waiting for a plugin or an HTTP answer holds up only itself and their
    /// writes share commits. Participants resuming in an element that keeps order
    /// ([`Element::resumes_in_order`]) go on one after another in the order they fell due,
    /// as one of those.
    pub async fn resume_due(&self) -> Result<Vec<ParticipantState>, EngineError> {
        let now = self.inner.clock.now_ms();
        let held = self.paused_flows();
        let mut resumed = Vec::new();
        let mut failed = None;
        loop {
            // Claimed in one statement: engines sharing the database split the due work.
            let claims = self
                .inner
                .store
                .claim_due(&self.inner.owner, now, self.lease_expiry(), 256, &held)
                .await?;
            if claims.is_empty() {
                break;
            }
            let mut progressed = false;
            // Every claimed participant runs, even after one fails: the rest would otherwise
            // wait for their leases to expire.
            let mut lanes: Vec<Vec<(usize, flowhost_store::Claim)>> = Vec::new();
            let mut ordered: HashMap<(String, String), usize> = HashMap::new();
            for (order, claim) in claims.into_iter().enumerate() {
                let key = match claim.was {
                    Status::Waiting => self.order_key(&claim).await,
                    _ => None,
                };
                match key {
                    Some(key) => match ordered.get(&key) {
                        Some(&lane) => lanes[lane].push((order, claim)),
                        None => {
                            ordered.insert(key, lanes.len());
                            lanes.push(vec![(order, claim)]);
                        }
                    },
                    None => lanes.push(vec![(order, claim)]),
                }
            }
            let mut running = tokio::task::JoinSet::new();
            let mut done = Vec::new();
            for lane in lanes {
                if running.len() >= RUN_AT_ONCE
                    && let Some(finished) = running.join_next().await
                {
                    done.extend(finished.expect("a claimed participant's run panicked"));
                }
                let engine = self.clone();
                running.spawn(async move {
                    let mut ran = Vec::with_capacity(lane.len());
                    for (order, claim) in lane {
                        ran.push((order, engine.run_claim_and_follow(claim, now).await));
                    }
                    ran
                });
            }
            while let Some(finished) = running.join_next().await {
                done.extend(finished.expect("a claimed participant's run panicked"));
            }
            done.sort_by_key(|(order, _)| *order);
            for (_, (ran, followed)) in done {
                match ran {
                    Ok(Some(state)) => {
                        progressed = true;
                        resumed.push(state);
                    }
                    Ok(None) => {}
                    // Another engine took it over meanwhile; it goes on there.
                    Err(EngineError::Store(flowhost_store::StoreError::LeaseLost { .. })) => {}
                    Err(e) => {
                        failed.get_or_insert(e);
                    }
                }
                match followed {
                    Ok(states) => resumed.extend(states),
                    Err(e) => {
                        failed.get_or_insert(e);
                    }
                }
            }
            if !progressed || failed.is_some() {
                break;
            }
        }
        match failed {
            Some(e) => Err(e),
            None => Ok(resumed),
        }
    }

    /// The queue a participant resuming a wait keeps its place in: its flow and element, if
    /// that element resumes in order. A participant the store did not read with its claim,
    /// or whose flow cannot be built here, is taken to keep order (the safe answer).
    async fn order_key(&self, claim: &flowhost_store::Claim) -> Option<(String, String)> {
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

    /// Runs a claimed participant, then the ones it entered or woke.
    async fn run_claim_and_follow(
        &self,
        claim: flowhost_store::Claim,
        now: Millis,
    ) -> (
        Result<Option<ParticipantState>, EngineError>,
        Result<Vec<ParticipantState>, EngineError>,
    ) {
        let mut follow = Vec::new();
        let ran = self.run_claim(claim, now, &mut follow).await;
        let followed = self.follow_up(follow).await;
        (ran, followed)
    }
}
