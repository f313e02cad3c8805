//! Running participants: entering them, running one that was claimed (the due ones are
//! claimed in `due.rs`), advancing them step by step (steps without outside effects written
//! with the next write), and the background work steps leave behind.

use super::*;
use held::Held;

impl Engine {
    /// Enters a person into a flow at its API entry point and runs them until the flow ends
    /// or they wait (and then the participants they entered into other flows).
    pub async fn start(
        &self,
        flow_id: &str,
        person: Person,
        variables: BTreeMap<String, Value>,
    ) -> Result<ParticipantState, EngineError> {
        self.start_at(flow_id, EntryKind::Api, person, variables)
            .await
    }

    /// Enters the person with id `person_id` from People into a flow at its API entry point.
    pub async fn start_person(
        &self,
        flow_id: &str,
        person_id: &str,
        variables: BTreeMap<String, Value>,
    ) -> Result<ParticipantState, EngineError> {
        let person =
            self.inner.store.person(person_id).await?.ok_or_else(|| {
                EngineError::Rejected(format!("no person {person_id:?} in People"))
            })?;
        self.enter(flow_id, EntryKind::Api, person, variables).await
    }

    /// Enters a person into a flow at its entry point of `kind` and runs them until the flow
    /// ends or they wait.
    pub async fn start_at(
        &self,
        flow_id: &str,
        kind: EntryKind,
        person: Person,
        variables: BTreeMap<String, Value>,
    ) -> Result<ParticipantState, EngineError> {
        let person = self.kept_person(person).await?;
        self.enter(flow_id, kind, person, variables).await
    }

    /// [`Engine::start_at`] with the person as People keeps them.
    async fn enter(
        &self,
        flow_id: &str,
        kind: EntryKind,
        person: Person,
        variables: BTreeMap<String, Value>,
    ) -> Result<ParticipantState, EngineError> {
        let (flow, start) = self.entry_point(flow_id, kind)?;
        let state = ParticipantState::new(flow_id, flow.version, &start, person, variables);
        // Stored with its first write (see `Held`): the caller hears of it only after that.
        let mut held = Held {
            lease: Lease {
                participant: state.id.clone(),
                owner: self.inner.owner.clone(),
                expires_at: self.lease_expiry(),
                epoch: 1,
            },
            entered: Some(state.clone()),
        };
        let mut follow = Vec::new();
        let state = self
            .advance(&flow, state, &mut held, false, 0, &mut follow)
            .await?;
        self.announce(&state);
        self.follow_up(follow).await?;
        Ok(state)
    }

    /// Enters people into a flow at its API entry point, all or none, without running them:
    /// they are stored queued, so they are safe (and due) when this returns. With an
    /// idempotency `key`, a retry of the same request (same `fingerprint`) enters nobody
    /// again and gets the first request's participants back; run them with
    /// [`Engine::follow_up`], or let the scheduler find them.
    pub async fn admit(
        &self,
        flow_id: &str,
        entrants: Vec<(Person, BTreeMap<String, Value>)>,
        key: Option<AdmitKey<'_>>,
    ) -> Result<Admitted, EngineError> {
        let (flow, start) = self.entry_point(flow_id, EntryKind::Api)?;
        let states: Vec<ParticipantState> = entrants
            .into_iter()
            .map(|(person, variables)| {
                ParticipantState::new(flow_id, flow.version, &start, person, variables)
            })
            .collect();
        let ids: Vec<String> = states.iter().map(|p| p.id.clone()).collect();
        let answer = serde_json::json!({ "participants": ids });
        let scope = format!("participants:{flow_id}");
        let request = key.map(|k| flowhost_store::IdempotentRequest {
            scope: &scope,
            key: k.key,
            fingerprint: k.fingerprint,
            answer: &answer,
            at: self.now(),
        });
        match self.inner.store.insert_queued(&states, request).await? {
            None => Ok(Admitted {
                participants: ids,
                repeated: false,
            }),
            Some(earlier) => {
                let key = key.expect("an earlier answer comes only for a key");
                if earlier.fingerprint != key.fingerprint {
                    return Err(EngineError::KeyReused {
                        key: key.key.to_owned(),
                    });
                }
                let participants = earlier.answer["participants"]
                    .as_array()
                    .map(|ids| {
                        ids.iter()
                            .filter_map(|id| id.as_str().map(str::to_owned))
                            .collect()
                    })
                    .unwrap_or_default();
                Ok(Admitted {
                    participants,
                    repeated: true,
                })
            }
        }
    }

    /// An active flow and the element its entry point of `kind` starts at.
    fn entry_point(
        &self,
        flow_id: &str,
        kind: EntryKind,
    ) -> Result<(Arc<CompiledFlow>, String), EngineError> {
        let flow = self.flow(flow_id)?;
        if flow.def.status != FlowStatus::Active {
            return Err(EngineError::FlowNotActive {
                id: flow_id.to_owned(),
                status: flow.def.status,
            });
        }
        let start = flow
            .def
            .entry_points
            .iter()
            .find(|e| e.kind == kind)
            .ok_or(EngineError::NoEntryPoint {
                id: flow_id.to_owned(),
                kind: kind.as_str(),
            })?
            .start
            .clone();
        Ok((flow, start))
    }

    /// Runs participants entered or woken by the steps just taken (or woken by a service
    /// outside the engine, such as a chatbot session ending), and the ones they enter or
    /// wake in turn, up to [`MAX_FOLLOW_UPS`].
    pub async fn follow_up(
        &self,
        mut queue: Vec<String>,
    ) -> Result<Vec<ParticipantState>, EngineError> {
        let mut done = Vec::new();
        let mut next = 0;
        while next < queue.len() && next < MAX_FOLLOW_UPS {
            let id = queue[next].clone();
            next += 1;
            match self.run_claimed(&id, &mut queue).await {
                Ok(Some(state)) => done.push(state),
                Ok(None) => {}
                // Put back by `run_claimed`: an engine that has the flow continues it, and
                // the participants after it in the queue still run.
                Err(EngineError::UnknownFlow(flow)) => {
                    tracing::warn!(
                        participant = %id,
                        flow = %flow,
                        "participant waits for a flow this engine has not loaded; an engine that has it will continue it"
                    );
                }
                Err(e) => return Err(e),
            }
        }
        Ok(done)
    }

    /// Claims a waiting or queued participant and runs it; `None` when another engine has it.
    pub(super) async fn run_claimed(
        &self,
        id: &str,
        follow: &mut Vec<String>,
    ) -> Result<Option<ParticipantState>, EngineError> {
        let now = self.now();
        let Some(claim) = self
            .inner
            .store
            .claim(id, &self.inner.owner, now, self.lease_expiry())
            .await?
        else {
            return Ok(None);
        };
        self.run_claim(claim, now, follow).await
    }

    /// Runs a participant this engine has claimed (at `now`); `None` when it goes back
    /// untouched (its wait has not ended, its flow is paused).
    pub(super) async fn run_claim(
        &self,
        mut claim: flowhost_store::Claim,
        now: Millis,
        follow: &mut Vec<String>,
    ) -> Result<Option<ParticipantState>, EngineError> {
        // Claimed in a batch a while ago: renew before the lease runs low.
        if self.now() > claim.lease.expires_at - self.inner.lease_ms / 2 {
            claim.lease = self
                .inner
                .store
                .renew(&claim.lease, self.lease_expiry())
                .await?;
        }
        let id = claim.lease.participant.as_str();
        let before = claim.was;
        if claim.retried > 0 {
            metrics::counter!("flowhost_participants_taken_over_total").increment(1);
            tracing::warn!(
                participant = %id,
                retried = claim.retried,
                "taking over a participant whose lease expired before its step was committed; the step runs again"
            );
        }
        let state = match claim.state.take() {
            // With its person as People has it (see `Claim::state`).
            Some(state) => state,
            None => {
                let mut state = self
                    .inner
                    .store
                    .participant(id)
                    .await?
                    .ok_or_else(|| EngineError::UnknownParticipant(id.to_owned()))?;
                state.person = self.kept_person(state.person).await?;
                state
            }
        };
        // A list of due participants can be stale: one that was queued when the list was
        // read may have run and started waiting since. A wait that has not ended (no event,
        // its time not come) goes back untouched.
        if before == Status::Waiting
            && state.event.is_none()
            && state.waiting_until.is_none_or(|until| until > now)
        {
            self.inner
                .store
                .release(&claim.lease, &state_waiting(state))
                .await?;
            return Ok(None);
        }
        let flow = match self.flow_of(&state).await {
            Ok(f) => f,
            Err(e) => {
                // Put it back: a later engine with the flow can resume it.
                let mut state = state;
                state.status = before;
                self.inner.store.release(&claim.lease, &state).await?;
                return Err(e);
            }
        };
        if flow.def.status == FlowStatus::Paused {
            // Held where it is, its event or due time kept, until the flow is resumed.
            let mut state = state;
            state.status = before;
            self.inner.store.release(&claim.lease, &state).await?;
            return Ok(None);
        }
        let mut held = Held {
            lease: claim.lease,
            entered: None,
        };
        let state = self
            .advance(
                &flow,
                state,
                &mut held,
                before == Status::Waiting,
                claim.retried,
                follow,
            )
            .await?;
        self.announce(&state);
        Ok(Some(state))
    }

    pub(super) async fn advance(
        &self,
        flow: &CompiledFlow,
        mut p: ParticipantState,
        held: &mut Held,
        mut resumed: bool,
        mut retried: u32,
        follow: &mut Vec<String>,
    ) -> Result<ParticipantState, EngineError> {
        p.status = Status::Running;
        p.waiting_until = None;
        p.wait_key = None;
        let mut event = p.event.take();
        // Steps run since the last write, and whether one of them had outside effects: pure
        // steps are written with the next write (see `Element::has_effects`).
        let mut pending: Vec<PendingStep> = Vec::new();
        let mut pending_effects = false;
        for _ in 0..MAX_STEPS_PER_RUN {
            let Some(current) = p.current.clone() else {
                p.status = Status::Completed;
                if pending.is_empty() && held.stored() {
                    self.inner.store.release(&held.lease, &p).await?;
                } else {
                    self.commit(held, &p, &mut pending).await?;
                }
                return Ok(p);
            };
            let Some(node) = flow.nodes.get(&current) else {
                // Only reachable when a redeployed flow dropped the element someone waits in.
                p.status = Status::Failed;
                let mut entry = self.entry(&p, &current, "?");
                entry.error = Some(format!(
                    "element {current:?} is no longer in flow {:?}",
                    flow.def.id
                ));
                p.steps += 1;
                p.current = None;
                pending.push(PendingStep::new(entry, "?"));
                self.commit(held, &p, &mut pending).await?;
                return Ok(p);
            };
            let effects = node.element.has_effects();
            // A participant not stored yet is stored as it entered before its first step
            // with effects: a crash during the step leaves it to be taken over, not lost
            // after its effects.
            if effects {
                self.store_entered(held).await?;
            }
            // Two steps with effects never share a write: after a crash, only the last one
            // runs again.
            if effects && pending_effects {
                self.commit(held, &p, &mut pending).await?;
                pending_effects = false;
            }
            let now = self.inner.clock.now_ms();
            let started = Instant::now();
            let span = tracing::info_span!(
                "step",
                flow = %flow.def.id,
                element = %current,
                participant = %p.id,
            );
            let run = node.element.run(StepInput {
                flow_id: &flow.def.id,
                element_id: &current,
                participant_id: &p.id,
                person: &p.person,
                variables: &p.variables,
                now,
                resumed,
                state: p.element_state.as_ref(),
                event: event.as_ref(),
                flows: self,
                step: p.steps + 1,
            });
            let run = run.instrument(span.clone());
            let result = if held.stored() {
                self.renewing(&held.lease, run).await?
            } else {
                // Nobody else can claim a participant the store has not seen: no renewals.
                run.await
            };
            pending_effects |= effects;
            let entered = !resumed;
            resumed = false;
            event = None;
            p.element_state = None;
            let duration_us = started.elapsed().as_micros() as u64;
            record_step_metrics(&flow.def.id, &current, &result.outcome, started);
            span.in_scope(|| tracing::debug!(outcome = ?result.outcome, duration_us, "step ran"));
            for (k, v) in &result.set {
                p.variables.insert(k.clone(), v.clone());
            }
            let mut entry = self.entry(&p, &current, &node.type_name);
            // Steps up to the first with outside effects may have run before a takeover.
            entry.retried = retried;
            if effects {
                retried = 0;
            }
            entry.duration_us = duration_us;
            entry.variables_changed = result.set;
            entry.logs = result.logs;
            entry.data = result.data;
            entry.requests = result.requests;
            follow.extend(result.enter.iter().map(|e| e.id.clone()));
            follow.extend(result.wake);
            let step = |entry| PendingStep {
                entry,
                entered,
                tally: result.tally,
                enter: result.enter,
                background: result.background,
                type_name: node.type_name.clone(),
            };
            let (key, until) = match result.outcome {
                StepOutcome::Wait(until) => (None, Some(until)),
                StepOutcome::WaitFor { key, until } => (Some(key), until),
                outcome => {
                    self.leave(node, &current, outcome, &mut p, &mut entry);
                    p.steps += 1;
                    entry.seq = p.steps;
                    pending.push(step(entry));
                    if p.status != Status::Running {
                        self.commit(held, &p, &mut pending).await?;
                        return Ok(p);
                    }
                    continue;
                }
            };
            p.element_state = result.state;
            p.status = Status::Waiting;
            p.waiting_until = until;
            p.wait_key = key;
            entry.waiting_until = until;
            p.steps += 1;
            entry.seq = p.steps;
            pending.push(step(entry));
            self.commit(held, &p, &mut pending).await?;
            return Ok(p);
        }
        p.status = Status::Failed;
        let mut entry = self.entry(&p, p.current.as_deref().unwrap_or("?"), "engine");
        entry.error = Some(format!(
            "more than {MAX_STEPS_PER_RUN} steps without waiting; the flow loops; add a wait element to the loop"
        ));
        p.steps += 1;
        entry.seq = p.steps;
        pending.push(PendingStep::new(entry, "engine"));
        self.commit(held, &p, &mut pending).await?;
        Ok(p)
    }

    /// The person as People keeps them now, if People has their id: it may have changed
    /// since the participant entered (Add to Flow updates attributes).
    async fn kept_person(&self, person: Person) -> Result<Person, EngineError> {
        if person.id.is_empty() {
            return Ok(person);
        }
        Ok(self.inner.store.person(&person.id).await?.unwrap_or(person))
    }

    /// Applies an outcome that leaves the element (or ends the participant there).
    pub(super) fn leave(
        &self,
        node: &Node,
        current: &str,
        outcome: StepOutcome,
        p: &mut ParticipantState,
        entry: &mut JourneyEntry,
    ) {
        match outcome {
            StepOutcome::Exit(exit) => {
                p.current = node.exits.get(&exit).cloned();
                entry.next = p.current.clone();
                entry.exit = Some(exit);
            }
            StepOutcome::Wait(_) | StepOutcome::WaitFor { .. } => {
                unreachable!("waits are handled by the caller")
            }
            StepOutcome::End => {
                p.current = None;
            }
            StepOutcome::Failed(reason) => {
                entry.error = Some(reason);
                match node.exits.get(ERROR_EXIT) {
                    Some(next) => {
                        p.current = Some(next.clone());
                        entry.next = p.current.clone();
                        entry.exit = Some(ERROR_EXIT.to_owned());
                    }
                    None => {
                        tracing::warn!(
                            flow = %p.flow_id,
                            element = %current,
                            participant = %p.id,
                            reason = entry.error.as_deref().unwrap_or_default(),
                            "participant failed: the element failed and its error exit is not connected"
                        );
                        entry.logs.push(LogLine {
                            level: LogLevel::Error,
                            message: format!(
                                "element {current:?} failed and its error exit is not connected; the participant stops here"
                            ),
                        });
                        p.current = None;
                        p.status = Status::Failed;
                        return;
                    }
                }
            }
        }
        if p.current.is_none() {
            p.status = Status::Completed;
        }
    }

    /// A journey entry for the participant's next step, to be filled in.
    pub(super) fn entry(
        &self,
        p: &ParticipantState,
        element_id: &str,
        element_type: &str,
    ) -> JourneyEntry {
        JourneyEntry {
            seq: p.steps + 1,
            at_ms: self.inner.clock.now_ms(),
            flow_version: p.flow_version,
            element_id: element_id.to_owned(),
            element_type: element_type.to_owned(),
            exit: None,
            next: None,
            variables_changed: BTreeMap::new(),
            logs: Vec::new(),
            data: None,
            error: None,
            waiting_until: None,
            duration_us: 0,
            retried: 0,
            requests: Vec::new(),
        }
    }
}

/// A claimed participant put back as it was: waiting.
fn state_waiting(mut state: ParticipantState) -> ParticipantState {
    state.status = Status::Waiting;
    state
}

/// A step run but not yet written.
pub(super) struct PendingStep {
    pub(super) entry: JourneyEntry,
    /// The participant entered the element in this step (counts in analytics).
    pub(super) entered: bool,
    /// Counted in the element's analytics details.
    pub(super) tally: Vec<String>,
    /// Participants it entered into flows.
    pub(super) enter: Vec<ParticipantState>,
    /// Work it left to do once it is written.
    pub(super) background: Option<Value>,
    pub(super) type_name: String,
}

impl PendingStep {
    /// A step the engine itself records (an element gone, a loop stopped).
    fn new(entry: JourneyEntry, type_name: &str) -> Self {
        PendingStep {
            entry,
            entered: false,
            tally: Vec::new(),
            enter: Vec::new(),
            background: None,
            type_name: type_name.to_owned(),
        }
    }
}
