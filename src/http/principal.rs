//! Who is calling: extractors that authenticate a request or refuse it.

use actix_web::dev::Payload;
use actix_web::{web, FromRequest, HttpRequest};
use futures_util::future::{ready, Ready};

use crate::auth::keyring::TokenKind;
use crate::error::{ApiError, ApiResult};
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

fn authenticate_admin(req: &HttpRequest) -> ApiResult<Admin> {
    let state = req.app_data::<web::Data<AppState>>().ok_or_else(|| ApiError::internal("no app state"))?;
    let token = req
        .headers()
        .get(ADMIN_TOKEN_HEADER)
        .map(|v| v.to_str().map_err(|_| ApiError::TokenInvalid))
        .transpose()?
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or(ApiError::TokenMissing)?;
    let claims = state.keyring.key(TokenKind::Admin).verify(token, unix_now())?;
    let username = claims
        .get("username")
        .and_then(|v| v.as_str())
        .filter(|name| !name.is_empty())
        .ok_or(ApiError::TokenInvalid)?;
    Ok(Admin { username: username.to_string() })
}

impl FromRequest for Admin {
    type Error = ApiError;
    type Future = Ready<ApiResult<Admin>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(authenticate_admin(req))
    }
}
