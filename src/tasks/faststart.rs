//! `mkfast`, the task of `POST /be/v1/trigger {"action":"processTraces"}` (FastStart): a new DxF
//! image of the app's current build whose packs start with the chunks launchers read while the
//! game starts, in first-access order, published under a new `dxfName` (same build id) to the
//! depot and every target, then made the app's `dxfName`.
//!
//! Crash safety as in the build chain: the image is content-addressed and written whole (a rerun
//! writes the same bytes, because the task uses the traces up to an id fixed when it was queued),
//! publishing skips objects already whole at a target, and the app's `dxfName` changes in the
//! transaction that records the task done. The superseded image stays published (launchers may
//! be fetching it) until the build is evicted, which removes the build's whole directory.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use rusqlite::Connection;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::builds::{build_number, engine_failure, remove_leftovers, BuildEnv};
use super::commit;
use super::{failure, store_failure, TaskContext, TaskFailure, TaskHandler};
use crate::engine::startup::{self, Read};
use crate::engine::{layout, Hooks, Manifest};
use crate::publish::{self, TargetSpec};
use crate::store::builds as build_rows;
use crate::store::tasks::{NewTask, Task};
use crate::store::traces;
use crate::store::StoreResult;

pub const MKFAST: &str = "mkfast";

/// The input of a `mkfast` task.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FastStartInput {
    pub org_id: i64,
    pub org_name: String,
    pub app_id: i64,
    pub app_name: String,
    pub build_id: i64,
    /// The newest trace when the task was queued: later traces wait for the next run.
    pub traces_upto: i64,
}

/// The `mkfast` task of `input` in task group `group`.
pub fn task(group: &str, input: &FastStartInput) -> NewTask {
    NewTask {
        kind: MKFAST.into(),
        group: Some(group.into()),
        app_name: Some(input.app_name.clone()),
        build_id: Some(input.build_id),
        input: serde_json::to_value(input).unwrap_or(Value::Null),
        max_attempts: 5,
        run_in_maintenance: false,
    }
}

pub fn handler(env: Arc<BuildEnv>) -> (&'static str, Arc<dyn TaskHandler>) {
    (MKFAST, Arc::new(MkFast(env)))
}

struct MkFast(Arc<BuildEnv>);

fn input_of(task: &Task) -> Result<FastStartInput, TaskFailure> {
    FastStartInput::deserialize(&task.input)
        .map_err(|e| failure(format!("the task input is not a processTraces input: {e}"), false))
}

/// Progress of the image (chunks) then of publishing (objects), as per mille of the whole, written
/// to the task row only when it moves, so a large image does not write a row per chunk.
struct Gauge<'a> {
    ctx: &'a TaskContext<'a>,
    last: AtomicI64,
}

impl Gauge<'_> {
    /// `done` of `total` within the phase that spans per mille `from..to`.
    fn record(&self, from: i64, to: i64, done: u64, total: u64) {
        let at = from + (to - from) * done.min(total) as i64 / total.max(1) as i64;
        if self.last.swap(at, Ordering::Relaxed) != at {
            if let Err(e) = self.ctx.progress(at, 1000) {
                log::warn!("cannot record the progress of processTraces: {e}");
            }
        }
    }
}

impl TaskHandler for MkFast {
    fn run(&self, ctx: &TaskContext) -> Result<Value, TaskFailure> {
        let env = &self.0;
        let input = input_of(ctx.task)?;
        let n = build_number(input.build_id)?;
        let manifest = Manifest::load(&env.manifest_path(input.app_id, input.build_id))
            .map_err(|e| failure(format!("build {n} cannot be reordered: its manifest is unreadable ({e})"), false))?;
        let (app_id, build_id, upto) = (input.app_id, input.build_id, input.traces_upto);
        let stored =
            ctx.store.read_blocking(move |c| traces::reads(c, app_id, build_id, upto)).map_err(store_failure)?;
        let traces: Vec<Vec<Read>> = stored.iter().filter_map(|t| serde_json::from_str(t).ok()).collect();
        if traces.is_empty() {
            return Err(failure(format!("build {n} has no start-up traces any more"), false));
        }
        let reads = startup::merge(&traces);
        if let Err((at, bad)) = startup::check(&manifest, &reads) {
            return Err(failure(format!("read {at} of the merged traces: {bad}"), false));
        }

        let gauge = Gauge { ctx, last: AtomicI64::new(-1) };
        let progress = |done: u64, total: u64| gauge.record(0, 800, done, total);
        let never = || false;
        let hooks = Hooks::new(&progress, &never);
        let store = env.chunk_store(input.app_id)?;
        let (org, app) = (input.org_name.as_str(), input.app_name.as_str());
        let build_dir = layout::build_dir(ctx.depot, org, app, n);
        // What an earlier attempt cut short (the task holds the app: nothing else writes here).
        remove_leftovers(&build_dir)?;
        // At idle priority, as mkraw's image: a reordered image of a large build is gigabytes
        // of copying and fsyncs that must not take cycles from the API.
        let image = crate::engine::pool::at_idle_priority(|| {
            env.engine.write_startup_image(&manifest, &store, &build_dir, &reads, &hooks)
        })
        .map_err(engine_failure)?;
        let rel = format!("{}/{}", layout::build_rel(org, app, n), image.dxf_name);
        let published =
            publish_to_targets(env, ctx, &input, &rel, &|done, total| gauge.record(800, 1000, done, total))?;
        // Launchers that follow current.json switch to the reordered image now; the database
        // follows when the task is recorded done (on_done), as for a commit.
        let retained = ctx
            .store
            .read_blocking(move |c| build_rows::retained_build(c, app_id, Some(build_id)))
            .map_err(store_failure)?
            .ok_or_else(|| failure(format!("build {n} is no longer retained"), false))?;
        let pointer = commit::pointer(build_id, &image.dxf_name, retained.name.as_deref(), image.size_bytes as i64);
        let targets = commit::targets(ctx.store, input.org_id, app_id).map_err(store_failure)?;
        commit::publish_to_targets(
            &env.publish,
            ctx.depot,
            &targets,
            None,
            &commit::current_rel(org, app),
            &pointer,
            &|_, _| Ok(()),
        )?;
        Ok(json!({
            "dxfName": image.dxf_name,
            "sizeBytes": image.size_bytes,
            "preloadBytes": image.preload_bytes,
            "traces": traces.len(),
            "startupReads": reads.len(),
            "published": published,
        }))
    }

    fn on_done(&self, conn: &Connection, task: &Task, output: &Value) -> StoreResult<()> {
        let Ok(input) = input_of(task) else { return Ok(()) };
        let (Some(dxf_name), Some(size)) = (output["dxfName"].as_str(), output["sizeBytes"].as_i64()) else {
            return build_rows::release_failed(conn, input.app_id, None);
        };
        traces::commit_startup_image(conn, input.app_id, input.build_id, dxf_name, size)?;
        for name in targets_of(conn, &input)?.into_iter().map(|d| d.deployment) {
            build_rows::set_deployment_status(conn, input.org_id, &name, None)?;
        }
        Ok(())
    }

    fn on_failed(&self, conn: &Connection, task: &Task, exception: &Value) -> StoreResult<()> {
        let Ok(input) = input_of(task) else { return Ok(()) };
        if let (Some(name), Some(message)) = (exception["deployment"].as_str(), exception["message"].as_str()) {
            build_rows::set_deployment_status(conn, input.org_id, name, Some(message))?;
        }
        // The build stays published with its previous image: the app is not in error.
        build_rows::release_failed(conn, input.app_id, None)
    }
}

/// The deployments the app publishes to (none listed: all of the organization's).
fn targets_of(conn: &Connection, input: &FastStartInput) -> StoreResult<Vec<TargetSpec>> {
    super::builds::targets_of_app(conn, input.org_id, input.app_id)
}

/// Publishes the depot's directory `rel` to every target of the app, data before index, skipping
/// objects already whole there (the depot itself holds the image already).
fn publish_to_targets(
    env: &BuildEnv,
    ctx: &TaskContext,
    input: &FastStartInput,
    rel: &str,
    progress: &dyn Fn(u64, u64),
) -> Result<Vec<String>, TaskFailure> {
    let targets = ctx.store.read_blocking(|c| targets_of(c, input)).map_err(store_failure)?;
    let objects = publish::objects_of(ctx.depot, &[rel.to_string()])
        .map_err(|e| failure(format!("reading the depot failed ({})", e.kind()), true))?;
    let total = (objects.len() * targets.len()) as u64;
    let mut done = 0;
    let mut published = Vec::new();
    for spec in &targets {
        let fail = |e: publish::PublishError| TaskFailure {
            exception: e.exception(Some(&spec.deployment)),
            retryable: e.retryable,
        };
        let target = publish::open(&env.publish, spec).map_err(fail)?;
        for (src, rel) in &objects {
            target.put_file(rel, src).map_err(fail)?;
            done += 1;
            progress(done, total);
        }
        published.push(target.label().to_string());
    }
    Ok(published)
}
