//! `/be/v1/deployments`, `/be/v1/apps` and `/be/v1/subscriptions` (API.md §7–§9).

use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::json;

use super::body::Json;
use super::list::{self, ListSpec};
use super::principal::Caller;
use super::requests::{strings, ChangeApp, ChangeDeployment, CreateApp, CreateDeployment, CreateSubscription};
use super::views;
use crate::domain::names;
use crate::domain::text::Text;
use crate::error::{ApiError, ApiResult};
use crate::resources::apps::DEFAULT_MAX_BUILDS;
use crate::resources::deployments::{DeploymentPatch, DeploymentSpec};
use crate::resources::subscriptions::{validate_events, validate_url};
use crate::state::AppState;
use crate::store;
use crate::store::tasks::Task;

pub const DEPLOYMENTS_LIST: ListSpec = ListSpec {
    sort: store::deployments::SORT,
    fields: &["name", "label", "originPrefix", "origin", "downloadAuth", "status", "message", "created", "updated"],
    filters: &["name", "status"],
    choices: &[],
    times: &[],
};

pub const APPS_LIST: ListSpec = ListSpec {
    sort: store::apps::SORT,
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
    choices: &[],
    times: &[],
};

pub const SUBSCRIPTIONS_LIST: ListSpec = ListSpec {
    sort: store::subscriptions::SORT,
    fields: &["name", "type", "url", "events", "created", "updated"],
    filters: &["name", "type"],
    choices: &[("type", &["webhook", "slack"])],
    times: &[],
};

/// Answers a delete with the background clean-up it queued.
fn with_task(task: Task) -> ApiResult<HttpResponse> {
    Ok(super::success("task", views::task(&task)))
}

// Deployments.

pub async fn create_deployment(
    state: web::Data<AppState>,
    caller: Caller,
    body: Json<CreateDeployment>,
) -> ApiResult<HttpResponse> {
    let body = body.0;
    let label = body.label.map(Text::into_inner);
    let prefix = body.origin_prefix.map(Text::into_inner);
    let spec = DeploymentSpec::new(&body.name, label, prefix, &body.origin, body.download_auth.as_ref())?;
    let created = state.resources.create_deployment(&caller, &body.name, spec).await?;
    Ok(super::success("deployment", views::deployment(&created)))
}

pub async fn list_deployments(state: web::Data<AppState>, caller: Caller, req: HttpRequest) -> ApiResult<HttpResponse> {
    list::respond(
        &req,
        &DEPLOYMENTS_LIST,
        |query, page| {
            query.render("deployments", &page.items.iter().map(views::deployment).collect::<Vec<_>>(), page.total)
        },
        |filters, page| state.resources.list_deployments(&caller, filters.get("name"), filters.get("status"), page),
    )
    .await
}

pub async fn deployment(
    state: web::Data<AppState>,
    caller: Caller,
    name: web::Path<String>,
) -> ApiResult<HttpResponse> {
    names::validate_deployment("name", &name)?;
    Ok(super::success("deployment", views::deployment(&state.resources.deployment(&caller, &name).await?)))
}

pub async fn change_deployment(
    state: web::Data<AppState>,
    caller: Caller,
    body: Json<ChangeDeployment>,
) -> ApiResult<HttpResponse> {
    let body = body.0;
    let patch = DeploymentPatch {
        label: body.label.map(|v| v.map(Text::into_inner)),
        origin_prefix: body.origin_prefix.map(|v| v.map(Text::into_inner)),
        origin: body.origin,
        download_auth: body.download_auth,
    };
    let changed = state.resources.change_deployment(&caller, &body.name, patch).await?;
    Ok(super::success("deployment", views::deployment(&changed)))
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

pub async fn create_app(state: web::Data<AppState>, caller: Caller, body: Json<CreateApp>) -> ApiResult<HttpResponse> {
    let body = body.0;
    let max_builds = body.max_builds.map_or(DEFAULT_MAX_BUILDS, |n| n.get());
    let deployments = body.deployments.map(strings).unwrap_or_default();
    let label = body.label.into_inner();
    let app = state.resources.create_app(&caller, &body.name, label, max_builds, deployments).await?;
    Ok(super::success("app", views::app(&app)))
}

pub async fn list_apps(state: web::Data<AppState>, caller: Caller, req: HttpRequest) -> ApiResult<HttpResponse> {
    list::respond(
        &req,
        &APPS_LIST,
        |query, page| query.render("apps", &page.items.iter().map(views::app).collect::<Vec<_>>(), page.total),
        |filters, page| state.resources.list_apps(&caller, filters.get("name"), filters.get("status"), page),
    )
    .await
}

pub async fn app(state: web::Data<AppState>, caller: Caller, name: web::Path<String>) -> ApiResult<HttpResponse> {
    names::validate("appName", &name)?;
    Ok(super::success("app", views::app(&state.resources.app(&caller, &name).await?)))
}

pub async fn change_app(state: web::Data<AppState>, caller: Caller, body: Json<ChangeApp>) -> ApiResult<HttpResponse> {
    let body = body.0;
    let label = body.label.map(Text::into_inner);
    // `null` or `[]`: all of the organization's deployments.
    let deployments = body.deployments.map(|names| names.map(strings).unwrap_or_default());
    let max_builds = body.max_builds.map(|n| n.get());
    let app = state.resources.change_app(&caller, &body.name, label, max_builds, deployments).await?;
    Ok(super::success("app", views::app(&app)))
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
    body: Json<CreateSubscription>,
) -> ApiResult<HttpResponse> {
    let body = body.0;
    let kind = body.kind.as_str();
    validate_url(kind, &body.url, state.settings.outbound_allow_loopback)?;
    let events = serde_json::to_value(body.events.unwrap_or_default()).map_err(ApiError::internal)?;
    validate_events(&events)?;
    let (created, secret) = state.resources.create_subscription(&caller, &body.name, kind, &body.url, events).await?;
    Ok(HttpResponse::Ok()
        .json(json!({"status": "success", "subscription": views::subscription(&created), "secret": secret})))
}

pub async fn list_subscriptions(
    state: web::Data<AppState>,
    caller: Caller,
    req: HttpRequest,
) -> ApiResult<HttpResponse> {
    list::respond(
        &req,
        &SUBSCRIPTIONS_LIST,
        |query, page| {
            query.render("subscriptions", &page.items.iter().map(views::subscription).collect::<Vec<_>>(), page.total)
        },
        |filters, page| state.resources.list_subscriptions(&caller, filters.get("name"), filters.get("type"), page),
    )
    .await
}

pub async fn subscription(
    state: web::Data<AppState>,
    caller: Caller,
    name: web::Path<String>,
) -> ApiResult<HttpResponse> {
    names::validate("subscriptionName", &name)?;
    let (subscription, deliveries) = state.resources.subscription(&caller, &name).await?;
    Ok(super::success("subscription", views::subscription_details(&subscription, &deliveries)))
}

pub async fn delete_subscription(
    state: web::Data<AppState>,
    caller: Caller,
    name: web::Path<String>,
) -> ApiResult<HttpResponse> {
    names::validate("subscriptionName", &name)?;
    state.resources.delete_subscription(&caller, &name).await?;
    Ok(super::done())
}
