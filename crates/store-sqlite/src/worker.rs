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
use tokio::sync::oneshot;

type Job = Box<dyn FnOnce(&mut Connection) + Send>;

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
                while let Ok(job) = queue.recv() {
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
        result.await.map_err(|_| {
            StoreError::database(
                "running a query",
                "the query panicked; it was rolled back (a bug: please report it)",
            )
        })?
    }
}
