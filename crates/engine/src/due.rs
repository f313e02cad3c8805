//! Running the participants that are due, in batches claimed in one statement: those
//! entering a flow side by side, those resuming a wait in the order they fell due.

use super::*;

impl Engine {
    /// Resumes every waiting participant whose time has come (and queued ones); returns
    /// their new states, in the order they were claimed. Participants entering a flow run up
    /// to [`RUN_AT_ONCE`] at a time, so one waiting for a plugin or an HTTP answer holds up
    /// only itself and their writes share commits; participants resuming a wait go on in
    /// the order they fell due, beside them.
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
            // Participants resuming a wait go on one after another, in the order they fell
            // due (a sending speed's queue is first in, first out); those entering a flow run
            // beside them, up to `RUN_AT_ONCE` at a time.
            let (resuming, entering): (Vec<_>, Vec<_>) = claims
                .into_iter()
                .enumerate()
                .partition(|(_, c)| c.was == Status::Waiting);
            let mut running = tokio::task::JoinSet::new();
            let engine = self.clone();
            running.spawn(async move {
                let mut ran = Vec::new();
                for (order, claim) in resuming {
                    ran.push((order, engine.run_claim_and_follow(claim, now).await));
                }
                ran
            });
            let mut done = Vec::new();
            for (order, claim) in entering {
                if running.len() > RUN_AT_ONCE
                    && let Some(finished) = running.join_next().await
                {
                    done.extend(finished.expect("a claimed participant's run panicked"));
                }
                let engine = self.clone();
                running.spawn(async move {
                    vec![(order, engine.run_claim_and_follow(claim, now).await)]
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
