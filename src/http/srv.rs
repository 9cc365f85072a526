//! `/srv/v1`: what installation, upgrade and monitoring tools call with an admin token.

use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::json;

use super::body::Json;
use super::principal::{unix_now, Admin};
use super::requests::{Hello, Ping, SetMaintenance};
use crate::domain::kinds::TaskStatus;
use crate::domain::text::Text;
use crate::error::{ApiError, ApiResult};
use crate::instance::{Maintenance, DEFAULT_RETRY_AFTER};
use crate::state::AppState;
use crate::store::{meta, migrations, tasks as task_rows};
use crate::tasks::hello;

/// Revision of the public API this server follows.
pub const API_REVISION: &str = "2026-04-22";

pub async fn versions(state: web::Data<AppState>, _admin: Admin) -> ApiResult<HttpResponse> {
    let engine = state.store.read(|c| meta::get(c, meta::ENGINE)).await?;
    let schema = state.store.read(migrations::current_version).await?;
    Ok(HttpResponse::Ok().json(json!({
        "status": "success",
        "versions": {"edge": env!("CARGO_PKG_VERSION"), "engine": engine, "api": API_REVISION, "schema": schema},
    })))
}

pub async fn ping(_admin: Admin, body: Json<Ping>) -> ApiResult<HttpResponse> {
    let message = body.0.message.as_deref().unwrap_or("pong");
    Ok(HttpResponse::Ok().json(json!({
        "status": "success", "message": message, "time": unix_now(), "version": env!("CARGO_PKG_VERSION"),
    })))
}

pub async fn hello(state: web::Data<AppState>, admin: Admin, body: Json<Hello>) -> ApiResult<HttpResponse> {
    let (message, run_in_maintenance) = (body.0.message.into_inner(), body.0.maintenance);
    if state.maintenance.is_on() && !run_in_maintenance {
        return Err(maintenance_error(&state.maintenance.current()));
    }
    log::info!("hello task requested by admin {}", admin.username);
    let task = state
        .queue
        .submit(task_rows::NewTask {
            kind: hello::TYPE.into(),
            group: None,
            app_name: None,
            build_id: None,
            input: serde_json::to_value(hello::HelloInput { message }).map_err(ApiError::internal)?,
            max_attempts: 1,
            run_in_maintenance,
        })
        .await?;
    let ended = state.queue.wait(task.id, state.settings.hello_timeout).await?.unwrap_or(task);
    match ended.status {
        TaskStatus::Done => Ok(super::success("task", super::views::task(&ended))),
        status => Err(ApiError::Unavailable {
            message: if status.is_final() {
                format!("the hello task {} ended as {status}", ended.name)
            } else {
                format!(
                    "the hello task {} has not finished yet (status {status}); see GET /srv/v1/tasks/{}",
                    ended.name, ended.name
                )
            },
            retry_after: 5,
        }),
    }
}

pub async fn task(state: web::Data<AppState>, _admin: Admin, name: web::Path<String>) -> ApiResult<HttpResponse> {
    let name = name.into_inner();
    let task = state.store.read(move |c| task_rows::get_by_name(c, &name)).await?;
    let task = task.ok_or(ApiError::NotFound { resource: "task" })?;
    Ok(super::success("task", super::views::task(&task)))
}

pub async fn get_maintenance(state: web::Data<AppState>, _admin: Admin) -> ApiResult<HttpResponse> {
    Ok(super::success("maintenance", state.maintenance.current()))
}

pub async fn set_maintenance(
    state: web::Data<AppState>,
    admin: Admin,
    req: HttpRequest,
    body: Json<SetMaintenance>,
) -> ApiResult<HttpResponse> {
    let SetMaintenance { enabled, message, retry_after } = body.0;
    let message = message.map_or_else(|| "The server is under maintenance.".to_string(), Text::into_inner);
    let retry_after = retry_after.map_or(DEFAULT_RETRY_AFTER, |n| n.get() as u64);
    let wanted = Maintenance { enabled, message, retry_after };
    let actor = super::audit::admin(&state, &admin, &req);
    state.maintenance.set(&state.store, wanted.clone(), &actor).await?;
    log::warn!("maintenance mode {} by admin {}", if enabled { "enabled" } else { "disabled" }, admin.username);
    if !enabled {
        state.queue.wake_workers();
    }
    Ok(super::success("maintenance", wanted))
}

/// The 503 every `/adm` and `/be` request gets in maintenance mode.
pub fn maintenance_error(state: &Maintenance) -> ApiError {
    ApiError::Maintenance { message: state.message.clone(), retry_after: state.retry_after }
}
