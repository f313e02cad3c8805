//! Work steps leave to do after the participant has moved on (a Call API request sent without
//! waiting for its response). It is written as a record in the step's own transaction, done
//! once the step is committed, and its report appended to the journey in one transaction with
//! the record's removal. A crash in between loses nothing: [`Engine::send_background`] (each
//! scheduler round) does what is still recorded, so the work runs at least once. Processes
//! sharing the store take turns through a hold ([`Engine::holding`]): while one does a piece
//! of work, the others leave it alone.

use super::*;
use flowhost_store::Record;

/// The record kind of background work.
pub const BACKGROUND: &str = "background";

/// What a background record holds besides the work itself.
#[derive(serde::Serialize, serde::Deserialize)]
struct Work {
    /// Participant id.
    participant: String,
    /// The element and its type's canonical name, which does the work.
    element: String,
    element_type: String,
    flow_version: u32,
    /// What the element type needs.
    work: Value,
}

impl Engine {
    /// Writes the steps of a run taken since the last write, with the work they leave, then
    /// starts that work, so its report always follows its step in the journey.
    pub(super) async fn commit(
        &self,
        held: &mut held::Held,
        p: &ParticipantState,
        pending: &mut Vec<run::PendingStep>,
    ) -> Result<(), EngineError> {
        if pending.is_empty() && held.stored() {
            return Ok(());
        }
        let work: Vec<Option<Record>> = pending
            .iter_mut()
            .map(|s| {
                let work = s.background.take()?;
                let body = Work {
                    participant: p.id.clone(),
                    element: s.entry.element_id.clone(),
                    element_type: s.type_name.clone(),
                    flow_version: p.flow_version,
                    work,
                };
                Some(Record {
                    kind: BACKGROUND.to_owned(),
                    id: format!("{}:{}", p.id, s.entry.seq),
                    key: p.id.clone(),
                    status: "pending".to_owned(),
                    body: serde_json::to_value(body).expect("JSON values serialize"),
                })
            })
            .collect();
        let records: Vec<StepRecord<'_>> = pending
            .iter()
            .zip(&work)
            .map(|(s, work)| StepRecord {
                entry: &s.entry,
                write: StepWrite {
                    entered: s.entered,
                    enter: &s.enter,
                    tally: &s.tally,
                    records: work.as_slice(),
                },
            })
            .collect();
        if held.stored() {
            self.inner
                .store
                .record_steps(&held.lease, p, &records)
                .await?;
        } else {
            held.lease = self
                .inner
                .store
                .insert_with_steps(p, &self.inner.owner, self.lease_expiry(), &records)
                .await?;
            held.entered = None;
        }
        pending.clear();
        for record in work.into_iter().flatten() {
            self.spawn_background(record);
        }
        Ok(())
    }

    /// Starts the background work still recorded (left by a process that stopped or crashed
    /// before finishing it) that this engine is not doing already; returns how many it
    /// started.
    pub async fn send_background(&self) -> Result<usize, EngineError> {
        let pending = self
            .inner
            .store
            .records(BACKGROUND, None, Some("pending"), None)
            .await?;
        let mut started = 0;
        for record in pending {
            if self.spawn_background(record) {
                started += 1;
            }
        }
        Ok(started)
    }

    /// Does the work of `record` in a task of its own, unless this engine is doing it.
    fn spawn_background(&self, record: Record) -> bool {
        let id = record.id.clone();
        if !self
            .inner
            .doing
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id.clone())
        {
            return false;
        }
        let engine = self.clone();
        let mut tasks = self
            .inner
            .background
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        // Finished tasks are dropped as new ones come, so the set stays small.
        while tasks.try_join_next().is_some() {}
        tasks.spawn(async move {
            // One process sharing the store does it; the one holding it may have done it
            // meanwhile (its record is gone then).
            let done = engine
                .holding(BACKGROUND, &id, async {
                    match engine.inner.store.record(BACKGROUND, &id).await? {
                        Some(now) if now.status == record.status => {
                            engine.do_background(&record).await
                        }
                        _ => Ok(()),
                    }
                })
                .await;
            if let Err(e) = done
                .map_err(EngineError::from)
                .and_then(|d| d.unwrap_or(Ok(())))
            {
                tracing::error!(
                    record = %record.id,
                    error = %e,
                    "background work not finished; the next scheduler round tries again"
                );
            }
            engine
                .inner
                .doing
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&id);
        });
        true
    }

    async fn do_background(&self, record: &Record) -> Result<(), EngineError> {
        let work: Work = record.parse()?;
        let started = Instant::now();
        let report = match self.inner.types.resolve(&work.element_type) {
            Ok((_, ty)) => ty.run_background(work.work).await,
            Err(why) => BackgroundReport {
                error: Some(format!(
                    "background work of element {:?} not done: {why}",
                    work.element
                )),
                ..BackgroundReport::default()
            },
        };
        let entry = JourneyEntry {
            // The store appends it after the last entry.
            seq: 0,
            at_ms: self.inner.clock.now_ms(),
            flow_version: work.flow_version,
            element_id: work.element,
            element_type: work.element_type,
            exit: None,
            next: None,
            variables_changed: BTreeMap::new(),
            logs: report.logs,
            data: report.data,
            error: report.error,
            waiting_until: None,
            duration_us: started.elapsed().as_micros() as u64,
            retried: 0,
            requests: report.requests,
        };
        self.inner
            .store
            .finish_record(&work.participant, &entry, BACKGROUND, &record.id)
            .await?;
        Ok(())
    }

    /// Waits until all background work started so far has finished and is in the journeys.
    pub async fn finish_background(&self) {
        loop {
            let mut tasks = std::mem::take(
                &mut *self
                    .inner
                    .background
                    .lock()
                    .unwrap_or_else(|e| e.into_inner()),
            );
            if tasks.is_empty() {
                return;
            }
            while tasks.join_next().await.is_some() {}
        }
    }
}
