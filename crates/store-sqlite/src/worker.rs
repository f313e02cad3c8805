//! The thread that owns the SQLite connection. Async callers send it closures and await
//! their results, so no query ever blocks a tokio worker. A closure that panics fails its
//! own call; the thread and the connection carry on (SQLite rolls back the open
//! transaction when the closure's `Transaction` is dropped during the unwind).
//!
//! When the last handle goes, the thread finishes the queued work and closes the
//! connection before the drop returns, so the database files are complete and settled
//! (WAL checkpointed) as soon as the store is gone.
//!
//! **Group commit.** Writes ([`Worker::write`]) that are queued together run in one
//! transaction, each inside a savepoint of its own: a write that fails rolls back its
//! savepoint alone, and every writer gets its answer only after the one commit, so nothing
//! is acknowledged before it is durable. Alone, a write is a plain transaction. A write
//! that can refuse only before it changes anything ([`Undo::Whole`]: a lost lease is found
//! by its first statement) runs without a savepoint, whose copies of the pages it changes
//! took a sixth of the thread's time; should it fail having changed rows after all (the
//! database itself failed), the whole transaction is rolled back and the writes before it
//! in the group hear that they were not committed.
//! Other jobs (reads) queued among the writes run before the group's transaction begins
//! instead of ending the group: every job in the queue comes from a caller still waiting for
//! its answer, so no caller can tell the order of any two of them. Counter increments of a
//! group's writes ([`Tally`]) are summed and written once, just before its commit.
//!
//! **Checkpoints.** A database file gets a second connection, on a thread of its own, that
//! copies the WAL back into the database ([`checkpoints`]); the writer never does, so its
//! commits do not wait for a checkpoint's writes and syncs.

mod checkpoints;

use crate::rows::Tally;
use flowhost_store::StoreError;
use rusqlite::Connection;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, mpsc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

/// Work for the connection's thread.
enum Job {
    /// Runs as it is (reads, and writes with transactions of their own).
    Any(Box<dyn FnOnce(&mut Connection) + Send>),
    /// Runs inside the thread's transaction, with others queued beside it (or hears why the
    /// transaction could not begin); says whether it succeeded, and how to answer once the
    /// transaction is committed (or why it was not).
    Write(WriteJob, Undo),
}

/// How a write of a group is undone when it fails.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Undo {
    /// It runs in a savepoint of its own, rolled back alone: for a write that may fail after
    /// it changed rows.
    Savepoint,
    /// It runs without a savepoint: for a write that refuses (fails) only before it changes
    /// anything, unless the database itself fails. A failure that leaves nothing changed
    /// needs no undo; one that changed rows rolls the group's transaction back whole.
    Whole,
}

type WriteJob = Box<dyn FnOnce(Result<&Connection, String>, &mut Tally) -> (bool, Deliver) + Send>;

/// Answers a write's caller: `None` once committed, or why the commit failed.
type Deliver = Box<dyn FnOnce(Option<String>) + Send>;

/// Writes committed together at most.
const MAX_GROUP: usize = 128;

/// How long the thread looks for the next job before it sleeps, and how long a caller
/// looks for its answer (yielding to other tasks) before its task sleeps.
///
/// A thread that sleeps must be woken by the other side: a futex call and a context switch,
/// which on a small virtual machine cost 30-60 µs each way, more than the queries
/// themselves (a read takes 2-5 µs, a commit 15-25 µs). With both spins a store call costs
/// about what the same statements cost inline: on the 2-vCPU machine of
/// `docs/BENCHMARKS.md` a read 2-3 µs instead of 35, a one-row commit 19-25 µs instead of
/// 80-90, and 64 tasks sharing the store 48 µs per write and read instead of 84. The spins
/// are short enough that an idle store costs nothing: each side sleeps after 50 µs.
const WORKER_SPIN: Duration = Duration::from_micros(50);
const CALLER_SPIN: Duration = Duration::from_micros(50);

/// The next job: looked for during `spin`, then waited for; `None` once every handle is
/// gone.
fn next_job(queue: &mpsc::Receiver<Job>, spin: Duration) -> Option<Job> {
    let started = Instant::now();
    while started.elapsed() < spin {
        match queue.try_recv() {
            Ok(job) => return Some(job),
            Err(mpsc::TryRecvError::Empty) => std::hint::spin_loop(),
            Err(mpsc::TryRecvError::Disconnected) => return None,
        }
    }
    queue.recv().ok()
}

/// A handle to the connection's thread; the thread ends when the last handle is dropped.
#[derive(Clone)]
pub(crate) struct Worker {
    inner: Arc<Inner>,
}

struct Inner {
    /// `None` only while dropping.
    jobs: Option<mpsc::Sender<Job>>,
    thread: Option<JoinHandle<()>>,
    /// Calls sent and not yet answered.
    waiting: AtomicUsize,
}

/// Counts a call among [`Inner::waiting`] until it is dropped (answered, or given up).
struct Waiting<'a>(&'a AtomicUsize);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Closing the queue ends the thread's loop once the queued jobs ran; the connection
        // closes with the thread.
        drop(self.jobs.take());
        if let Some(thread) = self.thread.take()
            && thread.thread().id() != std::thread::current().id()
        {
            let _ = thread.join();
        }
    }
}

impl Worker {
    /// Starts the thread that owns `conn`, and, with `checkpointer` (a second connection to
    /// the same file, which must be in WAL mode), the thread that checkpoints the WAL; `conn`
    /// then never checkpoints on its own.
    pub(crate) fn spawn(
        conn: Connection,
        checkpointer: Option<Connection>,
    ) -> Result<Self, StoreError> {
        Self::spawn_as(conn, checkpointer, "flowhost-sqlite", WORKER_SPIN)
    }

    /// Starts a thread for a connection that only reads. It does not spin for its next job:
    /// reads come once a participant's run, often enough that a spin after each would keep
    /// a core busy, and a read is not on the writer's path.
    pub(crate) fn spawn_reader(conn: Connection) -> Result<Self, StoreError> {
        Self::spawn_as(conn, None, "flowhost-sqlite-read", Duration::ZERO)
    }

    fn spawn_as(
        mut conn: Connection,
        checkpointer: Option<Connection>,
        name: &str,
        spin: Duration,
    ) -> Result<Self, StoreError> {
        if checkpointer.is_some() {
            conn.pragma_update(None, "wal_autocheckpoint", 0)
                .map_err(|e| StoreError::database("leaving checkpoints to their thread", e))?;
        }
        let checkpoints = checkpointer.map(checkpoints::spawn).transpose()?;
        let (jobs, queue) = mpsc::channel::<Job>();
        let thread = std::thread::Builder::new()
            .name(name.into())
            .spawn(move || {
                while let Some(job) = next_job(&queue, spin) {
                    match job {
                        Job::Any(job) => run_any(&mut conn, job),
                        Job::Write(first, undo) => {
                            let mut group = vec![(first, undo)];
                            // Bounded in jobs, not only writes, so a stream of reads cannot
                            // hold the group's writes back for ever.
                            let mut taken = 1;
                            while group.len() < MAX_GROUP && taken < 2 * MAX_GROUP {
                                taken += 1;
                                match queue.try_recv() {
                                    Ok(Job::Write(w, undo)) => group.push((w, undo)),
                                    Ok(Job::Any(job)) => run_any(&mut conn, job),
                                    Err(_) => break,
                                }
                            }
                            commit_group(&conn, group);
                        }
                    }
                    if let Some(checkpoints) = &checkpoints {
                        checkpoints.committed();
                    }
                }
                // The checkpoints' connection closes first, so this one, the last, leaves the
                // database settled (WAL checkpointed and removed) as it closes.
                drop(checkpoints);
            })
            .map_err(|e| StoreError::database("starting the database thread", e))?;
        Ok(Worker {
            inner: Arc::new(Inner {
                jobs: Some(jobs),
                thread: Some(thread),
                waiting: AtomicUsize::new(0),
            }),
        })
    }

    /// Whether no call waits for this thread: one sent now starts at once.
    pub(crate) fn is_idle(&self) -> bool {
        self.inner.waiting.load(Ordering::Relaxed) == 0
    }

    fn waiting(&self) -> Waiting<'_> {
        self.inner.waiting.fetch_add(1, Ordering::Relaxed);
        Waiting(&self.inner.waiting)
    }

    pub(crate) async fn call<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let _waiting = self.waiting();
        let (answer, result) = oneshot::channel();
        let jobs = self.inner.jobs.as_ref().ok_or(StoreError::Closed)?;
        jobs.send(Job::Any(Box::new(move |conn| {
            let _ = answer.send(f(conn));
        })))
        .map_err(|_| StoreError::Closed)?;
        Self::answer(result).await
    }

    /// Runs `f`'s statements in a transaction shared with the writes queued beside it, and
    /// answers once that transaction is committed. `f` must not begin a transaction.
    pub(crate) async fn write<T: Send + 'static>(
        &self,
        undo: Undo,
        f: impl FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        self.write_tallied(undo, move |conn, _| f(conn)).await
    }

    /// [`Worker::write`] for `f` that counts into a [`Tally`] as well: its counts are written
    /// with the group's, summed, and only if `f` succeeds.
    pub(crate) async fn write_tallied<T: Send + 'static>(
        &self,
        undo: Undo,
        f: impl FnOnce(&Connection, &mut Tally) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let _waiting = self.waiting();
        let (answer, result) = oneshot::channel();
        let jobs = self.inner.jobs.as_ref().ok_or(StoreError::Closed)?;
        jobs.send(Job::Write(
            Box::new(move |conn, tally| {
                let outcome = match conn {
                    Ok(conn) => f(conn, tally),
                    Err(why) => Err(StoreError::database("beginning a write", why)),
                };
                let ok = outcome.is_ok();
                let deliver: Deliver = Box::new(move |failed| {
                    let _ = answer.send(match (outcome, failed) {
                        (Ok(_), Some(why)) => Err(StoreError::database("committing", why)),
                        (outcome, _) => outcome,
                    });
                });
                (ok, deliver)
            }),
            undo,
        ))
        .map_err(|_| StoreError::Closed)?;
        Self::answer(result).await
    }

    async fn answer<T>(result: oneshot::Receiver<Result<T, StoreError>>) -> Result<T, StoreError> {
        // See CALLER_SPIN.
        let mut result = result;
        let started = Instant::now();
        loop {
            match result.try_recv() {
                Ok(answer) => return answer,
                Err(oneshot::error::TryRecvError::Empty) if started.elapsed() < CALLER_SPIN => {
                    tokio::task::yield_now().await;
                }
                Err(_) => break,
            }
        }
        result.await.map_err(|_| {
            StoreError::database(
                "running a query",
                "the query panicked; it was rolled back (a bug: please report it)",
            )
        })?
    }
}

/// Runs a job that is not a write of a group. The job's answer channel is dropped by a
/// panic's unwind, which tells the caller; nothing else to do here.
fn run_any(conn: &mut Connection, job: Box<dyn FnOnce(&mut Connection) + Send>) {
    let _ = catch_unwind(AssertUnwindSafe(|| job(conn)));
}

/// Runs a group of writes in one transaction, each in a savepoint when there are several
/// and it asks for one, writes their counts, commits once, then answers each.
fn commit_group(conn: &Connection, group: Vec<(WriteJob, Undo)>) {
    let alone = group.len() == 1;
    let mut tally = Tally::default();
    // Answers of the writes in the open transaction.
    let mut delivers: Vec<Deliver> = Vec::with_capacity(group.len());
    let mut began = run(conn, "BEGIN IMMEDIATE").map_err(|e| e.to_string());
    for (job, undo) in group {
        if let Err(why) = &began {
            let (_, deliver) = job(Err(why.clone()), &mut Tally::default());
            deliver(None);
            continue;
        }
        let savepoint = !alone && undo == Undo::Savepoint;
        if savepoint {
            let _ = run(conn, "SAVEPOINT one");
        }
        let changes = conn.total_changes();
        // Its own counts, kept only if it succeeds.
        let mut counted = Tally::default();
        let outcome = catch_unwind(AssertUnwindSafe(|| job(Ok(conn), &mut counted)));
        // A panic drops its answer with the unwind (the caller hears of it).
        let (succeeded, deliver) = match outcome {
            Ok((succeeded, deliver)) => (succeeded, Some(deliver)),
            Err(_) => (false, None),
        };
        if succeeded {
            if savepoint {
                let _ = run(conn, "RELEASE one");
            }
            tally.add(counted);
        } else if savepoint {
            let _ = conn.execute_batch("ROLLBACK TO one; RELEASE one");
        }
        // The transaction cannot be kept when a write without a savepoint failed having
        // changed rows, and is gone when the database ended it (SQLite rolls back on some
        // errors, such as a full disk). Alone, a failed write's transaction is begun anew.
        let lost = !succeeded
            && (alone || (!savepoint && conn.total_changes() != changes) || conn.is_autocommit());
        if lost {
            if !conn.is_autocommit() {
                let _ = conn.execute_batch("ROLLBACK");
            }
            for earlier in delivers.drain(..) {
                earlier(Some(
                    "another write committed with this one failed partway, so the transaction \
                     was rolled back; nothing of this write was saved: try it again"
                        .into(),
                ));
            }
            tally = Tally::default();
            began = run(conn, "BEGIN IMMEDIATE").map_err(|e| e.to_string());
        }
        delivers.extend(deliver);
    }
    let failed = began
        .and_then(|()| {
            tally
                .write(conn)
                .and_then(|()| run(conn, "COMMIT"))
                .map_err(|e| {
                    let _ = conn.execute_batch("ROLLBACK");
                    e.to_string()
                })
        })
        .err();
    for deliver in delivers {
        deliver(failed.clone());
    }
}

/// Runs one statement that takes no parameters, kept prepared (a transaction's `BEGIN`,
/// savepoints and `COMMIT` run for every group: parsing them each time showed in profiles).
fn run(conn: &Connection, sql: &str) -> rusqlite::Result<()> {
    conn.prepare_cached(sql)?.execute([]).map(|_| ())
}

#[cfg(test)]
mod tests;
