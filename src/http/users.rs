//! `/be/v1/users` and `/be/v1/apikeys` (API.md §5).

use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::{json, Value};

use super::body::Json;
use super::list::{self, ListSpec};
use super::principal::Caller;
use super::requests::{strings, AccountType, ChangeUser, CreateApiKey, CreateUser};
use super::views;
use crate::auth::passwords;
use crate::domain::names;
use crate::domain::text::{Email, Name, Text};
use crate::error::{ApiError, ApiResult};
use crate::identity::accounts::{AccountChange, NewAccount, OneTimeSecret};
use crate::identity::principal::AccountKind;
use crate::state::AppState;
use crate::store;
use crate::store::users::Profile;

pub const USERS_LIST: ListSpec = ListSpec {
    sort: store::users::SORT,
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
    choices: &[("type", &["user", "machine"])],
    times: &[],
};

pub const API_KEYS_LIST: ListSpec = ListSpec {
    sort: store::api_keys::SORT,
    fields: &["apiKeyId", "username", "created", "lastUsed"],
    filters: &["username"],
    choices: &[],
    times: &[],
};

/// A PATCH profile field: absent leaves it, `null` clears it, a value sets it.
fn patch<T: Into<String>>(field: Option<Option<T>>) -> Option<Option<String>> {
    field.map(|value| value.map(Into::into))
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

pub async fn create(
    state: web::Data<AppState>,
    caller: Caller,
    req: HttpRequest,
    body: Json<CreateUser>,
) -> ApiResult<HttpResponse> {
    let body = body.0;
    let kind = match body.kind {
        Some(AccountType::Machine) => AccountKind::Machine,
        Some(AccountType::User) => AccountKind::User,
        None if body.label.is_some() && body.email.is_none() => AccountKind::Machine,
        None => AccountKind::User,
    };
    let profile = match kind {
        AccountKind::User => Profile {
            email: Some(Some(body.email.ok_or_else(|| ApiError::missing("email"))?.into_inner())),
            firstname: Some(Some(body.firstname.ok_or_else(|| ApiError::missing("firstname"))?.into_inner())),
            surname: Some(Some(body.surname.ok_or_else(|| ApiError::missing("surname"))?.into_inner())),
            title: Some(body.title.map(Text::into_inner)),
            label: None,
        },
        AccountKind::Machine => Profile { label: Some(body.label.map(Text::into_inner)), ..Default::default() },
    };
    let password = match (kind, body.password) {
        (AccountKind::User, Some(pw)) => {
            passwords::check_policy("password", &pw)?;
            Some(pw.into_inner())
        }
        (AccountKind::Machine, Some(_)) => {
            return Err(ApiError::invalid("password", "machine accounts have no password"))
        }
        (_, None) => None,
    };
    let new = NewAccount {
        username: body.username.into_inner(),
        kind,
        profile,
        roles: body.roles.map(strings).unwrap_or_default(),
        password,
    };
    let client = super::client::client_address(&req, &state.settings.trusted_proxies);
    let (user, secret) = state.identity.create_account(&caller, new, &client).await?;
    Ok(HttpResponse::Ok().json(with_secret(json!({"status": "success", "user": views::user(&user)}), secret)))
}

pub async fn list(state: web::Data<AppState>, caller: Caller, req: HttpRequest) -> ApiResult<HttpResponse> {
    list::respond(
        &req,
        &USERS_LIST,
        |query, page| query.render("users", &page.items.iter().map(views::user).collect::<Vec<_>>(), page.total),
        |filters, page| {
            let (username, kind, role) = (filters.get("username"), filters.get("type"), filters.get("role"));
            state.identity.list_accounts(&caller, username, kind, role, page)
        },
    )
    .await
}

pub async fn details(
    state: web::Data<AppState>,
    caller: Caller,
    username: web::Path<String>,
) -> ApiResult<HttpResponse> {
    names::validate("username", &username)?;
    let user = state.identity.account(&caller, &username).await?;
    Ok(super::success("user", views::user(&user)))
}

/// `GET /be/v1/me` [design]: the caller's own account and the permissions its roles grant now —
/// what the login answered, for a client that reloads and must not trust a stale copy.
pub async fn me(state: web::Data<AppState>, caller: Caller) -> ApiResult<HttpResponse> {
    let user = state.identity.account(&caller, &caller.username).await?;
    Ok(HttpResponse::Ok().json(json!({
        "status": "success",
        "user": views::user(&user),
        "orgName": caller.org_name,
        "permissions": caller.permissions.to_json(),
    })))
}

pub async fn change(
    state: web::Data<AppState>,
    caller: Caller,
    req: HttpRequest,
    body: Json<ChangeUser>,
) -> ApiResult<HttpResponse> {
    let body = body.0;
    let password = match (body.old_pw, body.new_pw) {
        (None, None) => None,
        (Some(_), None) => return Err(ApiError::missing("newPW")),
        (None, Some(_)) => return Err(ApiError::missing("oldPW")),
        (Some(old), Some(new)) => {
            passwords::check_policy("newPW", &new)?;
            Some((old.into_inner(), new.into_inner()))
        }
    };
    let change = AccountChange {
        username: body.username.map(Name::into_inner),
        profile: Profile {
            email: patch(body.email.map(|e| e.map(Email::into_inner))),
            firstname: patch(body.firstname.map(|v| v.map(Text::into_inner))),
            surname: patch(body.surname.map(|v| v.map(Text::into_inner))),
            title: patch(body.title.map(|v| v.map(Text::into_inner))),
            label: patch(body.label.map(|v| v.map(Text::into_inner))),
        },
        roles: body.roles.map(strings),
        password,
        reset_credentials: body.reset_creds.unwrap_or(false),
    };
    let client = super::client::client_address(&req, &state.settings.trusted_proxies);
    let (user, secret) = state.identity.change_account(&caller, change, &client).await?;
    Ok(HttpResponse::Ok().json(with_secret(json!({"status": "success", "user": views::user(&user)}), secret)))
}

pub async fn delete(
    state: web::Data<AppState>,
    caller: Caller,
    req: HttpRequest,
    username: web::Path<String>,
) -> ApiResult<HttpResponse> {
    names::validate("username", &username)?;
    let client = super::client::client_address(&req, &state.settings.trusted_proxies);
    state.identity.delete_account(&caller, &username, &client).await?;
    Ok(super::done())
}

pub async fn create_api_key(
    state: web::Data<AppState>,
    caller: Caller,
    req: HttpRequest,
    body: Json<CreateApiKey>,
) -> ApiResult<HttpResponse> {
    let client = super::client::client_address(&req, &state.settings.trusted_proxies);
    match state.identity.create_api_key(&caller, body.0.username.as_deref(), &client).await? {
        OneTimeSecret::ApiKey { key, id, created } => {
            Ok(HttpResponse::Ok().json(json!({"status": "success", "apiKey": key, "apiKeyId": id, "created": created})))
        }
        OneTimeSecret::InitialPassword(_) => Err(ApiError::internal("an API key request produced a password")),
    }
}

pub async fn list_api_keys(state: web::Data<AppState>, caller: Caller, req: HttpRequest) -> ApiResult<HttpResponse> {
    list::respond(
        &req,
        &API_KEYS_LIST,
        |query, page| query.render("apikeys", &page.items.iter().map(views::api_key).collect::<Vec<_>>(), page.total),
        |filters, page| state.identity.list_api_keys(&caller, filters.get("username"), page),
    )
    .await
}

pub async fn delete_api_key(
    state: web::Data<AppState>,
    caller: Caller,
    req: HttpRequest,
    id: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let client = super::client::client_address(&req, &state.settings.trusted_proxies);
    state.identity.delete_api_key(&caller, &id, &client).await?;
    Ok(super::done())
}
