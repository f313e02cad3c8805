//! The rows of participants, their journeys and counters: what the participant store's
//! statements write and read, shared by its methods.

use super::*;
use flowhost_types::participant::ElementState;

/// The update of [`write_leased`].
const SAVE_LEASED: &str = "UPDATE participants SET person = ?3, variables = ?4, current = ?5,
        status = ?6, waiting_until = ?7, steps = ?8, element_state = ?9, wait_key = ?10,
        event = ?11, lease_owner = CASE WHEN ?12 THEN lease_owner END,
        lease_expires = CASE WHEN ?12 THEN lease_expires END, wait_reason = ?13,
        claimed_from = CASE WHEN ?12 THEN 'queued' END, retried = 0,
        updated_at = COALESCE(?14, updated_at)
    WHERE id = ?1 AND epoch = ?2 AND status = 'running'";

/// A participant as its row holds it, its JSON columns written out. Made on the caller's
/// side, before the write goes to the database thread, so that thread only binds the
/// columns: serializing, and dropping the state's maps, took a fifth of its time
/// (docs/BENCHMARKS.md).
pub(crate) struct RowText {
    pub(crate) id: String,
    pub(crate) flow_id: String,
    pub(crate) flow_version: u32,
    person: String,
    person_id: String,
    variables: String,
    current: Option<String>,
    pub(crate) status: Status,
    waiting_until: Option<Millis>,
    steps: u64,
    element_state: Option<String>,
    wait_reason: Option<String>,
    wait_key: Option<String>,
    event: Option<String>,
}

impl RowText {
    /// `p`'s row.
    pub(crate) fn of(p: &ParticipantState) -> Result<Self, StoreError> {
        Ok(RowText {
            id: p.id.clone(),
            flow_id: p.flow_id.clone(),
            flow_version: p.flow_version,
            person: json("person", &p.person)?,
            person_id: p.person.id.clone(),
            variables: json("variables", &p.variables)?,
            current: p.current.clone(),
            status: p.status,
            waiting_until: p.waiting_until,
            steps: p.steps,
            element_state: p.element_state.as_ref().map(|s| s.data.to_string()),
            wait_reason: p.element_state.as_ref().map(|s| s.reason.clone()),
            wait_key: p.wait_key.clone(),
            event: p.event.as_ref().map(Value::to_string),
        })
    }

    /// `p`'s row with status `status`.
    pub(crate) fn with_status(p: &ParticipantState, status: Status) -> Result<Self, StoreError> {
        let mut row = RowText::of(p)?;
        row.status = status;
        Ok(row)
    }
}

/// Writes a participant that someone holds under `lease`, or refuses with
/// [`StoreError::LeaseLost`]. A participant that stops running gives up its lease. With
/// `updated_at`, the time of its last step recorded changes too.
pub(crate) fn write_leased(
    conn: &Connection,
    lease: &Lease,
    p: &RowText,
    updated_at: Option<Millis>,
) -> Result<(), StoreError> {
    let running = p.status == Status::Running;
    let changed = conn
        .prepare_cached(SAVE_LEASED)
        .and_then(|mut stmt| {
            stmt.execute(params![
                p.id,
                lease.epoch as i64,
                p.person,
                p.variables,
                p.current,
                p.status.as_str(),
                p.waiting_until,
                p.steps as i64,
                p.element_state,
                p.wait_key,
                p.event,
                running,
                p.wait_reason,
                updated_at,
            ])
        })
        .map_err(db("saving a participant"))?;
    if changed == 0 {
        return Err(StoreError::LeaseLost {
            participant: p.id.clone(),
            epoch: lease.epoch,
        });
    }
    Ok(())
}

/// Inserts a new participant with its status, and a lease when it is running.
pub(crate) fn insert(
    conn: &Connection,
    p: &RowText,
    lease: Option<(&str, Millis)>,
) -> Result<(), StoreError> {
    insert_as(conn, p, lease, i64::from(lease.is_some()), None)
}

/// [`insert`] under fencing `epoch` (claims so far), its last step recorded at `updated_at`.
pub(crate) fn insert_as(
    conn: &Connection,
    p: &RowText,
    lease: Option<(&str, Millis)>,
    epoch: i64,
    updated_at: Option<Millis>,
) -> Result<(), StoreError> {
    conn.prepare_cached(
        "INSERT INTO participants (id, flow_id, person, variables, current, status, waiting_until,
             steps, element_state, wait_key, event, lease_owner, lease_expires, epoch, wait_reason,
             flow_version, claimed_from, updated_at, person_id)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16,
             CASE WHEN ?12 IS NULL THEN NULL ELSE 'queued' END, ?17, NULLIF(?18, ''))",
    )
    .and_then(|mut stmt| {
        stmt.execute(params![
            p.id,
            p.flow_id,
            p.person,
            p.variables,
            p.current,
            p.status.as_str(),
            p.waiting_until,
            p.steps as i64,
            p.element_state,
            p.wait_key,
            p.event,
            lease.map(|l| l.0),
            lease.map(|l| l.1),
            epoch,
            p.wait_reason,
            p.flow_version,
            updated_at,
            p.person_id,
        ])
    })
    .map_err(db("inserting a participant"))?;
    Ok(())
}

/// The answer kept for an idempotency key.
pub(crate) fn earlier_answer(
    conn: &Connection,
    scope: &str,
    key: &str,
) -> Result<Option<EarlierAnswer>, StoreError> {
    let row = conn
        .prepare_cached(
            "SELECT fingerprint, answer FROM idempotency_keys WHERE scope = ?1 AND key = ?2",
        )
        .and_then(|mut stmt| {
            stmt.query_row(params![scope, key], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
            })
            .optional()
        })
        .map_err(db("looking up an idempotency key"))?;
    row.map(|(fingerprint, answer)| {
        Ok(EarlierAnswer {
            fingerprint,
            answer: serde_json::from_str(&answer)
                .map_err(|e| StoreError::corrupt("idempotency answer", e))?,
        })
    })
    .transpose()
}

/// A participant's next journey sequence number. The CAST is for speed: written
/// `participant_id = ?1`, SQLite prepares this statement again on every run (its optimizer
/// marks the parameter as one the plan depends on), which took a tenth of the database
/// thread's time in `docs/BENCHMARKS.md`'s engine benchmark. The plan is the same: the
/// primary key's index.
const NEXT_SEQ: &str =
    "SELECT COALESCE(MAX(seq), 0) + 1 FROM journey WHERE participant_id = CAST(?1 AS TEXT)";

/// A journey entry's JSON, written before its `seq` is known (the store assigns it on the
/// database thread): the text after `{"seq":N,`, which [`EntryText::with_seq`] puts back
/// in front. `seq` is the entry's first field, so the row's text is what serializing the
/// numbered entry would give.
pub(crate) struct EntryText {
    text: String,
    /// Where the text after `{"seq":N,` starts.
    tail: usize,
}

impl EntryText {
    /// `entry`'s JSON, its `seq` left out.
    pub(crate) fn of(entry: &JourneyEntry) -> Result<Self, StoreError> {
        let text = json("journey entry", entry)?;
        let prefix = format!("{{\"seq\":{},", entry.seq);
        if !text.starts_with(&prefix) {
            return Err(StoreError::corrupt(
                "journey entry",
                format!("its JSON does not start with {prefix:?}"),
            ));
        }
        Ok(EntryText {
            tail: prefix.len(),
            text,
        })
    }

    /// The entry's JSON numbered `seq`.
    fn with_seq(&self, seq: i64) -> String {
        use std::fmt::Write;
        let tail = &self.text[self.tail..];
        let mut text = String::with_capacity(tail.len() + 24);
        let _ = write!(text, "{{\"seq\":{seq},{tail}");
        text
    }
}

/// Appends an entry at the participant's next sequence number, so background entries and
/// steps never collide.
pub(crate) fn append(
    conn: &Connection,
    participant_id: &str,
    entry: &EntryText,
) -> Result<(), StoreError> {
    append_all(conn, participant_id, [entry])
}

/// Appends entries, in order, at the participant's next sequence numbers (looked up once).
pub(crate) fn append_all<'e>(
    conn: &Connection,
    participant_id: &str,
    entries: impl IntoIterator<Item = &'e EntryText>,
) -> Result<(), StoreError> {
    let mut entries = entries.into_iter().peekable();
    if entries.peek().is_none() {
        return Ok(());
    }
    let first: i64 = conn
        .prepare_cached(NEXT_SEQ)
        .and_then(|mut stmt| stmt.query_row([participant_id], |r| r.get(0)))
        .map_err(db("numbering a journey entry"))?;
    let mut insert = conn
        .prepare_cached("INSERT INTO journey (participant_id, seq, entry) VALUES (?1, ?2, ?3)")
        .map_err(db("appending a journey entry"))?;
    for (seq, entry) in (first..).zip(entries) {
        insert
            .execute(params![participant_id, seq, entry.with_seq(seq)])
            .map_err(db("appending a journey entry"))?;
    }
    Ok(())
}

/// Counter increments by flow, version, element and exit: the counts of a group commit's
/// writes, summed, so each counter's row is written once a commit however many steps
/// passed it.
#[derive(Default)]
pub(crate) struct Tally(BTreeMap<(String, u32, String, String), i64>);

impl Tally {
    /// One more of `flow_id`'s `version` through `element_id`'s `exit` (`""`: entered it).
    pub(crate) fn count(&mut self, flow_id: &str, version: u32, element_id: String, exit: String) {
        let key = (flow_id.to_owned(), version, element_id, exit);
        *self.0.entry(key).or_default() += 1;
    }

    /// Adds `other`'s counts to these.
    pub(crate) fn add(&mut self, other: Tally) {
        for (key, n) in other.0 {
            *self.0.entry(key).or_default() += n;
        }
    }

    /// Writes the counts: one upsert a counter.
    pub(crate) fn write(&self, conn: &Connection) -> rusqlite::Result<()> {
        if self.0.is_empty() {
            return Ok(());
        }
        let mut stmt = conn.prepare_cached(
            "INSERT INTO version_counts (flow_id, version, element_id, exit, n)
             VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT (flow_id, version, element_id, exit) DO UPDATE SET n = n + ?5",
        )?;
        for ((flow, version, element, exit), n) in &self.0 {
            stmt.execute(params![flow, version, element, exit, n])?;
        }
        Ok(())
    }
}

/// The columns a participant's state is read from, in the order [`StateRow::get`] takes
/// them (a macro, so statements can `concat!` it).
macro_rules! state_columns {
    () => {
        "flow_id, person, variables, current, status, waiting_until, steps, element_state,
         wait_key, event, wait_reason, flow_version"
    };
}
pub(crate) use state_columns;

/// A participant's state as [`state_columns!`] hold it, before its JSON is parsed.
pub(crate) struct StateRow {
    flow_id: String,
    person: String,
    variables: String,
    current: Option<String>,
    status: String,
    waiting_until: Option<Millis>,
    steps: i64,
    element_state: Option<String>,
    wait_key: Option<String>,
    event: Option<String>,
    wait_reason: Option<String>,
    flow_version: u32,
}

impl StateRow {
    /// The columns of [`state_columns!`], the first of them at `at`.
    pub(crate) fn get(r: &rusqlite::Row<'_>, at: usize) -> rusqlite::Result<Self> {
        Ok(StateRow {
            flow_id: r.get(at)?,
            person: r.get(at + 1)?,
            variables: r.get(at + 2)?,
            current: r.get(at + 3)?,
            status: r.get(at + 4)?,
            waiting_until: r.get(at + 5)?,
            steps: r.get(at + 6)?,
            element_state: r.get(at + 7)?,
            wait_key: r.get(at + 8)?,
            event: r.get(at + 9)?,
            wait_reason: r.get(at + 10)?,
            flow_version: r.get(at + 11)?,
        })
    }

    /// Participant `id`'s state, its JSON parsed.
    pub(crate) fn parse(self, id: String) -> Result<ParticipantState, StoreError> {
        let corrupt = |e: serde_json::Error| StoreError::corrupt(format!("participant {id:?}"), e);
        let parse_opt = |s: Option<String>| {
            s.map(|s| serde_json::from_str::<Value>(&s))
                .transpose()
                .map_err(corrupt)
        };
        Ok(ParticipantState {
            flow_id: self.flow_id,
            flow_version: self.flow_version,
            person: serde_json::from_str(&self.person).map_err(corrupt)?,
            variables: serde_json::from_str(&self.variables).map_err(corrupt)?,
            current: self.current,
            status: parse_status(&self.status)?,
            waiting_until: self.waiting_until,
            steps: self.steps as u64,
            element_state: parse_opt(self.element_state)?.map(|data| ElementState {
                reason: self.wait_reason.unwrap_or_default(),
                data,
            }),
            wait_key: self.wait_key,
            event: parse_opt(self.event)?,
            id,
        })
    }
}

pub(crate) fn read_participant(
    conn: &Connection,
    id: &str,
) -> Result<Option<ParticipantState>, StoreError> {
    let row = conn
        .prepare_cached(concat!(
            "SELECT ",
            state_columns!(),
            " FROM participants WHERE id = ?1"
        ))
        .and_then(|mut stmt| stmt.query_row([id], |r| StateRow::get(r, 0)).optional())
        .map_err(db("reading a participant"))?;
    row.map(|row| row.parse(id.to_owned())).transpose()
}

/// How an element's analytics details are kept beside its exits: as `detail:<name>`.
pub(crate) const DETAIL: &str = "detail:";

/// A step of [`ParticipantStore::record_steps`], made ready on the caller's side for the
/// database thread: its journey entry's text, when it ended, the counters it passed
/// (element, then exit: `""` for entering, `detail:<name>` for a detail), the participants
/// it entered and the records it wrote.
pub(crate) struct Step {
    entry: EntryText,
    at_ms: Millis,
    counts: Vec<(String, String)>,
    enter: Vec<RowText>,
    records: Vec<Record>,
}

/// `steps`, ready for the database thread.
pub(crate) fn prepare(steps: &[StepRecord<'_>]) -> Result<Vec<Step>, StoreError> {
    steps
        .iter()
        .map(|s| {
            let (entry, write) = (s.entry, &s.write);
            let element = || entry.element_id.clone();
            let mut counts = Vec::with_capacity(2 + write.tally.len());
            if write.entered {
                counts.push((element(), String::new()));
            }
            if let Some(exit) = &entry.exit {
                counts.push((element(), exit.clone()));
            }
            for detail in write.tally {
                counts.push((element(), format!("{DETAIL}{detail}")));
            }
            Ok(Step {
                entry: EntryText::of(entry)?,
                at_ms: entry.at_ms,
                counts,
                enter: write
                    .enter
                    .iter()
                    .map(|other| RowText::with_status(other, Status::Queued))
                    .collect::<Result<_, _>>()?,
                records: write.records.to_vec(),
            })
        })
        .collect()
}

/// When the last of `steps` was recorded.
pub(crate) fn last_step_at(steps: &[Step]) -> Option<Millis> {
    steps.iter().map(|s| s.at_ms).max()
}

/// Writes what `p`'s steps wrote besides `p` itself: journey entries, records, participants
/// entered and counts.
pub(crate) fn write_steps(
    conn: &Connection,
    tally: &mut Tally,
    p: &RowText,
    steps: Vec<Step>,
) -> Result<(), StoreError> {
    append_all(conn, &p.id, steps.iter().map(|s| &s.entry))?;
    for step in steps {
        for record in &step.records {
            crate::records::put(conn, record)?;
        }
        for other in &step.enter {
            insert(conn, other, None)?;
        }
        for (element, exit) in step.counts {
            tally.count(&p.flow_id, p.flow_version, element, exit);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbering_a_journey_entry_keeps_its_prepared_statement() {
        let dir = tempfile::tempdir().unwrap();
        let conn = Connection::open(dir.path().join("state.db")).unwrap();
        crate::schema::prepare(&conn, crate::Durability::default()).unwrap();
        for i in 0..10 {
            let next: i64 = conn
                .prepare_cached(NEXT_SEQ)
                .unwrap()
                .query_row([format!("p{i}")], |r| r.get(0))
                .unwrap();
            assert_eq!(next, 1);
        }
        let stmt = conn.prepare_cached(NEXT_SEQ).unwrap();
        assert_eq!(stmt.get_status(rusqlite::StatementStatus::RePrepare), 0);
    }

    /// An entry's text, numbered on the database thread, is what serializing the numbered
    /// entry gives, whatever number the caller's entry had.
    #[test]
    fn an_entry_numbered_late_is_the_numbered_entry_serialized() {
        let mut entry = JourneyEntry {
            seq: 7,
            at_ms: 1_000,
            flow_version: 2,
            element_id: "e\"1".into(),
            element_type: "set-variable".into(),
            exit: Some("next".into()),
            next: Some("x".into()),
            variables_changed: BTreeMap::from([("seq".into(), serde_json::json!({"seq": 3}))]),
            logs: Vec::new(),
            data: None,
            error: None,
            waiting_until: None,
            duration_us: 12,
            retried: 0,
            requests: Vec::new(),
        };
        let text = EntryText::of(&entry).unwrap();
        for seq in [1, 42, 1_000_000] {
            entry.seq = seq as u64;
            assert_eq!(text.with_seq(seq), serde_json::to_string(&entry).unwrap());
        }
    }

    /// A step's update of its participant makes no temporary table: none for the partial
    /// indexes' conditions (an `IN` list would make one each time), none for a second pass.
    #[test]
    fn saving_a_participant_makes_no_temporary_table() {
        let conn = Connection::open_in_memory().unwrap();
        crate::schema::prepare(&conn, crate::Durability::default()).unwrap();
        let mut stmt = conn.prepare(&format!("EXPLAIN {SAVE_LEASED}")).unwrap();
        let unbound = std::iter::repeat_n(rusqlite::types::Null, stmt.parameter_count());
        let ops: Vec<String> = stmt
            .query_map(rusqlite::params_from_iter(unbound), |r| r.get(1))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        assert!(ops.iter().any(|op| op == "IdxInsert"), "{ops:?}");
        assert!(!ops.iter().any(|op| op == "OpenEphemeral"), "{ops:?}");
    }
}
