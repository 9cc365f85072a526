//! The HTTP edge: one route table that both the router and `/openapi.json` are built from, so
//! the two cannot drift apart.

pub mod body;
pub mod health;
pub mod middleware;
pub mod openapi;
pub mod principal;
pub mod srv;

use actix_web::http::Method;
use actix_web::{web, HttpResponse, Route};

use crate::error::{ApiError, ApiResult};

/// How a route authenticates its caller (documented in the OpenAPI `security`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Auth {
    None,
    Admin,
}

/// One field of a JSON request body, for the OpenAPI document.
pub struct Field {
    pub name: &'static str,
    /// JSON Schema type: string, boolean, integer, object, array.
    pub kind: &'static str,
    pub required: bool,
}

const fn req(name: &'static str, kind: &'static str) -> Field {
    Field { name, kind, required: true }
}

const fn opt(name: &'static str, kind: &'static str) -> Field {
    Field { name, kind, required: false }
}

/// One endpoint: what the router mounts and what the OpenAPI document describes.
pub struct RouteSpec {
    pub method: Method,
    pub path: &'static str,
    pub auth: Auth,
    pub tag: &'static str,
    pub summary: &'static str,
    pub body: &'static [Field],
    pub handler: fn() -> Route,
}

fn spec(
    method: Method,
    path: &'static str,
    auth: Auth,
    tag: &'static str,
    summary: &'static str,
    handler: fn() -> Route,
) -> RouteSpec {
    RouteSpec { method, path, auth, tag, summary, body: &[], handler }
}

impl RouteSpec {
    fn with_body(mut self, body: &'static [Field]) -> Self {
        self.body = body;
        self
    }
}

const HELLO_BODY: &[Field] = &[req("message", "string"), req("maintenance", "boolean")];
const PING_BODY: &[Field] = &[opt("message", "string")];
const MAINTENANCE_BODY: &[Field] = &[req("enabled", "boolean"), opt("message", "string"), opt("retryAfter", "integer")];

/// Every endpoint of the server.
pub fn routes() -> Vec<RouteSpec> {
    use Auth::*;
    vec![
        spec(Method::GET, "/healthz", None, "service", "Liveness without touching the database", || {
            web::to(health::healthz)
        }),
        spec(Method::GET, "/readyz", None, "service", "Readiness: the database answers reads and writes", || {
            web::to(health::readyz)
        }),
        spec(Method::GET, "/openapi.json", None, "service", "This document", || web::to(openapi::document)),
        spec(Method::GET, "/srv/v1/versions", Admin, "service", "Versions of server, engine, API and schema", || {
            web::to(srv::versions)
        }),
        spec(
            Method::POST,
            "/srv/v1/ping",
            Admin,
            "service",
            "Liveness for admin tools; echoes an optional message",
            || web::to(srv::ping),
        )
        .with_body(PING_BODY),
        spec(
            Method::POST,
            "/srv/v1/hello",
            Admin,
            "service",
            "Runs a hello task through the task queue and waits for it",
            || web::to(srv::hello),
        )
        .with_body(HELLO_BODY),
        spec(Method::GET, "/srv/v1/maintenance", Admin, "service", "Current maintenance state", || {
            web::to(srv::get_maintenance)
        }),
        spec(Method::POST, "/srv/v1/maintenance", Admin, "service", "Turns maintenance mode on or off", || {
            web::to(srv::set_maintenance)
        })
        .with_body(MAINTENANCE_BODY),
        spec(
            Method::GET,
            "/srv/v1/tasks/{taskName}",
            Admin,
            "service",
            "One task of any kind, e.g. a hello task still running",
            || web::to(srv::task),
        ),
        spec(Method::POST, "/adm/v1/ping", Admin, "service", "Alias of POST /srv/v1/ping (2025 API)", || {
            web::to(srv::ping)
        })
        .with_body(PING_BODY),
        spec(Method::POST, "/adm/v1/hello", Admin, "service", "Alias of POST /srv/v1/hello (2025 API)", || {
            web::to(srv::hello)
        })
        .with_body(HELLO_BODY),
    ]
}

/// Mounts every route of [`routes`]; a known path with another method answers 405.
pub fn configure(cfg: &mut web::ServiceConfig) {
    let specs = routes();
    let mut paths: Vec<&'static str> = Vec::new();
    for spec in &specs {
        if !paths.contains(&spec.path) {
            paths.push(spec.path);
        }
    }
    for path in paths {
        let mut resource = web::resource(path).default_service(web::to(method_not_allowed));
        for spec in specs.iter().filter(|s| s.path == path) {
            resource = resource.route((spec.handler)().method(spec.method.clone()));
        }
        cfg.service(resource.wrap(actix_web::middleware::from_fn(middleware::catch_panic)));
    }
    cfg.default_service(web::to(route_not_found));
}

async fn method_not_allowed() -> ApiResult<HttpResponse> {
    Err(ApiError::MethodNotAllowed)
}

async fn route_not_found() -> ApiResult<HttpResponse> {
    Err(ApiError::NotFound { resource: "route" })
}
