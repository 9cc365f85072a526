//! `POST /be/v1/login`, `/refresh`, `/logout` (API.md §2.2–§2.5). API keys do not work here.

use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::json;

use super::body::JsonBody;
use super::client::client_address;
use super::principal::{bearer, sends_api_key, BEAUTH_HEADER};
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
        "session": login.tokens.to_json(),
        "user": views::user(&login.user),
        "permissions": login.principal.permissions.to_json(),
    }))
}

pub async fn login(state: web::Data<AppState>, req: HttpRequest, body: JsonBody) -> ApiResult<HttpResponse> {
    refuse_api_keys(&req)?;
    let identity = &state.identity;
    let client = client_address(&req, &state.settings.trusted_proxies);
    let org_name = body.optional_str("orgName")?;
    let has_password_login = body.get("username").is_some() || body.get("password").is_some();
    match org_name {
        Some(org) if has_password_login => {
            let (username, password) = (body.required_str("username")?, body.required_str("password")?);
            Ok(org_login_answer(identity.login_direct(username, password, org, &client).await?))
        }
        Some(org) => {
            let token = bearer(&req)?.ok_or(ApiError::TokenMissing)?;
            Ok(org_login_answer(identity.login_selected_org(token, org).await?))
        }
        None => {
            let (username, password) = (body.required_str("username")?, body.required_str("password")?);
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

pub async fn refresh(state: web::Data<AppState>, req: HttpRequest, _body: JsonBody) -> ApiResult<HttpResponse> {
    refuse_api_keys(&req)?;
    let token = bearer(&req)?.ok_or_else(|| ApiError::missing("Authorization"))?;
    let tokens = state.identity.refresh(token).await?;
    Ok(HttpResponse::Ok().json(json!({"status": "success", "session": tokens.to_json()})))
}

pub async fn logout(state: web::Data<AppState>, req: HttpRequest) -> ApiResult<HttpResponse> {
    refuse_api_keys(&req)?;
    let token = match bearer(&req)? {
        Some(token) => token,
        None => req.headers().get(BEAUTH_HEADER).and_then(|v| v.to_str().ok()).ok_or(ApiError::TokenMissing)?,
    };
    state.identity.logout(token).await?;
    Ok(HttpResponse::Ok().json(json!({"status": "success"})))
}
