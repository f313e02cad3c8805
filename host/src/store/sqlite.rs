//! The embedded SQLite store.

use super::{
    ElementCounts, JourneyEntry, ParticipantState, PeopleStore, Record, RecordStore, StateStore,
    Status, StepWrite, StoreError, parse_status,
};
use crate::clock::Millis;
use crate::person::Person;
use rusqlite::{Connection, OptionalExtension, params};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Mutex;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS flows (
    id TEXT PRIMARY KEY,
    definition TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS participants (
    id TEXT PRIMARY KEY,
    flow_id TEXT NOT NULL,
    person TEXT NOT NULL,
    variables TEXT NOT NULL,
    current TEXT,
    status TEXT NOT NULL,
    waiting_until INTEGER,
    steps INTEGER NOT NULL,
    element_state TEXT
);
CREATE INDEX IF NOT EXISTS participants_due ON participants (status, waiting_until);
CREATE TABLE IF NOT EXISTS journey (
    participant_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    entry TEXT NOT NULL,
    PRIMARY KEY (participant_id, seq)
);
CREATE TABLE IF NOT EXISTS rate_queues (
    queue TEXT PRIMARY KEY,
    next_free INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS element_counts (
    flow_id TEXT NOT NULL,
    element_id TEXT NOT NULL,
    exit TEXT NOT NULL,
    n INTEGER NOT NULL,
    PRIMARY KEY (flow_id, element_id, exit)
);
CREATE TABLE IF NOT EXISTS people (
    id TEXT PRIMARY KEY,
    profile TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS person_contacts (
    contact TEXT PRIMARY KEY,
    person_id TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS person_contacts_person ON person_contacts (person_id);
CREATE TABLE IF NOT EXISTS records (
    kind TEXT NOT NULL,
    id TEXT NOT NULL,
    key TEXT NOT NULL,
    status TEXT NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (kind, id)
);
CREATE INDEX IF NOT EXISTS records_lookup ON records (kind, key, status);
";

/// Columns added to `participants` after its first release, with their types; older
/// databases get them on open.
const ADDED_COLUMNS: &[(&str, &str)] = &[
    ("element_state", "TEXT"),
    ("wait_key", "TEXT"),
    ("event", "TEXT"),
];

/// Participants and journeys in one SQLite file (WAL mode).
pub struct SqliteStore {
    conn: Mutex<Connection>,
}

fn db(e: rusqlite::Error) -> StoreError {
    StoreError::Database(e.to_string())
}

fn corrupt(what: &str, e: serde_json::Error) -> StoreError {
    StoreError::Corrupt {
        what: what.to_owned(),
        reason: e.to_string(),
    }
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path`.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| {
                StoreError::Database(format!("cannot create {}: {e}", dir.display()))
            })?;
        }
        let conn = Connection::open(path)
            .map_err(|e| StoreError::Database(format!("{}: {e}", path.display())))?;
        Self::init(conn)
    }

    /// A private in-memory database.
    pub fn in_memory() -> Result<Self, StoreError> {
        Self::init(Connection::open_in_memory().map_err(db)?)
    }

    fn init(conn: Connection) -> Result<Self, StoreError> {
        // WAL with NORMAL sync: a committed step survives a process crash; the last steps
        // before a power loss may not.
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(db)?;
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(db)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))
            .map_err(db)?;
        conn.execute_batch(SCHEMA).map_err(db)?;
        for (column, kind) in ADDED_COLUMNS {
            let present: bool = conn
                .query_row(
                    "SELECT COUNT(*) FROM pragma_table_info('participants') WHERE name = ?1",
                    [column],
                    |r| r.get::<_, i64>(0),
                )
                .map_err(db)?
                > 0;
            if !present {
                conn.execute_batch(&format!(
                    "ALTER TABLE participants ADD COLUMN {column} {kind}"
                ))
                .map_err(db)?;
            }
        }
        conn.execute_batch(
            "CREATE INDEX IF NOT EXISTS participants_wait_key ON participants (wait_key, status)",
        )
        .map_err(db)?;
        Ok(SqliteStore {
            conn: Mutex::new(conn),
        })
    }

    fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        // A panic while holding the lock cannot leave SQLite half-written (each write is a
        // transaction), so a poisoned lock is safe to reuse.
        self.conn.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn upsert(conn: &Connection, p: &ParticipantState) -> Result<(), StoreError> {
    let person = serde_json::to_string(&p.person).map_err(|e| corrupt("person", e))?;
    let vars = serde_json::to_string(&p.variables).map_err(|e| corrupt("variables", e))?;
    let state = p.element_state.as_ref().map(Value::to_string);
    let event = p.event.as_ref().map(Value::to_string);
    conn.execute(
        "INSERT INTO participants (id, flow_id, person, variables, current, status, waiting_until, steps, element_state, wait_key, event)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)
         ON CONFLICT (id) DO UPDATE SET person = ?3, variables = ?4, current = ?5, status = ?6,
             waiting_until = ?7, steps = ?8, element_state = ?9, wait_key = ?10, event = ?11",
        params![
            p.id,
            p.flow_id,
            person,
            vars,
            p.current,
            p.status.as_str(),
            p.waiting_until,
            p.steps as i64,
            state,
            p.wait_key,
            event
        ],
    )
    .map_err(db)?;
    Ok(())
}

/// Appends an entry at the participant's next sequence number, so background entries and
/// steps never collide.
fn append(conn: &Connection, participant_id: &str, entry: &JourneyEntry) -> Result<(), StoreError> {
    let seq: i64 = conn
        .query_row(
            "SELECT COALESCE(MAX(seq), 0) + 1 FROM journey WHERE participant_id = ?1",
            [participant_id],
            |r| r.get(0),
        )
        .map_err(db)?;
    let mut entry = entry.clone();
    entry.seq = seq as u64;
    let text = serde_json::to_string(&entry).map_err(|e| corrupt("journey entry", e))?;
    conn.execute(
        "INSERT INTO journey (participant_id, seq, entry) VALUES (?1, ?2, ?3)",
        params![participant_id, seq, text],
    )
    .map_err(db)?;
    Ok(())
}

impl StateStore for SqliteStore {
    fn save_flow(&self, id: &str, definition: &str) -> Result<(), StoreError> {
        self.conn()
            .execute(
                "INSERT INTO flows (id, definition) VALUES (?1, ?2)
                 ON CONFLICT (id) DO UPDATE SET definition = ?2",
                params![id, definition],
            )
            .map_err(db)?;
        Ok(())
    }

    fn flows(&self) -> Result<Vec<(String, String)>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare("SELECT id, definition FROM flows ORDER BY id")
            .map_err(db)?;
        let rows = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .map_err(db)?;
        rows.collect::<Result<_, _>>().map_err(db)
    }

    fn insert_participant(&self, p: &ParticipantState) -> Result<(), StoreError> {
        upsert(&self.conn(), p)
    }

    fn record_step(
        &self,
        p: &ParticipantState,
        entry: &JourneyEntry,
        write: StepWrite<'_>,
    ) -> Result<(), StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction().map_err(db)?;
        upsert(&tx, p)?;
        append(&tx, &p.id, entry)?;
        for other in write.enter {
            upsert(&tx, other)?;
        }
        let count = |exit: &str| {
            tx.execute(
                "INSERT INTO element_counts (flow_id, element_id, exit, n) VALUES (?1, ?2, ?3, 1)
                 ON CONFLICT (flow_id, element_id, exit) DO UPDATE SET n = n + 1",
                params![p.flow_id, entry.element_id, exit],
            )
            .map_err(db)
        };
        if write.entered {
            count("")?;
        }
        if let Some(exit) = &entry.exit {
            count(exit)?;
        }
        tx.commit().map_err(db)
    }

    fn wake(&self, key: &str, event: &Value, now: Millis) -> Result<Vec<String>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare(
                "UPDATE participants SET event = ?2, waiting_until = ?3
                 WHERE wait_key = ?1 AND status = 'waiting' RETURNING id",
            )
            .map_err(db)?;
        let rows = stmt
            .query_map(params![key, event.to_string(), now], |r| r.get(0))
            .map_err(db)?;
        let mut ids: Vec<String> = rows.collect::<Result<_, _>>().map_err(db)?;
        ids.sort();
        Ok(ids)
    }

    fn set_deadline(&self, key: &str, until: Millis) -> Result<(), StoreError> {
        self.conn()
            .execute(
                "UPDATE participants SET waiting_until = ?2 WHERE wait_key = ?1 AND status = 'waiting'",
                params![key, until],
            )
            .map_err(db)?;
        Ok(())
    }

    fn participants_of(
        &self,
        flow_id: &str,
        statuses: &[Status],
    ) -> Result<Vec<String>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare("SELECT id, status FROM participants WHERE flow_id = ?1 ORDER BY rowid")
            .map_err(db)?;
        let rows = stmt
            .query_map([flow_id], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
            })
            .map_err(db)?;
        let mut ids = Vec::new();
        for row in rows {
            let (id, status) = row.map_err(db)?;
            if statuses.contains(&parse_status(&status)?) {
                ids.push(id);
            }
        }
        Ok(ids)
    }

    fn element_counts(&self, flow_id: &str) -> Result<BTreeMap<String, ElementCounts>, StoreError> {
        let conn = self.conn();
        let mut out: BTreeMap<String, ElementCounts> = BTreeMap::new();
        let mut stmt = conn
            .prepare("SELECT element_id, exit, n FROM element_counts WHERE flow_id = ?1")
            .map_err(db)?;
        let rows = stmt
            .query_map([flow_id], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, i64>(2)?,
                ))
            })
            .map_err(db)?;
        for row in rows {
            let (element, exit, n) = row.map_err(db)?;
            let counts = out.entry(element).or_default();
            if exit.is_empty() {
                counts.entered = n as u64;
            } else {
                counts.exits.insert(exit, n as u64);
            }
        }
        let mut stmt = conn
            .prepare(
                "SELECT current, COUNT(*) FROM participants
                 WHERE flow_id = ?1 AND status = 'waiting' AND current IS NOT NULL GROUP BY current",
            )
            .map_err(db)?;
        let rows = stmt
            .query_map([flow_id], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?))
            })
            .map_err(db)?;
        for row in rows {
            let (element, n) = row.map_err(db)?;
            out.entry(element).or_default().waiting = n as u64;
        }
        Ok(out)
    }

    fn append_journey(&self, participant_id: &str, entry: &JourneyEntry) -> Result<(), StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction().map_err(db)?;
        append(&tx, participant_id, entry)?;
        tx.commit().map_err(db)
    }

    fn take_slot(
        &self,
        queue: &str,
        now: Millis,
        interval_ms: Millis,
    ) -> Result<Millis, StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction().map_err(db)?;
        let next_free: Option<Millis> = tx
            .query_row(
                "SELECT next_free FROM rate_queues WHERE queue = ?1",
                [queue],
                |r| r.get(0),
            )
            .optional()
            .map_err(db)?;
        let slot = next_free.map_or(now, |n| n.max(now));
        tx.execute(
            "INSERT INTO rate_queues (queue, next_free) VALUES (?1, ?2)
             ON CONFLICT (queue) DO UPDATE SET next_free = ?2",
            params![queue, slot + interval_ms],
        )
        .map_err(db)?;
        tx.commit().map_err(db)?;
        Ok(slot)
    }

    fn count_waiting(
        &self,
        flow_id: &str,
        element_id: &str,
        kind: &str,
    ) -> Result<u64, StoreError> {
        self.conn()
            .query_row(
                "SELECT COUNT(*) FROM participants WHERE flow_id = ?1 AND current = ?2
                 AND status = 'waiting' AND json_extract(element_state, '$.kind') = ?3",
                params![flow_id, element_id, kind],
                |r| r.get::<_, i64>(0),
            )
            .map(|n| n as u64)
            .map_err(db)
    }

    fn save_participant(&self, p: &ParticipantState) -> Result<(), StoreError> {
        upsert(&self.conn(), p)
    }

    fn participant(&self, id: &str) -> Result<Option<ParticipantState>, StoreError> {
        let conn = self.conn();
        let row = conn
            .query_row(
                "SELECT flow_id, person, variables, current, status, waiting_until, steps, element_state,
                     wait_key, event
                 FROM participants WHERE id = ?1",
                [id],
                |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, String>(2)?,
                        r.get::<_, Option<String>>(3)?,
                        r.get::<_, String>(4)?,
                        r.get::<_, Option<Millis>>(5)?,
                        r.get::<_, i64>(6)?,
                        r.get::<_, Option<String>>(7)?,
                        r.get::<_, Option<String>>(8)?,
                        r.get::<_, Option<String>>(9)?,
                    ))
                },
            )
            .optional()
            .map_err(db)?;
        let Some((
            flow_id,
            person,
            vars,
            current,
            status,
            waiting_until,
            steps,
            state,
            wait_key,
            event,
        )) = row
        else {
            return Ok(None);
        };
        Ok(Some(ParticipantState {
            id: id.to_owned(),
            flow_id,
            person: serde_json::from_str(&person).map_err(|e| corrupt(id, e))?,
            variables: serde_json::from_str(&vars).map_err(|e| corrupt(id, e))?,
            current,
            status: parse_status(&status)?,
            waiting_until,
            steps: steps as u64,
            element_state: state
                .map(|s| serde_json::from_str(&s))
                .transpose()
                .map_err(|e| corrupt(id, e))?,
            wait_key,
            event: event
                .map(|s| serde_json::from_str(&s))
                .transpose()
                .map_err(|e| corrupt(id, e))?,
        }))
    }

    fn due(&self, now: Millis, limit: usize) -> Result<Vec<String>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare(
                "SELECT id FROM participants
                 WHERE (status = 'waiting' AND waiting_until <= ?1) OR status = 'queued'
                 ORDER BY COALESCE(waiting_until, 0), id LIMIT ?2",
            )
            .map_err(db)?;
        let rows = stmt
            .query_map(params![now, limit as i64], |r| r.get(0))
            .map_err(db)?;
        rows.collect::<Result<_, _>>().map_err(db)
    }

    fn claim(&self, id: &str) -> Result<Option<Status>, StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction().map_err(db)?;
        let before: Option<String> = tx
            .query_row(
                "SELECT status FROM participants WHERE id = ?1 AND status IN ('waiting', 'queued')",
                [id],
                |r| r.get(0),
            )
            .optional()
            .map_err(db)?;
        let Some(before) = before else {
            return Ok(None);
        };
        tx.execute(
            "UPDATE participants SET status = ?2 WHERE id = ?1",
            params![id, Status::Running.as_str()],
        )
        .map_err(db)?;
        tx.commit().map_err(db)?;
        Ok(Some(parse_status(&before)?))
    }

    fn journey(&self, id: &str) -> Result<Vec<JourneyEntry>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare("SELECT entry FROM journey WHERE participant_id = ?1 ORDER BY seq")
            .map_err(db)?;
        let rows = stmt
            .query_map([id], |r| r.get::<_, String>(0))
            .map_err(db)?;
        rows.map(|r| {
            let text = r.map_err(db)?;
            serde_json::from_str(&text).map_err(|e| corrupt(id, e))
        })
        .collect()
    }
}

impl PeopleStore for SqliteStore {
    fn save_person(&self, person: &Person) -> Result<(), StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction().map_err(db)?;
        for key in person.contact_keys() {
            let owner: Option<String> = tx
                .query_row(
                    "SELECT person_id FROM person_contacts WHERE contact = ?1",
                    [&key],
                    |r| r.get(0),
                )
                .optional()
                .map_err(db)?;
            if let Some(owner) = owner.filter(|o| *o != person.id) {
                return Err(StoreError::Conflict(format!(
                    "contact {key} already belongs to person {owner:?}; update that person instead"
                )));
            }
        }
        tx.execute(
            "DELETE FROM person_contacts WHERE person_id = ?1",
            [&person.id],
        )
        .map_err(db)?;
        for key in person.contact_keys() {
            tx.execute(
                "INSERT INTO person_contacts (contact, person_id) VALUES (?1, ?2)",
                params![key, person.id],
            )
            .map_err(db)?;
        }
        let profile = serde_json::to_string(person).map_err(|e| corrupt("person", e))?;
        tx.execute(
            "INSERT INTO people (id, profile) VALUES (?1, ?2)
             ON CONFLICT (id) DO UPDATE SET profile = ?2",
            params![person.id, profile],
        )
        .map_err(db)?;
        tx.commit().map_err(db)
    }

    fn person(&self, id: &str) -> Result<Option<Person>, StoreError> {
        let text: Option<String> = self
            .conn()
            .query_row("SELECT profile FROM people WHERE id = ?1", [id], |r| {
                r.get(0)
            })
            .optional()
            .map_err(db)?;
        text.map(|t| serde_json::from_str(&t).map_err(|e| corrupt(id, e)))
            .transpose()
    }

    fn person_by_contact(&self, key: &str) -> Result<Option<Person>, StoreError> {
        let id: Option<String> = self
            .conn()
            .query_row(
                "SELECT person_id FROM person_contacts WHERE contact = ?1",
                [key],
                |r| r.get(0),
            )
            .optional()
            .map_err(db)?;
        match id {
            Some(id) => self.person(&id),
            None => Ok(None),
        }
    }
}

impl RecordStore for SqliteStore {
    fn put_record(&self, r: &Record) -> Result<(), StoreError> {
        self.conn()
            .execute(
                "INSERT INTO records (kind, id, key, status, body) VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT (kind, id) DO UPDATE SET key = ?3, status = ?4, body = ?5",
                params![r.kind, r.id, r.key, r.status, r.body.to_string()],
            )
            .map_err(db)?;
        Ok(())
    }

    fn record(&self, kind: &str, id: &str) -> Result<Option<Record>, StoreError> {
        let row: Option<(String, String, String)> = self
            .conn()
            .query_row(
                "SELECT key, status, body FROM records WHERE kind = ?1 AND id = ?2",
                params![kind, id],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .optional()
            .map_err(db)?;
        row.map(|(key, status, body)| {
            Ok(Record {
                kind: kind.to_owned(),
                id: id.to_owned(),
                key,
                status,
                body: serde_json::from_str(&body).map_err(|e| corrupt(id, e))?,
            })
        })
        .transpose()
    }

    fn records(
        &self,
        kind: &str,
        key: Option<&str>,
        status: Option<&str>,
        last: Option<usize>,
    ) -> Result<Vec<Record>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare(
                "SELECT id, key, status, body FROM records
                 WHERE kind = ?1 AND (?2 IS NULL OR key = ?2) AND (?3 IS NULL OR status = ?3)
                 ORDER BY rowid DESC LIMIT ?4",
            )
            .map_err(db)?;
        let limit = last.map_or(-1, |n| n as i64);
        let rows = stmt
            .query_map(params![kind, key, status, limit], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, String>(3)?,
                ))
            })
            .map_err(db)?;
        let mut out = Vec::new();
        for row in rows {
            let (id, key, status, body) = row.map_err(db)?;
            out.push(Record {
                kind: kind.to_owned(),
                body: serde_json::from_str(&body).map_err(|e| corrupt(&id, e))?,
                id,
                key,
                status,
            });
        }
        out.reverse();
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::person::Person;

    #[test]
    fn a_database_from_the_first_release_gets_the_new_columns_and_keeps_its_rows() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("old.db");
        {
            let conn = Connection::open(&path).unwrap();
            conn.execute_batch(
                "CREATE TABLE participants (
                    id TEXT PRIMARY KEY, flow_id TEXT NOT NULL, person TEXT NOT NULL,
                    variables TEXT NOT NULL, current TEXT, status TEXT NOT NULL,
                    waiting_until INTEGER, steps INTEGER NOT NULL);
                 INSERT INTO participants VALUES
                    ('p1', 'f', '{\"id\": \"ada\"}', '{\"n\": 1}', 'w', 'waiting', 5, 2);",
            )
            .unwrap();
        }
        let store = SqliteStore::open(&path).unwrap();
        let old = store.participant("p1").unwrap().unwrap();
        assert_eq!(old.person.id, "ada");
        assert_eq!(
            (old.wait_key, old.event, old.element_state),
            (None, None, None)
        );
        assert_eq!(store.due(5, 10).unwrap(), ["p1"]);
        let mut new = ParticipantState::new("f", "w", Person::default(), Default::default());
        new.status = Status::Waiting;
        new.wait_key = Some("inbound:sms:phone:385911234567:info".into());
        store.insert_participant(&new).unwrap();
        let woken = store
            .wake(
                "inbound:sms:phone:385911234567:info",
                &serde_json::json!({"text": "hi"}),
                7,
            )
            .unwrap();
        assert_eq!(woken, [new.id.clone()]);
        let back = store.participant(&new.id).unwrap().unwrap();
        assert_eq!(back.event, Some(serde_json::json!({"text": "hi"})));
        assert_eq!(back.waiting_until, Some(7));
        assert_eq!(store.claim(&new.id).unwrap(), Some(Status::Waiting));
        assert_eq!(store.claim(&new.id).unwrap(), None, "claimed once");
    }
}
