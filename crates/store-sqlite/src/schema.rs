//! The schema, created on open, and the columns added since the first release, which older
//! databases get on open.

use flowhost_store::{Durability, StoreError};
use rusqlite::{Connection, OptionalExtension};

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
CREATE TABLE IF NOT EXISTS rate_queues (
    queue TEXT PRIMARY KEY,
    next_free INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS rate_holds (
    queue TEXT NOT NULL,
    holder TEXT NOT NULL,
    slot INTEGER NOT NULL,
    PRIMARY KEY (queue, holder)
);
CREATE INDEX IF NOT EXISTS rate_holds_slot ON rate_holds (queue, slot);
CREATE TABLE IF NOT EXISTS flow_versions (
    flow_id TEXT NOT NULL,
    version INTEGER NOT NULL,
    definition TEXT NOT NULL,
    PRIMARY KEY (flow_id, version)
);
CREATE TABLE IF NOT EXISTS version_counts (
    flow_id TEXT NOT NULL,
    version INTEGER NOT NULL,
    element_id TEXT NOT NULL,
    exit TEXT NOT NULL,
    n INTEGER NOT NULL,
    PRIMARY KEY (flow_id, version, element_id, exit)
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
CREATE TABLE IF NOT EXISTS holds (
    kind TEXT NOT NULL,
    id TEXT NOT NULL,
    owner TEXT NOT NULL,
    until INTEGER NOT NULL,
    PRIMARY KEY (kind, id)
);
CREATE TABLE IF NOT EXISTS idempotency_keys (
    scope TEXT NOT NULL,
    key TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    answer TEXT NOT NULL,
    at INTEGER NOT NULL,
    PRIMARY KEY (scope, key)
);
";

/// The journey's columns: a table clustered on its key (`WITHOUT ROWID`), so that an entry
/// is one B-tree insert, not two (a table and its primary key's index). Databases from
/// before had a rowid table; [`cluster_journey`] copies it over once.
const JOURNEY: &str = "(
    participant_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    entry TEXT NOT NULL,
    PRIMARY KEY (participant_id, seq)
) WITHOUT ROWID";

/// Columns added after a table's first release, with their types.
const ADDED_COLUMNS: &[(&str, &str, &str)] = &[
    ("participants", "element_state", "TEXT"),
    ("participants", "wait_key", "TEXT"),
    ("participants", "event", "TEXT"),
    // Leases: who runs the participant, until when, and the fencing epoch (see the storage
    // API's crate documentation).
    ("participants", "lease_owner", "TEXT"),
    ("participants", "lease_expires", "INTEGER"),
    ("participants", "epoch", "INTEGER NOT NULL DEFAULT 0"),
    // Why a participant waits, as its element names it; analytics count by it.
    ("participants", "wait_reason", "TEXT"),
    // Flow versions: what existed before them is version 1.
    ("participants", "flow_version", "INTEGER NOT NULL DEFAULT 1"),
    ("flows", "version", "INTEGER NOT NULL DEFAULT 1"),
    ("flows", "changed", "INTEGER NOT NULL DEFAULT 0"),
    // Takeover of an expired lease: how the claimed participant goes on ('waiting' resumes
    // in its element, 'queued' enters it), and how many takeovers since its last commit.
    ("participants", "claimed_from", "TEXT"),
    ("participants", "retried", "INTEGER NOT NULL DEFAULT 0"),
    // When its last step was recorded (retention prunes finished participants by it).
    ("participants", "updated_at", "INTEGER"),
    // The id of its person, kept apart from the person's JSON so that an update of that JSON
    // leaves the index of a person's participants alone (NULL for a person with no id).
    ("participants", "person_id", "TEXT"),
];

/// The participants' indexes. All but the first serve one kind of work each, partial so
/// that a row is in them only while that work may need it: due work (waiting, queued or
/// running), wake-ups (a wait key), retention (finished), a person's participants (a person
/// id). A row's update moves it in an index only where its old or new state is in that
/// index, so a step writes fewer of them, and each index stays as small as the work it
/// serves. Their conditions are written `status = 'waiting' OR ...`, not `IN (...)`: so a
/// query on one status can use them, and because SQLite checks an `IN` list in a temporary
/// table it makes on every update. Databases from before had whole indexes, under the names
/// dropped here.
const INDEXES: &str = "
CREATE INDEX IF NOT EXISTS participants_flow
    ON participants (flow_id, status, flow_version, current);
CREATE INDEX IF NOT EXISTS participants_pending ON participants (status, waiting_until)
    WHERE status = 'waiting' OR status = 'queued' OR status = 'running';
CREATE INDEX IF NOT EXISTS participants_waking ON participants (wait_key, status)
    WHERE wait_key IS NOT NULL;
CREATE INDEX IF NOT EXISTS participants_finished ON participants (status, updated_at)
    WHERE status = 'completed' OR status = 'failed' OR status = 'canceled';
CREATE INDEX IF NOT EXISTS participants_person_id ON participants (person_id)
    WHERE person_id IS NOT NULL;
DROP INDEX IF EXISTS participants_due;
DROP INDEX IF EXISTS participants_person;
DROP INDEX IF EXISTS participants_wait_key;
DROP INDEX IF EXISTS participants_updated;
";

/// Run once, right after a column is added, to fill it for the rows already there.
const BACKFILLS: &[(&str, &str)] = &[
    (
        "person_id",
        "UPDATE participants SET person_id = NULLIF(json_extract(person, '$.id'), '')",
    ),
    (
        // Before `wait_reason`, elements kept the reason in their state as `"kind"`.
        "wait_reason",
        "UPDATE participants SET wait_reason = json_extract(element_state, '$.kind')
         WHERE element_state IS NOT NULL",
    ),
];

fn db(context: &'static str) -> impl Fn(rusqlite::Error) -> StoreError {
    move |e| StoreError::database(context, e)
}

/// Prepared statements kept per connection: more than the store has.
const STATEMENTS_KEPT: usize = 256;

/// Sets up the second connection to a database that [`prepare`] set up, which checkpoints
/// its WAL (the `worker` module): its syncs as the writer's, and as patient with the writer's
/// locks.
pub(crate) fn prepare_checkpointer(
    conn: &Connection,
    durability: Durability,
) -> Result<(), StoreError> {
    conn.pragma_update(None, "synchronous", synchronous(durability))
        .map_err(db("setting synchronous mode"))?;
    conn.busy_timeout(std::time::Duration::from_secs(5))
        .map_err(db("setting the busy timeout"))
}

/// Sets up the connection that serves reads (see `SqliteStore::read`): it may not write.
pub(crate) fn prepare_reader(conn: &Connection) -> Result<(), StoreError> {
    conn.pragma_update(None, "query_only", true)
        .map_err(db("making the reading connection read-only"))?;
    conn.set_prepared_statement_cache_capacity(STATEMENTS_KEPT);
    conn.busy_timeout(std::time::Duration::from_secs(5))
        .map_err(db("setting the busy timeout"))
}

fn synchronous(durability: Durability) -> &'static str {
    match durability {
        Durability::Fast => "NORMAL",
        Durability::Full => "FULL",
    }
}

/// Sets the connection up and brings the schema up to date.
pub(crate) fn prepare(conn: &Connection, durability: Durability) -> Result<(), StoreError> {
    // WAL: a committed step survives a process crash. NORMAL syncs at checkpoints, so the
    // last steps before a power loss may not survive it; FULL syncs every commit.
    conn.pragma_update(None, "journal_mode", "WAL")
        .map_err(db("setting WAL mode"))?;
    conn.pragma_update(None, "synchronous", synchronous(durability))
        .map_err(db("setting synchronous mode"))?;
    // A write of a group commit that may fail after changing rows runs in a savepoint, whose
    // undo copies of the pages it changes go to a statement journal: in memory, not a
    // temporary file written (and opened) for every savepoint. Nothing durable is in it.
    conn.pragma_update(None, "temp_store", "MEMORY")
        .map_err(db("keeping temporary data in memory"))?;
    conn.busy_timeout(std::time::Duration::from_secs(5))
        .map_err(db("setting the busy timeout"))?;
    // Every statement the store runs stays prepared (rusqlite keeps 16 by default, fewer
    // than the store has, so a busy mix would prepare some again on every call).
    conn.set_prepared_statement_cache_capacity(STATEMENTS_KEPT);
    conn.execute_batch(SCHEMA)
        .map_err(db("creating the schema"))?;
    cluster_journey(conn)?;
    for (table, column, kind) in ADDED_COLUMNS {
        let present: bool = conn
            .query_row(
                "SELECT COUNT(*) FROM pragma_table_info(?1) WHERE name = ?2",
                [table, column],
                |r| r.get::<_, i64>(0),
            )
            .map_err(db("reading the schema"))?
            > 0;
        if !present {
            // The column and its backfill commit together: a crash between them would leave
            // the column there and never filled, since the next open sees it present.
            let tx = conn
                .unchecked_transaction()
                .map_err(db("adding a column"))?;
            tx.execute_batch(&format!("ALTER TABLE {table} ADD COLUMN {column} {kind}"))
                .map_err(db("adding a column"))?;
            for (_, backfill) in BACKFILLS.iter().filter(|(c, _)| c == column) {
                tx.execute_batch(backfill)
                    .map_err(db("filling an added column"))?;
            }
            tx.commit().map_err(db("adding a column"))?;
        }
    }
    conn.execute_batch(INDEXES)
        .map_err(db("creating an index"))?;
    // Before versions: one definition per flow and counters per flow, both version 1 now.
    let unversioned: i64 = conn
        .query_row(
            "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = 'element_counts'",
            [],
            |r| r.get(0),
        )
        .map_err(db("reading the schema"))?;
    if unversioned > 0 {
        conn.execute_batch(
            "BEGIN;
             INSERT OR IGNORE INTO version_counts (flow_id, version, element_id, exit, n)
                 SELECT flow_id, 1, element_id, exit, n FROM element_counts;
             INSERT OR IGNORE INTO flow_versions (flow_id, version, definition)
                 SELECT id, version, definition FROM flows;
             DROP TABLE element_counts;
             COMMIT;",
        )
        .map_err(db("moving analytics to versioned counters"))?;
    }
    Ok(())
}

/// Creates the journey table, or moves a journey from before [`JOURNEY`] into one: a copy of
/// every entry, once, in one transaction (a crash leaves the old table as it was).
fn cluster_journey(conn: &Connection) -> Result<(), StoreError> {
    let old: Option<String> = conn
        .query_row(
            "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'journey'",
            [],
            |r| r.get(0),
        )
        .optional()
        .map_err(db("reading the schema"))?;
    let Some(old) = old else {
        return conn
            .execute_batch(&format!("CREATE TABLE journey {JOURNEY}"))
            .map_err(db("creating the schema"));
    };
    if old.contains("WITHOUT ROWID") {
        return Ok(());
    }
    tracing::info!("moving the journey to a table clustered on its key (once)");
    conn.execute_batch(&format!(
        "BEGIN IMMEDIATE;
         CREATE TABLE journey_clustered {JOURNEY};
         INSERT INTO journey_clustered (participant_id, seq, entry)
             SELECT participant_id, seq, entry FROM journey;
         DROP TABLE journey;
         ALTER TABLE journey_clustered RENAME TO journey;
         COMMIT;"
    ))
    .map_err(|e| {
        let _ = conn.execute_batch("ROLLBACK");
        StoreError::database("moving the journey to a clustered table", e)
    })
}
