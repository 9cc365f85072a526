//! `prune`: removes published files in the background — of a deleted organization
//! (`?prune=true`), a deleted app, or from a deleted deployment's origin (API.md §4, §7, §8).
//!
//! Input: [`PruneInput`], built by [`task`] in the same transaction as the delete that causes it.
//! Files go from the local depot (when `depot`) and from every target's origin, `fs` or `s3`,
//! through the same [`Destination`] the publishing used. An `s3` target carries its secret
//! sealed as stored (the deployment row may be gone by the time the prune runs).

use std::path::Path;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::{failure, TaskContext, TaskFailure, TaskHandler};
use crate::domain::names;
use crate::publish::{self, Destination, DirDestination, PublishEnv, TargetSpec};
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

/// Where the published files of one deployment live: the deployment's public origin fields
/// (type, path, endpoint, bucket…) and, for `s3`, its secret sealed as the deployment row keeps
/// it (bound to the organization and deployment name), so the prune can sign its requests after
/// the row is gone while the task input never holds the secret in clear.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PruneTarget {
    pub deployment: String,
    pub prefix: String,
    pub origin: Value,
    #[serde(default, rename = "orgId", skip_serializing_if = "Option::is_none")]
    pub org_id: Option<i64>,
    /// Base64 of the sealed secret.
    #[serde(default, rename = "sealedSecret", skip_serializing_if = "Option::is_none")]
    pub sealed_secret: Option<String>,
}

impl PruneTarget {
    pub fn of(org_id: i64, d: &Deployment) -> PruneTarget {
        PruneTarget {
            deployment: d.name.clone(),
            prefix: d.origin_prefix.clone(),
            origin: d.origin.clone(),
            org_id: Some(org_id),
            sealed_secret: d.origin_secret.as_deref().map(crate::auth::b64_encode),
        }
    }

    fn spec(&self) -> TargetSpec {
        TargetSpec {
            org_id: self.org_id.unwrap_or(0),
            deployment: self.deployment.clone(),
            prefix: self.prefix.clone(),
            origin: self.origin.clone(),
            sealed_secret: self.sealed_secret.as_deref().and_then(crate::auth::b64_decode_any),
        }
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

pub struct Prune(pub Arc<PublishEnv>);

/// `dxf/<org>[/<app>]` and `pat/<org>[/<app>]`: the published layout [compat].
fn published_dirs(org: &str, app: Option<&str>) -> Vec<String> {
    ["dxf", "pat"]
        .iter()
        .map(|area| match app {
            Some(app) => format!("{area}/{org}/{app}"),
            None => format!("{area}/{org}"),
        })
        .collect()
}

/// The image directories of `builds` and every patch directory from or to one of them. Which
/// patches exist is read from the depot (it holds every published patch until this prune).
fn build_dirs(depot: &Path, org: &str, app: &str, builds: &[u32]) -> std::io::Result<Vec<String>> {
    let mut dirs = Vec::new();
    let patches = format!("pat/{org}/{app}");
    for &b in builds {
        dirs.push(format!("dxf/{org}/{app}/{b:04}"));
        dirs.push(format!("{patches}/{b:04}"));
    }
    let targets = match std::fs::read_dir(depot.join(&patches)) {
        Ok(entries) => entries.collect::<std::io::Result<Vec<_>>>()?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(e),
    };
    for to in targets {
        let to = to.file_name().to_string_lossy().into_owned();
        for &b in builds {
            dirs.push(format!("{patches}/{to}/{b:04}"));
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
            return Err(failure("invalid organization or app name", false));
        }
        // Which directories: read from the depot before it is pruned itself (last).
        let dirs = match (app, input.builds.is_empty()) {
            (Some(app), false) => build_dirs(ctx.depot, org, app, &input.builds)
                .map_err(|e| failure(format!("cannot list files of the depot: {e}"), true))?,
            _ => published_dirs(org, app),
        };
        let mut targets: Vec<Box<dyn Destination>> = Vec::new();
        for target in &input.targets {
            targets.push(publish::open(&self.0, &target.spec()).map_err(|e| failure(e.message, e.retryable))?);
        }
        if input.depot {
            targets.push(Box::new(DirDestination::new("depot", ctx.depot.to_path_buf())));
        }
        let mut removed = Vec::new();
        for (i, target) in targets.iter().enumerate() {
            for dir in &dirs {
                target.remove_tree(dir).map_err(|e| failure(e.message, e.retryable))?;
            }
            removed.push(target.label().to_string());
            ctx.progress(i as i64 + 1, targets.len() as i64).map_err(|e| failure(e.to_string(), true))?;
        }
        Ok(json!({"removed": removed, "dirs": dirs}))
    }
}
