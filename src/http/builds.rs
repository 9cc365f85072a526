//! `POST /be/v1/builds` and `/be/v1/tasks` (API.md §8, §9). Thin: shape checks are in the request
//! types, rules in `resources::builds`.

use actix_web::{web, HttpResponse};
use serde_json::json;

use super::body::Json;
use super::principal::Caller;
use super::requests::{BuildUrl, CreateBuild};
use crate::error::{ApiError, ApiResult};
use crate::resources::builds::NewImport;
use crate::state::AppState;
use crate::store::tasks::Task;
use crate::tasks::builds::UrlSource;

fn with_task(task: &Task) -> ApiResult<HttpResponse> {
    let task = serde_json::to_value(task).map_err(ApiError::internal)?;
    Ok(HttpResponse::Ok().json(json!({"status": "success", "task": task})))
}

fn source(url: BuildUrl) -> UrlSource {
    match url {
        BuildUrl::Plain(url) => UrlSource { url: url.into_inner(), headers: Vec::new() },
        BuildUrl::WithHeaders { url, headers } => UrlSource {
            url: url.into_inner(),
            headers: headers.unwrap_or_default().into_iter().map(|(k, v)| (k, v.into_inner())).collect(),
        },
    }
}

pub async fn create_build(
    state: web::Data<AppState>,
    caller: Caller,
    body: Json<CreateBuild>,
) -> ApiResult<HttpResponse> {
    let body = body.0;
    let import = NewImport {
        app_name: body.app_name.into_inner(),
        build_name: body.build_name.map(|n| n.into_inner()),
        source: body.url.map(source),
        size: body.size,
    };
    with_task(&state.resources.create_build(&caller, import).await?)
}

pub async fn task(state: web::Data<AppState>, caller: Caller, name: web::Path<String>) -> ApiResult<HttpResponse> {
    with_task(&state.resources.task(&caller, &name).await?)
}
