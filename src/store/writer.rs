//! The single writer: one thread owns the only read-write connection and commits queued write
//! jobs in batches (group commit). Each job runs in its own savepoint, so one failing job rolls
//! back alone, and every job learns its result only after the batch's COMMIT is durable — with
//! `synchronous=FULL` that is one fsync per batch instead of one per request.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};

use rusqlite::Connection;
use tokio::sync::oneshot;

use super::bell::Bell;
use super::{StoreError, StoreResult, WriteError};
use crate::metrics::Histogram;

/// Most jobs folded into one transaction; bounds the latency one batch adds to its first job.
const MAX_BATCH: usize = 256;

trait Job: Send {
    /// Runs the job's work inside the open transaction. `false` means the job's savepoint could
    /// not be rolled back, so its half-done writes are still in the transaction: the whole batch
    /// must be abandoned rather than committed.
    fn run(&mut self, conn: &Connection) -> bool;
    /// Whether the job's own statements found the disk full.
    fn ran_out_of_space(&self) -> bool;
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
    E: WriteError + Send,
{
    fn run(&mut self, conn: &Connection) -> bool {
        let Some(work) = self.work.take() else { return true };
        // Deliveries recorded by earlier jobs of the batch stay recorded whatever this one does.
        let recorded_before = super::webhooks::take_recorded();
        if let Err(e) = conn.execute_batch("SAVEPOINT job") {
            self.outcome = Some(Err(StoreError::classify(e).into()));
            return true;
        }
        let outcome = catch_unwind(AssertUnwindSafe(|| work(conn)))
            .unwrap_or_else(|_| Err(StoreError::Io("a write job panicked".into()).into()))
            .map_err(WriteError::reclassify);
        // Any error — a database failure or a refusal the job decided on after writing — undoes
        // everything the job wrote: a job either happens whole or not at all.
        let end = if outcome.is_ok() { "RELEASE job" } else { "ROLLBACK TO job; RELEASE job" };
        let ended = conn.execute_batch(end);
        let clean = ended.is_ok();
        let recorded = outcome.is_ok() && ended.is_ok() && super::webhooks::take_recorded();
        super::webhooks::set_recorded(recorded_before || recorded);
        self.outcome = Some(match (outcome, ended) {
            (outcome, Ok(())) => outcome,
            (Err(refused), Err(e)) => {
                // On a full disk SQLite may have rolled the whole transaction back, taking the
                // savepoint with it: the reason is still the disk, reported once by the writer.
                if !refused.is_disk_full() {
                    log::error!("cannot roll back a failed write job: {e}");
                }
                Err(refused)
            }
            (Ok(_), Err(e)) => Err(StoreError::classify(e).into()),
        });
        clean
    }

    fn ran_out_of_space(&self) -> bool {
        matches!(&self.outcome, Some(Err(e)) if e.is_disk_full())
    }

    fn finish(self: Box<Self>, commit: &StoreResult<()>) {
        let outcome = match (self.outcome, commit) {
            (Some(Err(e)), _) => Err(e),
            (Some(Ok(value)), Ok(())) => Ok(value),
            (_, Err(StoreError::Busy)) => Err(StoreError::Busy.into()),
            (_, Err(StoreError::Full)) => Err(StoreError::Full.into()),
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
    disk_full: Arc<AtomicBool>,
    stats: Arc<WriterStats>,
    outbox: Arc<Bell>,
}

/// Batch sizes bounded by `MAX_BATCH`.
const BATCH_SIZES: &[u64] = &[1, 2, 4, 8, 16, 32, 64, 128, 256];
/// COMMIT (the fsync) latency bounds in microseconds: 0.1 ms … 5 s.
const COMMIT_MICROS: &[u64] = &[100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 100_000, 1_000_000, 5_000_000];

/// What the writer thread did, for `/metrics`: jobs per batch and how long each COMMIT took.
pub struct WriterStats {
    pub batch_sizes: Histogram,
    pub commit_micros: Histogram,
}

impl Writer {
    /// Starts the writer thread on the given (already migrated) connection.
    pub fn start(conn: Connection) -> StoreResult<Writer> {
        let (queue, jobs) = mpsc::channel::<Box<dyn Job>>();
        let disk_full = Arc::new(AtomicBool::new(false));
        let stats = Arc::new(WriterStats {
            batch_sizes: Histogram::new(BATCH_SIZES),
            commit_micros: Histogram::new(COMMIT_MICROS),
        });
        let outbox = Arc::new(Bell::default());
        let (flag, recorded, bell) = (disk_full.clone(), stats.clone(), outbox.clone());
        std::thread::Builder::new()
            .name("db-writer".into())
            .spawn(move || run_writer(conn, jobs, &flag, &recorded, &bell))
            .map_err(|e| StoreError::Io(format!("cannot start the writer thread: {e}")))?;
        Ok(Writer { queue, disk_full, stats, outbox })
    }

    pub fn stats(&self) -> &WriterStats {
        &self.stats
    }

    /// Rung after every commit that recorded webhook deliveries.
    pub fn outbox_bell(&self) -> &Bell {
        &self.outbox
    }

    /// Whether the latest write that needed space found none (see `run_writer`).
    pub fn disk_full(&self) -> bool {
        self.disk_full.load(Ordering::Acquire)
    }

    /// Queues `work`; the receiver yields its result after commit. An `Err` from `work` rolls
    /// back everything it wrote.
    pub fn submit<T, E, F>(&self, work: F) -> StoreResult<oneshot::Receiver<Result<T, E>>>
    where
        F: FnOnce(&Connection) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: WriteError + Send + 'static,
    {
        let (reply, receiver) = oneshot::channel();
        let job = TypedJob { work: Some(work), outcome: None, reply };
        self.queue.send(Box::new(job)).map_err(|_| StoreError::WriterGone)?;
        Ok(receiver)
    }
}

/// Runs batches until every handle is gone. A full disk is one episode from the first write that
/// finds no space to the first batch that writes something again: logged once at each end and
/// visible through `disk_full` meanwhile (readiness reports it).
fn run_writer(
    conn: Connection,
    jobs: mpsc::Receiver<Box<dyn Job>>,
    disk_full: &AtomicBool,
    stats: &WriterStats,
    outbox: &Bell,
) {
    let mut batch: Vec<Box<dyn Job>> = Vec::with_capacity(MAX_BATCH);
    while let Ok(first) = jobs.recv() {
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match jobs.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let changes_before = conn.total_changes();
        stats.batch_sizes.observe(batch.len() as u64);
        let mut commit = run_batch(&conn, &mut batch, stats);
        let full = matches!(commit, Err(StoreError::Full)) || batch.iter().any(|job| job.ran_out_of_space());
        if full && commit.is_err() {
            // A commit failing after a job found the disk full (SQLite may roll the whole
            // transaction back then) failed for the same reason.
            commit = Err(StoreError::Full);
        }
        let wrote = commit.is_ok() && conn.total_changes() > changes_before;
        // Taken whatever the outcome, so a rolled-back batch's flag does not ring for the next.
        if super::webhooks::take_recorded() && commit.is_ok() {
            outbox.ring();
        }
        if full && !disk_full.swap(true, Ordering::AcqRel) {
            log::error!("the disk is full: writes are refused (507) until space is freed; reads keep working");
        } else if wrote && !full && disk_full.swap(false, Ordering::AcqRel) {
            log::warn!("disk space is available again: writes are accepted");
        }
        match &commit {
            Err(StoreError::Full) => {}
            Err(e) => log::error!("write batch of {} jobs failed: {e}", batch.len()),
            Ok(()) => {}
        }
        for job in batch.drain(..) {
            job.finish(&commit);
        }
    }
    log::debug!("database writer stopped");
}

fn run_batch(conn: &Connection, batch: &mut [Box<dyn Job>], stats: &WriterStats) -> StoreResult<()> {
    conn.execute_batch("BEGIN IMMEDIATE").map_err(StoreError::classify)?;
    let mut clean = true;
    for job in batch.iter_mut() {
        clean &= job.run(conn);
    }
    if !clean {
        let _ = conn.execute_batch("ROLLBACK");
        return Err(StoreError::Io("a write job could not be rolled back; the batch was abandoned".into()));
    }
    let started = std::time::Instant::now();
    let committed = conn.execute_batch("COMMIT");
    stats.commit_micros.observe(started.elapsed().as_micros().min(u128::from(u64::MAX)) as u64);
    if let Err(e) = committed {
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

    impl WriteError for Refusal {
        fn is_disk_full(&self) -> bool {
            false
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
    fn the_outbox_bell_rings_only_after_a_commit_that_recorded_deliveries() {
        let (_dir, writer, _path) = writer();
        let bell = writer.outbox_bell();
        let quiet = writer.submit(|c| -> StoreResult<usize> { Ok(c.execute("INSERT INTO t VALUES (1)", [])?) });
        assert!(quiet.unwrap().blocking_recv().unwrap().is_ok());
        assert_eq!(bell.rings(), 0, "a write without deliveries");
        let refused = writer.submit(|c| -> StoreResult<()> {
            c.execute("INSERT INTO t VALUES (2)", [])?;
            crate::store::webhooks::set_recorded(true);
            Err(StoreError::Io("refused after recording".into()))
        });
        assert!(refused.unwrap().blocking_recv().unwrap().is_err());
        assert_eq!(bell.rings(), 0, "the recorded deliveries were rolled back with the job");
        let recorded = writer.submit(|c| -> StoreResult<()> {
            c.execute("INSERT INTO t VALUES (3)", [])?;
            crate::store::webhooks::set_recorded(true);
            Ok(())
        });
        assert!(recorded.unwrap().blocking_recv().unwrap().is_ok());
        assert_eq!(bell.rings(), 1);
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
    fn a_full_disk_is_seen_whatever_the_jobs_error_type_and_clears_after_a_write() {
        let dir = tempfile::tempdir().unwrap();
        let conn = Connection::open(dir.path().join("w.db")).unwrap();
        // SQLite answers SQLITE_FULL, as on a full disk, once the file would outgrow this.
        conn.execute_batch("PRAGMA journal_mode=WAL; CREATE TABLE b (x BLOB); PRAGMA max_page_count = 8").unwrap();
        let writer = Writer::start(conn).unwrap();
        // The HTTP edge's error type: the store error reaches the writer already converted.
        let big = writer
            .submit(|c| -> Result<usize, crate::error::ApiError> {
                Ok(c.execute("INSERT INTO b VALUES (zeroblob(1000000))", []).map_err(StoreError::from)?)
            })
            .unwrap();
        assert!(matches!(big.blocking_recv().unwrap(), Err(crate::error::ApiError::InsufficientStorage)));
        assert!(writer.disk_full(), "a job's own error type still tells the writer the disk is full");
        let freed = writer
            .submit(|c| -> StoreResult<()> {
                c.execute_batch("PRAGMA max_page_count = 100000")?;
                c.execute("INSERT INTO b VALUES (x'00')", [])?;
                Ok(())
            })
            .unwrap();
        freed.blocking_recv().unwrap().unwrap();
        assert!(!writer.disk_full(), "the first write that gets through ends the episode");
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
