//! `POST /be/v1/builds` and `/be/v1/tasks` (API.md §8, §9). Thin: shape checks are in the request
//! types, rules in `resources::builds`.

use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::json;

use super::body::Json;
use super::list::{self, ListSpec};
use super::principal::Caller;
use super::requests::{BuildUrl, ChangeTask, Commit, CreateBuild, Trigger};
use crate::error::{ApiError, ApiResult};
use crate::resources::builds::{NewImport, UploadTerms};
use crate::resources::uploads::UploadError;
use crate::state::AppState;
use crate::store::tasks::{Task, TaskFilter};
use crate::tasks::builds::UrlSource;

fn with_task(task: &Task) -> ApiResult<HttpResponse> {
    Ok(super::success("task", task))
}

fn source(url: BuildUrl) -> UrlSource {
    match url {
        BuildUrl::Plain(url) => UrlSource::new(url.into_inner(), Vec::new()),
        BuildUrl::WithHeaders { url, headers } => UrlSource::new(
            url.into_inner(),
            headers.unwrap_or_default().into_iter().map(|(k, v)| (k, v.into_inner())).collect(),
        ),
    }
}

pub async fn create_build(
    state: web::Data<AppState>,
    caller: Caller,
    req: HttpRequest,
    body: Json<CreateBuild>,
) -> ApiResult<HttpResponse> {
    let body = body.0;
    let import = NewImport {
        app_name: body.app_name.into_inner(),
        build_name: body.build_name.map(|n| n.into_inner()),
        source: body.url.map(source),
        size: body.size.map(|s| s.get().unsigned_abs()),
        commit: body.commit.unwrap_or(true),
    };
    let terms = UploadTerms { ttl: state.settings.upload_ttl, max_bytes: state.settings.max_build_bytes };
    let (task, offer) = state.resources.create_build(&caller, import, terms).await?;
    let task = serde_json::to_value(task).map_err(ApiError::internal)?;
    let mut answer = json!({"status": "success", "task": task});
    if let Some(offer) = offer {
        // Absolute, on the address the caller used to reach this server.
        let info = req.connection_info();
        let url = format!("{}://{}/be/v1/uploads/{}", info.scheme(), info.host(), offer.token);
        answer["upload"] = json!({"url": url, "method": "PUT", "expires": offer.expires});
    }
    Ok(HttpResponse::Ok().json(answer))
}

/// `PUT` of a one-time upload URL: the capability in the path is the only credential.
pub async fn upload(
    state: web::Data<AppState>,
    token: web::Path<String>,
    body: web::Payload,
) -> ApiResult<HttpResponse> {
    match state.resources.receive_upload(&token, body).await {
        Ok(task) => with_task(&task),
        Err(UploadError::Api(e)) => Err(e),
        // The client may PUT again; nothing of this attempt was kept.
        Err(UploadError::Body(message)) => Err(ApiError::invalid("body", message)),
    }
}

pub async fn task(state: web::Data<AppState>, caller: Caller, name: web::Path<String>) -> ApiResult<HttpResponse> {
    with_task(&state.resources.task(&caller, &name).await?)
}

/// Every sort and filter finds its page along an index, so a page costs about the same at any
/// number of tasks (`store::tasks::list`: walks, day walks, window reads, grouped orders).
pub const TASKS_LIST: ListSpec = ListSpec {
    sort: crate::store::tasks::SORT,
    fields: &[
        "name",
        "type",
        "status",
        "group",
        "appName",
        "buildId",
        "progress",
        "warnings",
        "exception",
        "attempts",
        "created",
        "started",
        "ended",
    ],
    filters: &["appName", "type", "status", "group", "createdAfter", "createdBefore"],
    choices: &[
        ("type", &["dltar", "mkraw", "deploy", "hello", "prune", "sync", "commit", "mkfast", "export"]),
        ("status", &["submitted", "running", "done", "failed", "expired"]),
    ],
    times: &["createdAfter", "createdBefore"],
};

pub async fn list_tasks(state: web::Data<AppState>, caller: Caller, req: HttpRequest) -> ApiResult<HttpResponse> {
    list::respond(
        &req,
        &TASKS_LIST,
        |query, page| query.render("tasks", &page.items, page.total),
        |filters, page| async move {
            let filter = TaskFilter {
                app_name: filters.get("appName"),
                kind: filters.get("type"),
                status: filters.get("status"),
                group: filters.get("group"),
                created_after: filters.get("createdAfter"),
                created_before: filters.get("createdBefore"),
            };
            state.resources.list_tasks(&caller, filter, page).await
        },
    )
    .await
}

pub async fn change_task(
    state: web::Data<AppState>,
    caller: Caller,
    body: Json<ChangeTask>,
) -> ApiResult<HttpResponse> {
    let body = body.0;
    let (ack, expire) = (body.ack_warnings == Some(true), body.expire == Some(true));
    with_task(&state.resources.change_task(&caller, &body.name, ack, expire).await?)
}

pub async fn trigger(state: web::Data<AppState>, caller: Caller, body: Json<Trigger>) -> ApiResult<HttpResponse> {
    match body.0 {
        Trigger::RetryTask { task_name } => with_task(&state.resources.retry_task(&caller, &task_name).await?),
        Trigger::ProcessTraces { app_name } => with_task(&state.resources.process_traces(&caller, &app_name).await?),
    }
}

/// `POST /be/v1/commit`: answers the queued `commit` task, like the other calls that start one.
pub async fn commit(state: web::Data<AppState>, caller: Caller, body: Json<Commit>) -> ApiResult<HttpResponse> {
    let body = body.0;
    with_task(&state.resources.commit_build(&caller, &body.app_name, body.build_id.map(|b| b.get())).await?)
}
