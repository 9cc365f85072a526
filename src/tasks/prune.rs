//! `prune`: removes published files in the background — of a deleted organization
//! (`?prune=true`), a deleted app, or from a deleted deployment's origin (API.md §4, §7, §8).
//!
//! Input: `{"orgName", "appName"?, "depot": bool, "targets": [{"deployment", "prefix", "origin"}]}`.
//! Files go from the local depot (when `depot`) and from every `fs` origin in `targets`. Removing
//! objects from `s3` origins needs the S3 client of the publishing pipeline, which this server
//! does not have yet: such a target is reported as a task warning instead of silently skipped.

use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use super::{TaskContext, TaskFailure, TaskHandler};
use crate::domain::names;

pub const TYPE: &str = "prune";

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

impl TaskHandler for Prune {
    fn run(&self, ctx: &TaskContext) -> Result<Value, TaskFailure> {
        let input = &ctx.task.input;
        let org = input.get("orgName").and_then(Value::as_str).unwrap_or_default();
        let app = input.get("appName").and_then(Value::as_str);
        // Names were validated on the way in; refuse anything that could leave the tree anyway.
        if names::validate("orgName", org).is_err() || app.is_some_and(|a| names::validate("appName", a).is_err()) {
            return Err(failure("invalid organization or app name".into(), false));
        }
        let mut roots: Vec<(String, PathBuf)> = Vec::new();
        if input.get("depot").and_then(Value::as_bool).unwrap_or(true) {
            roots.push(("depot".into(), ctx.depot.to_path_buf()));
        }
        let targets = input.get("targets").and_then(Value::as_array).cloned().unwrap_or_default();
        for target in &targets {
            let deployment = target.get("deployment").and_then(Value::as_str).unwrap_or("?");
            let prefix = target.get("prefix").and_then(Value::as_str).unwrap_or("");
            match (target["origin"].get("type").and_then(Value::as_str), target["origin"].get("path").and_then(Value::as_str)) {
                (Some("fs"), Some(path)) if crate::domain::origins::validate_prefix(prefix).is_ok() => {
                    roots.push((format!("deployment {deployment}"), Path::new(path).join(prefix)))
                }
                _ => ctx
                    .warn(json!({"message": format!("files on deployment {deployment} were not removed: only fs origins can be pruned so far")}))
                    .map_err(|e| failure(e.to_string(), true))?,
            }
        }
        let mut removed = Vec::new();
        for (i, (what, root)) in roots.iter().enumerate() {
            for dir in published_dirs(root, org, app) {
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
