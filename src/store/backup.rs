//! Consistent copies of a database file and their checks. A copy is made with `VACUUM INTO` from
//! a read snapshot, so it is consistent while the server keeps writing, and it includes what
//! still sits in the write-ahead log.

use std::fs::OpenOptions;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

use super::{migrations, StoreError, StoreResult};

/// Copies the database at `source` into the new file `dest`, which must not exist. The file is
/// created 0600 before SQLite writes into it: a copy holds password hashes and sealed secrets,
/// and `VACUUM INTO` alone would create it with the process umask (world-readable by default).
pub fn copy_database(source: &Path, dest: &Path, busy_timeout: Duration) -> StoreResult<()> {
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(dest)
        .map_err(|e| StoreError::Io(format!("cannot create the copy: {e}")))?;
    let copied = (|| -> StoreResult<()> {
        let conn =
            Connection::open_with_flags(source, OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX)?;
        conn.busy_timeout(busy_timeout)?;
        conn.execute("VACUUM INTO ?1", [dest.to_string_lossy()]).map_err(StoreError::classify)?;
        Ok(())
    })();
    if copied.is_err() {
        let _ = std::fs::remove_file(dest);
    }
    copied
}

/// Checks a database file: `PRAGMA integrity_check` must say `ok`; answers its schema version.
pub fn verify(path: &Path) -> StoreResult<i64> {
    let conn = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX)?;
    let check: String = conn.query_row("PRAGMA integrity_check", [], |r| r.get(0))?;
    if check != "ok" {
        return Err(StoreError::Corrupt(format!("integrity check: {check}")));
    }
    migrations::current_version(&conn)
}
