//! `prune`: removes published files in the background — of a deleted organization
//! (`?prune=true`), a deleted app, or from a deleted deployment's origin (API.md §4, §7, §8).
//!
//! Input: [`PruneInput`], built by [`task`] in the same transaction as the delete that causes it.
//! Files go from the local depot (when `depot`) and from every `fs` origin in `targets`. Removing
//! objects from `s3` origins needs the S3 client of the publishing pipeline, which this server
//! does not have yet: such a target is reported as a task warning instead of silently skipped.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::{TaskContext, TaskFailure, TaskHandler};
use crate::domain::names;
use crate::store::deployments::Deployment;
use crate::store::tasks::NewTask;

pub const TYPE: &str = "prune";

/// What a prune task removes: the organization's (or one app's) published files, from the local
/// depot when `depot` and from each target's origin.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PruneInput {
    pub org_name: String,
    pub app_name: Option<String>,
    pub depot: bool,
    pub targets: Vec<PruneTarget>,
    /// Only these builds of the app (evicted beyond `maxBuilds`): their images and every patch
    /// from or to them. Empty: everything of the organization or app.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub builds: Vec<u32>,
}

/// Where the published files of one deployment live. The origin is the deployment's public part
/// (type, path, endpoint, bucket…): a prune never needs a secret to find the files.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PruneTarget {
    pub deployment: String,
    pub prefix: String,
    pub origin: Value,
}

impl PruneTarget {
    pub fn of(d: &Deployment) -> PruneTarget {
        PruneTarget { deployment: d.name.clone(), prefix: d.origin_prefix.clone(), origin: d.origin.clone() }
    }
}

/// A background `prune` of an organization's (or one app's) published files.
pub fn task(org: &str, app: Option<&str>, targets: Vec<PruneTarget>, depot: bool) -> NewTask {
    let input =
        PruneInput { org_name: org.into(), app_name: app.map(str::to_string), depot, targets, builds: Vec::new() };
    NewTask {
        kind: TYPE.into(),
        group: None,
        app_name: app.map(str::to_string),
        build_id: None,
        input: serde_json::to_value(input).unwrap_or(Value::Null),
        max_attempts: 5,
        run_in_maintenance: false,
    }
}

pub struct Prune;

/// Removes a directory tree; a missing one is already pruned.
fn remove_tree(path: &Path) -> std::io::Result<bool> {
    match std::fs::remove_dir_all(path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

fn failure(message: String, retryable: bool) -> TaskFailure {
    TaskFailure { exception: json!({"message": message}), retryable }
}

/// `<root>/dxf/<org>[/<app>]` and `<root>/pat/<org>[/<app>]`: the published layout [compat].
fn published_dirs(root: &Path, org: &str, app: Option<&str>) -> Vec<PathBuf> {
    ["dxf", "pat"]
        .iter()
        .map(|area| {
            let dir = root.join(area).join(org);
            match app {
                Some(app) => dir.join(app),
                None => dir,
            }
        })
        .collect()
}

/// The image directories of `builds` and every patch directory from or to one of them.
fn build_dirs(root: &Path, org: &str, app: &str, builds: &[u32]) -> std::io::Result<Vec<PathBuf>> {
    let mut dirs = Vec::new();
    let patches = root.join("pat").join(org).join(app);
    for &b in builds {
        dirs.push(root.join("dxf").join(org).join(app).join(format!("{b:04}")));
        dirs.push(patches.join(format!("{b:04}")));
    }
    let targets = match std::fs::read_dir(&patches) {
        Ok(entries) => entries.collect::<std::io::Result<Vec<_>>>()?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(e),
    };
    for to in targets {
        for &b in builds {
            dirs.push(to.path().join(format!("{b:04}")));
        }
    }
    Ok(dirs)
}

impl TaskHandler for Prune {
    fn run(&self, ctx: &TaskContext) -> Result<Value, TaskFailure> {
        let input = PruneInput::deserialize(&ctx.task.input)
            .map_err(|e| failure(format!("the task input is not a prune input: {e}"), false))?;
        let (org, app) = (input.org_name.as_str(), input.app_name.as_deref());
        // Names were validated on the way in; refuse anything that could leave the tree anyway.
        if names::validate("orgName", org).is_err() || app.is_some_and(|a| names::validate("appName", a).is_err()) {
            return Err(failure("invalid organization or app name".into(), false));
        }
        let mut roots: Vec<(String, PathBuf)> = Vec::new();
        if input.depot {
            roots.push(("depot".into(), ctx.depot.to_path_buf()));
        }
        for target in &input.targets {
            let deployment = &target.deployment;
            let origin =
                (target.origin.get("type").and_then(Value::as_str), target.origin.get("path").and_then(Value::as_str));
            match origin {
                (Some("fs"), Some(path)) if crate::domain::origins::validate_prefix(&target.prefix).is_ok() => {
                    roots.push((format!("deployment {deployment}"), Path::new(path).join(&target.prefix)))
                }
                _ => ctx
                    .warn(json!({"message": format!("files on deployment {deployment} were not removed: only fs origins can be pruned so far")}))
                    .map_err(|e| failure(e.to_string(), true))?,
            }
        }
        let mut removed = Vec::new();
        for (i, (what, root)) in roots.iter().enumerate() {
            let dirs = match (app, input.builds.is_empty()) {
                (Some(app), false) => build_dirs(root, org, app, &input.builds)
                    .map_err(|e| failure(format!("cannot list files of {what}: {e}"), true))?,
                _ => published_dirs(root, org, app),
            };
            for dir in dirs {
                match remove_tree(&dir) {
                    Ok(true) => removed.push(format!("{what}: {}", dir.strip_prefix(root).unwrap_or(&dir).display())),
                    Ok(false) => {}
                    Err(e) => return Err(failure(format!("cannot remove files from {what}: {e}"), true)),
                }
            }
            ctx.progress(i as i64 + 1, roots.len() as i64).map_err(|e| failure(e.to_string(), true))?;
        }
        Ok(json!({"removed": removed}))
    }
}
