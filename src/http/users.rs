//! `/be/v1/users` and `/be/v1/apikeys` (API.md §5).

use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::{json, Value};

use super::body::JsonBody;
use super::list::{json_body, ListQuery, ListSpec};
use super::principal::Caller;
use super::views;
use crate::auth::passwords;
use crate::domain::names;
use crate::error::{ApiError, ApiResult};
use crate::identity::accounts::{AccountChange, NewAccount, OneTimeSecret};
use crate::identity::principal::AccountKind;
use crate::state::AppState;
use crate::store::users::Profile;

pub const USERS_LIST: ListSpec = ListSpec {
    sort: &[
        ("username", "u.username"),
        ("type", "u.type"),
        ("email", "u.email"),
        ("created", "u.created"),
        ("updated", "u.updated"),
        ("lastLogin", "u.last_login"),
    ],
    fields: &[
        "username",
        "type",
        "email",
        "firstname",
        "surname",
        "title",
        "label",
        "roles",
        "created",
        "updated",
        "lastLogin",
    ],
    filters: &["username", "type", "role"],
};

pub const API_KEYS_LIST: ListSpec = ListSpec {
    sort: &[("apiKeyId", "k.id"), ("username", "u.username"), ("created", "k.created"), ("lastUsed", "k.last_used")],
    fields: &["apiKeyId", "username", "created", "lastUsed"],
    filters: &["username"],
};

fn email(body: &JsonBody) -> ApiResult<Option<&str>> {
    let value = body.optional_str("email")?;
    if let Some(e) = value {
        let plausible = e.len() <= 254
            && !e.chars().any(char::is_whitespace)
            && e.split_once('@').is_some_and(|(l, d)| !l.is_empty() && d.contains('.'));
        if !plausible {
            return Err(ApiError::invalid("email", "`email` must be an email address"));
        }
    }
    Ok(value)
}

/// A profile field for PATCH: absent leaves it, `null` clears it, a string sets it.
fn patch_field(body: &JsonBody, name: &str) -> ApiResult<Option<Option<String>>> {
    if !body.has(name) {
        return Ok(None);
    }
    Ok(Some(body.optional_str(name)?.map(str::to_string)))
}

fn role_names(body: &JsonBody) -> ApiResult<Option<Vec<String>>> {
    match body.get("roles") {
        None => Ok(None),
        Some(Value::Array(items)) => items
            .iter()
            .map(|item| match item {
                Value::String(name) => names::validate("roles", name).map(|_| name.clone()),
                _ => Err(ApiError::invalid("roles", "`roles` must be a list of role names")),
            })
            .collect::<ApiResult<Vec<_>>>()
            .map(Some),
        Some(_) => Err(ApiError::invalid("roles", "`roles` must be a list of role names")),
    }
}

fn with_secret(mut body: Value, secret: Option<OneTimeSecret>) -> Value {
    match secret {
        Some(OneTimeSecret::InitialPassword(password)) => body["initialPassword"] = json!(password),
        Some(OneTimeSecret::ApiKey { key, id, created }) => {
            body["apiKey"] = json!(key);
            body["apiKeyId"] = json!(id);
            body["apiKeyCreated"] = json!(created);
        }
        None => {}
    }
    body
}

pub async fn create(state: web::Data<AppState>, caller: Caller, body: JsonBody) -> ApiResult<HttpResponse> {
    let username = body.required_str("username")?;
    names::validate("username", username)?;
    let kind = match body.optional_str("type")? {
        Some("machine") => AccountKind::Machine,
        Some("user") => AccountKind::User,
        Some(_) => return Err(ApiError::invalid("type", "`type` must be user or machine")),
        None if body.get("label").is_some() && body.get("email").is_none() => AccountKind::Machine,
        None => AccountKind::User,
    };
    let profile = match kind {
        AccountKind::User => Profile {
            email: Some(Some(email(&body)?.ok_or_else(|| ApiError::missing("email"))?.to_string())),
            firstname: Some(Some(body.required_str("firstname")?.to_string())),
            surname: Some(Some(body.required_str("surname")?.to_string())),
            title: Some(body.optional_str("title")?.map(str::to_string)),
            label: None,
        },
        AccountKind::Machine => {
            Profile { label: Some(body.optional_str("label")?.map(str::to_string)), ..Default::default() }
        }
    };
    let password = match (kind, body.optional_str("password")?) {
        (AccountKind::User, Some(pw)) => {
            passwords::check_policy("password", pw)?;
            Some(pw.to_string())
        }
        (AccountKind::Machine, Some(_)) => {
            return Err(ApiError::invalid("password", "machine accounts have no password"))
        }
        (_, None) => None,
    };
    let new = NewAccount {
        username: username.to_string(),
        kind,
        profile,
        roles: role_names(&body)?.unwrap_or_default(),
        password,
    };
    let (user, secret) = state.identity.create_account(&caller, new).await?;
    Ok(HttpResponse::Ok().json(with_secret(json!({"status": "success", "user": views::user(&user)}), secret)))
}

pub async fn list(state: web::Data<AppState>, caller: Caller, req: HttpRequest) -> ApiResult<HttpResponse> {
    let query = ListQuery::parse(req.query_string(), &USERS_LIST)?;
    if let Some(kind) = query.filter("type") {
        if kind != "user" && kind != "machine" {
            return Err(ApiError::invalid("type", "`type` must be user or machine"));
        }
    }
    let (username, kind, role) = (query.filter("username"), query.filter("type"), query.filter("role"));
    let page = query.page.clone();
    let body = state
        .identity
        .list_accounts(&caller, username, kind, role, page, move |listed| {
            query.render("users", &listed.items.iter().map(views::user).collect::<Vec<_>>(), listed.total)
        })
        .await?;
    json_body(body)
}

pub async fn details(
    state: web::Data<AppState>,
    caller: Caller,
    username: web::Path<String>,
) -> ApiResult<HttpResponse> {
    names::validate("username", &username)?;
    let user = state.identity.account(&caller, &username).await?;
    Ok(HttpResponse::Ok().json(json!({"status": "success", "user": views::user(&user)})))
}

pub async fn change(state: web::Data<AppState>, caller: Caller, body: JsonBody) -> ApiResult<HttpResponse> {
    let username = body.optional_str("username")?;
    if let Some(name) = username {
        names::validate("username", name)?;
    }
    if body.has("email") && body.get("email").is_some() {
        email(&body)?;
    }
    let password = match (body.optional_str("oldPW")?, body.optional_str("newPW")?) {
        (None, None) => None,
        (Some(_), None) => return Err(ApiError::missing("newPW")),
        (None, Some(_)) => return Err(ApiError::missing("oldPW")),
        (Some(old), Some(new)) => {
            passwords::check_policy("newPW", new)?;
            Some((old.to_string(), new.to_string()))
        }
    };
    let change = AccountChange {
        username: username.map(str::to_string),
        profile: Profile {
            email: patch_field(&body, "email")?,
            firstname: patch_field(&body, "firstname")?,
            surname: patch_field(&body, "surname")?,
            title: patch_field(&body, "title")?,
            label: patch_field(&body, "label")?,
        },
        roles: role_names(&body)?,
        password,
        reset_credentials: body.optional_bool("resetCreds")?.unwrap_or(false),
    };
    let (user, secret) = state.identity.change_account(&caller, change).await?;
    Ok(HttpResponse::Ok().json(with_secret(json!({"status": "success", "user": views::user(&user)}), secret)))
}

pub async fn delete(
    state: web::Data<AppState>,
    caller: Caller,
    username: web::Path<String>,
) -> ApiResult<HttpResponse> {
    names::validate("username", &username)?;
    state.identity.delete_account(&caller, &username).await?;
    Ok(HttpResponse::Ok().json(json!({"status": "success"})))
}

pub async fn create_api_key(state: web::Data<AppState>, caller: Caller, body: JsonBody) -> ApiResult<HttpResponse> {
    let username = body.optional_str("username")?;
    if let Some(name) = username {
        names::validate("username", name)?;
    }
    match state.identity.create_api_key(&caller, username).await? {
        OneTimeSecret::ApiKey { key, id, created } => {
            Ok(HttpResponse::Ok().json(json!({"status": "success", "apiKey": key, "apiKeyId": id, "created": created})))
        }
        OneTimeSecret::InitialPassword(_) => Err(ApiError::internal("an API key request produced a password")),
    }
}

pub async fn list_api_keys(state: web::Data<AppState>, caller: Caller, req: HttpRequest) -> ApiResult<HttpResponse> {
    let query = ListQuery::parse(req.query_string(), &API_KEYS_LIST)?;
    let (username, page) = (query.filter("username"), query.page.clone());
    let body = state
        .identity
        .list_api_keys(&caller, username, page, move |listed| {
            query.render("apikeys", &listed.items.iter().map(views::api_key).collect::<Vec<_>>(), listed.total)
        })
        .await?;
    json_body(body)
}

pub async fn delete_api_key(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<String>,
) -> ApiResult<HttpResponse> {
    state.identity.delete_api_key(&caller, &id).await?;
    Ok(HttpResponse::Ok().json(json!({"status": "success"})))
}
