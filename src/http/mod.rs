//! The HTTP edge: one route table that both the router and `/openapi.json` are built from, so
//! the two cannot drift apart.

pub mod access_log;
pub mod auth;
pub mod body;
pub mod client;
pub mod console;
pub mod health;
pub mod list;
pub mod middleware;
pub mod openapi;
pub mod orgs;
pub mod principal;
pub mod resources;
pub mod roles;
pub mod srv;
pub mod users;
pub mod views;

use actix_web::http::Method;
use actix_web::{web, HttpResponse, Route};

use crate::error::{ApiError, ApiResult};

/// How a route authenticates its caller (documented in the OpenAPI `security`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Auth {
    None,
    Admin,
    /// An access token or the API key triple (`/be/v1`).
    User,
    /// A refresh token (or, for logout, an access token) in `Authorization: Bearer`.
    Session,
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

const ORG_BODY: &[Field] =
    &[req("name", "string"), opt("label", "string"), opt("publicKey", "string"), opt("admin", "object")];
const LOGIN_BODY: &[Field] = &[opt("username", "string"), opt("password", "string"), opt("orgName", "string")];
const USER_BODY: &[Field] = &[
    req("username", "string"),
    opt("type", "string"),
    opt("email", "string"),
    opt("firstname", "string"),
    opt("surname", "string"),
    opt("title", "string"),
    opt("label", "string"),
    opt("roles", "array"),
    opt("password", "string"),
];
const USER_PATCH_BODY: &[Field] = &[
    opt("username", "string"),
    opt("email", "string"),
    opt("firstname", "string"),
    opt("surname", "string"),
    opt("title", "string"),
    opt("label", "string"),
    opt("roles", "array"),
    opt("oldPW", "string"),
    opt("newPW", "string"),
    opt("resetCreds", "boolean"),
];
const ROLE_BODY: &[Field] = &[req("name", "string"), opt("label", "string"), req("permissions", "object")];
const ROLE_PATCH_BODY: &[Field] = &[req("name", "string"), opt("label", "string"), opt("permissions", "object")];
const APIKEY_BODY: &[Field] = &[opt("username", "string")];
const DEPLOYMENT_BODY: &[Field] = &[
    req("name", "string"),
    opt("label", "string"),
    opt("originPrefix", "string"),
    req("origin", "object"),
    opt("downloadAuth", "object"),
];
const DEPLOYMENT_PATCH_BODY: &[Field] = &[
    req("name", "string"),
    opt("label", "string"),
    opt("originPrefix", "string"),
    opt("origin", "object"),
    opt("downloadAuth", "object"),
];
const APP_BODY: &[Field] =
    &[req("name", "string"), req("label", "string"), opt("maxBuilds", "integer"), opt("deployments", "array")];
const APP_PATCH_BODY: &[Field] =
    &[req("name", "string"), opt("label", "string"), opt("maxBuilds", "integer"), opt("deployments", "array")];
const SUBSCRIPTION_BODY: &[Field] =
    &[req("name", "string"), req("type", "string"), req("url", "string"), opt("events", "array")];
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
        spec(
            Method::POST,
            "/adm/v1/orgs",
            Admin,
            "orgs",
            "Create an organization, its Administrators role and first administrator",
            || web::to(orgs::admin_create),
        )
        .with_body(ORG_BODY),
        spec(Method::GET, "/adm/v1/orgs", Admin, "orgs", "List organizations (filter name)", || {
            web::to(orgs::admin_list)
        }),
        spec(
            Method::DELETE,
            "/adm/v1/orgs/{orgName}",
            Admin,
            "orgs",
            "Delete an organization and all its data; ?prune=true also removes published files",
            || web::to(orgs::admin_delete),
        ),
        spec(Method::POST, "/be/v1/orgs", User, "orgs", "Create an organization (members of Administrators)", || {
            web::to(orgs::member_create)
        })
        .with_body(ORG_BODY),
        spec(
            Method::DELETE,
            "/be/v1/orgs/{orgName}",
            User,
            "orgs",
            "Delete the caller's organization (members of Administrators)",
            || web::to(orgs::member_delete),
        ),
        spec(
            Method::POST,
            "/be/v1/login",
            None,
            "auth",
            "Log in: username+password, then orgName with the selection token (or all three at once)",
            || web::to(auth::login),
        )
        .with_body(LOGIN_BODY),
        spec(
            Method::POST,
            "/be/v1/refresh",
            Session,
            "auth",
            "Exchange a refresh token for a new access/refresh pair",
            || web::to(auth::refresh),
        ),
        spec(Method::POST, "/be/v1/logout", Session, "auth", "End the session of an access or refresh token", || {
            web::to(auth::logout)
        }),
        spec(Method::POST, "/be/v1/users", User, "users", "Create a user or machine account (beUsers create)", || {
            web::to(users::create)
        })
        .with_body(USER_BODY),
        spec(
            Method::GET,
            "/be/v1/users",
            User,
            "users",
            "List accounts (beUsers read; filters username, type, role)",
            || web::to(users::list),
        ),
        spec(
            Method::PATCH,
            "/be/v1/users",
            User,
            "users",
            "Change an account: profile, roles, own password, resetCreds",
            || web::to(users::change),
        )
        .with_body(USER_PATCH_BODY),
        spec(Method::GET, "/be/v1/users/{username}", User, "users", "Account details (own, or beUsers read)", || {
            web::to(users::details)
        }),
        spec(
            Method::DELETE,
            "/be/v1/users/{username}",
            User,
            "users",
            "Delete an account and end its sessions and keys (beUsers delete)",
            || web::to(users::delete),
        ),
        spec(
            Method::POST,
            "/be/v1/apikeys",
            User,
            "users",
            "New API key for a machine account (own, or beUsers update)",
            || web::to(users::create_api_key),
        )
        .with_body(APIKEY_BODY),
        spec(
            Method::GET,
            "/be/v1/apikeys",
            User,
            "users",
            "API keys: own, or all with beUsers read (filter username)",
            || web::to(users::list_api_keys),
        ),
        spec(
            Method::DELETE,
            "/be/v1/apikeys/{apiKeyId}",
            User,
            "users",
            "Revoke one API key (own, or beUsers update)",
            || web::to(users::delete_api_key),
        ),
        spec(Method::GET, "/be/v1/roles", User, "roles", "List roles (roles read; filter name)", || {
            web::to(roles::list)
        }),
        spec(
            Method::POST,
            "/be/v1/roles",
            User,
            "roles",
            "Create a role (roles create; never beyond the caller's rights)",
            || web::to(roles::create),
        )
        .with_body(ROLE_BODY),
        spec(
            Method::PATCH,
            "/be/v1/roles",
            User,
            "roles",
            "Change a role's label or permissions (roles update)",
            || web::to(roles::change),
        )
        .with_body(ROLE_PATCH_BODY),
        spec(Method::GET, "/be/v1/roles/{roleName}", User, "roles", "Role details (roles read)", || {
            web::to(roles::details)
        }),
        spec(Method::DELETE, "/be/v1/roles/{roleName}", User, "roles", "Delete an unused role (roles delete)", || {
            web::to(roles::delete)
        }),
        spec(Method::POST, "/be/v1/deployments", User, "deployments", "Create a publish target (deployments create)", || web::to(resources::create_deployment))
            .with_body(DEPLOYMENT_BODY),
        spec(Method::GET, "/be/v1/deployments", User, "deployments", "List deployments (deployments read; filters name, status)", || web::to(resources::list_deployments)),
        spec(Method::PATCH, "/be/v1/deployments", User, "deployments", "Change a deployment; null removes an optional field (deployments update)", || web::to(resources::change_deployment))
            .with_body(DEPLOYMENT_PATCH_BODY),
        spec(Method::GET, "/be/v1/deployments/{name}", User, "deployments", "Deployment details with status of the last publish (deployments read)", || web::to(resources::deployment)),
        spec(Method::DELETE, "/be/v1/deployments/{name}", User, "deployments", "Delete a deployment no app lists; its files are removed in the background (deployments delete)", || web::to(resources::delete_deployment)),
        spec(Method::POST, "/be/v1/apps", User, "apps", "Create an app (apps create)", || web::to(resources::create_app))
            .with_body(APP_BODY),
        spec(Method::GET, "/be/v1/apps", User, "apps", "List apps (apps read; filters name, status; fields[])", || web::to(resources::list_apps)),
        spec(Method::PATCH, "/be/v1/apps", User, "apps", "Change an app's label, maxBuilds or deployments (apps update)", || web::to(resources::change_app))
            .with_body(APP_PATCH_BODY),
        spec(Method::GET, "/be/v1/apps/{appName}", User, "apps", "App details with builds and patches (apps read)", || web::to(resources::app)),
        spec(Method::DELETE, "/be/v1/apps/{appName}", User, "apps", "Delete an app; its images and patches are removed in the background (apps delete)", || web::to(resources::delete_app)),
        spec(Method::POST, "/be/v1/subscriptions", User, "subscriptions", "Subscribe a webhook or Slack URL to build events; the signing secret is returned once (subscriptions create)", || web::to(resources::create_subscription))
            .with_body(SUBSCRIPTION_BODY),
        spec(Method::GET, "/be/v1/subscriptions", User, "subscriptions", "List subscriptions (subscriptions read; filters name, type)", || web::to(resources::list_subscriptions)),
        spec(Method::DELETE, "/be/v1/subscriptions/{subscriptionName}", User, "subscriptions", "Delete a subscription (subscriptions delete)", || web::to(resources::delete_subscription)),
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
    // The router tries resources in order; fixed paths first keeps the common case to string
    // comparisons instead of running the pattern matcher of every dynamic path before it.
    paths.sort_by_key(|path| path.contains('{'));
    for path in paths {
        let mut resource =
            web::resource(path).app_data(middleware::RouteTemplate(path)).default_service(web::to(method_not_allowed));
        for spec in specs.iter().filter(|s| s.path == path) {
            resource = resource.route((spec.handler)().method(spec.method.clone()));
        }
        cfg.service(resource.wrap(actix_web::middleware::from_fn(middleware::catch_panic)));
    }
    console::configure(cfg);
    cfg.default_service(web::to(route_not_found));
}

async fn method_not_allowed() -> ApiResult<HttpResponse> {
    Err(ApiError::MethodNotAllowed)
}

async fn route_not_found() -> ApiResult<HttpResponse> {
    Err(ApiError::NotFound { resource: "route" })
}
