//! `POST /be/v1/login`, `/refresh`, `/logout` (API.md §2.2–§2.5). API keys do not work here.

use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::json;

use super::body::Json;
use super::client::client_address;
use super::principal::{bearer, sends_api_key, BEAUTH_HEADER};
use super::requests::{Login, Refresh};
use super::views;
use crate::error::{ApiError, ApiResult};
use crate::identity::sessions::OrgLogin;
use crate::state::AppState;

fn refuse_api_keys(req: &HttpRequest) -> ApiResult<()> {
    if sends_api_key(req) {
        return Err(ApiError::invalid("x-rockit-api-key", "API keys do not work on login, refresh and logout"));
    }
    Ok(())
}

fn org_login_answer(login: OrgLogin) -> HttpResponse {
    HttpResponse::Ok().json(json!({
        "status": "success",
        "session": views::session(&login.tokens),
        "user": views::user(&login.user),
        "permissions": login.principal.permissions.to_json(),
    }))
}

pub async fn login(state: web::Data<AppState>, req: HttpRequest, body: Json<Login>) -> ApiResult<HttpResponse> {
    refuse_api_keys(&req)?;
    let identity = &state.identity;
    let client = client_address(&req, &state.settings.trusted_proxies);
    let body = body.0;
    let has_password_login = body.username.is_some() || body.password.is_some();
    let credentials = || -> ApiResult<(&str, &str)> {
        let username = body.username.as_deref().ok_or_else(|| ApiError::missing("username"))?;
        Ok((username, body.password.as_deref().ok_or_else(|| ApiError::missing("password"))?))
    };
    match body.org_name.as_deref() {
        Some(org) if has_password_login => {
            let (username, password) = credentials()?;
            Ok(org_login_answer(identity.login_direct(username, password, org, &client).await?))
        }
        Some(org) => {
            let token = bearer(&req)?.ok_or(ApiError::TokenMissing)?;
            Ok(org_login_answer(identity.login_selected_org(token, org, &client).await?))
        }
        None => {
            let (username, password) = credentials()?;
            let choice = identity.login_password(username, password, &client).await?;
            let orgs: Vec<_> = choice.orgs.iter().map(|(name, label)| json!({"name": name, "label": label})).collect();
            Ok(HttpResponse::Ok().json(json!({
                "status": "success",
                "orgs": orgs,
                "orgSelection": {"token": choice.token, "expires": choice.expires},
            })))
        }
    }
}

pub async fn refresh(state: web::Data<AppState>, req: HttpRequest, _body: Json<Refresh>) -> ApiResult<HttpResponse> {
    refuse_api_keys(&req)?;
    let token = bearer(&req)?.ok_or_else(|| ApiError::missing("Authorization"))?;
    let tokens = state.identity.refresh(token).await?;
    Ok(super::success("session", views::session(&tokens)))
}

pub async fn logout(state: web::Data<AppState>, req: HttpRequest) -> ApiResult<HttpResponse> {
    refuse_api_keys(&req)?;
    let token = match bearer(&req)? {
        Some(token) => token,
        None => req.headers().get(BEAUTH_HEADER).and_then(|v| v.to_str().ok()).ok_or(ApiError::TokenMissing)?,
    };
    state.identity.logout(token).await?;
    Ok(super::done())
}
