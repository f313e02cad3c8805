//! The statements participants' writes share: insert, save under a lease, append to a
//! journey, count, look up an idempotency key, wake; and a participant read from its columns. The ones every step runs are prepared
//! once per connection and cached (a statement sent as text is parsed on each call, one more
//! round trip), and a run's journey rows and counters are each written in one statement.

use super::*;
use deadpool_postgres::GenericClient;
use flowhost_store::{
    EarlierAnswer, ElementState, JourneyEntry, Lease, ParticipantState, Status, StepRecord,
    parse_status,
};
use serde_json::Value;
use std::collections::BTreeMap;

/// Inserts a new participant with its status, and a lease when it is running.
pub(crate) async fn insert(
    client: &impl GenericClient,
    p: &ParticipantState,
    lease: Option<(&str, Millis)>,
) -> Result<(), StoreError> {
    insert_as(client, p, lease, i64::from(lease.is_some()), None).await
}

/// [`insert`] under fencing `epoch` (claims so far), its last step recorded at `updated_at`.
pub(crate) async fn insert_as(
    client: &impl GenericClient,
    p: &ParticipantState,
    lease: Option<(&str, Millis)>,
    epoch: i64,
    updated_at: Option<Millis>,
) -> Result<(), StoreError> {
    let state = p.element_state.as_ref().map(|s| s.data.to_string());
    let reason = p.element_state.as_ref().map(|s| s.reason.as_str());
    let event = p.event.as_ref().map(Value::to_string);
    let claimed_from = lease.map(|_| "queued");
    client
        .execute(
            "INSERT INTO participants (id, flow_id, flow_version, person, variables, current,
                 status, waiting_until, steps, element_state, wait_reason, wait_key, event,
                 lease_owner, lease_expires, epoch, claimed_from, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17,
                 $18)",
            &[
                &p.id,
                &p.flow_id,
                &i64::from(p.flow_version),
                &json("person", &p.person)?,
                &json("variables", &p.variables)?,
                &p.current,
                &p.status.as_str(),
                &p.waiting_until,
                &(p.steps as i64),
                &state,
                &reason,
                &p.wait_key,
                &event,
                &lease.map(|l| l.0),
                &lease.map(|l| l.1),
                &epoch,
                &claimed_from,
                &updated_at,
            ],
        )
        .await
        .map_err(db("inserting a participant"))?;
    Ok(())
}

/// Inserts participants queued (no lease), all in one statement, in the order given: that is
/// the order of their `seq`, which due work follows. One round trip for a thousand admitted,
/// where an insert each took a thousand.
pub(crate) async fn insert_queued_all(
    client: &impl GenericClient,
    participants: &[&ParticipantState],
) -> Result<(), StoreError> {
    if participants.is_empty() {
        return Ok(());
    }
    // One array a column, the participants in order.
    let column = |f: fn(&ParticipantState) -> Option<&str>| -> Vec<Option<&str>> {
        participants.iter().map(|p| f(p)).collect()
    };
    let number = |f: fn(&ParticipantState) -> Option<i64>| -> Vec<Option<i64>> {
        participants.iter().map(|p| f(p)).collect()
    };
    let ids = column(|p| Some(&p.id));
    let flows = column(|p| Some(&p.flow_id));
    let versions = number(|p| Some(i64::from(p.flow_version)));
    let persons: Vec<String> = participants
        .iter()
        .map(|p| json("person", &p.person))
        .collect::<Result<_, _>>()?;
    let variables: Vec<String> = participants
        .iter()
        .map(|p| json("variables", &p.variables))
        .collect::<Result<_, _>>()?;
    let currents = column(|p| p.current.as_deref());
    let until = number(|p| p.waiting_until);
    let steps = number(|p| Some(p.steps as i64));
    let states: Vec<Option<String>> = participants
        .iter()
        .map(|p| p.element_state.as_ref().map(|s| s.data.to_string()))
        .collect();
    let reasons = column(|p| p.element_state.as_ref().map(|s| s.reason.as_str()));
    let wait_keys = column(|p| p.wait_key.as_deref());
    let events: Vec<Option<String>> = participants
        .iter()
        .map(|p| p.event.as_ref().map(Value::to_string))
        .collect();
    let insert = client
        .prepare_cached(
            "INSERT INTO participants (id, flow_id, flow_version, person, variables, current,
                 status, waiting_until, steps, element_state, wait_reason, wait_key, event)
             SELECT t.id, t.flow_id, t.flow_version, t.person, t.variables, t.current, 'queued',
                 t.waiting_until, t.steps, t.element_state, t.wait_reason, t.wait_key, t.event
             FROM unnest($1::TEXT[], $2::TEXT[], $3::BIGINT[], $4::TEXT[], $5::TEXT[],
                     $6::TEXT[], $7::BIGINT[], $8::BIGINT[], $9::TEXT[], $10::TEXT[],
                     $11::TEXT[], $12::TEXT[])
                 WITH ORDINALITY AS t (id, flow_id, flow_version, person, variables, current,
                     waiting_until, steps, element_state, wait_reason, wait_key, event, n)
             ORDER BY t.n",
        )
        .await
        .map_err(db("entering participants"))?;
    client
        .execute(
            &insert,
            &[
                &ids, &flows, &versions, &persons, &variables, &currents, &until, &steps, &states,
                &reasons, &wait_keys, &events,
            ],
        )
        .await
        .map_err(db("entering participants"))?;
    Ok(())
}

/// Saves a participant held under `lease`, or [`StoreError::LeaseLost`].
pub(crate) async fn write_leased(
    client: &impl GenericClient,
    lease: &Lease,
    p: &ParticipantState,
    updated_at: Option<Millis>,
) -> Result<(), StoreError> {
    let running = p.status == Status::Running;
    let state = p.element_state.as_ref().map(|s| s.data.to_string());
    let reason = p.element_state.as_ref().map(|s| s.reason.as_str());
    let event = p.event.as_ref().map(Value::to_string);
    let update = client
        .prepare_cached(
            "UPDATE participants SET person = $3, variables = $4, current = $5, status = $6,
                 waiting_until = $7, steps = $8, element_state = $9, wait_key = $10, event = $11,
                 lease_owner = CASE WHEN $12 THEN lease_owner END,
                 lease_expires = CASE WHEN $12 THEN lease_expires END, wait_reason = $13,
                 claimed_from = CASE WHEN $12 THEN 'queued' END, retried = 0,
                 updated_at = COALESCE($14, updated_at)
             WHERE id = $1 AND epoch = $2 AND status = 'running'",
        )
        .await
        .map_err(db("saving a participant"))?;
    let changed = client
        .execute(
            &update,
            &[
                &p.id,
                &(lease.epoch as i64),
                &json("person", &p.person)?,
                &json("variables", &p.variables)?,
                &p.current,
                &p.status.as_str(),
                &p.waiting_until,
                &(p.steps as i64),
                &state,
                &p.wait_key,
                &event,
                &running,
                &reason,
                &updated_at,
            ],
        )
        .await
        .map_err(db("saving a participant"))?;
    if changed == 0 {
        return Err(StoreError::LeaseLost {
            participant: p.id.clone(),
            epoch: lease.epoch,
        });
    }
    Ok(())
}

/// Appends an entry at the participant's next sequence number.
pub(crate) async fn append(
    client: &impl GenericClient,
    participant_id: &str,
    entry: &JourneyEntry,
) -> Result<(), StoreError> {
    append_all(client, participant_id, &[entry]).await
}

/// Appends entries in order at the participant's next sequence numbers, in one statement.
pub(crate) async fn append_all(
    client: &impl GenericClient,
    participant_id: &str,
    entries: &[&JourneyEntry],
) -> Result<(), StoreError> {
    if entries.is_empty() {
        return Ok(());
    }
    let last = client
        .prepare_cached("SELECT COALESCE(MAX(seq), 0) FROM journey WHERE participant_id = $1")
        .await
        .map_err(db("numbering a journey entry"))?;
    let last: i64 = client
        .query_one(&last, &[&participant_id])
        .await
        .map_err(db("numbering a journey entry"))?
        .get(0);
    let mut seqs = Vec::with_capacity(entries.len());
    let mut texts = Vec::with_capacity(entries.len());
    for (n, entry) in entries.iter().enumerate() {
        let mut entry = (*entry).clone();
        let seq = last + 1 + n as i64;
        entry.seq = seq as u64;
        seqs.push(seq);
        texts.push(json("journey entry", &entry)?);
    }
    let insert = client
        .prepare_cached(
            "INSERT INTO journey (participant_id, seq, entry)
             SELECT $1, t.seq, t.entry FROM unnest($2::BIGINT[], $3::TEXT[]) AS t (seq, entry)",
        )
        .await
        .map_err(db("appending a journey entry"))?;
    client
        .execute(&insert, &[&participant_id, &seqs, &texts])
        .await
        .map_err(db("appending a journey entry"))?;
    Ok(())
}

/// Adds `counts` (by element and exit; an empty exit counts entries) to a participant's
/// flow version's counters, in one statement. The counters are taken in key order, so
/// transactions counting the same ones never wait for each other in a circle.
pub(crate) async fn count_all(
    client: &impl GenericClient,
    p: &ParticipantState,
    counts: &BTreeMap<(&str, String), i64>,
) -> Result<(), StoreError> {
    if counts.is_empty() {
        return Ok(());
    }
    let elements: Vec<&str> = counts.keys().map(|(e, _)| *e).collect();
    let exits: Vec<&str> = counts.keys().map(|(_, x)| x.as_str()).collect();
    let ns: Vec<i64> = counts.values().copied().collect();
    let upsert = client
        .prepare_cached(
            "INSERT INTO step_counts (flow_id, version, element_id, exit, shard, n)
             SELECT $1, $2, t.element_id, t.exit, $3, t.n
             FROM unnest($4::TEXT[], $5::TEXT[], $6::BIGINT[]) AS t (element_id, exit, n)
             ON CONFLICT (flow_id, version, element_id, exit, shard)
                 DO UPDATE SET n = step_counts.n + EXCLUDED.n",
        )
        .await
        .map_err(db("counting a step"))?;
    client
        .execute(
            &upsert,
            &[
                &p.flow_id,
                &i64::from(p.flow_version),
                &crate::schema::shard(&p.id),
                &elements,
                &exits,
                &ns,
            ],
        )
        .await
        .map_err(db("counting a step"))?;
    Ok(())
}

pub(crate) async fn earlier_answer(
    client: &impl GenericClient,
    scope: &str,
    key: &str,
) -> Result<Option<EarlierAnswer>, StoreError> {
    let row = client
        .query_opt(
            "SELECT fingerprint, answer FROM idempotency_keys WHERE scope = $1 AND key = $2",
            &[&scope, &key],
        )
        .await
        .map_err(db("looking up an idempotency key"))?;
    row.map(|r| {
        Ok(EarlierAnswer {
            fingerprint: r.get(0),
            answer: serde_json::from_str(r.get::<_, &str>(1))
                .map_err(|e| StoreError::corrupt("idempotency answer", e))?,
        })
    })
    .transpose()
}

pub(crate) async fn wake(
    client: &impl GenericClient,
    key: &str,
    event: &str,
    now: Millis,
) -> Result<Vec<String>, StoreError> {
    let rows = client
        .query(
            "UPDATE participants SET event = $2, waiting_until = $3
             WHERE wait_key = $1 AND status = 'waiting' RETURNING id",
            &[&key, &event, &now],
        )
        .await
        .map_err(db("waking participants"))?;
    let mut ids: Vec<String> = rows.iter().map(|r| r.get(0)).collect();
    ids.sort();
    Ok(ids)
}

/// A participant from its columns `flow_id, person, variables, current, status,
/// waiting_until, steps, element_state, wait_key, event, wait_reason, flow_version`, the
/// first at index `at` of `r`.
pub(crate) fn state_from(
    id: &str,
    r: &tokio_postgres::Row,
    at: usize,
) -> Result<ParticipantState, StoreError> {
    let corrupt = |e: serde_json::Error| StoreError::corrupt(format!("participant {id:?}"), e);
    let parse_opt = |s: Option<&str>| {
        s.map(serde_json::from_str::<Value>)
            .transpose()
            .map_err(corrupt)
    };
    Ok(ParticipantState {
        id: id.to_owned(),
        flow_id: r.get(at),
        flow_version: r.get::<_, i64>(at + 11) as u32,
        person: serde_json::from_str(r.get::<_, &str>(at + 1)).map_err(corrupt)?,
        variables: serde_json::from_str(r.get::<_, &str>(at + 2)).map_err(corrupt)?,
        current: r.get(at + 3),
        status: parse_status(r.get::<_, &str>(at + 4))?,
        waiting_until: r.get(at + 5),
        steps: r.get::<_, i64>(at + 6) as u64,
        element_state: parse_opt(r.get(at + 7))?.map(|data| ElementState {
            reason: r.get::<_, Option<String>>(at + 10).unwrap_or_default(),
            data,
        }),
        wait_key: r.get(at + 8),
        event: parse_opt(r.get(at + 9))?,
    })
}

/// A participant with the person People keeps under its person's id (`profile`, when People
/// has one) in place of its own.
pub(crate) fn kept_person(
    mut state: ParticipantState,
    profile: Option<&str>,
) -> Result<ParticipantState, StoreError> {
    if let Some(profile) = profile {
        state.person = serde_json::from_str(profile)
            .map_err(|e| StoreError::corrupt(format!("person {:?}", state.person.id), e))?;
    }
    Ok(state)
}

/// How an element's analytics details are kept beside its exits: as `detail:<name>`.
pub(crate) const DETAIL: &str = "detail:";

/// When the last of `steps` was recorded.
pub(crate) fn last_step_at(steps: &[StepRecord<'_>]) -> Option<Millis> {
    steps.iter().map(|s| s.entry.at_ms).max()
}

/// Writes what `p`'s steps wrote besides `p` itself: journey entries, records, participants
/// entered (and the notice from `node` that wakes other nodes for them) and counts.
pub(crate) async fn write_steps(
    tx: &deadpool_postgres::Transaction<'_>,
    node: &str,
    p: &ParticipantState,
    steps: &[StepRecord<'_>],
) -> Result<(), StoreError> {
    let entries: Vec<&JourneyEntry> = steps.iter().map(|s| s.entry).collect();
    append_all(tx, &p.id, &entries).await?;
    let mut counts: BTreeMap<(&str, String), i64> = BTreeMap::new();
    for step in steps {
        let (entry, write) = (step.entry, step.write);
        for record in write.records {
            records::put(tx, record).await?;
        }
        let element = entry.element_id.as_str();
        let exits = write
            .entered
            .then(String::new)
            .into_iter()
            .chain(entry.exit.clone())
            .chain(write.tally.iter().map(|d| format!("{DETAIL}{d}")));
        for exit in exits {
            *counts.entry((element, exit)).or_default() += 1;
        }
    }
    let entered: Vec<&ParticipantState> = steps.iter().flat_map(|s| s.write.enter).collect();
    if !entered.is_empty() {
        insert_queued_all(tx, &entered).await?;
        listen::notify(tx, node).await?;
    }
    // Last: other transactions counting in the same rows wait for this one's commit from
    // here on.
    count_all(tx, p, &counts).await
}
