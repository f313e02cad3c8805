//! The thread that owns the SQLite connection. Async callers send it closures and await
//! their results, so no query ever blocks a tokio worker. A closure that panics fails its
//! own call; the thread and the connection carry on (SQLite rolls back the open
//! transaction when the closure's `Transaction` is dropped during the unwind).
//!
//! When the last handle goes, the thread finishes the queued work and closes the
//! connection before the drop returns, so the database files are complete and settled
//! (WAL checkpointed) as soon as the store is gone.

use flowhost_store::StoreError;
use rusqlite::Connection;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, mpsc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

type Job = Box<dyn FnOnce(&mut Connection) + Send>;

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

/// The next job: looked for during [`WORKER_SPIN`], then waited for; `None` once every
/// handle is gone.
fn next_job(queue: &mpsc::Receiver<Job>) -> Option<Job> {
    let started = Instant::now();
    while started.elapsed() < WORKER_SPIN {
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
    pub(crate) fn spawn(mut conn: Connection) -> Result<Self, StoreError> {
        let (jobs, queue) = mpsc::channel::<Job>();
        let thread = std::thread::Builder::new()
            .name("flowhost-sqlite".into())
            .spawn(move || {
                while let Some(job) = next_job(&queue) {
                    // The job's answer channel is dropped by the unwind, which tells the
                    // caller; nothing else to do here.
                    let _ = catch_unwind(AssertUnwindSafe(|| job(&mut conn)));
                }
            })
            .map_err(|e| StoreError::database("starting the database thread", e))?;
        Ok(Worker {
            inner: Arc::new(Inner {
                jobs: Some(jobs),
                thread: Some(thread),
            }),
        })
    }

    pub(crate) async fn call<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let (answer, result) = oneshot::channel();
        let jobs = self.inner.jobs.as_ref().ok_or(StoreError::Closed)?;
        jobs.send(Box::new(move |conn| {
            let _ = answer.send(f(conn));
        }))
        .map_err(|_| StoreError::Closed)?;
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
