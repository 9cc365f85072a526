//! The read side: a fixed set of reader threads, each holding one read-only connection for its
//! whole life, taking jobs from one queue. Compared with a blocking task per read that then waits
//! for a pooled connection, this keeps the thread count at the connection count and never parks a
//! request on a pool lock: under load the queue is the only place where reads wait. Each job
//! runs in one read transaction (one snapshot).

use r2d2::PooledConnection;
use r2d2_sqlite::SqliteConnectionManager;
use rusqlite::Connection;

use super::{StoreError, StoreResult};
use crate::workers::{no_setup, Pool, PoolError};

/// Reads that may wait for a reader thread; beyond this a read answers 503 at once instead of
/// queueing without bound under a flood.
const MAX_QUEUED: usize = 4096;

#[derive(Clone)]
pub struct Readers(Pool<PooledConnection<SqliteConnectionManager>>);

impl Readers {
    /// Starts one thread per connection taken from `pool`.
    pub fn start(pool: &r2d2::Pool<SqliteConnectionManager>, threads: u32) -> StoreResult<Readers> {
        let connections = (0..threads.max(1)).map(|_| pool.get()).collect::<Result<Vec<_>, _>>()?;
        let pool = Pool::start("db-reader", connections, MAX_QUEUED, no_setup)
            .map_err(|e| StoreError::Io(format!("cannot start a reader thread: {e}")))?;
        Ok(Readers(pool))
    }

    /// Runs `work` in one snapshot on a reader thread; the answer arrives without blocking the
    /// async worker. A full queue is `Busy` (503 with Retry-After).
    pub async fn run<T, F>(&self, work: F) -> StoreResult<T>
    where
        F: FnOnce(&Connection) -> StoreResult<T> + Send + 'static,
        T: Send + 'static,
    {
        match self.0.run(move |conn| super::in_snapshot(conn, work)).await {
            Ok(outcome) => outcome,
            Err(PoolError::Overloaded) => Err(StoreError::Busy),
            Err(e) => Err(StoreError::Io(format!("read: {e}"))),
        }
    }
}
