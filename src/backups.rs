//! Backups of the state directory's database: one-off copies (`rockit-edge backup`), scheduled
//! copies with retention (`backups/` while the server runs), and `rockit-edge restore`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::config::Settings;
use crate::store::{backup, migrations};

/// File names of scheduled copies: `rockit-edge-<UTC stamp>.db`, so names sort by age. Copies kept
/// before a migration (`rockit-edge.db.schema-…`) do not match and are never pruned.
const SCHEDULED_PREFIX: &str = "rockit-edge-";
const SCHEDULED_SUFFIX: &str = ".db";

/// When the first scheduled copy is due if none exists yet: soon, but not in the middle of the
/// start-up work of a new installation.
const FIRST_WITHOUT_COPIES: Duration = Duration::from_secs(600);

/// A verified copy on disk.
pub struct Written {
    pub path: PathBuf,
    pub bytes: u64,
    pub schema_version: i64,
}

fn stamp() -> String {
    chrono::Utc::now().format("%Y%m%dT%H%M%S%.3fZ").to_string()
}

/// Writes a consistent, checked copy of the database to `out` (which must not exist): first under
/// a temporary name next to it, then renamed, so `out` is never a half-written file.
pub fn write_backup(settings: &Settings, out: &Path) -> Result<Written, String> {
    let source = settings.database_path();
    if !source.is_file() {
        return Err(format!("no database at {}; check --state-dir", source.display()));
    }
    if out.exists() {
        return Err(format!("{} already exists; choose a new file", out.display()));
    }
    let dir = match out.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
        _ => PathBuf::from("."),
    };
    if !dir.is_dir() {
        return Err(format!("cannot write {}: the directory {} does not exist", out.display(), dir.display()));
    }
    let file_name = out.file_name().ok_or_else(|| format!("{} is not a file name", out.display()))?;
    let mut partial_name = file_name.to_os_string();
    partial_name.push(".partial");
    let partial = dir.join(partial_name);
    let _ = std::fs::remove_file(&partial);
    let fail = |why: String| format!("cannot write the backup {}: {why}", out.display());
    backup::copy_database(&source, &partial, settings.busy_timeout).map_err(|e| fail(e.to_string()))?;
    let schema_version = match backup::verify(&partial) {
        Ok(version) => version,
        Err(e) => {
            let _ = std::fs::remove_file(&partial);
            return Err(fail(format!("the copy failed its check ({e})")));
        }
    };
    std::fs::rename(&partial, out).map_err(|e| {
        let _ = std::fs::remove_file(&partial);
        fail(e.to_string())
    })?;
    sync_dir(&dir);
    let bytes = std::fs::metadata(out).map(|m| m.len()).unwrap_or(0);
    Ok(Written { path: out.to_path_buf(), bytes, schema_version })
}

/// Makes renames in `dir` durable; a failure only weakens durability, so it is logged.
fn sync_dir(dir: &Path) {
    if let Err(e) = std::fs::File::open(dir).and_then(|d| d.sync_all()) {
        log::warn!("cannot sync directory {}: {e}", dir.display());
    }
}

/// Takes one scheduled copy into `backups/` and removes the oldest scheduled copies beyond `keep`.
pub fn scheduled_backup(settings: &Settings, keep: usize) -> Result<Written, String> {
    let dir = settings.state_dir.join("backups");
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let written = write_backup(settings, &dir.join(format!("{SCHEDULED_PREFIX}{}{SCHEDULED_SUFFIX}", stamp())))?;
    let mut copies: Vec<PathBuf> = std::fs::read_dir(&dir)
        .map_err(|e| format!("cannot list {}: {e}", dir.display()))?
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|path| is_scheduled(path))
        .collect();
    copies.sort();
    let excess = copies.len().saturating_sub(keep);
    for old in &copies[..excess] {
        if let Err(e) = std::fs::remove_file(old) {
            log::warn!("cannot remove the old backup {}: {e}", old.display());
        }
    }
    Ok(written)
}

/// Starts the thread that takes a scheduled copy every `interval` while the server runs. The
/// first one is due `interval` after the newest scheduled copy already there (or 10 minutes after
/// the start if there is none yet), so a server restarted more often than `interval` still takes
/// its backups.
pub fn start_schedule(settings: Settings, interval: Duration, keep: usize) {
    let spawned = std::thread::Builder::new().name("backups".into()).spawn(move || {
        let age = newest_scheduled_age(&settings.state_dir.join("backups"));
        let mut wait = age.map_or(interval.min(FIRST_WITHOUT_COPIES), |age| interval.saturating_sub(age));
        loop {
            std::thread::sleep(wait);
            match scheduled_backup(&settings, keep) {
                Ok(written) => {
                    log::info!("scheduled backup written to {} ({} bytes)", written.path.display(), written.bytes)
                }
                Err(e) => log::error!("scheduled backup failed: {e}"),
            }
            wait = interval;
        }
    });
    if let Err(e) = spawned {
        log::error!("cannot start scheduled backups: {e}");
    }
}

/// How long ago the newest scheduled copy in `dir` was written, if there is one.
fn newest_scheduled_age(dir: &Path) -> Option<Duration> {
    std::fs::read_dir(dir)
        .ok()?
        .filter_map(Result::ok)
        .filter(|entry| is_scheduled(&entry.path()))
        .filter_map(|entry| entry.metadata().ok()?.modified().ok())
        .max()
        .map(|newest| newest.elapsed().unwrap_or(Duration::ZERO))
}

fn is_scheduled(path: &Path) -> bool {
    path.file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.starts_with(SCHEDULED_PREFIX) && n.ends_with(SCHEDULED_SUFFIX) && !n.contains(".partial"))
}

/// What `restore` did, for its report.
pub struct Restored {
    pub schema_version: i64,
    pub replaced: Option<PathBuf>,
}

/// Replaces the state directory's database with the backup `from`. The server must be stopped
/// (the state directory lock proves it). The backup is checked first (integrity, and a schema
/// this binary can run); the replaced database and its log are moved into `backups/` rather than
/// deleted.
pub fn restore(settings: &Settings, from: &Path) -> Result<Restored, String> {
    if !from.is_file() {
        return Err(format!("{} is not a file", from.display()));
    }
    if !settings.state_dir.is_dir() {
        return Err(format!("no state directory at {}; check --state-dir", settings.state_dir.display()));
    }
    let _lock = crate::server::lock_state_dir(&settings.state_dir)?;
    let version = backup::verify(from).map_err(|e| format!("{} cannot be restored: {e}", from.display()))?;
    check_schema(from, version)?;

    let database = settings.database_path();
    let incoming = settings.state_dir.join("rockit-edge.db.restoring");
    let _ = std::fs::remove_file(&incoming);
    backup::copy_database(from, &incoming, settings.busy_timeout)
        .map_err(|e| format!("cannot copy {}: {e}", from.display()))?;
    if let Err(e) = backup::verify(&incoming) {
        let _ = std::fs::remove_file(&incoming);
        return Err(format!("the copy of {} failed its check: {e}", from.display()));
    }
    let replaced = match keep_aside(settings) {
        Ok(replaced) => replaced,
        Err(e) => {
            let _ = std::fs::remove_file(&incoming);
            return Err(e);
        }
    };
    std::fs::rename(&incoming, &database).map_err(|e| format!("cannot move the restored database in place: {e}"))?;
    sync_dir(&settings.state_dir);
    Ok(Restored { schema_version: version, replaced })
}

fn check_schema(from: &Path, version: i64) -> Result<(), String> {
    let latest = migrations::latest_version();
    if version < 1 {
        return Err(format!("{} is not a rockit-edge database (it has no schema version)", from.display()));
    }
    if version > latest {
        return Err(format!(
            "{} has schema version {version}, newer than this binary supports ({latest}); restore it with a newer rockit-edge",
            from.display()
        ));
    }
    Ok(())
}

/// Moves the current database, its log and its shared-memory file into `backups/replaced-<stamp>/`.
fn keep_aside(settings: &Settings) -> Result<Option<PathBuf>, String> {
    let database = settings.database_path();
    let files: Vec<PathBuf> = ["", "-wal", "-shm"]
        .iter()
        .map(|suffix| {
            let mut name = database.as_os_str().to_os_string();
            name.push(suffix);
            PathBuf::from(name)
        })
        .filter(|path| path.exists())
        .collect();
    if files.is_empty() {
        return Ok(None);
    }
    let aside = settings.state_dir.join("backups").join(format!("replaced-{}", stamp()));
    std::fs::create_dir_all(&aside).map_err(|e| format!("cannot create {}: {e}", aside.display()))?;
    for file in &files {
        let name = file.file_name().unwrap_or_default();
        std::fs::rename(file, aside.join(name))
            .map_err(|e| format!("cannot move {} to {}: {e}", file.display(), aside.display()))?;
    }
    sync_dir(&settings.state_dir);
    Ok(Some(aside))
}
