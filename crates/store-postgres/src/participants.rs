//! Participants: inserts, claims and leases fenced by epoch, steps with their journey entries
//! and counters, waits and wake-ups, analytics, retention.

use super::*;
use crate::rows::{
    DETAIL, append, earlier_answer, insert, insert_as, insert_queued_all, kept_person,
    last_step_at, state_from, wake, write_leased, write_steps,
};
use flowhost_store::{
    Claim, EarlierAnswer, ElementCounts, IdempotentRequest, JourneyEntry, Lease, ParticipantState,
    ParticipantStore, Record, Status, StatusCounts, StepRecord, parse_status,
};
use serde_json::Value;
use std::collections::BTreeMap;

#[async_trait]
impl ParticipantStore for PostgresStore {
    fn work_signals(&self) -> Option<tokio::sync::watch::Receiver<u64>> {
        let listener = self
            .listener
            .get_or_init(|| listen::Listener::start(self.config.clone(), self.node.clone()));
        Some(listener.subscribe())
    }

    async fn insert_claimed(
        &self,
        p: &ParticipantState,
        owner: &str,
        expires_at: Millis,
    ) -> Result<Lease, StoreError> {
        let mut p = p.clone();
        p.status = Status::Running;
        let client = self.client().await?;
        insert(&client, &p, Some((owner, expires_at))).await?;
        Ok(Lease {
            participant: p.id,
            owner: owner.to_owned(),
            expires_at,
            epoch: 1,
        })
    }

    async fn insert_queued(
        &self,
        participants: &[ParticipantState],
        request: Option<IdempotentRequest<'_>>,
    ) -> Result<Option<EarlierAnswer>, StoreError> {
        let mut client = self.client().await?;
        let tx = client
            .transaction()
            .await
            .map_err(db("entering participants"))?;
        if let Some(r) = &request {
            // Two nodes taking the same key at once: the second waits for the first's row.
            let inserted = tx
                .execute(
                    "INSERT INTO idempotency_keys (scope, key, fingerprint, answer, at)
                     VALUES ($1, $2, $3, $4, $5) ON CONFLICT (scope, key) DO NOTHING",
                    &[
                        &r.scope,
                        &r.key,
                        &r.fingerprint,
                        &r.answer.to_string(),
                        &r.at,
                    ],
                )
                .await
                .map_err(db("entering participants"))?;
            if inserted == 0 {
                return earlier_answer(&tx, r.scope, r.key).await;
            }
        }
        if !participants.is_empty() {
            insert_queued_all(&tx, &participants.iter().collect::<Vec<_>>()).await?;
            listen::notify(&tx, &self.node).await?;
        }
        tx.commit().await.map_err(db("entering participants"))?;
        Ok(None)
    }

    async fn idempotent_answer(
        &self,
        scope: &str,
        key: &str,
    ) -> Result<Option<EarlierAnswer>, StoreError> {
        let client = self.client().await?;
        earlier_answer(&client, scope, key).await
    }

    async fn claim(
        &self,
        id: &str,
        owner: &str,
        now: Millis,
        expires_at: Millis,
    ) -> Result<Option<Claim>, StoreError> {
        let client = self.client().await?;
        let row = client
            .query_opt(
                "UPDATE participants SET
                     claimed_from = CASE WHEN status = 'running'
                         THEN COALESCE(claimed_from, 'queued') ELSE status END,
                     retried = CASE WHEN status = 'running' THEN retried + 1 ELSE 0 END,
                     status = 'running', lease_owner = $2, lease_expires = $3,
                     epoch = epoch + 1
                 WHERE id = $1 AND (status IN ('waiting', 'queued')
                     OR (status = 'running' AND lease_expires <= $4))
                 RETURNING epoch, claimed_from, retried",
                &[&id, &owner, &expires_at, &now],
            )
            .await
            .map_err(db("claiming a participant"))?;
        let Some(row) = row else {
            return Ok(None);
        };
        Ok(Some(Claim {
            was: parse_status(row.get::<_, Option<&str>>(1).unwrap_or("queued"))?,
            retried: row.get::<_, i64>(2) as u32,
            state: None,
            lease: Lease {
                participant: id.to_owned(),
                owner: owner.to_owned(),
                expires_at,
                epoch: row.get::<_, i64>(0) as u64,
            },
        }))
    }

    async fn claim_due(
        &self,
        owner: &str,
        now: Millis,
        expires_at: Millis,
        limit: usize,
        held: &[String],
    ) -> Result<Vec<Claim>, StoreError> {
        let client = self.client().await?;
        // Each kind of due work walks `participants_due_order` in its own order, so a claim
        // reads about `limit` rows of each however many are due (one `OR` of the three would
        // sort every due row). SKIP LOCKED: rows another node is claiming right now are left
        // to it; the rows read past the limit are locked only while this statement runs.
        let rows = client
            .query(
                "WITH waits AS (
                     SELECT id, waiting_until AS k, seq FROM participants
                     WHERE status = 'waiting' AND waiting_until <= $2
                       AND NOT (flow_id = ANY($5))
                     ORDER BY waiting_until NULLS FIRST, seq LIMIT $4
                     FOR UPDATE SKIP LOCKED),
                 queued AS (
                     SELECT id, COALESCE(waiting_until, 0) AS k, seq FROM participants
                     WHERE status = 'queued' AND NOT (flow_id = ANY($5))
                     ORDER BY waiting_until NULLS FIRST, seq LIMIT $4
                     FOR UPDATE SKIP LOCKED),
                 expired AS (
                     SELECT id, COALESCE(waiting_until, 0) AS k, seq FROM participants
                     WHERE status = 'running' AND lease_expires <= $2
                       AND NOT (flow_id = ANY($5))
                     ORDER BY waiting_until NULLS FIRST, seq LIMIT $4
                     FOR UPDATE SKIP LOCKED),
                 due AS (
                     SELECT id FROM (SELECT * FROM waits UNION ALL SELECT * FROM queued
                                     UNION ALL SELECT * FROM expired) d
                     ORDER BY k, seq LIMIT $4)
                 UPDATE participants p SET
                     claimed_from = CASE WHEN p.status = 'running'
                         THEN COALESCE(p.claimed_from, 'queued') ELSE p.status END,
                     retried = CASE WHEN p.status = 'running' THEN p.retried + 1 ELSE 0 END,
                     status = 'running', lease_owner = $1, lease_expires = $3,
                     epoch = p.epoch + 1
                 FROM due WHERE p.id = due.id
                 RETURNING p.id, p.epoch, p.claimed_from, p.retried,
                     COALESCE(p.waiting_until, 0), p.seq, p.flow_id, p.person, p.variables,
                     p.current, p.status, p.waiting_until, p.steps, p.element_state,
                     p.wait_key, p.event, p.wait_reason, p.flow_version,
                     (SELECT profile FROM people WHERE people.id = p.person::json ->> 'id')",
                &[&owner, &now, &expires_at, &(limit as i64), &held],
            )
            .await
            .map_err(db("claiming due participants"))?;
        let claim = |r: &tokio_postgres::Row| -> Result<_, StoreError> {
            Ok((
                (r.get::<_, i64>(4), r.get::<_, i64>(5)),
                Claim {
                    was: parse_status(r.get::<_, Option<&str>>(2).unwrap_or("queued"))?,
                    retried: r.get::<_, i64>(3) as u32,
                    state: Some(kept_person(state_from(r.get(0), r, 6)?, r.get(18))?),
                    lease: Lease {
                        participant: r.get(0),
                        owner: owner.to_owned(),
                        expires_at,
                        epoch: r.get::<_, i64>(1) as u64,
                    },
                },
            ))
        };
        let mut claimed: Vec<_> = rows
            .iter()
            .filter_map(|r| {
                claim(r)
                    .inspect_err(|e| flowhost_store::left_out_of_claim(r.get(0), e))
                    .ok()
            })
            .collect();
        claimed.sort_by_key(|(order, _)| *order);
        Ok(claimed.into_iter().map(|(_, c)| c).collect())
    }

    async fn renew(&self, lease: &Lease, expires_at: Millis) -> Result<Lease, StoreError> {
        let client = self.client().await?;
        let changed = client
            .execute(
                "UPDATE participants SET lease_expires = $3
                 WHERE id = $1 AND epoch = $2 AND status = 'running'",
                &[&lease.participant, &(lease.epoch as i64), &expires_at],
            )
            .await
            .map_err(db("renewing a lease"))?;
        if changed == 0 {
            return Err(StoreError::LeaseLost {
                participant: lease.participant.clone(),
                epoch: lease.epoch,
            });
        }
        Ok(Lease {
            expires_at,
            ..lease.clone()
        })
    }

    async fn record_steps(
        &self,
        lease: &Lease,
        p: &ParticipantState,
        steps: &[StepRecord<'_>],
    ) -> Result<(), StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(db("recording a step"))?;
        write_leased(&tx, lease, p, last_step_at(steps)).await?;
        write_steps(&tx, &self.node, p, steps).await?;
        tx.commit().await.map_err(db("recording a step"))
    }

    async fn insert_with_steps(
        &self,
        p: &ParticipantState,
        owner: &str,
        expires_at: Millis,
        steps: &[StepRecord<'_>],
    ) -> Result<Lease, StoreError> {
        let mut client = self.client().await?;
        let tx = client
            .transaction()
            .await
            .map_err(db("inserting a participant"))?;
        let running = p.status == Status::Running;
        // Epoch 1, as if inserted claimed and saved under that lease.
        let lease = running.then_some((owner, expires_at));
        insert_as(&tx, p, lease, 1, last_step_at(steps)).await?;
        write_steps(&tx, &self.node, p, steps).await?;
        tx.commit().await.map_err(db("inserting a participant"))?;
        Ok(Lease {
            participant: p.id.clone(),
            owner: owner.to_owned(),
            expires_at,
            epoch: 1,
        })
    }

    async fn release(&self, lease: &Lease, p: &ParticipantState) -> Result<(), StoreError> {
        let client = self.client().await?;
        write_leased(&client, lease, p, None).await
    }

    async fn finish_record(
        &self,
        participant_id: &str,
        entry: &JourneyEntry,
        kind: &str,
        id: &str,
    ) -> Result<bool, StoreError> {
        let mut client = self.client().await?;
        let tx = client
            .transaction()
            .await
            .map_err(db("finishing a record"))?;
        let removed = tx
            .execute(
                "DELETE FROM records WHERE kind = $1 AND id = $2",
                &[&kind, &id],
            )
            .await
            .map_err(db("finishing a record"))?;
        if removed == 0 {
            return Ok(false);
        }
        append(&tx, participant_id, entry).await?;
        tx.commit().await.map_err(db("finishing a record"))?;
        Ok(true)
    }

    async fn prune_finished(&self, before: Millis, limit: usize) -> Result<usize, StoreError> {
        let mut client = self.client().await?;
        let tx = client
            .transaction()
            .await
            .map_err(db("pruning participants"))?;
        let ids: Vec<String> = tx
            .query(
                "DELETE FROM participants WHERE id IN
                     (SELECT id FROM participants
                      WHERE status IN ('completed', 'failed', 'canceled') AND updated_at < $1
                      LIMIT $2)
                 RETURNING id",
                &[&before, &(limit as i64)],
            )
            .await
            .map_err(db("pruning participants"))?
            .iter()
            .map(|r| r.get(0))
            .collect();
        tx.execute(
            "DELETE FROM journey WHERE participant_id = ANY($1)",
            &[&ids],
        )
        .await
        .map_err(db("pruning participants"))?;
        tx.commit().await.map_err(db("pruning participants"))?;
        Ok(ids.len())
    }

    async fn prune_idempotency_keys(
        &self,
        before: Millis,
        limit: usize,
    ) -> Result<usize, StoreError> {
        let client = self.client().await?;
        let n = client
            .execute(
                "DELETE FROM idempotency_keys WHERE (scope, key) IN
                     (SELECT scope, key FROM idempotency_keys WHERE at < $1 LIMIT $2)",
                &[&before, &(limit as i64)],
            )
            .await
            .map_err(db("pruning idempotency keys"))?;
        Ok(n as usize)
    }

    async fn participant(&self, id: &str) -> Result<Option<ParticipantState>, StoreError> {
        let client = self.client().await?;
        let row = client
            .query_opt(
                "SELECT flow_id, person, variables, current, status, waiting_until, steps,
                     element_state, wait_key, event, wait_reason, flow_version
                 FROM participants WHERE id = $1",
                &[&id],
            )
            .await
            .map_err(db("reading a participant"))?;
        match row {
            Some(r) => Ok(Some(state_from(id, &r, 0)?)),
            None => Ok(None),
        }
    }

    async fn due(
        &self,
        now: Millis,
        limit: usize,
        held: &[String],
    ) -> Result<Vec<String>, StoreError> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT id FROM participants
                 WHERE ((status = 'waiting' AND waiting_until <= $1) OR status = 'queued'
                        OR (status = 'running' AND lease_expires <= $1))
                   AND NOT (flow_id = ANY($3))
                 ORDER BY COALESCE(waiting_until, 0), seq LIMIT $2",
                &[&now, &(limit as i64), &held],
            )
            .await
            .map_err(db("finding due participants"))?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }

    async fn wake(&self, key: &str, event: &Value, now: Millis) -> Result<Vec<String>, StoreError> {
        let client = self.client().await?;
        let ids = wake(&client, key, &event.to_string(), now).await?;
        if !ids.is_empty() {
            listen::notify(&client, &self.node).await?;
        }
        Ok(ids)
    }

    async fn wake_saving(
        &self,
        key: &str,
        event: &Value,
        now: Millis,
        record: &Record,
    ) -> Result<Vec<String>, StoreError> {
        let mut client = self.client().await?;
        let tx = client
            .transaction()
            .await
            .map_err(db("waking participants"))?;
        records::put(&tx, record).await?;
        let ids = wake(&tx, key, &event.to_string(), now).await?;
        if !ids.is_empty() {
            listen::notify(&tx, &self.node).await?;
        }
        tx.commit().await.map_err(db("waking participants"))?;
        Ok(ids)
    }

    async fn set_deadline(&self, key: &str, until: Millis) -> Result<(), StoreError> {
        let client = self.client().await?;
        client
            .execute(
                "UPDATE participants SET waiting_until = $2 WHERE wait_key = $1 AND status = 'waiting'",
                &[&key, &until],
            )
            .await
            .map_err(db("moving a deadline"))?;
        Ok(())
    }

    async fn participants_of(
        &self,
        flow_id: &str,
        statuses: &[Status],
    ) -> Result<Vec<String>, StoreError> {
        let client = self.client().await?;
        let statuses: Vec<&str> = statuses.iter().map(|s| s.as_str()).collect();
        let rows = client
            .query(
                "SELECT id FROM participants WHERE flow_id = $1 AND status = ANY($2) ORDER BY seq",
                &[&flow_id, &statuses],
            )
            .await
            .map_err(db("listing a flow's participants"))?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }

    async fn status_counts(
        &self,
        flow_id: &str,
        failed_since: Millis,
    ) -> Result<StatusCounts, StoreError> {
        let what = "counting a flow's participants";
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT status, COUNT(*) FROM participants WHERE flow_id = $1 GROUP BY status",
                &[&flow_id],
            )
            .await
            .map_err(db(what))?;
        let mut counts = StatusCounts::default();
        for r in &rows {
            let (status, n): (String, i64) = (r.get(0), r.get(1));
            counts.add(parse_status(&status)?, n as u64);
        }
        let failed: i64 = client
            .query_one(
                "SELECT COUNT(*) FROM participants
                 WHERE flow_id = $1 AND status = 'failed' AND updated_at >= $2",
                &[&flow_id, &failed_since],
            )
            .await
            .map_err(db(what))?
            .get(0);
        counts.failed_since = failed as u64;
        Ok(counts)
    }

    async fn participants_of_person(
        &self,
        person_id: &str,
        limit: usize,
    ) -> Result<Vec<String>, StoreError> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT id FROM participants WHERE (person::json ->> 'id') = $1
                 ORDER BY seq DESC LIMIT $2",
                &[&person_id, &(limit as i64)],
            )
            .await
            .map_err(db("listing a person's participants"))?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }

    async fn element_counts(
        &self,
        flow_id: &str,
        version: Option<u32>,
    ) -> Result<BTreeMap<String, ElementCounts>, StoreError> {
        let client = self.client().await?;
        let version = version.map(i64::from);
        let mut out: BTreeMap<String, ElementCounts> = BTreeMap::new();
        let rows = client
            .query(
                "SELECT element_id, exit, SUM(n)::BIGINT FROM step_counts
                 WHERE flow_id = $1 AND ($2::BIGINT IS NULL OR version = $2)
                 GROUP BY element_id, exit",
                &[&flow_id, &version],
            )
            .await
            .map_err(db("reading analytics"))?;
        for r in &rows {
            let (element, exit, n): (String, String, i64) = (r.get(0), r.get(1), r.get(2));
            let counts = out.entry(element).or_default();
            if exit.is_empty() {
                counts.entered = n as u64;
            } else if let Some(detail) = exit.strip_prefix(DETAIL) {
                counts.details.insert(detail.to_owned(), n as u64);
            } else {
                counts.exits.insert(exit, n as u64);
            }
        }
        let rows = client
            .query(
                "SELECT current, COUNT(*) FROM participants
                 WHERE flow_id = $1 AND status = 'waiting' AND current IS NOT NULL
                   AND ($2::BIGINT IS NULL OR flow_version = $2)
                 GROUP BY current",
                &[&flow_id, &version],
            )
            .await
            .map_err(db("reading analytics"))?;
        for r in &rows {
            out.entry(r.get(0)).or_default().waiting = r.get::<_, i64>(1) as u64;
        }
        Ok(out)
    }

    async fn set_flow_version(&self, id: &str, version: u32) -> Result<bool, StoreError> {
        let client = self.client().await?;
        let changed = client
            .execute(
                "UPDATE participants SET flow_version = $2
                 WHERE id = $1 AND status IN ('waiting', 'queued')",
                &[&id, &i64::from(version)],
            )
            .await
            .map_err(db("moving a participant to another flow version"))?;
        Ok(changed > 0)
    }

    async fn journey(&self, id: &str) -> Result<Vec<JourneyEntry>, StoreError> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT entry FROM journey WHERE participant_id = $1 ORDER BY seq",
                &[&id],
            )
            .await
            .map_err(db("reading a journey"))?;
        rows.iter()
            .map(|r| {
                serde_json::from_str(r.get::<_, &str>(0))
                    .map_err(|e| StoreError::corrupt(format!("journey of {id:?}"), e))
            })
            .collect()
    }

    async fn append_journey(
        &self,
        participant_id: &str,
        entry: &JourneyEntry,
    ) -> Result<(), StoreError> {
        let client = self.client().await?;
        append(&client, participant_id, entry).await
    }

    async fn count_waiting(
        &self,
        flow_id: &str,
        element_id: &str,
        kind: &str,
    ) -> Result<u64, StoreError> {
        let client = self.client().await?;
        let n: i64 = client
            .query_one(
                "SELECT COUNT(*) FROM participants WHERE flow_id = $1 AND current = $2
                 AND status = 'waiting' AND wait_reason = $3",
                &[&flow_id, &element_id, &kind],
            )
            .await
            .map_err(db("counting waiting participants"))?
            .get(0);
        Ok(n as u64)
    }
}
