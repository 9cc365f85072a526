//! `prune`: removes what a deleted organization published to the local depot, in the background
//! (API.md §4, `?prune=true`).

use std::path::Path;

use serde_json::{json, Value};

use super::{TaskContext, TaskFailure, TaskHandler};

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

impl TaskHandler for Prune {
    fn run(&self, ctx: &TaskContext) -> Result<Value, TaskFailure> {
        let org = ctx.task.input.get("orgName").and_then(Value::as_str).unwrap_or_default();
        // The name was validated when the organization was created; refuse anything that could
        // escape the depot all the same.
        if crate::domain::names::validate("orgName", org).is_err() {
            return Err(TaskFailure { exception: json!({"message": "invalid organization name"}), retryable: false });
        }
        let mut removed = Vec::new();
        for area in ["dxf", "pat"] {
            let path = ctx.depot.join(area).join(org);
            match remove_tree(&path) {
                Ok(true) => removed.push(format!("{area}/{org}")),
                Ok(false) => {}
                Err(e) => {
                    return Err(TaskFailure {
                        exception: json!({"message": format!("cannot remove {area}/{org}: {e}")}),
                        retryable: true,
                    })
                }
            }
        }
        ctx.progress(1, 1)
            .map_err(|e| TaskFailure { exception: json!({"message": e.to_string()}), retryable: true })?;
        Ok(json!({"removed": removed}))
    }
}
