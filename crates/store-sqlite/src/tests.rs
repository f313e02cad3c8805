//! The conformance suite, in memory and on a file, and what is particular to SQLite.

use super::*;

async fn fresh() -> (SqliteStore, ()) {
    (SqliteStore::in_memory().unwrap(), ())
}

flowhost_store::conformance_tests!(fresh);

/// The same suite on a file.
async fn fresh_file() -> (SqliteStore, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    (
        SqliteStore::open(&dir.path().join("state.db")).unwrap(),
        dir,
    )
}

mod on_a_file {
    use super::fresh_file;
    flowhost_store::conformance_tests!(fresh_file);
}

/// A database with the participants table of the first release, plus `columns`, holding
/// `rows`.
fn old_database(dir: &tempfile::TempDir, columns: &str, rows: &str) -> std::path::PathBuf {
    let path = dir.path().join("old.db");
    let conn = Connection::open(&path).unwrap();
    conn.execute_batch(&format!(
        "CREATE TABLE participants (
            id TEXT PRIMARY KEY, flow_id TEXT NOT NULL, person TEXT NOT NULL,
            variables TEXT NOT NULL, current TEXT, status TEXT NOT NULL,
            waiting_until INTEGER, steps INTEGER NOT NULL{columns});
         INSERT INTO participants VALUES {rows};"
    ))
    .unwrap();
    path
}

#[tokio::test]
async fn a_database_from_the_first_release_gets_the_new_columns_and_keeps_its_rows() {
    let dir = tempfile::tempdir().unwrap();
    let path = old_database(
        &dir,
        "",
        "('p1', 'f', '{\"id\": \"ada\"}', '{\"n\": 1}', 'w', 'waiting', 5, 2)",
    );
    let store = SqliteStore::open(&path).unwrap();
    let old = store.participant("p1").await.unwrap().unwrap();
    assert_eq!(old.person.id, "ada");
    assert_eq!(
        store.participants_of_person("ada", 10).await.unwrap(),
        ["p1"]
    );
    assert_eq!(
        (old.wait_key, old.event, old.element_state),
        (None, None, None)
    );
    assert_eq!(store.due(5, 10, &[]).await.unwrap(), ["p1"]);
    let claim = store.claim("p1", "node", 5, 60_000).await.unwrap().unwrap();
    assert_eq!((claim.was, claim.lease.epoch), (Status::Waiting, 1));
    assert!(
        store
            .claim("p1", "node", 5, 60_000)
            .await
            .unwrap()
            .is_none(),
        "claimed once"
    );
}

#[tokio::test]
async fn a_journey_from_before_moves_to_a_clustered_table_with_its_entries() {
    let dir = tempfile::tempdir().unwrap();
    let path = old_database(
        &dir,
        "",
        "('p1', 'f', '{\"id\": \"ada\"}', '{}', NULL, 'completed', NULL, 2)",
    );
    let entry = |seq: u64, element: &str| -> JourneyEntry {
        serde_json::from_value(serde_json::json!({
            "seq": seq, "at_ms": 1, "element_id": element, "element_type": "set-variable",
            "variables_changed": {}, "logs": [], "duration_us": 0
        }))
        .unwrap()
    };
    let conn = Connection::open(&path).unwrap();
    conn.execute_batch(
        "CREATE TABLE journey (participant_id TEXT NOT NULL, seq INTEGER NOT NULL,
             entry TEXT NOT NULL, PRIMARY KEY (participant_id, seq))",
    )
    .unwrap();
    for (seq, element) in [(1, "a"), (2, "b")] {
        let text = serde_json::to_string(&entry(seq, element)).unwrap();
        conn.execute(
            "INSERT INTO journey VALUES ('p1', ?1, ?2)",
            params![seq as i64, text],
        )
        .unwrap();
    }
    drop(conn);
    let store = SqliteStore::open(&path).unwrap();
    store.append_journey("p1", &entry(0, "c")).await.unwrap();
    let elements: Vec<_> = store
        .journey("p1")
        .await
        .unwrap()
        .into_iter()
        .map(|e| (e.seq, e.element_id))
        .collect();
    assert_eq!(
        elements,
        [(1, "a".into()), (2, "b".into()), (3, "c".into())]
    );
    drop(store);
    let sql: String = Connection::open(&path)
        .unwrap()
        .query_row(
            "SELECT sql FROM sqlite_master WHERE name = 'journey'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert!(sql.contains("WITHOUT ROWID"), "{sql}");
}

#[tokio::test]
async fn waits_from_before_wait_reason_keep_their_reason_from_the_element_state() {
    let dir = tempfile::tempdir().unwrap();
    let path = old_database(
        &dir,
        ", element_state TEXT",
        "('p1', 'f', '{\"id\": \"ada\"}', '{}', 'call', 'waiting', 5, 2,
          '{\"kind\": \"retry\", \"attempt\": 2}'),
         ('p2', 'f', '{\"id\": \"bob\"}', '{}', 'call', 'waiting', 5, 2,
          '{\"kind\": \"queued\"}')",
    );
    let store = SqliteStore::open(&path).unwrap();
    let state = store
        .participant("p1")
        .await
        .unwrap()
        .unwrap()
        .element_state;
    let state = state.expect("kept");
    assert_eq!(state.reason, "retry");
    assert_eq!(state.data["attempt"], 2);
    assert_eq!(store.count_waiting("f", "call", "queued").await.unwrap(), 1);
    assert_eq!(store.count_waiting("f", "call", "retry").await.unwrap(), 1);
}

#[tokio::test]
async fn dropping_the_last_handle_closes_the_database_before_it_returns() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    let store = SqliteStore::open(&path).unwrap();
    let clone = store.clone();
    store.save_flow("f", 1, "{}").await.unwrap();
    assert!(dir.path().join("state.db-wal").exists());
    drop(store);
    clone.save_flow("g", 1, "{}").await.unwrap();
    drop(clone);
    // The last connection closed: SQLite checkpointed and removed the write-ahead log.
    assert!(!dir.path().join("state.db-wal").exists());
    let again = SqliteStore::open(&path).unwrap();
    assert_eq!(again.flows().await.unwrap().len(), 2);
}

#[tokio::test]
async fn a_panicking_query_fails_its_call_and_the_store_goes_on() {
    let (store, ()) = fresh().await;
    let err = store
        .call(|_| -> Result<(), StoreError> { panic!("boom") })
        .await
        .unwrap_err();
    assert!(err.to_string().contains("panicked"), "{err}");
    store.save_flow("f", 1, "{}").await.unwrap();
    assert_eq!(store.flows().await.unwrap().len(), 1);
}

#[tokio::test]
async fn a_database_from_before_flow_versions_has_everything_as_version_1() {
    let dir = tempfile::tempdir().unwrap();
    let path = old_database(
        &dir,
        "",
        "('p1', 'f', '{\"id\": \"ada\"}', '{\"n\": 1}', 'w', 'waiting', 5, 2)",
    );
    Connection::open(&path)
        .unwrap()
        .execute_batch(
            "CREATE TABLE flows (id TEXT PRIMARY KEY, definition TEXT NOT NULL);
             INSERT INTO flows VALUES ('f', '{\"id\": \"f\"}');
             CREATE TABLE element_counts (flow_id TEXT NOT NULL, element_id TEXT NOT NULL,
                 exit TEXT NOT NULL, n INTEGER NOT NULL, PRIMARY KEY (flow_id, element_id, exit));
             INSERT INTO element_counts VALUES ('f', 'w', '', 3), ('f', 'w', 'next', 1);",
        )
        .unwrap();
    let store = SqliteStore::open(&path).unwrap();
    let flows = store.flows().await.unwrap();
    assert_eq!((flows[0].id.as_str(), flows[0].version), ("f", 1));
    assert_eq!(
        store.flow_version("f", 1).await.unwrap().as_deref(),
        Some("{\"id\": \"f\"}")
    );
    assert_eq!(
        store.participant("p1").await.unwrap().unwrap().flow_version,
        1
    );
    let counts = store.element_counts("f", Some(1)).await.unwrap();
    assert_eq!(
        (
            counts["w"].entered,
            counts["w"].exits["next"],
            counts["w"].waiting
        ),
        (3, 1, 1)
    );
    // Opening again changes nothing.
    drop(store);
    let again = SqliteStore::open(&path).unwrap();
    assert_eq!(again.element_counts("f", None).await.unwrap(), counts);
}

/// `durability = "full"` syncs every commit; the default syncs at checkpoints.
#[tokio::test]
async fn durability_sets_how_often_commits_are_synced() {
    let dir = tempfile::tempdir().unwrap();
    let mode = |store: SqliteStore| async move {
        store
            .call(|c| {
                c.pragma_query_value(None, "synchronous", |r| r.get::<_, i64>(0))
                    .map_err(|e| StoreError::database("reading a pragma", e))
            })
            .await
            .unwrap()
    };
    let fast = SqliteStore::open(&dir.path().join("a.db")).unwrap();
    assert_eq!(mode(fast).await, 1, "NORMAL");
    let full = SqliteStore::open_with(&dir.path().join("b.db"), Durability::Full).unwrap();
    assert_eq!(mode(full).await, 2, "FULL");
}

/// A database that cannot be written says so in one line naming the file and what to do,
/// and writes nothing; reads still work.
#[tokio::test]
async fn a_read_only_database_says_which_file_and_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    let new = || {
        flowhost_types::participant::ParticipantState::new(
            "f",
            1,
            "a",
            Person::default(),
            BTreeMap::new(),
        )
    };
    let p = new();
    {
        let store = SqliteStore::open(&path).unwrap();
        store.insert_claimed(&p, "node-a", 60_000).await.unwrap();
    }
    // As the operator would meet it on a read-only mount or file.
    let conn =
        Connection::open_with_flags(&path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap();
    let name = path.display().to_string();
    crate::schema::prepare(&conn, Durability::Fast).unwrap();
    let store = SqliteStore::start(conn, None, &name).unwrap();
    assert!(
        store.participant(&p.id).await.unwrap().is_some(),
        "reads work"
    );
    let err = store
        .insert_claimed(&new(), "node-a", 60_000)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Unusable { .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        format!(
            "state database {name}: it cannot be written (the file or its folder is read-only) (inserting a participant); make the file, its -wal and -shm files and their folder writable by the user running flowhost; nothing was written, and flowhost tries again"
        )
    );
}

/// A file that is not a database is named, with what to do.
#[test]
fn a_file_that_is_not_a_database_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notes.txt");
    std::fs::write(&path, "x".repeat(4096)).unwrap();
    let err = SqliteStore::open(&path).unwrap_err().to_string();
    assert!(
        err.starts_with(&format!(
            "state database {}: it is damaged or not a flowhost database",
            path.display()
        )) && err.ends_with("restore it from a backup, or move it aside to start with an empty one, and restart flowhost"),
        "{err}"
    );
}

/// On a file, reads have a connection of their own: a read does not wait behind a write
/// that holds the writer, and sees what was committed before it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_does_not_queue_behind_a_write() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("state.db")).unwrap();
    let ada = Person {
        id: "ada".into(),
        ..Person::default()
    };
    store.save_person(&ada).await.unwrap();
    let (release, held) = std::sync::mpsc::channel::<()>();
    let writing = tokio::spawn({
        let store = store.clone();
        async move {
            store
                .write(move |_| {
                    held.recv().unwrap();
                    Ok(())
                })
                .await
        }
    });
    let read = tokio::time::timeout(std::time::Duration::from_secs(10), store.person("ada"))
        .await
        .expect("the read waited for the write that holds the writer");
    assert_eq!(read.unwrap().map(|p| p.id), Some("ada".to_owned()));
    release.send(()).unwrap();
    writing.await.unwrap().unwrap();
}

/// The reading connection cannot write, whatever a read's statements try.
#[tokio::test]
async fn the_reading_connection_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("state.db")).unwrap();
    let reader = store
        .reader
        .as_ref()
        .expect("a file has a reading connection");
    let refused = reader
        .call(|conn| {
            conn.execute("DELETE FROM participants", [])
                .map_err(db("deleting"))
        })
        .await
        .unwrap_err();
    assert!(refused.to_string().contains("readonly"), "{refused}");
}

/// One damaged participant row does not stop due claims (the suite's scenario).
#[tokio::test]
async fn a_damaged_row_is_left_out_of_a_claim() {
    let store = SqliteStore::in_memory().unwrap();
    let damage = |id: String| {
        let store = store.clone();
        async move {
            store
                .call(move |conn| {
                    conn.execute(
                        "UPDATE participants SET variables = '[1]' WHERE id = ?1",
                        [id],
                    )
                    .map_err(|e| StoreError::database("damaging a row", e))
                })
                .await
                .unwrap();
        }
    };
    flowhost_store::conformance::a_damaged_row_is_left_out_of_a_claim(&store, damage).await;
}
