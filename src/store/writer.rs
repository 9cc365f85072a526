//! The single writer: one thread owns the only read-write connection and commits queued write
//! jobs in batches (group commit). Each job runs in its own savepoint, so one failing job rolls
//! back alone, and every job learns its result only after the batch's COMMIT is durable — with
//! `synchronous=FULL` that is one fsync per batch instead of one per request.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::mpsc;

use rusqlite::Connection;
use tokio::sync::oneshot;

use super::{StoreError, StoreResult};

/// Most jobs folded into one transaction; bounds the latency one batch adds to its first job.
const MAX_BATCH: usize = 256;

trait Job: Send {
    /// Runs the job's work inside the open transaction. `false` means the job's savepoint could
    /// not be rolled back, so its half-done writes are still in the transaction: the whole batch
    /// must be abandoned rather than committed.
    fn run(&mut self, conn: &Connection) -> bool;
    /// Delivers the outcome once the batch has committed (or failed to).
    fn finish(self: Box<Self>, commit: &StoreResult<()>);
}

struct TypedJob<T, E, F> {
    work: Option<F>,
    outcome: Option<Result<T, E>>,
    reply: oneshot::Sender<Result<T, E>>,
}

impl<T, E, F> Job for TypedJob<T, E, F>
where
    F: FnOnce(&Connection) -> Result<T, E> + Send,
    T: Send,
    E: From<StoreError> + Send,
{
    fn run(&mut self, conn: &Connection) -> bool {
        let Some(work) = self.work.take() else { return true };
        if let Err(e) = conn.execute_batch("SAVEPOINT job") {
            self.outcome = Some(Err(StoreError::classify(e).into()));
            return true;
        }
        let outcome = catch_unwind(AssertUnwindSafe(|| work(conn)))
            .unwrap_or_else(|_| Err(StoreError::Io("a write job panicked".into()).into()));
        // Any error — a database failure or a refusal the job decided on after writing — undoes
        // everything the job wrote: a job either happens whole or not at all.
        let end = if outcome.is_ok() { "RELEASE job" } else { "ROLLBACK TO job; RELEASE job" };
        let ended = conn.execute_batch(end);
        let clean = ended.is_ok();
        self.outcome = Some(match (outcome, ended) {
            (outcome, Ok(())) => outcome,
            (Err(refused), Err(e)) => {
                log::error!("cannot roll back a failed write job: {e}");
                Err(refused)
            }
            (Ok(_), Err(e)) => Err(StoreError::classify(e).into()),
        });
        clean
    }

    fn finish(self: Box<Self>, commit: &StoreResult<()>) {
        let outcome = match (self.outcome, commit) {
            (Some(Err(e)), _) => Err(e),
            (Some(Ok(value)), Ok(())) => Ok(value),
            (_, Err(StoreError::Busy)) => Err(StoreError::Busy.into()),
            (_, Err(e)) => Err(StoreError::Io(format!("commit failed: {e}")).into()),
            (None, Ok(())) => Err(StoreError::Io("write job did not run".into()).into()),
        };
        // The caller may have gone away (request cancelled); nothing to do then.
        let _ = self.reply.send(outcome);
    }
}

/// Handle to the writer thread. Cloning is cheap; the thread ends when the last handle is dropped.
#[derive(Clone)]
pub struct Writer {
    queue: mpsc::Sender<Box<dyn Job>>,
}

impl Writer {
    /// Starts the writer thread on the given (already migrated) connection.
    pub fn start(conn: Connection) -> StoreResult<Writer> {
        let (queue, jobs) = mpsc::channel::<Box<dyn Job>>();
        std::thread::Builder::new()
            .name("db-writer".into())
            .spawn(move || run_writer(conn, jobs))
            .map_err(|e| StoreError::Io(format!("cannot start the writer thread: {e}")))?;
        Ok(Writer { queue })
    }

    /// Queues `work`; the receiver yields its result after commit. An `Err` from `work` rolls
    /// back everything it wrote.
    pub fn submit<T, E, F>(&self, work: F) -> StoreResult<oneshot::Receiver<Result<T, E>>>
    where
        F: FnOnce(&Connection) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
    {
        let (reply, receiver) = oneshot::channel();
        let job = TypedJob { work: Some(work), outcome: None, reply };
        self.queue.send(Box::new(job)).map_err(|_| StoreError::WriterGone)?;
        Ok(receiver)
    }
}

fn run_writer(conn: Connection, jobs: mpsc::Receiver<Box<dyn Job>>) {
    let mut batch: Vec<Box<dyn Job>> = Vec::with_capacity(MAX_BATCH);
    while let Ok(first) = jobs.recv() {
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match jobs.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let commit = run_batch(&conn, &mut batch);
        if let Err(e) = &commit {
            log::error!("write batch of {} jobs failed: {e}", batch.len());
        }
        for job in batch.drain(..) {
            job.finish(&commit);
        }
    }
    log::debug!("database writer stopped");
}

fn run_batch(conn: &Connection, batch: &mut [Box<dyn Job>]) -> StoreResult<()> {
    conn.execute_batch("BEGIN IMMEDIATE").map_err(StoreError::classify)?;
    let mut clean = true;
    for job in batch.iter_mut() {
        clean &= job.run(conn);
    }
    if !clean {
        let _ = conn.execute_batch("ROLLBACK");
        return Err(StoreError::Io("a write job could not be rolled back; the batch was abandoned".into()));
    }
    if let Err(e) = conn.execute_batch("COMMIT") {
        let _ = conn.execute_batch("ROLLBACK");
        return Err(StoreError::classify(e));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn writer() -> (tempfile::TempDir, Writer, std::path::PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.db");
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch("PRAGMA journal_mode=WAL; CREATE TABLE t (v INTEGER UNIQUE)").unwrap();
        (dir, Writer::start(conn).unwrap(), path)
    }

    fn values(path: &std::path::Path) -> Vec<i64> {
        Connection::open(path)
            .unwrap()
            .prepare("SELECT v FROM t ORDER BY v")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    }

    /// A refusal a job decides on itself, like the API's "already exists" or "in use".
    #[derive(Debug, PartialEq)]
    enum Refusal {
        InUse,
        Store(String),
    }

    impl From<StoreError> for Refusal {
        fn from(e: StoreError) -> Self {
            Refusal::Store(e.to_string())
        }
    }

    #[test]
    fn a_failing_job_rolls_back_alone() {
        let (_dir, writer, path) = writer();
        let ok = writer.submit(|c| -> StoreResult<usize> { Ok(c.execute("INSERT INTO t VALUES (1)", [])?) }).unwrap();
        let dup = writer
            .submit(|c| -> StoreResult<usize> {
                c.execute("INSERT INTO t VALUES (2)", [])?;
                Ok(c.execute("INSERT INTO t VALUES (1)", [])?)
            })
            .unwrap();
        let panics = writer
            .submit(|c| -> StoreResult<()> {
                c.execute("INSERT INTO t VALUES (3)", [])?;
                panic!("job bug")
            })
            .unwrap();
        assert!(ok.blocking_recv().unwrap().is_ok());
        assert!(dup.blocking_recv().unwrap().is_err());
        assert!(panics.blocking_recv().unwrap().is_err());
        assert_eq!(values(&path), vec![1]);
    }

    #[test]
    fn a_refusal_after_a_write_leaves_nothing_behind() {
        let (_dir, writer, path) = writer();
        let refused = writer
            .submit(|c| -> Result<(), Refusal> {
                c.execute("INSERT INTO t VALUES (7)", []).map_err(StoreError::from)?;
                Err(Refusal::InUse)
            })
            .unwrap();
        let after =
            writer.submit(|c| -> StoreResult<usize> { Ok(c.execute("INSERT INTO t VALUES (8)", [])?) }).unwrap();
        assert_eq!(refused.blocking_recv().unwrap(), Err(Refusal::InUse));
        assert!(after.blocking_recv().unwrap().is_ok());
        assert_eq!(values(&path), vec![8], "the refused job's insert was rolled back");
    }

    #[test]
    fn concurrent_jobs_all_commit() {
        let (_dir, writer, path) = writer();
        let receivers: Vec<_> = (0..500)
            .map(|i| {
                writer
                    .submit(move |c| -> StoreResult<usize> { Ok(c.execute("INSERT INTO t VALUES (?1)", [i])?) })
                    .unwrap()
            })
            .collect();
        for r in receivers {
            r.blocking_recv().unwrap().unwrap();
        }
        assert_eq!(values(&path).len(), 500);
    }
}
