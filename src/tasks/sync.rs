//! `sync` [design]: brings one deployment up to date in the background — when an app starts
//! publishing to it (added to the app's `deployments`, or created while an app lists none) and
//! when its origin or credentials change. It first checks the target (credentials, bucket), then
//! publishes every retained build of those apps from the depot: images and patches, data before
//! index, skipping objects already whole there. The deployment ends with `status` `ok`, or
//! `error` and a `message` naming what failed.

use std::sync::Arc;
use std::time::{Duration, Instant};

use rusqlite::Connection;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::builds::publish_objects;
use super::commit;
use super::{store_failure, TaskContext, TaskFailure, TaskHandler};
use crate::publish::{self, PublishEnv, TargetSpec};
use crate::store::tasks::{NewTask, Task};
use crate::store::{apps, builds as build_rows, deployments, tasks as task_rows, StoreResult};

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

enum PointerError {
    Store(crate::store::StoreError),
    Publish(publish::PublishError),
    WriterStillRunning,
}

/// Task types that write an app's pointer themselves and update the database when they end.
const POINTER_WRITERS: [&str; 3] = [commit::TYPE, super::builds::DEPLOY, super::faststart::MKFAST];

/// How often a sync looks again while a pointer writer of the same app runs.
const WRITER_POLL: Duration = Duration::from_millis(200);

/// How long a sync waits for a running pointer writer before it gives up (retryable).
const WRITER_WAIT: Duration = Duration::from_secs(30 * 60);

/// What the database says is live, and whether a task that moves it runs right now.
struct Live {
    pointer: Option<crate::engine::layout::Pointer>,
    writer_running: bool,
}

/// What a sync does with the pointer next, given what it wrote last and what is live now.
#[derive(Debug, PartialEq, Eq)]
enum Step {
    /// Nothing is live (or no more): leave the target's pointer alone.
    Stop,
    /// The target may hold something other than what is live: write it.
    Write,
    /// What was written is live, but a running commit/deploy/mkfast may still change it (it may
    /// have written its pointer to this target before our write, and its database update is
    /// still to come): look again shortly.
    Wait,
    /// What was written is live and nothing that could move it is running: done.
    Done,
}

fn next_step(written: Option<&(i64, String)>, live: &Live) -> Step {
    let Some(pointer) = &live.pointer else { return Step::Stop };
    if written != Some(&(pointer.build_id, pointer.dxf_name.clone())) {
        Step::Write
    } else if live.writer_running {
        Step::Wait
    } else {
        Step::Done
    }
}

/// Writes the app's go-live pointer on the target, once its build's objects are there. A sync
/// holds no app lock (it may run for long beside imports), so a commit could go live while it
/// writes. The pointer is therefore read again after each write, together with whether a
/// pointer-writing task of the app is running, in one snapshot: it is rewritten until what was
/// written is live and no running task can still change it. A task that is only queued needs no
/// wait: it reads its targets and writes its pointer after this snapshot, so after our write.
fn live_pointer(
    ctx: &TaskContext,
    target: &dyn publish::Destination,
    org_id: i64,
    org: &str,
    app: &str,
) -> Result<(), PointerError> {
    let live = |ctx: &TaskContext| {
        let name = app.to_string();
        ctx.store.read_blocking(move |c| {
            let writer_running = task_rows::running_for_app(c, org_id, &name, &POINTER_WRITERS)?;
            let Some(app) = apps::by_name(c, org_id, &name)? else {
                return Ok(Live { pointer: None, writer_running });
            };
            let Some(dxf_name) = app.dxf_name.clone().filter(|_| app.i_cur_build > 0) else {
                return Ok(Live { pointer: None, writer_running });
            };
            let build = app.builds.iter().find(|b| b.build_id == app.i_cur_build);
            let pointer = commit::pointer(
                app.i_cur_build,
                &dxf_name,
                build.and_then(|b| b.name.as_deref()),
                build.map_or(app.size_bytes, |b| b.size_bytes),
            );
            Ok(Live { pointer: Some(pointer), writer_running })
        })
    };
    let started = Instant::now();
    let mut written: Option<(i64, String)> = None;
    loop {
        let now = live(ctx).map_err(PointerError::Store)?;
        match next_step(written.as_ref(), &now) {
            Step::Stop | Step::Done => return Ok(()),
            Step::Wait if started.elapsed() > WRITER_WAIT => return Err(PointerError::WriterStillRunning),
            Step::Wait => std::thread::sleep(WRITER_POLL),
            Step::Write => {
                let Some(pointer) = now.pointer else { return Ok(()) };
                let bytes = serde_json::to_vec(&pointer).unwrap_or_default();
                target.put_bytes(&commit::current_rel(org, app), &bytes).map_err(PointerError::Publish)?;
                written = Some((pointer.build_id, pointer.dxf_name));
            }
        }
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
                PointerError::WriterStillRunning => TaskFailure {
                    exception: json!({"message": format!(
                        "a commit of app {} kept running; its pointer on this deployment is checked again on retry",
                        app.name
                    )}),
                    retryable: true,
                },
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

#[cfg(test)]
mod tests {
    use super::*;

    fn live(build_id: i64, writer_running: bool) -> Live {
        Live { pointer: Some(commit::pointer(build_id, &format!("dxf{build_id}"), None, 1)), writer_running }
    }

    #[test]
    fn a_sync_writes_what_is_live_until_it_was_written() {
        assert_eq!(next_step(None, &live(1, false)), Step::Write);
        assert_eq!(next_step(Some(&(1, "dxf1".into())), &live(2, false)), Step::Write);
        assert_eq!(next_step(Some(&(2, "dxf2".into())), &live(2, false)), Step::Done);
    }

    #[test]
    fn a_sync_waits_while_a_pointer_writer_of_the_app_runs() {
        // The race this closes: a running commit wrote build 2's pointer here before our write
        // of build 1, and its database update is still to come.
        assert_eq!(next_step(Some(&(1, "dxf1".into())), &live(1, true)), Step::Wait);
        assert_eq!(next_step(Some(&(1, "dxf1".into())), &live(2, false)), Step::Write);
    }

    #[test]
    fn a_sync_leaves_the_pointer_alone_when_nothing_is_live() {
        let nothing = Live { pointer: None, writer_running: true };
        assert_eq!(next_step(None, &nothing), Step::Stop);
    }
}
