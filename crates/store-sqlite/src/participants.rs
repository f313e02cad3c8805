//! Participants: inserts, claims and leases, steps with their journey entries and counters,
//! waits and wake-ups, analytics.

// One file of more than 600 lines: it is the one `ParticipantStore` impl for SQLite (a trait
// impl cannot be split across files); the statements it shares are in `rows.rs`.

use super::*;

use crate::people::read_person;
use crate::rows::{
    DETAIL, EntryText, RowText, StateRow, append, earlier_answer, insert, insert_as, last_step_at,
    prepare, read_participant, state_columns, write_leased, write_steps,
};
use std::collections::HashMap;

/// The three kinds of due work, oldest first, each a walk of `participants_pending` (status,
/// then `waiting_until`, then rowid): waits whose time has come, queued participants, and
/// running ones whose lease expired (their owner is gone). Each row is `(COALESCE
/// (waiting_until, 0), rowid)`, the order [`ParticipantStore::claim_due`] merges them in.
/// `?1` is now, `?2` the held flows (a JSON array), `?3` the limit.
const DUE: [&str; 3] = [
    "SELECT COALESCE(waiting_until, 0), rowid FROM participants INDEXED BY participants_pending
     WHERE status = 'waiting' AND waiting_until <= ?1
       AND flow_id NOT IN (SELECT value FROM json_each(?2))
     ORDER BY waiting_until, rowid",
    "SELECT COALESCE(waiting_until, 0), rowid FROM participants INDEXED BY participants_pending
     WHERE status = 'queued' AND flow_id NOT IN (SELECT value FROM json_each(?2))
     ORDER BY waiting_until, rowid",
    "SELECT COALESCE(waiting_until, 0), rowid FROM participants INDEXED BY participants_pending
     WHERE status = 'running' AND lease_expires <= ?1
       AND flow_id NOT IN (SELECT value FROM json_each(?2))
     ORDER BY waiting_until, rowid",
];

/// `sql` (which ends in `ORDER BY`) with `LIMIT limit` written into its text. SQLite plans
/// an `ORDER BY ... LIMIT` by the limit's value, so a statement whose limit is a parameter
/// is prepared again at every run (each bind expires it): a claim paid for three such
/// preparations. With the number in the text, each limit in use keeps a prepared statement
/// in the connection's cache, and the engine claims with one limit.
fn limited(sql: &str, limit: usize) -> String {
    format!("{sql} LIMIT {limit}")
}

/// The ids of due participants, in due order (`due`).
const DUE_IDS: &str = "SELECT id FROM participants
    WHERE ((status = 'waiting' AND waiting_until <= ?1) OR status = 'queued'
           OR (status = 'running' AND lease_expires <= ?1))
      AND flow_id NOT IN (SELECT value FROM json_each(?2))
    ORDER BY COALESCE(waiting_until, 0), rowid";

/// Retention's pick of finished participants last changed before `?1`, at most `?2`. Its
/// status condition is that of `participants_finished`, word for word, so it reads that index.
const PRUNED: &str = "INSERT INTO pruned (id) SELECT id FROM participants
    WHERE (status = 'completed' OR status = 'failed' OR status = 'canceled')
      AND updated_at < ?1 LIMIT ?2";

/// Hands event `?2` to the participants waiting on key `?1`, due at `?3`.
const WAKE: &str = "UPDATE participants SET event = ?2, waiting_until = ?3
    WHERE wait_key = ?1 AND status = 'waiting' RETURNING id";

/// What a claim sets besides the owner and expiry: running under the next epoch, how it goes
/// on (a running participant is taken over as it was claimed before), and the takeovers.
macro_rules! claiming {
    () => {
        "claimed_from = CASE WHEN status = 'running'
             THEN COALESCE(claimed_from, 'queued') ELSE status END,
         retried = CASE WHEN status = 'running' THEN retried + 1 ELSE 0 END,
         status = 'running', epoch = epoch + 1"
    };
}

#[async_trait]
impl ParticipantStore for SqliteStore {
    async fn insert_claimed(
        &self,
        p: &ParticipantState,
        owner: &str,
        expires_at: Millis,
    ) -> Result<Lease, StoreError> {
        let p = RowText::with_status(p, Status::Running)?;
        let owner = owner.to_owned();
        self.write_refusing_first(move |conn| {
            insert(conn, &p, Some((&owner, expires_at)))?;
            Ok(Lease {
                participant: p.id,
                owner,
                expires_at,
                epoch: 1,
            })
        })
        .await
    }

    async fn idempotent_answer(
        &self,
        scope: &str,
        key: &str,
    ) -> Result<Option<EarlierAnswer>, StoreError> {
        let (scope, key) = (scope.to_owned(), key.to_owned());
        self.call(move |conn| earlier_answer(conn, &scope, &key))
            .await
    }

    async fn insert_queued(
        &self,
        participants: &[ParticipantState],
        request: Option<IdempotentRequest<'_>>,
    ) -> Result<Option<EarlierAnswer>, StoreError> {
        let participants = participants
            .iter()
            .map(|p| RowText::with_status(p, Status::Queued))
            .collect::<Result<Vec<_>, _>>()?;
        let request = request.map(|r| {
            (
                r.scope.to_owned(),
                r.key.to_owned(),
                r.fingerprint.to_owned(),
                r.answer.to_string(),
                r.at,
            )
        });
        self.write(move |conn| {
            if let Some((scope, key, fingerprint, answer, at)) = &request {
                if let Some(earlier) = earlier_answer(conn, scope, key)? {
                    return Ok(Some(earlier));
                }
                conn.prepare_cached(
                    "INSERT INTO idempotency_keys (scope, key, fingerprint, answer, at)
                     VALUES (?1, ?2, ?3, ?4, ?5)",
                )
                .and_then(|mut stmt| stmt.execute(params![scope, key, fingerprint, answer, at]))
                .map_err(db("saving an idempotency key"))?;
            }
            for p in &participants {
                insert(conn, p, None)?;
            }
            Ok(None)
        })
        .await
    }

    async fn claim(
        &self,
        id: &str,
        owner: &str,
        now: Millis,
        expires_at: Millis,
    ) -> Result<Option<Claim>, StoreError> {
        let (id, owner) = (id.to_owned(), owner.to_owned());
        self.write(move |conn| {
            let row: Option<(i64, Option<String>, i64)> = conn
                .prepare_cached(concat!(
                    "UPDATE participants SET ",
                    claiming!(),
                    ", lease_owner = ?2, lease_expires = ?3
                     WHERE id = ?1 AND (status IN ('waiting', 'queued')
                         OR (status = 'running' AND lease_expires <= ?4))
                     RETURNING epoch, claimed_from, retried",
                ))
                .and_then(|mut stmt| {
                    stmt.query_row(params![id, owner, expires_at, now], |r| {
                        Ok((r.get(0)?, r.get(1)?, r.get(2)?))
                    })
                    .optional()
                })
                .map_err(db("claiming a participant"))?;
            let Some((epoch, was, retried)) = row else {
                return Ok(None);
            };
            Ok(Some(Claim {
                was: parse_status(was.as_deref().unwrap_or("queued"))?,
                retried: retried as u32,
                state: None,
                lease: Lease {
                    participant: id,
                    owner,
                    expires_at,
                    epoch: epoch as u64,
                },
            }))
        })
        .await
    }

    async fn claim_due(
        &self,
        owner: &str,
        now: Millis,
        expires_at: Millis,
        limit: usize,
        held: &[String],
    ) -> Result<Vec<Claim>, StoreError> {
        let owner = owner.to_owned();
        let held = serde_json::to_string(held).expect("strings serialize");
        self.write(move |conn| {
            // Each kind of due work walks `participants_pending` in its own order, so a
            // claim reads about `limit` rows of each, however many are due; one statement with
            // an `OR` of the three would sort every due row on each claim.
            let mut due: Vec<(i64, i64)> = Vec::new();
            for sql in DUE {
                let mut stmt = conn
                    .prepare_cached(&limited(sql, limit))
                    .map_err(db("listing due participants"))?;
                let rows = stmt
                    .query_map(params![now, held], |r| Ok((r.get(0)?, r.get(1)?)))
                    .map_err(db("listing due participants"))?;
                for row in rows {
                    due.push(row.map_err(db("listing due participants"))?);
                }
            }
            due.sort_unstable();
            due.truncate(limit);
            // One statement for the batch, by the rowids found, each participant returned
            // with its claim (RETURNING rows come in no set order: each goes to its place).
            let place: HashMap<i64, usize> = due
                .iter()
                .enumerate()
                .map(|(i, &(_, rowid))| (rowid, i))
                .collect();
            let rowids = serde_json::to_string(&due.iter().map(|d| d.1).collect::<Vec<_>>())
                .expect("integers serialize");
            let mut stmt = conn
                .prepare_cached(concat!(
                    "UPDATE participants SET ",
                    claiming!(),
                    ", lease_owner = ?2, lease_expires = ?3
                     WHERE rowid IN (SELECT value FROM json_each(?1))
                     RETURNING rowid, id, epoch, claimed_from, retried, ",
                    state_columns!(),
                ))
                .map_err(db("claiming due participants"))?;
            let rows = stmt
                .query_map(params![rowids, owner, expires_at], |r| {
                    Ok((
                        r.get::<_, i64>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, i64>(2)?,
                        r.get::<_, Option<String>>(3)?,
                        r.get::<_, i64>(4)?,
                        StateRow::get(r, 5)?,
                    ))
                })
                .map_err(db("claiming due participants"))?;
            let mut claimed: Vec<Option<Claim>> = (0..due.len()).map(|_| None).collect();
            for row in rows {
                let (rowid, id, epoch, was, retried, row) =
                    row.map_err(db("claiming due participants"))?;
                let read = || -> Result<_, StoreError> {
                    let mut state = row.parse(id.clone())?;
                    // Its person as People has it now (Add to Flow may have changed it).
                    if !state.person.id.is_empty()
                        && let Some(person) = read_person(conn, &state.person.id)?
                    {
                        state.person = person;
                    }
                    Ok((state, parse_status(was.as_deref().unwrap_or("queued"))?))
                };
                let (state, was) = match read() {
                    Ok(read) => read,
                    Err(e) => {
                        flowhost_store::left_out_of_claim(&id, &e);
                        continue;
                    }
                };
                claimed[place[&rowid]] = Some(Claim {
                    was,
                    retried: retried as u32,
                    state: Some(state),
                    lease: Lease {
                        participant: id,
                        owner: owner.clone(),
                        expires_at,
                        epoch: epoch as u64,
                    },
                });
            }
            let claimed = claimed.into_iter().flatten().collect();
            Ok(claimed)
        })
        .await
    }

    async fn renew(&self, lease: &Lease, expires_at: Millis) -> Result<Lease, StoreError> {
        let lease = lease.clone();
        self.write_refusing_first(move |conn| {
            let changed = conn
                .prepare_cached(
                    "UPDATE participants SET lease_expires = ?3
                     WHERE id = ?1 AND epoch = ?2 AND status = 'running'",
                )
                .and_then(|mut stmt| {
                    stmt.execute(params![lease.participant, lease.epoch as i64, expires_at])
                })
                .map_err(db("renewing a lease"))?;
            if changed == 0 {
                return Err(StoreError::LeaseLost {
                    participant: lease.participant,
                    epoch: lease.epoch,
                });
            }
            Ok(Lease {
                expires_at,
                ..lease
            })
        })
        .await
    }

    async fn record_steps(
        &self,
        lease: &Lease,
        p: &ParticipantState,
        steps: &[StepRecord<'_>],
    ) -> Result<(), StoreError> {
        let (lease, p, steps) = (lease.clone(), RowText::of(p)?, prepare(steps)?);
        self.write_tallied(move |conn, tally| {
            write_leased(conn, &lease, &p, last_step_at(&steps))?;
            write_steps(conn, tally, &p, steps)
        })
        .await
    }

    async fn insert_with_steps(
        &self,
        p: &ParticipantState,
        owner: &str,
        expires_at: Millis,
        steps: &[StepRecord<'_>],
    ) -> Result<Lease, StoreError> {
        let (p, owner, steps) = (RowText::of(p)?, owner.to_owned(), prepare(steps)?);
        self.write_tallied(move |conn, tally| {
            let running = p.status == Status::Running;
            // Epoch 1, as if inserted claimed and saved under that lease.
            let lease = running.then_some((owner.as_str(), expires_at));
            insert_as(conn, &p, lease, 1, last_step_at(&steps))?;
            write_steps(conn, tally, &p, steps)?;
            Ok(Lease {
                participant: p.id,
                owner,
                expires_at,
                epoch: 1,
            })
        })
        .await
    }

    async fn release(&self, lease: &Lease, p: &ParticipantState) -> Result<(), StoreError> {
        let (lease, p) = (lease.clone(), RowText::of(p)?);
        self.write_refusing_first(move |conn| write_leased(conn, &lease, &p, None))
            .await
    }

    async fn finish_record(
        &self,
        participant_id: &str,
        entry: &JourneyEntry,
        kind: &str,
        id: &str,
    ) -> Result<bool, StoreError> {
        let (participant, entry) = (participant_id.to_owned(), EntryText::of(entry)?);
        let (kind, id) = (kind.to_owned(), id.to_owned());
        self.write(move |conn| {
            let removed = conn
                .prepare_cached("DELETE FROM records WHERE kind = ?1 AND id = ?2")
                .and_then(|mut stmt| stmt.execute(params![kind, id]))
                .map_err(db("finishing a record"))?;
            if removed == 0 {
                return Ok(false);
            }
            append(conn, &participant, &entry)?;
            Ok(true)
        })
        .await
    }

    async fn prune_finished(&self, before: Millis, limit: usize) -> Result<usize, StoreError> {
        self.call(move |conn| {
            let tx = conn.transaction().map_err(db("pruning participants"))?;
            tx.execute_batch(
                "CREATE TEMP TABLE IF NOT EXISTS pruned (id TEXT PRIMARY KEY); DELETE FROM pruned;",
            )
            .map_err(db("pruning participants"))?;
            let n = tx
                .prepare_cached(PRUNED)
                .and_then(|mut stmt| stmt.execute(params![before, limit as i64]))
                .map_err(db("pruning participants"))?;
            tx.execute_batch(
                "DELETE FROM journey WHERE participant_id IN (SELECT id FROM pruned);
                 DELETE FROM participants WHERE id IN (SELECT id FROM pruned);
                 DELETE FROM pruned;",
            )
            .map_err(db("pruning participants"))?;
            tx.commit().map_err(db("pruning participants"))?;
            Ok(n)
        })
        .await
    }

    async fn prune_idempotency_keys(
        &self,
        before: Millis,
        limit: usize,
    ) -> Result<usize, StoreError> {
        self.call(move |conn| {
            conn.prepare_cached(
                "DELETE FROM idempotency_keys WHERE rowid IN
                     (SELECT rowid FROM idempotency_keys WHERE at < ?1 LIMIT ?2)",
            )
            .and_then(|mut stmt| stmt.execute(params![before, limit as i64]))
            .map_err(db("pruning idempotency keys"))
        })
        .await
    }

    async fn participant(&self, id: &str) -> Result<Option<ParticipantState>, StoreError> {
        let id = id.to_owned();
        self.read(move |conn| read_participant(conn, &id)).await
    }

    async fn due(
        &self,
        now: Millis,
        limit: usize,
        held: &[String],
    ) -> Result<Vec<String>, StoreError> {
        let held = serde_json::to_string(held).expect("strings serialize");
        self.read(move |conn| {
            let mut stmt = conn
                .prepare_cached(&limited(DUE_IDS, limit))
                .map_err(db("finding due participants"))?;
            let rows = stmt
                .query_map(params![now, held], |r| r.get(0))
                .map_err(db("finding due participants"))?;
            rows.collect::<Result<_, _>>()
                .map_err(db("finding due participants"))
        })
        .await
    }

    async fn wake(&self, key: &str, event: &Value, now: Millis) -> Result<Vec<String>, StoreError> {
        let (key, event) = (key.to_owned(), event.to_string());
        self.write(move |conn| wake(conn, &key, &event, now)).await
    }

    async fn wake_saving(
        &self,
        key: &str,
        event: &Value,
        now: Millis,
        record: &Record,
    ) -> Result<Vec<String>, StoreError> {
        let (key, event, record) = (key.to_owned(), event.to_string(), record.clone());
        self.write(move |conn| {
            crate::records::put(conn, &record)?;
            let ids = wake(conn, &key, &event, now)?;
            Ok(ids)
        })
        .await
    }

    async fn set_deadline(&self, key: &str, until: Millis) -> Result<(), StoreError> {
        let key = key.to_owned();
        self.write(move |conn| {
            conn.prepare_cached(
                "UPDATE participants SET waiting_until = ?2 WHERE wait_key = ?1 AND status = 'waiting'",
            )
            .and_then(|mut stmt| stmt.execute(params![key, until]))
            .map_err(db("moving a deadline"))?;
            Ok(())
        })
        .await
    }

    async fn participants_of(
        &self,
        flow_id: &str,
        statuses: &[Status],
    ) -> Result<Vec<String>, StoreError> {
        let (flow_id, statuses) = (flow_id.to_owned(), statuses.to_vec());
        self.read(move |conn| {
            let mut stmt = conn
                .prepare_cached(
                    "SELECT id, status FROM participants WHERE flow_id = ?1 ORDER BY rowid",
                )
                .map_err(db("listing a flow's participants"))?;
            let rows = stmt
                .query_map([flow_id], |r| {
                    Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
                })
                .map_err(db("listing a flow's participants"))?;
            let mut ids = Vec::new();
            for row in rows {
                let (id, status) = row.map_err(db("listing a flow's participants"))?;
                if statuses.contains(&parse_status(&status)?) {
                    ids.push(id);
                }
            }
            Ok(ids)
        })
        .await
    }

    async fn status_counts(
        &self,
        flow_id: &str,
        failed_since: Millis,
    ) -> Result<StatusCounts, StoreError> {
        let flow_id = flow_id.to_owned();
        self.read(move |conn| {
            let what = "counting a flow's participants";
            let mut counts = StatusCounts::default();
            let mut stmt = conn
                .prepare_cached(
                    "SELECT status, COUNT(*) FROM participants WHERE flow_id = ?1 GROUP BY status",
                )
                .map_err(db(what))?;
            let rows = stmt
                .query_map([&flow_id], |r| {
                    Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?))
                })
                .map_err(db(what))?;
            for row in rows {
                let (status, n) = row.map_err(db(what))?;
                counts.add(parse_status(&status)?, n as u64);
            }
            counts.failed_since = conn
                .prepare_cached(
                    "SELECT COUNT(*) FROM participants
                     WHERE flow_id = ?1 AND status = 'failed' AND updated_at >= ?2",
                )
                .and_then(|mut stmt| {
                    stmt.query_row(params![flow_id, failed_since], |r| r.get::<_, i64>(0))
                })
                .map_err(db(what))? as u64;
            Ok(counts)
        })
        .await
    }

    async fn participants_of_person(
        &self,
        person_id: &str,
        limit: usize,
    ) -> Result<Vec<String>, StoreError> {
        let person_id = person_id.to_owned();
        self.read(move |conn| {
            let what = "listing a person's participants";
            let mut stmt = conn
                .prepare_cached(
                    "SELECT id FROM participants WHERE person_id = ?1 ORDER BY rowid DESC LIMIT ?2",
                )
                .map_err(db(what))?;
            let rows = stmt
                .query_map(params![person_id, limit as i64], |r| r.get(0))
                .map_err(db(what))?;
            rows.collect::<Result<_, _>>().map_err(db(what))
        })
        .await
    }

    async fn element_counts(
        &self,
        flow_id: &str,
        version: Option<u32>,
    ) -> Result<BTreeMap<String, ElementCounts>, StoreError> {
        let flow_id = flow_id.to_owned();
        self.read(move |conn| {
            let mut out: BTreeMap<String, ElementCounts> = BTreeMap::new();
            let mut stmt = conn
                .prepare_cached(
                    "SELECT element_id, exit, SUM(n) FROM version_counts
                     WHERE flow_id = ?1 AND (?2 IS NULL OR version = ?2)
                     GROUP BY element_id, exit",
                )
                .map_err(db("reading analytics"))?;
            let rows = stmt
                .query_map(params![&flow_id, version], |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, i64>(2)?,
                    ))
                })
                .map_err(db("reading analytics"))?;
            for row in rows {
                let (element, exit, n) = row.map_err(db("reading analytics"))?;
                let counts = out.entry(element).or_default();
                if exit.is_empty() {
                    counts.entered = n as u64;
                } else if let Some(detail) = exit.strip_prefix(DETAIL) {
                    counts.details.insert(detail.to_owned(), n as u64);
                } else {
                    counts.exits.insert(exit, n as u64);
                }
            }
            let mut stmt = conn
                .prepare_cached(
                    "SELECT current, COUNT(*) FROM participants
                     WHERE flow_id = ?1 AND status = 'waiting' AND current IS NOT NULL
                       AND (?2 IS NULL OR flow_version = ?2)
                     GROUP BY current",
                )
                .map_err(db("reading analytics"))?;
            let rows = stmt
                .query_map(params![&flow_id, version], |r| {
                    Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?))
                })
                .map_err(db("reading analytics"))?;
            for row in rows {
                let (element, n) = row.map_err(db("reading analytics"))?;
                out.entry(element).or_default().waiting = n as u64;
            }
            Ok(out)
        })
        .await
    }

    async fn set_flow_version(&self, id: &str, version: u32) -> Result<bool, StoreError> {
        let id = id.to_owned();
        self.call(move |conn| {
            conn.prepare_cached(
                "UPDATE participants SET flow_version = ?2
                 WHERE id = ?1 AND status IN ('waiting', 'queued')",
            )
            .and_then(|mut stmt| stmt.execute(params![id, version]))
            .map(|changed| changed > 0)
            .map_err(db("moving a participant to another flow version"))
        })
        .await
    }

    async fn journey(&self, id: &str) -> Result<Vec<JourneyEntry>, StoreError> {
        let id = id.to_owned();
        self.read(move |conn| {
            let mut stmt = conn
                .prepare_cached("SELECT entry FROM journey WHERE participant_id = ?1 ORDER BY seq")
                .map_err(db("reading a journey"))?;
            let rows = stmt
                .query_map([&id], |r| r.get::<_, String>(0))
                .map_err(db("reading a journey"))?;
            rows.map(|r| {
                let text = r.map_err(db("reading a journey"))?;
                serde_json::from_str(&text)
                    .map_err(|e| StoreError::corrupt(format!("journey of {id:?}"), e))
            })
            .collect()
        })
        .await
    }

    async fn append_journey(
        &self,
        participant_id: &str,
        entry: &JourneyEntry,
    ) -> Result<(), StoreError> {
        let (id, entry) = (participant_id.to_owned(), EntryText::of(entry)?);
        self.write(move |conn| {
            append(conn, &id, &entry)?;
            Ok(())
        })
        .await
    }

    async fn count_waiting(
        &self,
        flow_id: &str,
        element_id: &str,
        kind: &str,
    ) -> Result<u64, StoreError> {
        let (flow_id, element_id, kind) =
            (flow_id.to_owned(), element_id.to_owned(), kind.to_owned());
        self.read(move |conn| {
            conn.prepare_cached(
                "SELECT COUNT(*) FROM participants WHERE flow_id = ?1 AND current = ?2
                 AND status = 'waiting' AND wait_reason = ?3",
            )
            .and_then(|mut stmt| {
                stmt.query_row(params![flow_id, element_id, kind], |r| r.get::<_, i64>(0))
            })
            .map(|n| n as u64)
            .map_err(db("counting waiting participants"))
        })
        .await
    }
}

/// Hands `event` to the participants waiting on `key`, due at `now`; their ids, sorted.
fn wake(conn: &Connection, key: &str, event: &str, now: Millis) -> Result<Vec<String>, StoreError> {
    let mut stmt = conn
        .prepare_cached(WAKE)
        .map_err(db("waking participants"))?;
    let rows = stmt
        .query_map(params![key, event, now], |r| r.get(0))
        .map_err(db("waking participants"))?;
    let mut ids: Vec<String> = rows
        .collect::<Result<_, _>>()
        .map_err(db("waking participants"))?;
    ids.sort();
    Ok(ids)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Claiming walks the index in due order: no statement of [`DUE`] sorts its rows, so a
    /// claim costs the same with 100 or 1,000,000 participants due.
    #[test]
    fn listing_due_work_walks_the_index_without_sorting() {
        let dir = tempfile::tempdir().unwrap();
        let conn = Connection::open(dir.path().join("state.db")).unwrap();
        crate::schema::prepare(&conn, crate::Durability::default()).unwrap();
        for sql in DUE {
            let sql = limited(sql, 1);
            let mut stmt = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
            let plan: Vec<String> = stmt
                .query_map(params![0, "[]"], |r| r.get(3))
                .unwrap()
                .map(Result::unwrap)
                .collect();
            assert!(
                plan.iter()
                    .any(|l| l.contains("USING INDEX participants_pending"))
                    && !plan.iter().any(|l| l.contains("TEMP B-TREE")),
                "{sql}\n{plan:#?}"
            );
        }
    }

    /// The statements that list due work keep their preparation from one claim to the next,
    /// whatever the time, held flows and limit bound: none is prepared again.
    #[test]
    fn listing_due_work_keeps_its_prepared_statements() {
        let dir = tempfile::tempdir().unwrap();
        let conn = Connection::open(dir.path().join("state.db")).unwrap();
        crate::schema::prepare(&conn, crate::Durability::default()).unwrap();
        for sql in DUE.iter().chain([&DUE_IDS]) {
            for run in 0..4 {
                let held = format!("[\"f{run}\"]");
                let mut stmt = conn.prepare_cached(&limited(sql, 128)).unwrap();
                let mut rows = stmt.query(params![1_000 * run, held]).unwrap();
                while rows.next().unwrap().is_some() {}
            }
            let stmt = conn.prepare_cached(&limited(sql, 128)).unwrap();
            assert_eq!(
                stmt.get_status(rusqlite::StatementStatus::RePrepare),
                0,
                "{sql}"
            );
        }
    }

    /// Wake-ups and retention read their partial indexes, and a database with the whole
    /// indexes of before has them replaced on open.
    #[test]
    fn wake_ups_and_retention_use_partial_indexes_that_replace_the_whole_ones() {
        let dir = tempfile::tempdir().unwrap();
        let conn = Connection::open(dir.path().join("state.db")).unwrap();
        crate::schema::prepare(&conn, crate::Durability::default()).unwrap();
        conn.execute_batch(
            "CREATE INDEX participants_due ON participants (status, waiting_until);
             CREATE INDEX participants_wait_key ON participants (wait_key, status);
             CREATE INDEX participants_updated ON participants (status, updated_at);
             CREATE INDEX participants_person ON participants (json_extract(person, '$.id'));
             CREATE TEMP TABLE pruned (id TEXT PRIMARY KEY);",
        )
        .unwrap();
        crate::schema::prepare(&conn, crate::Durability::default()).unwrap();
        let mut stmt = conn
            .prepare(
                "SELECT name FROM sqlite_master WHERE type = 'index'
                 AND tbl_name = 'participants' AND sql IS NOT NULL ORDER BY name",
            )
            .unwrap();
        let indexes: Vec<String> = stmt
            .query_map([], |r| r.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        assert_eq!(
            indexes,
            [
                "participants_finished",
                "participants_flow",
                "participants_pending",
                "participants_person_id",
                "participants_waking"
            ]
        );
        let cases: [(&str, &str, &[&dyn rusqlite::ToSql]); 2] = [
            (WAKE, "participants_waking", params!["k", "{}", 1]),
            (PRUNED, "participants_finished", params![1, 2]),
        ];
        for (sql, index, args) in cases {
            let mut stmt = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
            let plan: Vec<String> = stmt
                .query_map(args, |r| r.get(3))
                .unwrap()
                .map(Result::unwrap)
                .collect();
            assert!(
                plan.iter().any(|l| l.contains(&format!("INDEX {index} "))),
                "{sql}\n{plan:#?}"
            );
        }
    }
}
