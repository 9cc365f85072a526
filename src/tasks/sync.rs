//! `sync` [design]: brings one deployment up to date in the background — when an app starts
//! publishing to it (added to the app's `deployments`, or created while an app lists none) and
//! when its origin or credentials change. It first checks the target (credentials, bucket), then
//! publishes every retained build of those apps from the depot: images and patches, data before
//! index, skipping objects already whole there. The deployment ends with `status` `ok`, or
//! `error` and a `message` naming what failed.

use std::sync::Arc;

use rusqlite::Connection;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::builds::publish_objects;
use super::commit;
use super::{TaskContext, TaskFailure, TaskHandler};
use crate::publish::{self, PublishEnv, TargetSpec};
use crate::store::tasks::{NewTask, Task};
use crate::store::{apps, builds as build_rows, deployments, StoreResult};

pub const TYPE: &str = "sync";

/// Which deployment, and which of its apps (empty: every app that publishes to it).
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SyncInput {
    pub org_id: i64,
    pub org_name: String,
    pub deployment: String,
    #[serde(default)]
    pub apps: Vec<String>,
}

/// A background `sync` of `deployment` (for `apps`, or all the apps publishing to it).
pub fn task(org_id: i64, org_name: &str, deployment: &str, apps: Vec<String>) -> NewTask {
    let app_name = (apps.len() == 1).then(|| apps[0].clone());
    let input = SyncInput { org_id, org_name: org_name.into(), deployment: deployment.into(), apps };
    NewTask {
        kind: TYPE.into(),
        group: None,
        app_name,
        build_id: None,
        input: serde_json::to_value(input).unwrap_or(Value::Null),
        max_attempts: 5,
        run_in_maintenance: false,
    }
}

pub struct Sync(pub Arc<PublishEnv>);

fn input_of(task: &Task) -> Result<SyncInput, TaskFailure> {
    SyncInput::deserialize(&task.input).map_err(|e| TaskFailure {
        exception: json!({"message": format!("the task input is not a sync input: {e}")}),
        retryable: false,
    })
}

fn store_failure(e: crate::store::StoreError) -> TaskFailure {
    TaskFailure { exception: json!({"message": format!("database: {e}")}), retryable: true }
}

enum PointerError {
    Store(crate::store::StoreError),
    Publish(publish::PublishError),
}

/// Writes the app's go-live pointer on the target, once its build's objects are there. A sync
/// holds no app lock (it may run for long beside imports), so a commit could go live while it
/// writes: the pointer is read again afterwards and rewritten until what was written is still
/// what is live.
fn live_pointer(
    ctx: &TaskContext,
    target: &dyn publish::Destination,
    org_id: i64,
    org: &str,
    app: &str,
) -> Result<(), PointerError> {
    let current = |ctx: &TaskContext| {
        let name = app.to_string();
        ctx.store.read_blocking(move |c| {
            let Some(app) = apps::by_name(c, org_id, &name)? else { return Ok(None) };
            let Some(dxf_name) = app.dxf_name.clone().filter(|_| app.i_cur_build > 0) else { return Ok(None) };
            let build = app.builds.iter().find(|b| b.build_id == app.i_cur_build);
            Ok(Some(commit::pointer(
                app.i_cur_build,
                &dxf_name,
                build.and_then(|b| b.name.as_deref()),
                build.map_or(app.size_bytes, |b| b.size_bytes),
            )))
        })
    };
    let mut written: Option<(i64, String)> = None;
    loop {
        let Some(pointer) = current(ctx).map_err(PointerError::Store)? else { return Ok(()) };
        let now = (pointer.build_id, pointer.dxf_name.clone());
        if written.as_ref() == Some(&now) {
            return Ok(());
        }
        let bytes = serde_json::to_vec(&pointer).unwrap_or_default();
        target.put_bytes(&commit::current_rel(org, app), &bytes).map_err(PointerError::Publish)?;
        written = Some(now);
    }
}

impl TaskHandler for Sync {
    fn run(&self, ctx: &TaskContext) -> Result<Value, TaskFailure> {
        let input = input_of(ctx.task)?;
        let (org_id, name) = (input.org_id, input.deployment.clone());
        let Some(d) =
            ctx.store.read_blocking(move |c| deployments::by_name(c, org_id, &name)).map_err(store_failure)?
        else {
            return Ok(json!({"skipped": "the deployment no longer exists"}));
        };
        let fail =
            |e: publish::PublishError| TaskFailure { exception: e.exception(Some(&d.name)), retryable: e.retryable };
        let target = publish::open(&self.0, &TargetSpec::of(org_id, &d)).map_err(fail)?;
        target.check().map_err(fail)?;

        let name = d.name.clone();
        let mut apps =
            ctx.store.read_blocking(move |c| apps::publishing_to(c, org_id, &name)).map_err(store_failure)?;
        if !input.apps.is_empty() {
            apps.retain(|a| input.apps.contains(&a.name));
        }
        let org = input.org_name.as_str();
        let mut objects = Vec::new();
        for app in &apps {
            for build in &app.builds {
                let n = u32::try_from(build.build_id).unwrap_or(0);
                let sources: Vec<u32> = app
                    .patches
                    .iter()
                    .filter(|p| p.to_build_id == build.build_id)
                    .filter_map(|p| u32::try_from(p.from_build_id).ok())
                    .collect();
                let dirs = publish::build_dirs(ctx.depot, org, &app.name, n, &sources)
                    .and_then(|dirs| publish::objects_of(ctx.depot, &dirs))
                    .map_err(|e| TaskFailure {
                        exception: json!({"message": format!("reading the depot failed ({})", e.kind())}),
                        retryable: true,
                    })?;
                objects.extend(dirs);
            }
        }
        let mut done = 0;
        publish_objects(ctx, target.as_ref(), &d.name, &objects, &mut done, objects.len() as i64)?;
        for app in &apps {
            live_pointer(ctx, target.as_ref(), org_id, org, &app.name).map_err(|e| match e {
                PointerError::Store(e) => store_failure(e),
                PointerError::Publish(e) => fail(e),
            })?;
        }
        Ok(json!({"apps": apps.iter().map(|a| &a.name).collect::<Vec<_>>(), "objects": objects.len()}))
    }

    fn on_done(&self, conn: &Connection, task: &Task, _output: &Value) -> StoreResult<()> {
        match input_of(task) {
            Ok(input) => build_rows::set_deployment_status(conn, input.org_id, &input.deployment, None),
            Err(_) => Ok(()),
        }
    }

    fn on_failed(&self, conn: &Connection, task: &Task, exception: &Value) -> StoreResult<()> {
        let message = exception.get("message").and_then(Value::as_str).unwrap_or("sync failed");
        match input_of(task) {
            Ok(input) => build_rows::set_deployment_status(conn, input.org_id, &input.deployment, Some(message)),
            Err(_) => Ok(()),
        }
    }
}
