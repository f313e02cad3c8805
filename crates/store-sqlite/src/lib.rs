//! The embedded store: flowhost's storage API ([`flowhost_store`]) on one SQLite file.
//!
//! SQLite calls block, so they never run on the async workers: one thread owns the
//! writing connection and runs the store's writes one after another, in the order they were
//! asked, committing those queued together at once (the `worker` module). Each call hands
//! the thread a closure and awaits its answer. A write that spans tables (a step with its
//! journey entry and counters, a claim) is one transaction. On a file, the reads a step or
//! the API makes (a person, a journey, counts) go to a second connection on a thread of its
//! own, so they neither queue behind the writes nor take the writer's time; what a write
//! needs as JSON is written out before it reaches the writer.
//!
//! The schema is created on open; databases from earlier releases get the columns added
//! since (the `schema` module).
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), flowhost_store::StoreError> {
//! use flowhost_store::FlowStore;
//! use flowhost_store_sqlite::SqliteStore;
//!
//! let store = SqliteStore::in_memory()?;
//! store.save_flow("welcome", 1, "{}").await?;
//! assert_eq!(store.flows().await?.len(), 1);
//! # Ok(()) }
//! ```
#![deny(missing_docs)]

mod participants;
mod people;
mod records;
mod rows;
mod schema;
#[cfg(test)]
mod tests;
mod worker;

use async_trait::async_trait;
use flowhost_store::{
    Claim, Durability, EarlierAnswer, ElementCounts, FlowStore, IdempotentRequest, JourneyEntry,
    Lease, ParticipantState, ParticipantStore, PeopleStore, QueueStore, Record, RecordStore,
    SavedFlow, Status, StatusCounts, StepRecord, StoreError, parse_status,
};
use flowhost_types::clock::Millis;
use flowhost_types::person::Person;
use rusqlite::{Connection, OptionalExtension, params};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use worker::{Undo, Worker};

/// Participants, journeys, people and records in one SQLite file (WAL mode). Cheap to clone:
/// clones share the connections' threads.
#[derive(Clone)]
pub struct SqliteStore {
    worker: Worker,
    /// A second connection, on a thread of its own, for the reads a step makes (a person's
    /// profile) and those of the API, so they do not queue behind the writes nor take the
    /// writer's time. A file database only: an in-memory one is its one connection.
    reader: Option<Worker>,
    /// The file, for errors that must name it.
    path: Arc<str>,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore").finish_non_exhaustive()
    }
}

fn db(context: &'static str) -> impl Fn(rusqlite::Error) -> StoreError {
    move |e| StoreError::database(context, e)
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path`, and migrates it.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        Self::open_with(path, Durability::Fast)
    }

    /// [`SqliteStore::open`] with what a commit survives.
    pub fn open_with(path: &Path, durability: Durability) -> Result<Self, StoreError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| {
                StoreError::database(format!("creating the folder {}", dir.display()), e)
            })?;
        }
        let name = path.display().to_string();
        let open = || {
            Connection::open(path)
                .map_err(|e| explain(&name, StoreError::database("opening it", e)))
        };
        let conn = open()?;
        schema::prepare(&conn, durability).map_err(|e| explain(&name, e))?;
        let checkpointer = open()?;
        schema::prepare_checkpointer(&checkpointer, durability).map_err(|e| explain(&name, e))?;
        let reader = open()?;
        schema::prepare_reader(&reader).map_err(|e| explain(&name, e))?;
        let mut store = Self::start(conn, Some(checkpointer), &name)?;
        store.reader = Some(Worker::spawn_reader(reader).map_err(|e| explain(&name, e))?);
        Ok(store)
    }

    /// A private in-memory database.
    pub fn in_memory() -> Result<Self, StoreError> {
        let conn = Connection::open_in_memory().map_err(db("opening an in-memory database"))?;
        schema::prepare(&conn, Durability::Fast)?;
        Self::start(conn, None, ":memory:")
    }

    /// Serves `conn` (the file `path`, with a second connection for its checkpoints): starts
    /// its thread.
    fn start(
        conn: Connection,
        checkpointer: Option<Connection>,
        path: &str,
    ) -> Result<Self, StoreError> {
        Ok(SqliteStore {
            worker: Worker::spawn(conn, checkpointer).map_err(|e| explain(path, e))?,
            reader: None,
            path: path.into(),
        })
    }

    /// Runs `f`'s writes like [`SqliteStore::write_refusing_first`], with a [`rows::Tally`]
    /// for the counters they increment: summed with the counts of the writes committed with
    /// them and written once.
    async fn write_tallied<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection, &mut rows::Tally) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        self.worker
            .write_tallied(Undo::Whole, f)
            .await
            .map_err(|e| explain(&self.path, e))
    }

    async fn call<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        self.worker
            .call(f)
            .await
            .map_err(|e| explain(&self.path, e))
    }

    /// Runs `f`, which only reads, on the reading connection while the writer has work, on
    /// the writer's when it has none (it answers at once then, where the reading thread,
    /// which does not spin, would first have to be woken), and on the writer's for an
    /// in-memory database. It sees every write committed before it starts: a write's caller
    /// hears of it only once it is committed, so a read that follows an awaited write sees
    /// it.
    async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let worker = match &self.reader {
            Some(reader) if !self.worker.is_idle() => reader,
            _ => &self.worker,
        };
        worker
            .call(move |conn| f(conn))
            .await
            .map_err(|e| explain(&self.path, e))
    }

    /// Runs `f`'s writes in a transaction shared with the writes queued beside it (group
    /// commit); answers once it is committed. `f` begins no transaction of its own.
    async fn write<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        self.worker
            .write(Undo::Savepoint, f)
            .await
            .map_err(|e| explain(&self.path, e))
    }

    /// [`SqliteStore::write`] for `f` that refuses only before it changes anything (its
    /// first statement finds a lost lease, say) or when the database fails: it runs without
    /// a savepoint of its own, which a group's writes otherwise pay for in copies of every
    /// page they change. Should it fail having changed rows, the writes committed with it
    /// fail too (see the `worker` module).
    async fn write_refusing_first<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        self.worker
            .write(Undo::Whole, f)
            .await
            .map_err(|e| explain(&self.path, e))
    }
}

/// A database failure the operator can fix, said as such: which file, what is wrong, what to
/// do. Other failures stay as they are.
fn explain(path: &str, e: StoreError) -> StoreError {
    use rusqlite::ErrorCode as C;
    let StoreError::Database { context, cause } = e else {
        return e;
    };
    let code = match cause.downcast_ref::<rusqlite::Error>() {
        Some(rusqlite::Error::SqliteFailure(failure, _)) => failure.code,
        _ => return StoreError::Database { context, cause },
    };
    let (problem, fix) = match code {
        C::ReadOnly => (
            "it cannot be written (the file or its folder is read-only)",
            "make the file, its -wal and -shm files and their folder writable by the user running flowhost; nothing was written, and flowhost tries again",
        ),
        C::DiskFull => (
            "its disk is full",
            "free space on that disk; nothing was written, and flowhost tries again",
        ),
        C::DatabaseBusy | C::DatabaseLocked => (
            "another program has held it locked for more than 5 s",
            "stop the program holding it (two flowhost processes share a database only through PostgreSQL); flowhost tries again",
        ),
        C::DatabaseCorrupt | C::NotADatabase => (
            "it is damaged or not a flowhost database",
            "restore it from a backup, or move it aside to start with an empty one, and restart flowhost",
        ),
        C::CannotOpen | C::PermissionDenied => (
            "it cannot be opened",
            "check that its folder exists and the user running flowhost may read and write there",
        ),
        C::SystemIoFailure => (
            "its disk failed to read or write",
            "check the disk; nothing was written, and flowhost tries again",
        ),
        _ => return StoreError::Database { context, cause },
    };
    StoreError::Unusable {
        database: path.to_owned(),
        problem: problem.to_owned(),
        context,
        fix: fix.to_owned(),
    }
}

fn json<T: serde::Serialize>(what: &str, value: &T) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|e| StoreError::corrupt(what, e))
}

#[async_trait]
impl FlowStore for SqliteStore {
    async fn save_flow(&self, id: &str, version: u32, definition: &str) -> Result<(), StoreError> {
        let (id, definition) = (id.to_owned(), definition.to_owned());
        self.write(move |conn| {
            // Writes run one at a time on the database thread, so stamps grow in commit order.
            conn.execute(
                "INSERT INTO flows (id, definition, version, changed)
                 VALUES (?1, ?2, ?3, (SELECT COALESCE(MAX(changed), 0) + 1 FROM flows))
                 ON CONFLICT (id) DO UPDATE SET definition = ?2, version = ?3,
                     changed = (SELECT COALESCE(MAX(changed), 0) + 1 FROM flows)",
                params![id, definition, version],
            )
            .and_then(|_| {
                conn.execute(
                    "INSERT INTO flow_versions (flow_id, version, definition) VALUES (?1, ?2, ?3)
                     ON CONFLICT (flow_id, version) DO UPDATE SET definition = ?3",
                    params![id, version, definition],
                )
            })
            .map_err(db("saving a flow"))?;
            Ok(())
        })
        .await
    }

    async fn flows(&self) -> Result<Vec<SavedFlow>, StoreError> {
        self.call(|conn| saved_flows(conn, "ORDER BY id", 0)).await
    }

    async fn flows_changed_since(&self, changed: u64) -> Result<Vec<SavedFlow>, StoreError> {
        self.call(move |conn| saved_flows(conn, "WHERE changed > ?1 ORDER BY changed", changed))
            .await
    }

    async fn flow_version(&self, id: &str, version: u32) -> Result<Option<String>, StoreError> {
        let id = id.to_owned();
        self.call(move |conn| {
            conn.prepare_cached(
                "SELECT definition FROM flow_versions WHERE flow_id = ?1 AND version = ?2",
            )
            .and_then(|mut stmt| {
                stmt.query_row(params![id, version], |r| r.get(0))
                    .optional()
            })
            .map_err(db("reading a flow version"))
        })
        .await
    }
}

#[async_trait]
impl QueueStore for SqliteStore {
    async fn take_slot(
        &self,
        queue: &str,
        holder: &str,
        now: Millis,
        interval_ms: Millis,
    ) -> Result<Millis, StoreError> {
        let (queue, holder) = (queue.to_owned(), holder.to_owned());
        self.write(move |conn| {
            let held: Option<Millis> = conn
                .prepare_cached("SELECT slot FROM rate_holds WHERE queue = ?1 AND holder = ?2")
                .and_then(|mut stmt| {
                    stmt.query_row(params![queue, holder], |r| r.get(0))
                        .optional()
                })
                .map_err(db("taking a send slot"))?;
            if let Some(slot) = held {
                return Ok(slot);
            }
            // The queue's next free time is the later of now and what it was, plus the
            // interval; the slot is that minus it.
            let slot: Millis = conn
                .prepare_cached(
                    "INSERT INTO rate_queues (queue, next_free) VALUES (?1, ?2 + ?3)
                     ON CONFLICT (queue) DO UPDATE SET next_free = MAX(next_free, ?2) + ?3
                     RETURNING next_free - ?3",
                )
                .and_then(|mut stmt| stmt.query_row(params![queue, now, interval_ms], |r| r.get(0)))
                .map_err(db("taking a send slot"))?;
            conn.prepare_cached("INSERT INTO rate_holds (queue, holder, slot) VALUES (?1, ?2, ?3)")
                .and_then(|mut stmt| stmt.execute(params![queue, holder, slot]))
                .and_then(|_| {
                    conn.prepare_cached("DELETE FROM rate_holds WHERE queue = ?1 AND slot < ?2")
                        .and_then(|mut stmt| stmt.execute(params![queue, now - 86_400_000]))
                })
                .map_err(db("taking a send slot"))?;
            Ok(slot)
        })
        .await
    }
}

/// Saved flows, `clause` filtering (by `?1`, the stamp) and ordering them.
fn saved_flows(
    conn: &Connection,
    clause: &str,
    changed: u64,
) -> Result<Vec<SavedFlow>, StoreError> {
    let mut stmt = conn
        .prepare_cached(&format!(
            "SELECT id, version, definition, changed FROM flows {clause}"
        ))
        .map_err(db("listing flows"))?;
    let changed = changed as i64;
    let params: &[&dyn rusqlite::ToSql] = if clause.contains("?1") {
        &[&changed]
    } else {
        &[]
    };
    let rows = stmt
        .query_map(params, |r| {
            Ok(SavedFlow {
                id: r.get(0)?,
                version: r.get(1)?,
                definition: r.get(2)?,
                changed: r.get::<_, i64>(3)? as u64,
            })
        })
        .map_err(db("listing flows"))?;
    rows.collect::<Result<_, _>>().map_err(db("listing flows"))
}
