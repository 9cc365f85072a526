//! `/be/v1/deployments`, `/be/v1/apps` and `/be/v1/subscriptions` (API.md §7–§9).

use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::{json, Value};

use super::body::JsonBody;
use super::list::{json_body, ListQuery, ListSpec};
use super::principal::Caller;
use super::views;
use crate::domain::names;
use crate::error::{ApiError, ApiResult};
use crate::resources::apps::{DEFAULT_MAX_BUILDS, MAX_BUILDS_RANGE};
use crate::resources::deployments::DeploymentSpec;
use crate::resources::subscriptions::{validate_events, validate_url};
use crate::state::AppState;
use crate::store::tasks::Task;

pub const DEPLOYMENTS_LIST: ListSpec = ListSpec {
    sort: &[
        ("name", "d.name"),
        ("label", "d.label"),
        ("status", "d.status"),
        ("created", "d.created"),
        ("updated", "d.updated"),
    ],
    fields: &["name", "label", "originPrefix", "origin", "downloadAuth", "status", "message", "created", "updated"],
    filters: &["name", "status"],
};

pub const APPS_LIST: ListSpec = ListSpec {
    sort: &[
        ("name", "a.name"),
        ("label", "a.label"),
        ("status", "a.status"),
        ("iCurBuild", "a.i_cur_build"),
        ("created", "a.created"),
        ("updated", "a.updated"),
    ],
    fields: &[
        "name",
        "label",
        "maxBuilds",
        "iCurBuild",
        "processing",
        "exporting",
        "sizeBytes",
        "status",
        "error",
        "deployments",
        "dxfName",
        "builds",
        "patches",
        "created",
        "updated",
    ],
    filters: &["name", "status"],
};

pub const SUBSCRIPTIONS_LIST: ListSpec = ListSpec {
    sort: &[("name", "s.name"), ("type", "s.type"), ("created", "s.created")],
    fields: &["name", "type", "url", "events", "created", "updated"],
    filters: &["name", "type"],
};

fn success<T: serde::Serialize>(key: &str, value: T) -> HttpResponse {
    let mut body = json!({"status": "success"});
    body[key] = serde_json::to_value(value).unwrap_or(Value::Null);
    HttpResponse::Ok().json(body)
}

/// Answers a delete with the background clean-up it queued.
fn with_task(task: Task) -> ApiResult<HttpResponse> {
    Ok(success("task", serde_json::to_value(task).map_err(ApiError::internal)?))
}

fn deployment_names(body: &JsonBody) -> ApiResult<Option<Vec<String>>> {
    match body.get("deployments") {
        None => Ok(None),
        Some(Value::Array(items)) => items
            .iter()
            .map(|item| match item {
                Value::String(name) => names::validate_deployment("deployments", name).map(|_| name.clone()),
                _ => Err(ApiError::invalid("deployments", "`deployments` must be a list of deployment names")),
            })
            .collect::<ApiResult<Vec<_>>>()
            .map(Some),
        Some(_) => Err(ApiError::invalid("deployments", "`deployments` must be a list of deployment names")),
    }
}

// Deployments.

pub async fn create_deployment(state: web::Data<AppState>, caller: Caller, body: JsonBody) -> ApiResult<HttpResponse> {
    let name = body.required_str("name")?;
    names::validate_deployment("name", name)?;
    let spec = DeploymentSpec::parse(&body.0, name)?;
    let created = state.resources.create_deployment(&caller, name, spec).await?;
    Ok(success("deployment", views::deployment(&created)))
}

pub async fn list_deployments(state: web::Data<AppState>, caller: Caller, req: HttpRequest) -> ApiResult<HttpResponse> {
    let query = ListQuery::parse(req.query_string(), &DEPLOYMENTS_LIST)?;
    let (name, status, page) = (query.filter("name"), query.filter("status"), query.page.clone());
    let body = state
        .resources
        .list_deployments(&caller, name, status, page, move |listed| {
            query.render("deployments", &listed.items.iter().map(views::deployment).collect::<Vec<_>>(), listed.total)
        })
        .await?;
    json_body(body)
}

pub async fn deployment(
    state: web::Data<AppState>,
    caller: Caller,
    name: web::Path<String>,
) -> ApiResult<HttpResponse> {
    names::validate_deployment("name", &name)?;
    Ok(success("deployment", views::deployment(&state.resources.deployment(&caller, &name).await?)))
}

pub async fn change_deployment(state: web::Data<AppState>, caller: Caller, body: JsonBody) -> ApiResult<HttpResponse> {
    let name = body.required_str("name")?;
    names::validate_deployment("name", name)?;
    let changed = state.resources.change_deployment(&caller, name, &body.0).await?;
    Ok(success("deployment", views::deployment(&changed)))
}

pub async fn delete_deployment(
    state: web::Data<AppState>,
    caller: Caller,
    name: web::Path<String>,
) -> ApiResult<HttpResponse> {
    names::validate_deployment("name", &name)?;
    with_task(state.resources.delete_deployment(&caller, &name).await?)
}

// Apps.

pub async fn create_app(state: web::Data<AppState>, caller: Caller, body: JsonBody) -> ApiResult<HttpResponse> {
    let name = body.required_str("name")?;
    names::validate("name", name)?;
    let label = body.required_str("label")?.to_string();
    let max_builds =
        body.optional_int("maxBuilds", MAX_BUILDS_RANGE.0, MAX_BUILDS_RANGE.1)?.unwrap_or(DEFAULT_MAX_BUILDS);
    let deployments = deployment_names(&body)?.unwrap_or_default();
    let app = state.resources.create_app(&caller, name, label, max_builds, deployments).await?;
    Ok(success("app", views::app(&app)))
}

pub async fn list_apps(state: web::Data<AppState>, caller: Caller, req: HttpRequest) -> ApiResult<HttpResponse> {
    let query = ListQuery::parse(req.query_string(), &APPS_LIST)?;
    let (name, status, page) = (query.filter("name"), query.filter("status"), query.page.clone());
    let body = state
        .resources
        .list_apps(&caller, name, status, page, move |listed| {
            query.render("apps", &listed.items.iter().map(views::app).collect::<Vec<_>>(), listed.total)
        })
        .await?;
    json_body(body)
}

pub async fn app(state: web::Data<AppState>, caller: Caller, name: web::Path<String>) -> ApiResult<HttpResponse> {
    names::validate("appName", &name)?;
    Ok(success("app", views::app(&state.resources.app(&caller, &name).await?)))
}

pub async fn change_app(state: web::Data<AppState>, caller: Caller, body: JsonBody) -> ApiResult<HttpResponse> {
    let name = body.required_str("name")?;
    names::validate("name", name)?;
    let label = body.optional_str("label")?.map(str::to_string);
    let max_builds = body.optional_int("maxBuilds", MAX_BUILDS_RANGE.0, MAX_BUILDS_RANGE.1)?;
    // `null` or `[]`: all of the organization's deployments.
    let deployments = if body.has("deployments") { Some(deployment_names(&body)?.unwrap_or_default()) } else { None };
    let app = state.resources.change_app(&caller, name, label, max_builds, deployments).await?;
    Ok(success("app", views::app(&app)))
}

pub async fn delete_app(
    state: web::Data<AppState>,
    caller: Caller,
    name: web::Path<String>,
) -> ApiResult<HttpResponse> {
    names::validate("appName", &name)?;
    with_task(state.resources.delete_app(&caller, &name).await?)
}

// Subscriptions.

pub async fn create_subscription(
    state: web::Data<AppState>,
    caller: Caller,
    body: JsonBody,
) -> ApiResult<HttpResponse> {
    let name = body.required_str("name")?;
    names::validate("name", name)?;
    let kind = body.required_str("type")?;
    if kind != "webhook" && kind != "slack" {
        return Err(ApiError::invalid("type", "`type` must be webhook or slack"));
    }
    let url = body.required_str("url")?;
    validate_url(kind, url)?;
    let events = body.get("events").cloned().unwrap_or(Value::Array(Vec::new()));
    validate_events(&events)?;
    let (created, secret) = state.resources.create_subscription(&caller, name, kind, url, events).await?;
    Ok(HttpResponse::Ok()
        .json(json!({"status": "success", "subscription": views::subscription(&created), "secret": secret})))
}

pub async fn list_subscriptions(
    state: web::Data<AppState>,
    caller: Caller,
    req: HttpRequest,
) -> ApiResult<HttpResponse> {
    let query = ListQuery::parse(req.query_string(), &SUBSCRIPTIONS_LIST)?;
    let (name, kind, page) = (query.filter("name"), query.filter("type"), query.page.clone());
    let body = state
        .resources
        .list_subscriptions(&caller, name, kind, page, move |listed| {
            query.render(
                "subscriptions",
                &listed.items.iter().map(views::subscription).collect::<Vec<_>>(),
                listed.total,
            )
        })
        .await?;
    json_body(body)
}

pub async fn delete_subscription(
    state: web::Data<AppState>,
    caller: Caller,
    name: web::Path<String>,
) -> ApiResult<HttpResponse> {
    names::validate("subscriptionName", &name)?;
    state.resources.delete_subscription(&caller, &name).await?;
    Ok(HttpResponse::Ok().json(json!({"status": "success"})))
}
