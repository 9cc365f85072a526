//! The rows of the build pipeline (issue 9): the per-app import lock, task checkpoints and the
//! one transaction that makes a finished build current.

use rusqlite::{params, Connection, OptionalExtension};
use serde_json::Value;

use super::tasks::{self as task_rows, NewTask, Task};
use super::{now_rfc3339, StoreResult};
use crate::domain::kinds::TaskStatus;

/// Takes the app for an import and inserts the import's first task, in the caller's
/// transaction. `None`: another import holds the app (the API answers 409 `busy`).
pub fn start_import(conn: &Connection, org_id: i64, app_id: i64, first: &NewTask) -> StoreResult<Option<Task>> {
    let taken = conn.execute(
        "UPDATE apps SET import_group = ?2, processing = 1, updated = ?3 WHERE id = ?1 AND import_group IS NULL",
        params![app_id, first.group, now_rfc3339()],
    )?;
    if taken == 0 {
        return Ok(None);
    }
    insert_task(conn, org_id, first).map(Some)
}

/// Inserts a task of an organization (the list and details of tasks are per organization).
pub fn insert_task(conn: &Connection, org_id: i64, task: &NewTask) -> StoreResult<Task> {
    let inserted = task_rows::insert(conn, task)?;
    conn.execute("UPDATE tasks SET org_id = ?2 WHERE id = ?1", params![inserted.id, org_id])?;
    super::webhooks::record(conn, inserted.id, crate::domain::webhooks::TaskEvent::Submit)?;
    Ok(inserted)
}

/// Holds a task back until `run_after` (e.g. removing published objects after a grace period).
pub fn set_run_after(conn: &Connection, task_id: i64, run_after: &str) -> StoreResult<()> {
    conn.execute("UPDATE tasks SET run_after = ?2 WHERE id = ?1", params![task_id, run_after])?;
    Ok(())
}

/// The checkpoint a task recorded, if any.
pub fn checkpoint(conn: &Connection, task_id: i64) -> StoreResult<Option<Value>> {
    let text: Option<String> =
        conn.query_row("SELECT checkpoint FROM tasks WHERE id = ?1", [task_id], |r| r.get(0)).optional()?.flatten();
    Ok(text.and_then(|t| serde_json::from_str(&t).ok()))
}

pub fn set_checkpoint(conn: &Connection, task_id: i64, checkpoint: &Value) -> StoreResult<()> {
    conn.execute("UPDATE tasks SET checkpoint = ?2 WHERE id = ?1", params![task_id, checkpoint.to_string()])?;
    Ok(())
}

/// Sets the keys of `fields` (an object) in a task's checkpoint and keeps the others: the task
/// and an expiry request (`expireRequested`) write the same checkpoint without a lost update.
pub fn merge_checkpoint(conn: &Connection, task_id: i64, fields: &Value) -> StoreResult<()> {
    conn.execute(
        "UPDATE tasks SET checkpoint = json_patch(COALESCE(checkpoint, '{}'), ?2) WHERE id = ?1",
        params![task_id, fields.to_string()],
    )?;
    Ok(())
}

/// mkraw is done, deploy starts: the app shows `exporting` instead of `processing`.
pub fn set_exporting(conn: &Connection, app_id: i64) -> StoreResult<()> {
    conn.execute(
        "UPDATE apps SET processing = 0, exporting = 1, updated = ?2 WHERE id = ?1",
        params![app_id, now_rfc3339()],
    )?;
    Ok(())
}

/// The import ended without a new build: the app is free again; `error` (a failed task of the
/// chain) sets the app's `status:"error"` and `error`, which the next committed build clears.
pub fn release_failed(conn: &Connection, app_id: i64, error: Option<&str>) -> StoreResult<()> {
    match error {
        Some(message) => conn.execute(
            "UPDATE apps SET import_group = NULL, processing = 0, exporting = 0, status = 'error', error = ?2,
                 updated = ?3 WHERE id = ?1",
            params![app_id, message, now_rfc3339()],
        )?,
        None => conn.execute(
            "UPDATE apps SET import_group = NULL, processing = 0, exporting = 0, updated = ?2 WHERE id = ?1",
            params![app_id, now_rfc3339()],
        )?,
    };
    Ok(())
}

/// Records the last publish to a deployment (`status` `ok`/`error` with a message).
pub fn set_deployment_status(conn: &Connection, org_id: i64, name: &str, error: Option<&str>) -> StoreResult<()> {
    conn.execute(
        "UPDATE deployments SET status = CASE WHEN ?3 IS NULL THEN 'ok' ELSE 'error' END, message = ?3, updated = ?4
         WHERE org_id = ?1 AND name = ?2",
        params![org_id, name, error, now_rfc3339()],
    )?;
    Ok(())
}

/// A finished build as deploy records it.
pub struct NewBuild<'a> {
    pub app_id: i64,
    pub build_id: i64,
    pub name: Option<&'a str>,
    pub dxf_name: &'a str,
    pub size_bytes: i64,
    /// `(fromBuildId, sizeBytes)` of each patch to this build.
    pub patches: &'a [(i64, i64)],
    /// Builds that leave the app with this one (beyond `maxBuilds`), with their patches.
    pub evicted: &'a [i64],
    /// The build goes live (`iCurBuild`, `dxfName`); `false` stages it (`"commit": false`).
    pub live: bool,
}

/// The one transaction that ends an import: the build and its patches, eviction of builds beyond
/// `maxBuilds`, the app freed for the next import, and — unless the build is only staged —
/// `iCurBuild` and `dxfName`.
pub fn commit_build(conn: &Connection, build: &NewBuild) -> StoreResult<()> {
    let now = now_rfc3339();
    conn.execute(
        "INSERT OR REPLACE INTO builds (app_id, build_id, name, size_bytes, created, dxf_name)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![build.app_id, build.build_id, build.name, build.size_bytes, now, build.dxf_name],
    )?;
    for (from, size) in build.patches {
        if build.evicted.contains(from) {
            continue;
        }
        conn.execute(
            "INSERT OR REPLACE INTO patches (app_id, from_build_id, to_build_id, size_bytes) VALUES (?1, ?2, ?3, ?4)",
            params![build.app_id, from, build.build_id, size],
        )?;
    }
    for old in build.evicted {
        conn.execute(
            "DELETE FROM patches WHERE app_id = ?1 AND (from_build_id = ?2 OR to_build_id = ?2)",
            params![build.app_id, old],
        )?;
        conn.execute("DELETE FROM builds WHERE app_id = ?1 AND build_id = ?2", params![build.app_id, old])?;
        super::traces::forget_build(conn, build.app_id, *old)?;
    }
    if build.live {
        set_live(conn, build.app_id, build.build_id, build.dxf_name)?;
    }
    conn.execute(
        "UPDATE apps SET import_group = NULL, processing = 0, exporting = 0, status = 'ok', error = NULL, updated = ?2
         WHERE id = ?1",
        params![build.app_id, now],
    )?;
    Ok(())
}

/// The app's current build is now `build_id` (its `current.json` was written on every target).
pub fn set_live(conn: &Connection, app_id: i64, build_id: i64, dxf_name: &str) -> StoreResult<()> {
    conn.execute(
        "UPDATE apps SET i_cur_build = ?2, dxf_name = ?3, updated = ?4 WHERE id = ?1",
        params![app_id, build_id, dxf_name, now_rfc3339()],
    )?;
    Ok(())
}

/// A retained, processed build of an app, as a commit makes it current.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Retained {
    pub build_id: i64,
    pub name: Option<String>,
    pub size_bytes: i64,
    /// `None` for builds recorded before migration 008 that were not current then.
    pub dxf_name: Option<String>,
}

/// `build_id` of the app if it is retained and processed (imports that have not finished have
/// no row), or without `build_id` the newest such build.
pub fn retained_build(conn: &Connection, app_id: i64, build_id: Option<i64>) -> StoreResult<Option<Retained>> {
    let row = |r: &rusqlite::Row| {
        Ok(Retained { build_id: r.get(0)?, name: r.get(1)?, size_bytes: r.get(2)?, dxf_name: r.get(3)? })
    };
    let found = match build_id {
        Some(id) => conn
            .query_row(
                "SELECT build_id, name, size_bytes, dxf_name FROM builds WHERE app_id = ?1 AND build_id = ?2",
                params![app_id, id],
                row,
            )
            .optional()?,
        None => conn
            .query_row(
                "SELECT build_id, name, size_bytes, dxf_name FROM builds WHERE app_id = ?1
                 ORDER BY build_id DESC LIMIT 1",
                [app_id],
                row,
            )
            .optional()?,
    };
    Ok(found)
}

/// Takes the app for a commit (the same lock as an import, so a commit and an import never
/// write the app's pointer at once) and inserts the commit task. `None`: an import or another
/// commit holds the app.
pub fn start_commit(conn: &Connection, org_id: i64, app_id: i64, task: &NewTask) -> StoreResult<Option<Task>> {
    let taken = conn.execute(
        "UPDATE apps SET import_group = ?2 WHERE id = ?1 AND import_group IS NULL",
        params![app_id, task.group],
    )?;
    if taken == 0 {
        return Ok(None);
    }
    insert_task(conn, org_id, task).map(Some)
}

/// A commit ended: the app is free again; `error` (a target that could not be written) sets the
/// app's `status:"error"`, as a failed deploy does.
pub fn end_commit(conn: &Connection, app_id: i64, error: Option<&str>) -> StoreResult<()> {
    match error {
        Some(_) => release_failed(conn, app_id, error),
        None => {
            conn.execute(
                "UPDATE apps SET import_group = NULL, processing = 0, exporting = 0, status = 'ok', error = NULL,
                     updated = ?2 WHERE id = ?1",
                params![app_id, now_rfc3339()],
            )?;
            Ok(())
        }
    }
}

/// The app's builds, oldest first.
pub fn build_ids(conn: &Connection, app_id: i64) -> StoreResult<Vec<i64>> {
    let mut stmt = conn.prepare_cached("SELECT build_id FROM builds WHERE app_id = ?1 ORDER BY build_id")?;
    let ids = stmt.query_map([app_id], |r| r.get(0))?.collect::<Result<Vec<i64>, _>>()?;
    Ok(ids)
}

/// Takes the app's next build number (in the import's transaction): one more than any number
/// an import of the app ever took, current, evicted or failed.
pub fn next_build_number(conn: &Connection, app_id: i64) -> StoreResult<i64> {
    Ok(conn.query_row(
        "UPDATE apps SET last_build = max(last_build, i_cur_build) + 1 WHERE id = ?1 RETURNING last_build",
        [app_id],
        |r| r.get(0),
    )?)
}

/// The deployments an app lists (empty: all of the organization's).
pub fn app_deployment_names(conn: &Connection, app_id: i64) -> StoreResult<Vec<String>> {
    let text: Option<String> =
        conn.query_row("SELECT deployment_names FROM apps WHERE id = ?1", [app_id], |r| r.get(0)).optional()?;
    Ok(text.and_then(|t| serde_json::from_str(&t).ok()).unwrap_or_default())
}

/// A task of an organization by name (another organization's task is not found).
pub fn task_in_org(conn: &Connection, org_id: i64, name: &str) -> StoreResult<Option<Task>> {
    let id: Option<i64> = conn
        .query_row("SELECT id FROM tasks WHERE name = ?1 AND org_id = ?2", params![name, org_id], |r| r.get(0))
        .optional()?;
    match id {
        Some(id) => task_rows::get_by_id(conn, id),
        None => Ok(None),
    }
}

/// Why a task cannot be retried.
#[derive(Debug, PartialEq, Eq)]
pub enum RetryRefused {
    NotFound,
    /// Only a failed task is retried.
    NotFailed(String),
    /// Another import holds the task's app.
    AppBusy(String),
}

/// Queues a failed task again, keeping its checkpoint so it resumes. A task of a build chain
/// takes its app again (one import per app), showing `processing` or `exporting` as before.
pub fn retry(conn: &Connection, org_id: i64, name: &str) -> StoreResult<Result<Task, RetryRefused>> {
    let Some(task) = task_in_org(conn, org_id, name)? else { return Ok(Err(RetryRefused::NotFound)) };
    if task.status != TaskStatus::Failed {
        return Ok(Err(RetryRefused::NotFailed(task.status.as_str().to_string())));
    }
    let app_id = task.input.get("appId").and_then(serde_json::Value::as_i64);
    if let (Some(app_id), Some(group)) = (app_id, &task.group) {
        let exporting = task.kind == "deploy";
        let taken = conn.execute(
            "UPDATE apps SET import_group = ?2, processing = ?3, exporting = ?4, updated = ?5
             WHERE id = ?1 AND import_group IS NULL",
            params![app_id, group, !exporting, exporting, now_rfc3339()],
        )?;
        if taken == 0 {
            return Ok(Err(RetryRefused::AppBusy(task.app_name.unwrap_or_default())));
        }
    }
    conn.execute(
        "UPDATE tasks SET status = 'submitted', run_after = ?2, ended = NULL, max_attempts = attempts + 1 WHERE id = ?1",
        params![task.id, now_rfc3339()],
    )?;
    Ok(task_rows::get_by_id(conn, task.id)?.ok_or(RetryRefused::NotFound))
}

/// Acknowledges (clears) a task's warnings.
pub fn ack_warnings(conn: &Connection, org_id: i64, name: &str) -> StoreResult<Option<Task>> {
    conn.execute("UPDATE tasks SET warnings = '[]' WHERE name = ?1 AND org_id = ?2", params![name, org_id])?;
    task_in_org(conn, org_id, name)
}

/// Makes the import's first task wait for its upload: it is not claimed before `expires`
/// unless the upload arrives first ([`finish_upload`]).
pub fn insert_upload(
    conn: &Connection,
    task_id: i64,
    token_hash: &[u8],
    expires: &str,
    max_bytes: u64,
) -> StoreResult<()> {
    set_run_after(conn, task_id, expires)?;
    conn.execute(
        "INSERT INTO uploads (task_id, token_hash, expires, max_bytes) VALUES (?1, ?2, ?3, ?4)",
        params![task_id, token_hash, expires, max_bytes as i64],
    )?;
    Ok(())
}

/// A waiting upload, found by the hash of its capability.
pub struct Upload {
    pub task: Task,
    pub max_bytes: u64,
}

/// The upload a capability opens, while it is unexpired and its task still waits.
pub fn upload_by_hash(conn: &Connection, token_hash: &[u8]) -> StoreResult<Option<Upload>> {
    let found: Option<(i64, i64)> = conn
        .query_row(
            "SELECT u.task_id, u.max_bytes FROM uploads u JOIN tasks t ON t.id = u.task_id
             WHERE u.token_hash = ?1 AND u.expires > ?2 AND t.status = 'submitted'",
            params![token_hash, now_rfc3339()],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    let Some((task_id, max_bytes)) = found else { return Ok(None) };
    Ok(task_rows::get_by_id(conn, task_id)?.map(|task| Upload { task, max_bytes: max_bytes.max(0) as u64 }))
}

/// The upload arrived whole: the capability is used up and the task runs now. `false`: another
/// request finished (or the upload expired) first.
pub fn finish_upload(conn: &Connection, task_id: i64) -> StoreResult<bool> {
    let used =
        conn.execute("DELETE FROM uploads WHERE task_id = ?1 AND expires > ?2", params![task_id, now_rfc3339()])?;
    if used == 0 {
        return Ok(false);
    }
    conn.execute(
        "UPDATE tasks SET run_after = ?2 WHERE id = ?1 AND status = 'submitted'",
        params![task_id, now_rfc3339()],
    )?;
    Ok(true)
}

/// `PATCH /be/v1/tasks {"expire":true}`: ends a task waiting for its upload and frees the app.
/// `None`: the task does not wait for an upload.
pub fn expire_upload(conn: &Connection, org_id: i64, name: &str) -> StoreResult<Option<Task>> {
    let Some(task) = task_in_org(conn, org_id, name)? else { return Ok(None) };
    if conn.execute("DELETE FROM uploads WHERE task_id = ?1", [task.id])? == 0 || task.status != TaskStatus::Submitted {
        return Ok(None);
    }
    mark_expired(conn, task.id)?;
    if let Some(app_id) = task.input.get("appId").and_then(serde_json::Value::as_i64) {
        release_failed(conn, app_id, None)?;
    }
    task_rows::get_by_id(conn, task.id)
}

/// What `PATCH /be/v1/tasks {"expire":true}` did to an mkraw task.
pub enum MkrawExpiry {
    /// It had not started (or waited for a retry): it is `expired` now and the app is free.
    Expired(Task),
    /// It runs: it was asked to stop at its next chunk or pair, and ends `expired` then.
    Requested(Task),
}

/// `PATCH /be/v1/tasks {"expire":true}` on an mkraw task: a queued one expires at once, a running
/// one is asked to stop (the request is in its checkpoint, so it survives a restart). `None`:
/// not an mkraw task that is queued or running.
pub fn expire_mkraw(conn: &Connection, org_id: i64, name: &str) -> StoreResult<Option<MkrawExpiry>> {
    let Some(task) = task_in_org(conn, org_id, name)? else { return Ok(None) };
    if task.kind != "mkraw" {
        return Ok(None);
    }
    match task.status {
        TaskStatus::Submitted => {
            mark_expired(conn, task.id)?;
            if let Some(app_id) = task.input.get("appId").and_then(serde_json::Value::as_i64) {
                release_failed(conn, app_id, None)?;
            }
            Ok(task_rows::get_by_id(conn, task.id)?.map(MkrawExpiry::Expired))
        }
        TaskStatus::Running => {
            merge_checkpoint(conn, task.id, &serde_json::json!({"expireRequested": true}))?;
            Ok(task_rows::get_by_id(conn, task.id)?.map(MkrawExpiry::Requested))
        }
        _ => Ok(None),
    }
}

/// An upload that never came: the task ends `expired`, not `failed`.
pub fn mark_expired(conn: &Connection, task_id: i64) -> StoreResult<()> {
    conn.execute("UPDATE tasks SET status = 'expired', ended = ?2 WHERE id = ?1", params![task_id, now_rfc3339()])?;
    conn.execute("DELETE FROM uploads WHERE task_id = ?1", [task_id])?;
    Ok(())
}
