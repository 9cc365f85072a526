//! `/be/v1/roles` (API.md §6).

use actix_web::{web, HttpRequest, HttpResponse};

use super::body::Json;
use super::list::{self, ListSpec};
use super::principal::Caller;
use super::requests::{ChangeRole, CreateRole};
use super::views;
use crate::domain::names;
use crate::domain::permissions::Permissions;
use crate::domain::text::Text;
use crate::error::ApiResult;
use crate::state::AppState;
use crate::store;

pub const ROLES_LIST: ListSpec = ListSpec {
    sort: store::roles::SORT,
    fields: &["name", "label", "permissions", "builtin", "users", "created", "updated"],
    filters: &["name"],
    choices: &[],
    times: &[],
};

fn permissions(map: serde_json::Map<String, serde_json::Value>) -> ApiResult<Permissions> {
    Ok(Permissions::parse("permissions", &serde_json::Value::Object(map))?)
}

fn answer(role: &crate::store::roles::Role) -> HttpResponse {
    super::success("role", views::role(role))
}

pub async fn list(state: web::Data<AppState>, caller: Caller, req: HttpRequest) -> ApiResult<HttpResponse> {
    list::respond(
        &req,
        &ROLES_LIST,
        |query, page| query.render("roles", &page.items.iter().map(views::role).collect::<Vec<_>>(), page.total),
        |filters, page| state.identity.list_roles(&caller, filters.get("name"), page),
    )
    .await
}

pub async fn details(state: web::Data<AppState>, caller: Caller, name: web::Path<String>) -> ApiResult<HttpResponse> {
    names::validate("roleName", &name)?;
    Ok(answer(&state.identity.role(&caller, &name).await?))
}

pub async fn create(
    state: web::Data<AppState>,
    caller: Caller,
    req: HttpRequest,
    body: Json<CreateRole>,
) -> ApiResult<HttpResponse> {
    let body = body.0;
    let name = body.name.into_inner();
    let label = body.label.map_or_else(|| name.clone(), Text::into_inner);
    let permissions = permissions(body.permissions)?;
    let client = super::client::client_address(&req, &state.settings.trusted_proxies);
    Ok(answer(&state.identity.create_role(&caller, name, label, permissions, &client).await?))
}

pub async fn change(
    state: web::Data<AppState>,
    caller: Caller,
    req: HttpRequest,
    body: Json<ChangeRole>,
) -> ApiResult<HttpResponse> {
    let body = body.0;
    let label = body.label.map(Text::into_inner);
    let permissions = body.permissions.map(permissions).transpose()?;
    let client = super::client::client_address(&req, &state.settings.trusted_proxies);
    Ok(answer(&state.identity.change_role(&caller, &body.name, label, permissions, &client).await?))
}

pub async fn delete(
    state: web::Data<AppState>,
    caller: Caller,
    req: HttpRequest,
    name: web::Path<String>,
) -> ApiResult<HttpResponse> {
    names::validate("roleName", &name)?;
    let client = super::client::client_address(&req, &state.settings.trusted_proxies);
    state.identity.delete_role(&caller, &name, &client).await?;
    Ok(super::done())
}
