//! The embedded SQLite store.

use super::{JourneyEntry, ParticipantState, StateStore, Status, StoreError, parse_status};
use crate::clock::Millis;
use rusqlite::{Connection, OptionalExtension, params};
use serde_json::Value;
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
";

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
        // Databases from before element state existed get the column.
        let has_state: bool = conn
            .query_row(
                "SELECT COUNT(*) FROM pragma_table_info('participants') WHERE name = 'element_state'",
                [],
                |r| r.get::<_, i64>(0),
            )
            .map_err(db)?
            > 0;
        if !has_state {
            conn.execute_batch("ALTER TABLE participants ADD COLUMN element_state TEXT")
                .map_err(db)?;
        }
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
    conn.execute(
        "INSERT INTO participants (id, flow_id, person, variables, current, status, waiting_until, steps, element_state)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
         ON CONFLICT (id) DO UPDATE SET person = ?3, variables = ?4, current = ?5, status = ?6,
             waiting_until = ?7, steps = ?8, element_state = ?9",
        params![
            p.id,
            p.flow_id,
            person,
            vars,
            p.current,
            p.status.as_str(),
            p.waiting_until,
            p.steps as i64,
            state
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

    fn record_step(&self, p: &ParticipantState, entry: &JourneyEntry) -> Result<(), StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction().map_err(db)?;
        upsert(&tx, p)?;
        append(&tx, &p.id, entry)?;
        tx.commit().map_err(db)
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
                "SELECT flow_id, person, variables, current, status, waiting_until, steps, element_state
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
                    ))
                },
            )
            .optional()
            .map_err(db)?;
        let Some((flow_id, person, vars, current, status, waiting_until, steps, state)) = row
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
        }))
    }

    fn due(&self, now: Millis, limit: usize) -> Result<Vec<String>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare(
                "SELECT id FROM participants WHERE status = 'waiting' AND waiting_until <= ?1
                 ORDER BY waiting_until, id LIMIT ?2",
            )
            .map_err(db)?;
        let rows = stmt
            .query_map(params![now, limit as i64], |r| r.get(0))
            .map_err(db)?;
        rows.collect::<Result<_, _>>().map_err(db)
    }

    fn claim(&self, id: &str) -> Result<bool, StoreError> {
        let n = self
            .conn()
            .execute(
                "UPDATE participants SET status = ?2 WHERE id = ?1 AND status = 'waiting'",
                params![id, Status::Running.as_str()],
            )
            .map_err(db)?;
        Ok(n == 1)
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
