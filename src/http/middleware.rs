//! Request-wide behaviour: the access log, the JSON envelope for every error (panics included),
//! and the maintenance gate.

use std::borrow::Cow;
use std::panic::AssertUnwindSafe;
use std::time::{Instant, SystemTime};

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::{header, StatusCode};
use actix_web::middleware::Next;
use actix_web::{web, Error, HttpMessage, ResponseError};
use futures_util::FutureExt;

use super::access_log::{Line, Who};
use crate::error::ApiError;
use crate::state::AppState;

/// The path template a resource was mounted with and its slot in the request metrics, kept as
/// resource data for the access log.
pub struct RouteTemplate(pub &'static str, pub usize);

/// One line per request: method, route template (never the raw path, which may carry a token),
/// status and duration. Never a header or a body. The request also counts as API load while its
/// handler runs.
pub async fn access_log(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, Error> {
    let (at, started) = (SystemTime::now(), Instant::now());
    let method = req.method().clone();
    // Bulk transfers yield while requests are served (`api_load`).
    let serving = crate::api_load::request();
    let res = next.call(req).await?.map_into_boxed_body();
    drop(serving);
    let request = res.request();
    if let Some(state) = request.app_data::<web::Data<AppState>>() {
        // Routes of the route table carry their template; asking the router again
        // (`match_pattern`) would re-match the path and allocate on every request.
        let (route, slot) = match request.app_data::<RouteTemplate>() {
            Some(template) => (Cow::Borrowed(template.0), template.1),
            None => (
                Cow::Owned(request.match_pattern().unwrap_or_else(|| "(no route)".to_string())),
                state.requests.other_slot(),
            ),
        };
        let (status, took) = (res.status().as_u16(), started.elapsed());
        state.requests.observe(slot, status, took);
        if state.access_log.enabled() {
            let client = super::client::client_address(request, &state.settings.trusted_proxies);
            let who = request.extensions().get::<Who>().cloned();
            state.access_log.record(Line { at, method, route, status, took, client, who });
        }
    }
    Ok(res)
}

/// Turns a panic into a 500 with the envelope and nothing of the panic in the body. Mounted on
/// each resource (after routing), because the request can only be kept aside once it is routed.
pub async fn catch_panic(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, Error> {
    let request = req.request().clone();
    match AssertUnwindSafe(next.call(req)).catch_unwind().await {
        Ok(res) => Ok(res?.map_into_boxed_body()),
        Err(_) => {
            log::error!(
                "a handler panicked while serving {} {}",
                request.method(),
                request.match_pattern().unwrap_or_default()
            );
            Ok(ServiceResponse::new(request, ApiError::internal("handler panicked").error_response()))
        }
    }
}

/// Gives any error the framework produced itself (a body without JSON) the envelope, so every
/// failure looks the same to clients.
pub async fn envelope(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, Error> {
    let res = next.call(req).await?.map_into_boxed_body();
    let status = res.status();
    let is_json = res
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if (status.is_client_error() || status.is_server_error()) && !is_json {
        let res_allow = res.headers().get(header::ALLOW).and_then(|v| v.to_str().ok()).map(str::to_string);
        let (request, _) = res.into_parts();
        let limit = request.app_data::<web::Data<AppState>>().map_or(0, |s| s.settings.json_limit);
        let allow = res_allow.unwrap_or_default();
        return Ok(ServiceResponse::new(request, error_for_status(status, limit, allow).error_response()));
    }
    Ok(res)
}

fn error_for_status(status: StatusCode, json_limit: usize, allow: String) -> ApiError {
    match status {
        StatusCode::NOT_FOUND => ApiError::NotFound { resource: "route" },
        StatusCode::METHOD_NOT_ALLOWED => ApiError::MethodNotAllowed(allow),
        StatusCode::PAYLOAD_TOO_LARGE => ApiError::PayloadTooLarge { limit: json_limit },
        StatusCode::UNSUPPORTED_MEDIA_TYPE => ApiError::UnsupportedMediaType,
        StatusCode::UNAUTHORIZED => ApiError::TokenInvalid,
        StatusCode::FORBIDDEN => ApiError::PermissionDenied("permission denied".into()),
        StatusCode::SERVICE_UNAVAILABLE => {
            ApiError::Unavailable { message: "the server is not available".into(), retry_after: 5 }
        }
        s if s.is_client_error() => {
            ApiError::invalid("request", s.canonical_reason().unwrap_or("bad request").to_lowercase())
        }
        s => ApiError::internal(format!("framework answered {s}")),
    }
}

/// In maintenance mode every `/adm` and `/be` request answers 503 `maintenance`; `/srv`,
/// `/healthz` and `/readyz` keep working.
pub async fn maintenance_gate(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, Error> {
    let path = req.path();
    let gated = path.starts_with("/adm/") || path.starts_with("/be/");
    if gated {
        if let Some(state) = req.app_data::<web::Data<AppState>>() {
            if state.maintenance.is_on() {
                let err = super::srv::maintenance_error(&state.maintenance.current());
                let (request, _) = req.into_parts();
                return Ok(ServiceResponse::new(request, err.error_response()));
            }
        }
    }
    Ok(next.call(req).await?.map_into_boxed_body())
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::middleware::from_fn;
    use actix_web::{test, App, HttpResponse};

    async fn boom() -> HttpResponse {
        panic!("secret internal detail")
    }

    async fn plain_error() -> HttpResponse {
        HttpResponse::BadGateway().body("upstream said <html>")
    }

    #[actix_web::test]
    async fn a_panicking_handler_answers_500_without_internals() {
        let resource = web::resource("/boom").route(web::get().to(boom)).wrap(from_fn(catch_panic));
        let app = test::init_service(App::new().wrap(from_fn(envelope)).service(resource)).await;
        let res = test::call_service(&app, test::TestRequest::get().uri("/boom").to_request()).await;
        assert_eq!(res.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let body: serde_json::Value = test::read_body_json(res).await;
        assert_eq!(body["status"], "failed");
        assert_eq!(body["error"], "internal");
        assert!(!body.to_string().contains("secret internal detail"));
    }

    /// Answers whether the API looks busy to a transfer, from inside a request.
    async fn busy_for_a_transfer() -> HttpResponse {
        let inside = crate::api_load::busy();
        let _upload = crate::api_load::streaming();
        HttpResponse::Ok().json([inside, crate::api_load::busy()])
    }

    /// The only test in this binary that counts requests (`api_load`'s counters are the
    /// process's), so the counts it sees are its own.
    #[actix_web::test]
    async fn a_request_counts_as_api_load_while_it_is_served_but_not_for_its_own_transfer() {
        let app =
            test::init_service(App::new().wrap(from_fn(access_log)).route("/load", web::get().to(busy_for_a_transfer)))
                .await;
        assert!(!crate::api_load::busy(), "nothing served yet");
        let res = test::call_service(&app, test::TestRequest::get().uri("/load").to_request()).await;
        let seen: [bool; 2] = test::read_body_json(res).await;
        assert_eq!(seen, [true, false], "busy while served; a streaming request is no load for itself");
        assert!(!crate::api_load::busy(), "nothing served any more");
    }

    #[actix_web::test]
    async fn a_framework_error_without_json_gets_the_envelope() {
        let app =
            test::init_service(App::new().wrap(from_fn(envelope)).route("/plain", web::get().to(plain_error))).await;
        let res = test::call_service(&app, test::TestRequest::get().uri("/plain").to_request()).await;
        assert_eq!(res.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let body: serde_json::Value = test::read_body_json(res).await;
        assert_eq!(body["error"], "internal");
        assert!(!body.to_string().contains("upstream"));
    }
}
