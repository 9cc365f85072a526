//! Who is calling: extractors that authenticate a request or refuse it.

use std::sync::Arc;

use actix_web::dev::Payload;
use actix_web::http::header;
use actix_web::{web, FromRequest, HttpMessage, HttpRequest};
use futures_util::future::{ready, LocalBoxFuture, Ready};

use super::access_log::Who;
use crate::auth::claims::AdminClaims;
use crate::error::{ApiError, ApiResult};
use crate::identity::principal::{Credentials, Principal};
use crate::state::AppState;

/// Header that carries the admin token [compat].
pub const ADMIN_TOKEN_HEADER: &str = "x-rockit-admin-token";

/// The instance administrator, proven by an admin token signed with the admin secret.
#[derive(Debug)]
pub struct Admin {
    /// The `username` claim; only for the log, the admin secret is what grants access.
    pub username: String,
}

/// Seconds since the Unix epoch.
pub fn unix_now() -> i64 {
    chrono::Utc::now().timestamp()
}

pub(super) fn authenticate_admin(req: &HttpRequest) -> ApiResult<Admin> {
    let state = req.app_data::<web::Data<AppState>>().ok_or_else(|| ApiError::internal("no app state"))?;
    let token = req
        .headers()
        .get(ADMIN_TOKEN_HEADER)
        .map(|v| v.to_str().map_err(|_| ApiError::TokenInvalid))
        .transpose()?
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or(ApiError::TokenMissing)?;
    // The keyring's admin check also follows secret rotation and revocations on disk.
    let claims = state.keyring.verify_admin(token, unix_now())?;
    let claims: AdminClaims =
        serde_json::from_value(serde_json::Value::Object(claims)).map_err(|_| ApiError::TokenInvalid)?;
    if claims.username.is_empty() {
        return Err(ApiError::TokenInvalid);
    }
    req.extensions_mut().insert(Who::Admin(claims.username.clone()));
    Ok(Admin { username: claims.username })
}

impl FromRequest for Admin {
    type Error = ApiError;
    type Future = Ready<ApiResult<Admin>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(authenticate_admin(req))
    }
}

/// Alternative header for the access token [compat].
pub const BEAUTH_HEADER: &str = "x-rockit-beauth-token";
/// The API key triple [compat].
pub const API_KEY_HEADERS: [&str; 3] = ["x-rockit-orgname", "x-rockit-username", "x-rockit-api-key"];

fn header_str<'a>(req: &'a HttpRequest, name: &str) -> ApiResult<Option<&'a str>> {
    match req.headers().get(name) {
        None => Ok(None),
        Some(v) => {
            Ok(Some(v.to_str().map_err(|_| ApiError::invalid(name, format!("header `{name}` is not text")))?.trim())
                .filter(|v| !v.is_empty()))
        }
    }
}

/// The token of `Authorization: Bearer <token>`, if any.
pub fn bearer(req: &HttpRequest) -> ApiResult<Option<&str>> {
    let Some(value) = header_str(req, header::AUTHORIZATION.as_str())? else { return Ok(None) };
    match value.split_once(' ') {
        Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty() => {
            Ok(Some(token.trim()))
        }
        _ => Err(ApiError::TokenInvalid),
    }
}

/// Whether any header of the API key triple was sent.
pub fn sends_api_key(req: &HttpRequest) -> bool {
    API_KEY_HEADERS.iter().any(|h| req.headers().contains_key(*h))
}

fn credentials(req: &HttpRequest) -> ApiResult<Credentials<'_>> {
    // Two different tokens (say, of two organizations) must not be resolved by picking one.
    let token = match (bearer(req)?, header_str(req, BEAUTH_HEADER)?) {
        (Some(bearer), Some(beauth)) if bearer != beauth => return Err(ApiError::ConflictingCredentials),
        (bearer, beauth) => bearer.or(beauth),
    };
    let [org, username, key] = [
        header_str(req, API_KEY_HEADERS[0])?,
        header_str(req, API_KEY_HEADERS[1])?,
        header_str(req, API_KEY_HEADERS[2])?,
    ];
    let any_key = org.is_some() || username.is_some() || key.is_some();
    match (token, org, username, key) {
        (Some(_), ..) if any_key => Err(ApiError::ConflictingCredentials),
        (Some(token), ..) => Ok(Credentials::AccessToken(token)),
        (None, Some(org), Some(username), Some(key)) => Ok(Credentials::ApiKey { org, username, key }),
        (None, ..) if any_key => {
            let missing = [org, username, key].iter().position(Option::is_none).unwrap_or(0);
            Err(ApiError::IncompleteApiKey(API_KEY_HEADERS[missing]))
        }
        _ => Err(ApiError::TokenMissing),
    }
}

/// An organization user or machine user, authenticated and with current rights.
pub struct Caller(pub Arc<Principal>);

impl std::ops::Deref for Caller {
    type Target = Principal;
    fn deref(&self) -> &Principal {
        &self.0
    }
}

impl FromRequest for Caller {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, ApiResult<Caller>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move {
            let state = req.app_data::<web::Data<AppState>>().ok_or_else(|| ApiError::internal("no app state"))?;
            let credentials = credentials(&req)?;
            let principal = state.identity.authenticate(credentials).await?;
            req.extensions_mut().insert(Who::Member(principal.clone()));
            Ok(Caller(principal))
        })
    }
}
