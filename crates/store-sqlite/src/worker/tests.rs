//! The worker: group commits, failures in them, reads among writes, checkpoints.

use super::*;

/// A worker on a database with a table `t (n INTEGER)`, and the task of a job that holds
/// its thread for 200 ms, so the jobs sent next queue up behind it.
async fn busy_worker() -> (Worker, tokio::task::JoinHandle<Result<(), StoreError>>) {
    let conn = Connection::open_in_memory().unwrap();
    conn.execute_batch("CREATE TABLE t (n INTEGER)").unwrap();
    let worker = Worker::spawn(conn, None).unwrap();
    let busy = tokio::spawn({
        let worker = worker.clone();
        async move {
            worker
                .call(|_| {
                    std::thread::sleep(Duration::from_millis(200));
                    Ok(())
                })
                .await
        }
    });
    tokio::time::sleep(Duration::from_millis(20)).await;
    (worker, busy)
}

/// The numbers in `t`, in order.
async fn kept(worker: &Worker) -> Vec<i64> {
    worker
        .call(|conn| {
            let mut stmt = conn.prepare("SELECT n FROM t ORDER BY n").unwrap();
            Ok(stmt
                .query_map([], |r| r.get(0))
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap())
        })
        .await
        .unwrap()
}

/// A worker is idle only while no call waits for it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_is_idle_only_while_no_call_waits() {
    let (worker, busy) = busy_worker().await;
    assert!(!worker.is_idle());
    busy.await.unwrap().unwrap();
    assert!(worker.is_idle());
}

/// Writes queued together commit together; one that fails or panics leaves nothing of its
/// own behind and the others' writes stand.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_queued_together_commit_together_and_fail_alone() {
    let (worker, busy) = busy_worker().await;
    let writes: Vec<_> = (0..20)
        .map(|n: i64| {
            let worker = worker.clone();
            tokio::spawn(async move {
                worker
                    .write(Undo::Savepoint, move |conn| {
                        conn.execute("INSERT INTO t VALUES (?1)", [n])
                            .map_err(|e| StoreError::database("inserting", e))?;
                        match n % 5 {
                            1 => Err(StoreError::Conflict(format!("{n} fails"))),
                            2 if n == 2 => panic!("write {n} panics"),
                            _ => Ok(n),
                        }
                    })
                    .await
            })
        })
        .collect();
    busy.await.unwrap().unwrap();
    let mut answers = Vec::new();
    for w in writes {
        answers.push(w.await.unwrap());
    }
    for (n, answer) in answers.iter().enumerate() {
        match (n % 5, n) {
            (1, _) => assert!(
                matches!(answer, Err(StoreError::Conflict(_))),
                "{n}: {answer:?}"
            ),
            (2, 2) => assert!(answer.is_err(), "{n}"),
            _ => assert_eq!(answer.as_ref().ok(), Some(&(n as i64))),
        }
    }
    let kept = kept(&worker).await;
    let expected: Vec<i64> = (0..20).filter(|n| n % 5 != 1 && *n != 2).collect();
    assert_eq!(kept, expected);
}

/// Writes without a savepoint: one that refuses before it changes anything leaves the
/// others committed; one that fails (or panics) having changed rows takes the group's
/// transaction with it, and the writes before it hear so, while those after it commit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_without_a_savepoint_that_fails_partway_takes_its_group_back() {
    let (worker, busy) = busy_worker().await;
    let mut writes = Vec::new();
    for n in 0..12 {
        let write = worker.clone();
        writes.push(tokio::spawn(async move {
            write
                .write(Undo::Whole, move |conn| {
                    if n == 2 {
                        return Err(StoreError::Conflict("2 refuses".into()));
                    }
                    conn.execute("INSERT INTO t VALUES (?1)", [n])
                        .map_err(|e| StoreError::database("inserting", e))?;
                    match n {
                        5 => Err(StoreError::Conflict("5 fails partway".into())),
                        9 => panic!("write 9 panics partway"),
                        _ => Ok(n),
                    }
                })
                .await
        }));
        // Queued in this order: the next is sent once this one waits (as the busy call).
        while worker.inner.waiting.load(Ordering::Relaxed) < n as usize + 2 {
            tokio::task::yield_now().await;
        }
    }
    busy.await.unwrap().unwrap();
    let mut answers = Vec::new();
    for w in writes {
        answers.push(w.await.unwrap());
    }
    for (n, answer) in answers.iter().enumerate() {
        match n {
            2 | 5 => assert!(
                matches!(answer, Err(StoreError::Conflict(_))),
                "{n}: {answer:?}"
            ),
            0 | 1 | 3 | 4 | 6 | 7 | 8 => {
                let why = answer.as_ref().unwrap_err().to_string();
                assert!(why.contains("try it again"), "{n}: {why}");
            }
            9 => assert!(answer.is_err(), "{n}"),
            _ => assert_eq!(answer.as_ref().ok(), Some(&(n as i64))),
        }
    }
    let kept = kept(&worker).await;
    assert_eq!(kept, [10, 11]);
}

/// A read queued among writes runs before their transaction begins instead of ending
/// the group: it sees none of them, as it could have had it come first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_queued_among_writes_run_before_them() {
    let (worker, busy) = busy_worker().await;
    let insert = |n: i64| {
        let worker = worker.clone();
        tokio::spawn(async move {
            worker
                .write(Undo::Savepoint, move |conn| {
                    conn.execute("INSERT INTO t VALUES (?1)", [n])
                        .map_err(|e| StoreError::database("inserting", e))
                })
                .await
        })
    };
    let first = insert(1);
    tokio::time::sleep(Duration::from_millis(10)).await;
    let read = tokio::spawn({
        let worker = worker.clone();
        async move {
            worker
                .call(|conn| {
                    conn.query_row("SELECT COUNT(*) FROM t", [], |r| r.get::<_, i64>(0))
                        .map_err(|e| StoreError::database("counting", e))
                })
                .await
        }
    });
    tokio::time::sleep(Duration::from_millis(10)).await;
    let second = insert(2);
    busy.await.unwrap().unwrap();
    assert_eq!(read.await.unwrap().unwrap(), 0);
    first.await.unwrap().unwrap();
    second.await.unwrap().unwrap();
}

/// Counts of a group's writes are summed into one row each; a failed write's counts are
/// not written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_groups_counts_are_summed_and_a_failed_writes_dropped() {
    let conn = Connection::open_in_memory().unwrap();
    crate::schema::prepare(&conn, flowhost_store::Durability::Fast).unwrap();
    let worker = Worker::spawn(conn, None).unwrap();
    let writes: Vec<_> = (0..10)
        .map(|n| {
            let worker = worker.clone();
            tokio::spawn(async move {
                worker
                    .write_tallied(Undo::Whole, move |_, tally| {
                        let exit = if n % 2 == 0 { "even" } else { "odd" };
                        tally.count("f", 1, "a".into(), String::new());
                        tally.count("f", 1, "a".into(), exit.into());
                        if n == 3 {
                            return Err(StoreError::Conflict("3 fails".into()));
                        }
                        Ok(())
                    })
                    .await
            })
        })
        .collect();
    for (n, w) in writes.into_iter().enumerate() {
        assert_eq!(w.await.unwrap().is_ok(), n != 3);
    }
    let counts: Vec<(String, i64)> = worker
        .call(|conn| {
            let mut stmt = conn
                .prepare("SELECT exit, n FROM version_counts ORDER BY exit")
                .unwrap();
            Ok(stmt
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap())
        })
        .await
        .unwrap();
    assert_eq!(
        counts,
        [("".into(), 9), ("even".into(), 5), ("odd".into(), 4)]
    );
}

/// With a database file, the checkpoints' thread copies the WAL into it while the store
/// is open (the writer no longer does), and the WAL is gone once the store is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_wal_is_checkpointed_on_its_own_thread() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    let conn = Connection::open(&path).unwrap();
    crate::schema::prepare(&conn, flowhost_store::Durability::Fast).unwrap();
    conn.execute_batch("CREATE TABLE t (n INTEGER, pad TEXT)")
        .unwrap();
    let checkpointer = Connection::open(&path).unwrap();
    crate::schema::prepare_checkpointer(&checkpointer, flowhost_store::Durability::Fast).unwrap();
    let worker = Worker::spawn(conn, Some(checkpointer)).unwrap();
    let before = std::fs::metadata(&path).unwrap().len();
    for n in 0..2_000i64 {
        worker
            .write(Undo::Savepoint, move |conn| {
                conn.execute("INSERT INTO t VALUES (?1, ?2)", (n, "x".repeat(1000)))
                    .map_err(|e| StoreError::database("inserting", e))
            })
            .await
            .unwrap();
    }
    // About 2 MB committed: the database file holds most of it within a few checkpoints.
    let grew = |by: u64| std::fs::metadata(&path).unwrap().len() >= before + by;
    let started = Instant::now();
    while !grew(1_000_000) && started.elapsed() < Duration::from_secs(10) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(grew(1_000_000), "the database file did not grow while open");
    drop(worker);
    assert!(!dir.path().join("state.db-wal").exists());
}
