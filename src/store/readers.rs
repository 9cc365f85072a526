//! The read side: a fixed set of reader threads, each holding one read-only connection for its
//! whole life, taking jobs from one queue. Compared with a blocking task per read that then waits
//! for a pooled connection, this keeps the thread count at the connection count and never parks a
//! request on a pool lock: under load the queue is the only place where reads wait. Each job
//! runs in one read transaction (one snapshot).

use std::sync::{mpsc, Arc, Mutex};

use r2d2::PooledConnection;
use r2d2_sqlite::SqliteConnectionManager;
use rusqlite::Connection;
use tokio::sync::oneshot;

use super::{StoreError, StoreResult};

type Job = Box<dyn FnOnce(&Connection) + Send>;

#[derive(Clone)]
pub struct Readers {
    queue: mpsc::Sender<Job>,
}

impl Readers {
    /// Starts one thread per connection taken from `pool`.
    pub fn start(pool: &r2d2::Pool<SqliteConnectionManager>, threads: u32) -> StoreResult<Readers> {
        let (queue, jobs) = mpsc::channel::<Job>();
        let jobs = Arc::new(Mutex::new(jobs));
        for i in 0..threads.max(1) {
            let conn: PooledConnection<SqliteConnectionManager> = pool.get()?;
            let jobs = jobs.clone();
            std::thread::Builder::new()
                .name(format!("db-reader-{i}"))
                .spawn(move || loop {
                    let job = match jobs.lock() {
                        Ok(rx) => rx.recv(),
                        Err(_) => return,
                    };
                    match job {
                        Ok(job) => job(&conn),
                        Err(_) => return,
                    }
                })
                .map_err(|e| StoreError::Io(format!("cannot start a reader thread: {e}")))?;
        }
        Ok(Readers { queue })
    }

    /// Runs `work` on a reader thread; the answer arrives without blocking the async worker.
    pub async fn run<T, F>(&self, work: F) -> StoreResult<T>
    where
        F: FnOnce(&Connection) -> StoreResult<T> + Send + 'static,
        T: Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let job: Job = Box::new(move |conn| {
            let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| super::in_snapshot(conn, work)))
                .unwrap_or_else(|_| Err(StoreError::Io("a read job panicked".into())));
            let _ = reply.send(outcome);
        });
        self.queue.send(job).map_err(|_| StoreError::Io("the reader threads have stopped".into()))?;
        answer.await.map_err(|_| StoreError::Io("a reader thread dropped its job".into()))?
    }
}
