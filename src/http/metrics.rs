//! `GET /metrics`: Prometheus text format, for an admin token or the scraper's `metrics_token`.

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};

use super::principal::authenticate_admin;
use crate::auth::sha256;
use crate::error::ApiResult;
use crate::state::AppState;
use crate::store::tasks;

/// Whether the request carries `Authorization: Bearer <metrics_token>`. Both sides are hashed
/// before comparing, so the time taken tells nothing about how much of the token matched.
fn has_metrics_token(req: &HttpRequest, expected: Option<&str>) -> bool {
    let Some(expected) = expected else { return false };
    let presented = req.headers().get(header::AUTHORIZATION).and_then(|v| v.to_str().ok());
    let Some(token) = presented.and_then(|v| v.strip_prefix("Bearer ")).map(str::trim) else { return false };
    sha256(token.as_bytes()) == sha256(expected.as_bytes())
}

/// The Prometheus text exposition format, version 0.0.4.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

pub async fn metrics(state: web::Data<AppState>, req: HttpRequest) -> ApiResult<HttpResponse> {
    if !has_metrics_token(&req, state.settings.metrics_token.as_deref()) {
        authenticate_admin(&req)?;
    }
    let depths = state.store.read(tasks::queue_depths).await?;
    let text = crate::metrics::render(&state, &depths);
    Ok(HttpResponse::Ok().content_type(CONTENT_TYPE).body(text))
}
