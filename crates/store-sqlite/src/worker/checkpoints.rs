//! The thread that checkpoints a database's WAL: copies the pages commits appended to it back
//! into the database file and syncs that file, on a connection of its own, so the writer's
//! commits never wait for it. (When the writer checkpointed, every thousand pages or so a
//! commit waited for two syncs: in `docs/BENCHMARKS.md`'s engine benchmark, 8 ms each.)
//!
//! It runs after commits, at most once every [`PAUSE`]: a passive checkpoint, which copies
//! what is committed without waiting for the writer, who goes on appending meanwhile and
//! starts the WAL over from its beginning once a checkpoint has copied all of it. A writer
//! that never pauses would never see it all copied, so past [`WAL_LIMIT`] pages a checkpoint
//! waits for the writer's transaction to end and copies everything, and the next commit
//! starts the WAL over.

use flowhost_store::StoreError;
use rusqlite::Connection;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, mpsc};
use std::thread::JoinHandle;
use std::time::Duration;

/// The shortest time between two checkpoints: fewer, larger checkpoints copy a page the
/// commits keep changing (an index's root, a counter) once instead of many times.
const PAUSE: Duration = Duration::from_millis(50);

/// WAL pages (4 KiB) past which a checkpoint waits for the writer to copy all of them.
const WAL_LIMIT: i64 = 16_384;

/// The checkpoints' thread; it stops, and closes its connection, when this is dropped.
pub(super) struct Checkpoints {
    /// Tells the thread a commit happened; `None` only while dropping.
    commits: Option<mpsc::SyncSender<()>>,
    /// Set when dropped: the thread stops without a last checkpoint (the writer's connection
    /// makes one as it closes).
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

/// Starts checkpointing with `conn`, a connection to a database in WAL mode.
pub(super) fn spawn(conn: Connection) -> Result<Checkpoints, StoreError> {
    let (commits, committed) = mpsc::sync_channel::<()>(1);
    let stop = Arc::new(AtomicBool::new(false));
    let stopped = stop.clone();
    let thread = std::thread::Builder::new()
        .name("flowhost-sqlite-checkpoints".into())
        .spawn(move || {
            while committed.recv().is_ok() && !stopped.load(Ordering::Acquire) {
                checkpoint(&conn);
                std::thread::park_timeout(PAUSE);
            }
        })
        .map_err(|e| StoreError::database("starting the checkpoints' thread", e))?;
    Ok(Checkpoints {
        commits: Some(commits),
        stop,
        thread: Some(thread),
    })
}

impl Checkpoints {
    /// Called after each commit: never waits.
    pub(super) fn committed(&self) {
        if let Some(commits) = &self.commits {
            let _ = commits.try_send(());
        }
    }
}

impl Drop for Checkpoints {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        drop(self.commits.take());
        if let Some(thread) = self.thread.take() {
            thread.thread().unpark();
            let _ = thread.join();
        }
    }
}

/// One checkpoint: passive, or complete when the WAL has grown past [`WAL_LIMIT`]. A failure
/// is logged and the next commit brings another try; the data is safe in the WAL meanwhile.
fn checkpoint(conn: &Connection) {
    let run = |mode: &str| {
        conn.query_row(&format!("PRAGMA wal_checkpoint({mode})"), [], |r| {
            Ok((r.get::<_, i64>(0)? != 0, r.get::<_, i64>(1)?))
        })
    };
    let outcome = run("PASSIVE").and_then(|(busy, pages)| {
        if pages > WAL_LIMIT {
            run("RESTART")
        } else {
            Ok((busy, pages))
        }
    });
    match outcome {
        Ok((false, _)) => {}
        Ok((true, pages)) => tracing::debug!(
            pages,
            "the WAL could not be checkpointed completely (the writer was busy); the next checkpoint goes on"
        ),
        Err(e) => tracing::warn!(
            error = %e,
            "checkpointing the database's WAL failed; it is tried again after the next commit, and nothing committed is lost meanwhile"
        ),
    }
}
