//! Start-up traces (FastStart, issue 11): launchers report what a game read while starting;
//! `processTraces` turns the current build's traces into an image that starts faster.
//!
//! Who may send traces: a caller with `trainings` update, the resource API.md reserves for trace
//! processing. Launchers use a machine account of the organization whose role grants only that
//! bit, so a key shipped with a launcher can do nothing else.

use super::Resources;
use crate::domain::permissions::{Resource, EXECUTE, UPDATE};
use crate::engine::startup::{self, Read};
use crate::engine::Manifest;
use crate::error::{ApiError, ApiResult};
use crate::identity::principal::Principal;
use crate::store::builds as build_rows;
use crate::store::tasks::Task;
use crate::store::{apps, traces};
use crate::tasks::faststart::{self, FastStartInput};

/// `POST /be/v1/traces`.
pub const PATH: &str = "/be/v1/traces";
/// Reads per trace: a game's start-up, coalesced per file range, stays far below it.
pub const MAX_READS: usize = 20_000;
/// The body limit of a trace (20 000 reads of long paths fit).
pub const BODY_LIMIT: usize = 4 << 20;

/// What the server kept of a trace.
#[derive(Debug, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TraceSummary {
    pub app_name: String,
    pub build_id: i64,
    pub reads: usize,
    /// Traces the build has now (the newest ones are kept).
    pub traces: i64,
}

impl Resources {
    /// Stores a launcher's start-up trace of a retained build of the app, after checking every
    /// read against the build's manifest (409 `conflict` naming the first bad read).
    pub async fn submit_trace(
        &self,
        caller: &Principal,
        app_name: &str,
        build_id: i64,
        reads: Vec<Read>,
    ) -> ApiResult<TraceSummary> {
        caller.require(Resource::TRAININGS, UPDATE)?;
        let (org_id, name) = (caller.org_id, app_name.to_string());
        let app = self
            .store
            .read(move |c| {
                let app = apps::by_name(c, org_id, &name)?;
                Ok(match app {
                    Some(app) => Some((app.id, build_rows::build_ids(c, app.id)?)),
                    None => None,
                })
            })
            .await?;
        let Some((app_id, builds)) = app else { return Err(ApiError::NotFound { resource: "app" }) };
        if !builds.contains(&build_id) {
            return Err(ApiError::NotFound { resource: "build" });
        }
        let path = crate::tasks::builds::manifest_path(&self.state_dir.join("builds"), app_id, build_id);
        let manifest = tokio::task::spawn_blocking(move || Manifest::load(&path))
            .await
            .map_err(ApiError::internal)?
            .map_err(ApiError::internal)?;
        if let Err((at, bad)) = startup::check(&manifest, &reads) {
            return Err(ApiError::ConflictParam {
                param: "reads",
                message: format!("read {at}: {bad} (build {build_id} of app `{app_name}`)"),
            });
        }
        let count = reads.len();
        let json = serde_json::to_string(&reads).map_err(ApiError::internal)?;
        let stored = self.store.write(move |c| traces::insert(c, app_id, build_id, &json)).await?;
        Ok(TraceSummary { app_name: app_name.to_string(), build_id, reads: count, traces: stored })
    }

    /// `processTraces`: queues the `mkfast` task for the app's current build. 409 `conflict`
    /// without a build or without traces of it, 409 `busy` while an import or another
    /// processTraces holds the app.
    pub async fn process_traces(&self, caller: &Principal, app_name: &str) -> ApiResult<Task> {
        caller.require(Resource::TASKS, EXECUTE)?;
        let (org_id, org_name, name) = (caller.org_id, caller.org_name.clone(), app_name.to_string());
        let task = self
            .store
            .write(move |c| -> ApiResult<Task> {
                let app = apps::by_name(c, org_id, &name)?.ok_or(ApiError::NotFound { resource: "app" })?;
                if app.i_cur_build == 0 {
                    return Err(ApiError::Conflict(format!("app `{}` has no build to reorder yet", app.name)));
                }
                let Some(upto) = traces::newest(c, app.id, app.i_cur_build)? else {
                    return Err(ApiError::Conflict(format!(
                        "build {} of app `{}` has no start-up traces: launchers send them with POST {PATH}",
                        app.i_cur_build, app.name
                    )));
                };
                let busy = || ApiError::Busy(format!("an import or trace processing of app `{}` is running", app.name));
                if app.processing || app.exporting {
                    return Err(busy());
                }
                let input = FastStartInput {
                    org_id,
                    org_name,
                    app_id: app.id,
                    app_name: app.name.clone(),
                    build_id: app.i_cur_build,
                    traces_upto: upto,
                };
                let group = format!("faststart-{}", crate::auth::hex(&crate::auth::random_bytes::<8>()));
                build_rows::start_import(c, org_id, app.id, &faststart::task(&group, &input))?.ok_or_else(busy)
            })
            .await?;
        self.queue.wake_workers();
        Ok(task)
    }
}
