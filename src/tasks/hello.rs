//! `hello`: the test task of `POST /srv/v1/hello`. It proves the whole queue works (submit,
//! claim, run on a worker, durable result) and records which engine ran it.

use serde::Deserialize;
use serde_json::{json, Value};

use super::{TaskContext, TaskFailure, TaskHandler};
use crate::store::meta;

pub const TYPE: &str = "hello";

/// Identifies the built-in engine that runs tasks, as `/srv/v1/versions` reports it.
pub fn engine_id() -> String {
    format!("rockit-edge-builtin/{}", env!("CARGO_PKG_VERSION"))
}

pub struct Hello;

/// What a hello task is given.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HelloInput {
    pub message: String,
}

impl TaskHandler for Hello {
    fn run(&self, ctx: &TaskContext) -> Result<Value, TaskFailure> {
        let input = HelloInput::deserialize(&ctx.task.input).map_err(|e| TaskFailure {
            exception: json!({"message": format!("the task input is not a hello input: {e}")}),
            retryable: false,
        })?;
        let message = input.message;
        let engine = engine_id();
        let recorded = engine.clone();
        ctx.store.write_blocking(move |c| meta::set(c, meta::ENGINE, &recorded)).map_err(|e| TaskFailure {
            exception: json!({"message": format!("cannot record the engine: {e}")}),
            retryable: true,
        })?;
        ctx.progress(1, 1)
            .map_err(|e| TaskFailure { exception: json!({"message": e.to_string()}), retryable: true })?;
        let worker = std::thread::current().name().unwrap_or("worker").to_string();
        Ok(json!({"message": message, "engine": engine, "worker": worker}))
    }
}
