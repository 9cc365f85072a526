//! Organizations: `/adm/v1/orgs` for the instance administrator, `/be/v1/orgs` for members of
//! an organization's `Administrators` (API.md §4).

use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::json;

use super::body::Json;
use super::list::{self, ListSpec};
use super::principal::{Admin, Caller};
use super::requests::CreateOrg;
use super::views;
use crate::domain::text::{Name, Text};
use crate::domain::{names, public_key};
use crate::error::{ApiError, ApiResult};
use crate::identity::orgs::{CreatedOrg, NewOrg};
use crate::state::AppState;
use crate::store;
use crate::store::users::Profile;

pub const ORGS_LIST: ListSpec = ListSpec {
    sort: store::orgs::SORT,
    fields: &["name", "label", "publicKey", "users", "apps", "created", "updated"],
    filters: &["name"],
    choices: &[],
    times: &[],
};

fn parse_new_org(body: CreateOrg) -> ApiResult<NewOrg> {
    if let Some(pem) = &body.public_key {
        public_key::validate("publicKey", pem)?;
    }
    let admin = body.admin.unwrap_or_default();
    let name = body.name.into_inner();
    let profile = Profile {
        email: admin.email.map(|e| Some(e.into_inner())),
        firstname: admin.firstname.map(|v| Some(v.into_inner())),
        surname: admin.surname.map(|v| Some(v.into_inner())),
        ..Default::default()
    };
    Ok(NewOrg {
        label: body.label.map_or_else(|| name.clone(), Text::into_inner),
        name,
        public_key: body.public_key.map(Text::into_inner),
        admin_username: admin.username.map_or_else(|| "admin".to_string(), Name::into_inner),
        admin_profile: profile,
    })
}

fn created_answer(created: CreatedOrg) -> HttpResponse {
    HttpResponse::Ok().json(json!({
        "status": "success",
        "org": views::org(&created.org),
        "admin": {"username": created.admin_username, "initialPassword": created.initial_password},
    }))
}

fn prune_flag(req: &HttpRequest) -> ApiResult<bool> {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(req.query_string())
        .map_err(|_| ApiError::invalid("query", "the query string is malformed"))?;
    match pairs.iter().find(|(k, _)| k == "prune").map(|(_, v)| v.as_str()) {
        None | Some("false") | Some("0") => Ok(false),
        Some("true") | Some("1") | Some("") => Ok(true),
        Some(_) => Err(ApiError::invalid("prune", "`prune` must be true or false")),
    }
}

fn delete_answer(deleted: crate::identity::orgs::DeletedOrg) -> ApiResult<HttpResponse> {
    let mut body = json!({"status": "success"});
    if let Some(task) = deleted.prune {
        body["task"] = serde_json::to_value(task).map_err(ApiError::internal)?;
    }
    Ok(HttpResponse::Ok().json(body))
}

pub async fn admin_create(
    state: web::Data<AppState>,
    admin: Admin,
    req: HttpRequest,
    body: Json<CreateOrg>,
) -> ApiResult<HttpResponse> {
    let new = parse_new_org(body.0)?;
    let actor = super::audit::admin(&state, &admin, &req);
    Ok(created_answer(state.identity.create_org(new, actor).await?))
}

pub async fn admin_list(state: web::Data<AppState>, _admin: Admin, req: HttpRequest) -> ApiResult<HttpResponse> {
    list::respond(
        &req,
        &ORGS_LIST,
        |query, page| query.render("orgs", &page.items.iter().map(views::org).collect::<Vec<_>>(), page.total),
        |filters, page| state.identity.list_orgs(filters.get("name"), page),
    )
    .await
}

pub async fn admin_delete(
    state: web::Data<AppState>,
    admin: Admin,
    name: web::Path<String>,
    req: HttpRequest,
) -> ApiResult<HttpResponse> {
    names::validate("orgName", &name)?;
    let actor = super::audit::admin(&state, &admin, &req);
    let deleted = state.identity.delete_org(&name, prune_flag(&req)?, actor).await?;
    delete_answer(deleted)
}

pub async fn member_create(
    state: web::Data<AppState>,
    caller: Caller,
    req: HttpRequest,
    body: Json<CreateOrg>,
) -> ApiResult<HttpResponse> {
    state.identity.require_administrator(&caller).await?;
    let new = parse_new_org(body.0)?;
    let actor = super::audit::member(&state, &caller, &req);
    Ok(created_answer(state.identity.create_org(new, actor).await?))
}

pub async fn member_delete(
    state: web::Data<AppState>,
    caller: Caller,
    name: web::Path<String>,
    req: HttpRequest,
) -> ApiResult<HttpResponse> {
    names::validate("orgName", &name)?;
    let actor = super::audit::member(&state, &caller, &req);
    let deleted = state.identity.delete_own_org(&caller, &name, prune_flag(&req)?, actor).await?;
    delete_answer(deleted)
}
