//! `commit`: makes a retained build the app's current one (issue 11, go live and roll back).
//!
//! What is current is the small pointer object `dxf/<org>/<app>/current.json` on every target
//! and in the depot. It is written LAST — after the build's objects are on the target — and
//! replaced atomically, so a launcher that follows it either sees the old build or the new one,
//! whole. The database follows (`iCurBuild`, `dxfName`) in the transaction that ends the task.
//!
//! It runs as a task, not inside the request: targets may be remote and slow, and a crash
//! between two targets must not leave the app half switched without anyone retrying.

use std::path::Path;
use std::sync::Arc;

use rusqlite::Connection;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::{failure, TaskContext, TaskFailure, TaskHandler};
use crate::engine::layout;
use crate::publish::{self, Destination, DirDestination, PublishEnv, PublishError, TargetSpec};
use crate::store::builds as build_rows;
use crate::store::tasks::{NewTask, Task};
use crate::store::{Store, StoreResult};

pub const TYPE: &str = "commit";

pub use crate::engine::layout::{current_rel, Pointer};

/// The pointer to `build_id`, committed now.
pub fn pointer(build_id: i64, dxf_name: &str, name: Option<&str>, size_bytes: i64) -> Pointer {
    Pointer {
        build_id,
        dxf_name: dxf_name.to_string(),
        name: name.map(str::to_string),
        size_bytes,
        committed_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
    }
}

/// What a commit task carries.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CommitInput {
    pub org_id: i64,
    pub org_name: String,
    pub app_id: i64,
    pub app_name: String,
    pub build_id: i64,
    pub build_name: Option<String>,
    pub size_bytes: i64,
    /// `None`: a build recorded before its image name was kept; found in the depot.
    pub dxf_name: Option<String>,
}

/// The commit task for `input`, in a group of its own.
pub fn task(input: &CommitInput) -> NewTask {
    NewTask {
        kind: TYPE.into(),
        group: Some(format!("commit-{}", crate::auth::hex(&crate::auth::random_bytes::<8>()))),
        app_name: Some(input.app_name.clone()),
        build_id: Some(input.build_id),
        input: serde_json::to_value(input).unwrap_or(Value::Null),
        max_attempts: 5,
        run_in_maintenance: false,
    }
}

/// The deployments an app publishes to: those it lists, or every deployment of the organization
/// when it lists none.
pub fn targets(store: &Store, org_id: i64, app_id: i64) -> StoreResult<Vec<TargetSpec>> {
    store.read_blocking(move |c| super::builds::targets_of_app(c, org_id, app_id))
}

fn target_failure(deployment: &str, e: PublishError) -> TaskFailure {
    TaskFailure { exception: e.exception(Some(deployment)), retryable: e.retryable }
}

/// Every write of going live goes through here (deploy, commit, mkfast and sync share it): for
/// each target, the image directory `image_rel` (objects already whole there are skipped, so a
/// target added after the build was deployed catches up), then the pointer; the depot's pointer
/// last of all. `progress(done, total)` counts targets.
pub fn publish_to_targets(
    env: &PublishEnv,
    depot: &Path,
    targets: &[TargetSpec],
    image_rel: Option<&str>,
    pointer_rel: &str,
    pointer: &Pointer,
    progress: &dyn Fn(i64, i64) -> Result<(), TaskFailure>,
) -> Result<Vec<String>, TaskFailure> {
    let bytes = serde_json::to_vec(pointer).map_err(|e| failure(e.to_string(), false))?;
    let objects = match image_rel {
        Some(rel) => publish::objects_of(depot, &[rel.to_string()])
            .map_err(|e| failure(format!("reading {rel} in the depot failed ({})", e.kind()), true))?,
        None => Vec::new(),
    };
    let total = targets.len() as i64 + 1;
    let mut done = Vec::new();
    for spec in targets {
        let target = publish::open(env, spec).map_err(|e| target_failure(&spec.deployment, e))?;
        for (src, rel) in &objects {
            target.put_file(rel, src).map_err(|e| target_failure(&spec.deployment, e))?;
        }
        target.put_bytes(pointer_rel, &bytes).map_err(|e| target_failure(&spec.deployment, e))?;
        done.push(target.label().to_string());
        progress(done.len() as i64, total)?;
    }
    DirDestination::new("depot", depot.to_path_buf())
        .put_bytes(pointer_rel, &bytes)
        .map_err(|e| failure(e.message, true))?;
    progress(total, total)?;
    done.push("depot".into());
    Ok(done)
}

/// The one image directory of `build` in the depot, for builds whose image name was not kept.
fn find_dxf_name(depot: &Path, org: &str, app: &str, build: u32) -> Option<String> {
    let dir = layout::build_dir(depot, org, app, build);
    let names: Vec<String> = std::fs::read_dir(dir)
        .ok()?
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| !n.starts_with('.'))
        .collect();
    match names.as_slice() {
        [one] => Some(one.clone()),
        _ => None,
    }
}

fn input_of(task: &Task) -> Result<CommitInput, TaskFailure> {
    CommitInput::deserialize(&task.input)
        .map_err(|e| failure(format!("the task input is not a commit input: {e}"), false))
}

pub struct Commit(pub Arc<PublishEnv>);

impl TaskHandler for Commit {
    fn run(&self, ctx: &TaskContext) -> Result<Value, TaskFailure> {
        let input = input_of(ctx.task)?;
        let (org, app) = (input.org_name.as_str(), input.app_name.as_str());
        let n = u32::try_from(input.build_id)
            .map_err(|_| failure(format!("build number {} is out of range", input.build_id), false))?;
        let dxf_name = match &input.dxf_name {
            Some(name) => name.clone(),
            None => find_dxf_name(ctx.depot, org, app, n)
                .ok_or_else(|| failure(format!("build {n} has no single image in the depot"), false))?,
        };
        let image_rel = format!("{}/{dxf_name}", layout::build_rel(org, app, n));
        if !ctx.depot.join(&image_rel).join(layout::INDEX_FILE).is_file() {
            return Err(failure(format!("the image of build {n} is missing from the depot"), false));
        }
        let targets =
            targets(ctx.store, input.org_id, input.app_id).map_err(|e| failure(format!("database: {e}"), true))?;
        let env = &self.0;
        let pointer = pointer(input.build_id, &dxf_name, input.build_name.as_deref(), input.size_bytes);
        let progress = |done, total| ctx.progress(done, total).map_err(|e| failure(format!("database: {e}"), true));
        let published = publish_to_targets(
            env,
            ctx.depot,
            &targets,
            Some(&image_rel),
            &current_rel(org, app),
            &pointer,
            &progress,
        )?;
        Ok(json!({"published": published, "pointer": pointer}))
    }

    fn on_done(&self, conn: &Connection, task: &Task, output: &Value) -> StoreResult<()> {
        let Ok(input) = input_of(task) else { return Ok(()) };
        let dxf_name = output["pointer"]["dxfName"].as_str().or(input.dxf_name.as_deref()).unwrap_or_default();
        build_rows::set_live(conn, input.app_id, input.build_id, dxf_name)?;
        build_rows::end_commit(conn, input.app_id, None)
    }

    fn on_failed(&self, conn: &Connection, task: &Task, exception: &Value) -> StoreResult<()> {
        let Ok(input) = input_of(task) else { return Ok(()) };
        let message = exception.get("message").and_then(Value::as_str).unwrap_or("commit failed");
        if let Some(name) = exception.get("deployment").and_then(Value::as_str) {
            build_rows::set_deployment_status(conn, input.org_id, name, Some(message))?;
        }
        build_rows::end_commit(conn, input.app_id, Some(message))
    }
}
