//! SQLite storage: one writer thread (group commit), a small read-only pool, migrations.
//!
//! Store functions take a `&Connection` and know nothing of HTTP; callers reach them through
//! [`Store::read`] and [`Store::write`], which run them off the async workers.

pub mod api_keys;
pub mod apps;
pub mod audit;
pub mod backup;
pub mod bell;
pub mod builds;
pub mod deployments;
pub mod meta;
pub mod migrations;
pub mod orgs;
mod readers;
pub mod roles;
pub mod s3_uploads;
pub mod sessions;
pub mod subscriptions;
mod task_days;
mod task_groups;
mod task_totals;
pub mod tasks;
pub mod traces;
pub mod transfers;
pub mod users;
pub mod webhooks;
mod writer;

use std::path::Path;
use std::time::Duration;

use r2d2_sqlite::SqliteConnectionManager;
use rusqlite::{Connection, OpenFlags};

use crate::config::{Settings, Synchronous};
pub use writer::{Writer, WriterStats};

/// Errors of the storage layer.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("connection pool: {0}")]
    Pool(#[from] r2d2::Error),
    #[error("the database stayed locked past the busy timeout")]
    Busy,
    #[error("the database writer has stopped")]
    WriterGone,
    #[error("{0}")]
    Schema(String),
    #[error("{0}")]
    Io(String),
    #[error("stored data is damaged: {0}")]
    Corrupt(String),
    #[error("the disk is full")]
    Full,
}

impl StoreError {
    /// Maps SQLite's busy/locked answers to `Busy` so callers can answer 503 instead of 500.
    pub fn classify(err: rusqlite::Error) -> StoreError {
        match err.sqlite_error_code() {
            Some(rusqlite::ErrorCode::DatabaseBusy) | Some(rusqlite::ErrorCode::DatabaseLocked) => StoreError::Busy,
            Some(rusqlite::ErrorCode::DiskFull) => StoreError::Full,
            _ => StoreError::Sqlite(err),
        }
    }

    /// SQLite's answer when a write finds no space left (`SQLITE_FULL`).
    pub fn is_disk_full(err: &rusqlite::Error) -> bool {
        err.sqlite_error_code() == Some(rusqlite::ErrorCode::DiskFull)
    }

    /// `Full` whether the disk ran out under a job's statement or under the commit.
    fn reclassify(self) -> StoreError {
        match self {
            StoreError::Sqlite(e) => StoreError::classify(e),
            other => other,
        }
    }
}

pub type StoreResult<T> = Result<T, StoreError>;

/// What a write job may fail with: anything a store error converts into, that can tell whether it
/// is the disk being full. The writer needs to know (whatever the job's own error type) to report
/// a full disk once and to answer the commit's failure for the right reason.
pub trait WriteError: From<StoreError> {
    fn is_disk_full(&self) -> bool;

    /// The same error with a disk-full SQLite failure turned into its own kind, if it has one.
    fn reclassify(self) -> Self
    where
        Self: Sized,
    {
        self
    }
}

impl WriteError for StoreError {
    fn is_disk_full(&self) -> bool {
        match self {
            StoreError::Full => true,
            StoreError::Sqlite(e) => StoreError::is_disk_full(e),
            _ => false,
        }
    }

    fn reclassify(self) -> StoreError {
        StoreError::reclassify(self)
    }
}

/// Handle to the database: cheap to clone, shared by handlers and workers.
#[derive(Clone)]
pub struct Store {
    /// Spare read connections for threads that may block (task workers, start-up).
    pool: r2d2::Pool<SqliteConnectionManager>,
    readers: readers::Readers,
    writer: Writer,
}

/// Connection settings applied to every connection, in the order SQLite needs them.
#[derive(Clone, Copy)]
pub struct Pragmas {
    pub busy_timeout: Duration,
    pub synchronous: Synchronous,
}

impl Pragmas {
    pub fn from_settings(settings: &Settings) -> Self {
        Pragmas { busy_timeout: settings.busy_timeout, synchronous: settings.synchronous }
    }

    /// busy_timeout first (so the WAL switch itself may wait), then WAL, foreign keys, sync.
    pub fn apply(&self, conn: &Connection) -> rusqlite::Result<()> {
        conn.busy_timeout(self.busy_timeout)?;
        stable_plans(conn)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        conn.pragma_update(None, "synchronous", self.synchronous.as_pragma())?;
        Ok(())
    }
}

/// Query planner stability: without it SQLite marks a cached statement expired whenever a
/// parameter it planned with is bound again, re-preparing the statement on every request —
/// measured as about a sixth of the list endpoint's time. Our queries do not need
/// value-dependent plans.
fn stable_plans(conn: &Connection) -> rusqlite::Result<()> {
    conn.set_db_config(rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG, true)?;
    Ok(())
}

/// Prepared statements a reader connection keeps.
const READER_STATEMENTS: usize = 128;

/// Opens a connection with the pragmas applied; used by the writer, migrations and CLI commands.
pub fn open_connection(path: &Path, pragmas: Pragmas) -> StoreResult<Connection> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    pragmas.apply(&conn)?;
    Ok(conn)
}

/// Whether the database at `path` exists and carries a schema (`user_version` above 0). Opened
/// without the create flag, so asking never makes an empty file.
pub fn is_initialised(path: &Path) -> StoreResult<bool> {
    if !path.is_file() {
        return Ok(false);
    }
    let conn = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX)?;
    Ok(migrations::current_version(&conn)? > 0)
}

/// Moves everything in the write-ahead log into the database file and empties the log
/// (TRUNCATE), so that after a clean stop `rockit-edge.db` alone holds all the data: a copy of
/// that one file is then complete. Fails if a reader or writer still holds the log.
pub fn checkpoint(path: &Path, pragmas: Pragmas) -> StoreResult<()> {
    let conn = open_connection(path, pragmas)?;
    let (busy, log, moved): (i64, i64, i64) =
        conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
    if busy != 0 {
        return Err(StoreError::Busy);
    }
    log::debug!("checkpointed {moved} of {log} WAL frame(s) into the database");
    Ok(())
}

impl Store {
    /// Migrates the database at `path` if needed, then starts the writer and the read pool.
    pub fn open(path: &Path, pragmas: Pragmas, read_pool_size: u32) -> StoreResult<Store> {
        let mut conn = open_connection(path, pragmas)?;
        migrations::migrate(&mut conn, path)?;
        let writer = Writer::start(conn)?;
        let manager = SqliteConnectionManager::file(path)
            .with_flags(OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX)
            .with_init(move |conn| {
                conn.busy_timeout(pragmas.busy_timeout)?;
                stable_plans(conn)?;
                // Lists build statements per filter combination (a task page with a window runs
                // a dozen); rusqlite's default of 16 would re-prepare them under varied traffic.
                conn.set_prepared_statement_cache_capacity(READER_STATEMENTS);
                conn.pragma_update(None, "foreign_keys", "ON")?;
                // Readers must never write; SQLite enforces it.
                conn.pragma_update(None, "query_only", "ON")
            });
        // The reader threads hold `read_pool_size` connections for good; two more serve
        // `read_blocking` callers.
        let pool = r2d2::Pool::builder()
            .max_size(read_pool_size + 2)
            .min_idle(Some(0))
            // A checkout test would cost a query per request; a broken connection errors anyway.
            .test_on_check_out(false)
            .connection_timeout(pragmas.busy_timeout)
            .build(manager)?;
        let readers = readers::Readers::start(&pool, read_pool_size)?;
        Ok(Store { pool, readers, writer })
    }

    /// Runs `f` on a read-only connection on one of the reader threads.
    pub async fn read<T, F>(&self, f: F) -> StoreResult<T>
    where
        F: FnOnce(&Connection) -> StoreResult<T> + Send + 'static,
        T: Send + 'static,
    {
        self.readers.run(f).await
    }

    /// Runs `f` on a read-only connection from a thread that may block (task workers).
    pub fn read_blocking<T>(&self, f: impl FnOnce(&Connection) -> StoreResult<T>) -> StoreResult<T> {
        let conn = self.pool.get()?;
        in_snapshot(&conn, f)
    }

    /// Whether writes currently fail for lack of disk space (since the last failure, until a
    /// write gets through again).
    pub fn writes_failing(&self) -> bool {
        self.writer.disk_full()
    }

    /// Batch sizes and commit latencies of the writer, for `/metrics`.
    /// Rung after every commit that recorded webhook deliveries (the delivery worker waits on it).
    pub fn outbox_bell(&self) -> &bell::Bell {
        self.writer.outbox_bell()
    }

    pub fn writer_stats(&self) -> &WriterStats {
        self.writer.stats()
    }

    /// Runs `f` inside the writer's current transaction; answers once it is committed. Any `Err`
    /// of `f` — a database error or a refusal such as "already exists" — rolls back all that `f`
    /// wrote, so follow-up work inserted by `f` (a prune task) commits with the change or not at all.
    pub async fn write<T, E, F>(&self, f: F) -> Result<T, E>
    where
        F: FnOnce(&Connection) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: WriteError + Send + 'static,
    {
        self.writer.submit(f)?.await.map_err(|_| StoreError::WriterGone)?
    }

    /// `write` for threads that may block.
    pub fn write_blocking<T, E, F>(&self, f: F) -> Result<T, E>
    where
        F: FnOnce(&Connection) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: WriteError + Send + 'static,
    {
        self.writer.submit(f)?.blocking_recv().map_err(|_| StoreError::WriterGone)?
    }
}

/// Runs `read` in one read transaction, so that all its statements see the same snapshot (a list
/// page and its total agree) and SQLite takes its file locks once rather than per statement —
/// measured at about a quarter of a list read. Inside a transaction already, `read` just runs.
pub(crate) fn in_snapshot<T>(conn: &Connection, read: impl FnOnce(&Connection) -> StoreResult<T>) -> StoreResult<T> {
    if !conn.is_autocommit() {
        return read(conn);
    }
    conn.prepare_cached("BEGIN")?.execute([])?;
    let mut snapshot = OpenSnapshot(Some(conn));
    let value = read(conn)?;
    snapshot.0 = None;
    conn.prepare_cached("COMMIT")?.execute([])?;
    Ok(value)
}

/// Ends a read transaction that `in_snapshot` did not finish (an error or a panic), so the
/// connection never goes back to work on a stale snapshot that would also hold back checkpoints.
struct OpenSnapshot<'c>(Option<&'c Connection>);

impl Drop for OpenSnapshot<'_> {
    fn drop(&mut self) {
        if let Some(conn) = self.0 {
            // Nothing was written: rolling back only ends the transaction.
            let _ = conn.execute_batch("ROLLBACK");
        }
    }
}

/// The current time as the RFC 3339 UTC string with milliseconds used for every timestamp.
pub fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// API sort field → SQL column of one list; the first entry (the name) breaks ties. Column names
/// stay in store/: callers name API fields only.
pub type SortColumns = &'static [(&'static str, &'static str)];

/// One page of a list: offset, limit and an ORDER BY built only from whitelisted column names.
#[derive(Clone, Debug)]
pub struct Page {
    pub offset: i64,
    pub limit: i64,
    pub order_by: String,
    /// The columns of `order_by` in order, each with whether it is descending.
    pub keys: Vec<(&'static str, bool)>,
}

impl Page {
    /// A page sorted by `order` (API field, descending?), then by the list's name for stable
    /// order, in the direction of the last field: `-status` is the exact reverse of `status`.
    /// An index in `(status, name)` order then serves both; with the names ascending under a
    /// descending status, SQLite sorted each status's tasks whole (`order[]=-status` at 10^6
    /// tasks: 380 ms against 0.2 ms for `status`). An unknown field is answered as `Err(field)`.
    pub fn new<'f>(offset: i64, limit: i64, sort: SortColumns, order: &[(&'f str, bool)]) -> Result<Page, &'f str> {
        let column = |field: &'f str| sort.iter().find(|(name, _)| *name == field).map(|(_, c)| *c).ok_or(field);
        let mut keys = Vec::with_capacity(order.len() + 1);
        for (field, descending) in order {
            keys.push((column(field)?, *descending));
        }
        if !keys.iter().any(|(column, _)| *column == sort[0].1) {
            let last_descending = order.last().is_some_and(|(_, descending)| *descending);
            keys.push((sort[0].1, last_descending));
        }
        Ok(Page { offset, limit, order_by: order_by(&keys), keys })
    }

    /// Where the page ends: how many of the first matches it needs.
    pub fn end(&self) -> i64 {
        self.offset.max(0).saturating_add(self.limit.max(0))
    }

    /// The page's part of the list's first [`Page::end`] items.
    pub fn of<T>(&self, first: impl IntoIterator<Item = T>) -> Vec<T> {
        first.into_iter().skip(self.offset.max(0) as usize).take(self.limit.max(0) as usize).collect()
    }

    /// Whether `field` can be sorted on in a list with these columns.
    pub fn sortable(sort: SortColumns, field: &str) -> bool {
        sort.iter().any(|(name, _)| *name == field)
    }
}

/// An ORDER BY of these columns, each with whether it is descending.
pub fn order_by(keys: &[(&str, bool)]) -> String {
    let clauses: Vec<String> = keys
        .iter()
        .map(|(column, descending)| format!("{column} {}", if *descending { "DESC" } else { "ASC" }))
        .collect();
    clauses.join(", ")
}

/// The total of a list whose page holds `rows`: a page that is neither full nor past the end
/// holds the last match, so it tells the total; otherwise `count` does. Callers read in one
/// snapshot, so both agree.
pub fn page_total(page: &Page, rows: usize, count: impl FnOnce() -> StoreResult<i64>) -> StoreResult<i64> {
    let rows = rows as i64;
    if rows < page.limit && (rows > 0 || page.offset == 0) {
        Ok(page.offset + rows)
    } else {
        count()
    }
}

/// One page of `select` (a `SELECT … FROM <from>`) under `cond`, and the number of all matches.
/// `args` bind `?1`…`?n` of `cond`; limit and offset follow them. Statements are cached, so
/// every list pays its parse once per connection. Run it inside one snapshot (readers do).
pub fn list_page<T>(
    conn: &Connection,
    select: &str,
    from: &str,
    cond: &str,
    args: &[&dyn rusqlite::ToSql],
    page: &Page,
    from_row: impl FnMut(&rusqlite::Row) -> rusqlite::Result<T>,
) -> StoreResult<Listed<T>> {
    let count = || -> StoreResult<i64> {
        Ok(conn.prepare_cached(&format!("SELECT count(*) FROM {from} {cond}"))?.query_row(args, |r| r.get(0))?)
    };
    list_page_counted(conn, select, cond, args, page, from_row, count)
}

/// [`list_page`] with the total of a full page from `count` rather than a `count(*)` of the
/// matches: for a list that keeps exact counters (tasks), where counting grows with history.
pub fn list_page_counted<T>(
    conn: &Connection,
    select: &str,
    cond: &str,
    args: &[&dyn rusqlite::ToSql],
    page: &Page,
    from_row: impl FnMut(&rusqlite::Row) -> rusqlite::Result<T>,
    count: impl FnOnce() -> StoreResult<i64>,
) -> StoreResult<Listed<T>> {
    let n = args.len();
    let sql = format!("{select} {cond} ORDER BY {} LIMIT ?{} OFFSET ?{}", page.order_by, n + 1, n + 2);
    let mut all: Vec<&dyn rusqlite::ToSql> = args.to_vec();
    all.push(&page.limit);
    all.push(&page.offset);
    let items: Vec<T> = conn.prepare_cached(&sql)?.query_map(&all[..], from_row)?.collect::<Result<_, _>>()?;
    // Counted separately, not with the page: a window count would make SQLite build every
    // matching row before the LIMIT.
    let total = page_total(page, items.len(), count)?;
    Ok(Listed { items, total })
}

/// A page of rows and the number of all matches.
#[derive(Debug)]
pub struct Listed<T> {
    pub items: Vec<T>,
    pub total: i64,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wal_pair() -> (tempfile::TempDir, Connection, Connection) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db.sqlite");
        let writer = Connection::open(&path).unwrap();
        writer.execute_batch("PRAGMA journal_mode=WAL; CREATE TABLE t (x); INSERT INTO t VALUES (1);").unwrap();
        let reader = Connection::open(&path).unwrap();
        (dir, writer, reader)
    }

    fn count(conn: &Connection) -> StoreResult<i64> {
        Ok(conn.query_row("SELECT count(*) FROM t", [], |r| r.get(0))?)
    }

    #[test]
    fn the_statements_of_one_read_see_one_snapshot() {
        let (_dir, writer, reader) = wal_pair();
        let (before, after) = in_snapshot(&reader, |conn| {
            let before = count(conn)?;
            writer.execute("INSERT INTO t VALUES (2)", []).unwrap();
            Ok((before, count(conn)?))
        })
        .unwrap();
        assert_eq!(before, after, "a write committed during the read stays invisible to it");
        assert_eq!(count(&reader).unwrap(), before + 1, "the next read sees it");
    }

    #[test]
    fn a_failed_or_panicking_read_leaves_no_transaction_open() {
        let (_dir, _writer, reader) = wal_pair();
        let failed: StoreResult<()> = in_snapshot(&reader, |conn| {
            count(conn)?;
            Err(StoreError::Io("gave up".into()))
        });
        assert!(failed.is_err());
        assert!(reader.is_autocommit());
        let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            in_snapshot(&reader, |conn| -> StoreResult<()> {
                count(conn)?;
                panic!("a bug in a read")
            })
        }));
        assert!(panicked.is_err());
        assert!(reader.is_autocommit(), "the snapshot ended with the panic");
    }
}
