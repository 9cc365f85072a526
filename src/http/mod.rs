//! The HTTP edge: one route table that both the router and `/openapi.json` are built from, so
//! the two cannot drift apart.

pub mod access_log;
pub mod audit;
pub mod auth;
pub mod body;
pub mod builds;
pub mod client;
pub mod console;
pub mod health;
pub mod list;
pub mod metrics;
pub mod middleware;
pub mod openapi;
pub mod orgs;
pub mod principal;
pub mod requests;
pub mod resources;
pub mod roles;
pub mod sessions;
pub mod srv;
pub mod traces;
pub mod transfers;
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

/// `{"status":"success", <key>: value}`: the answer of every endpoint that returns one thing.
pub fn success(key: &str, value: impl serde::Serialize) -> HttpResponse {
    let mut body = serde_json::Map::with_capacity(2);
    body.insert("status".into(), "success".into());
    body.insert(key.into(), serde_json::to_value(value).unwrap_or(serde_json::Value::Null));
    HttpResponse::Ok().json(body)
}

/// `{"status":"success"}`: the answer of endpoints with nothing more to say.
pub fn done() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({"status": "success"}))
}

/// Writes the JSON Schema of a request body (and registers the types it refers to).
pub type BodySchema = fn(&mut schemars::SchemaGenerator) -> schemars::Schema;

fn body_schema<T: schemars::JsonSchema>(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
    generator.subschema_for::<T>()
}

/// What a successful answer holds besides `"status": "success"`, for the OpenAPI document.
#[derive(Clone, Copy)]
pub enum Answer {
    /// Nothing else (or nothing a client relies on).
    Status,
    /// One value under this key, e.g. `"app"`; further top-level keys may follow (one-time
    /// secrets).
    One(&'static str),
    /// A page of a list under this key, with `total`, `offset` and `limit`, and its parameters.
    List(&'static str, &'static list::ListSpec),
    /// Plain text of this media type (Prometheus metrics), not the JSON envelope.
    Text(&'static str),
}

/// One endpoint: what the router mounts and what the OpenAPI document describes.
pub struct RouteSpec {
    pub method: Method,
    pub path: &'static str,
    pub auth: Auth,
    pub tag: &'static str,
    pub summary: &'static str,
    pub body: Option<BodySchema>,
    pub answer: Answer,
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
    RouteSpec { method, path, auth, tag, summary, body: None, answer: Answer::Status, handler }
}

impl RouteSpec {
    /// The request body is `T`: the handler extracts `body::Json<T>`, the document shows its schema.
    fn with_body<T: schemars::JsonSchema>(mut self) -> Self {
        self.body = Some(body_schema::<T>);
        self
    }

    fn answers(mut self, answer: Answer) -> Self {
        self.answer = answer;
        self
    }
}

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
        spec(
            Method::GET,
            "/metrics",
            Admin,
            "service",
            "Prometheus metrics (text format); an admin token or Authorization: Bearer <metrics_token>",
            || web::to(metrics::metrics),
        )
        .answers(Answer::Text(metrics::CONTENT_TYPE)),
        spec(Method::GET, "/srv/v1/versions", Admin, "service", "Versions of server, engine, API and schema", || {
            web::to(srv::versions)
        })
        .answers(Answer::One("versions")),
        spec(
            Method::POST,
            "/srv/v1/ping",
            Admin,
            "service",
            "Liveness for admin tools; echoes an optional message",
            || web::to(srv::ping),
        )
        .answers(Answer::One("message"))
        .with_body::<requests::Ping>(),
        spec(
            Method::POST,
            "/srv/v1/hello",
            Admin,
            "service",
            "Runs a hello task through the task queue and waits for it",
            || web::to(srv::hello),
        )
        .answers(Answer::One("task"))
        .with_body::<requests::Hello>(),
        spec(Method::GET, "/srv/v1/maintenance", Admin, "service", "Current maintenance state", || {
            web::to(srv::get_maintenance)
        })
        .answers(Answer::One("maintenance")),
        spec(Method::POST, "/srv/v1/maintenance", Admin, "service", "Turns maintenance mode on or off", || {
            web::to(srv::set_maintenance)
        })
        .answers(Answer::One("maintenance"))
        .with_body::<requests::SetMaintenance>(),
        spec(
            Method::GET,
            "/srv/v1/tasks/{taskName}",
            Admin,
            "service",
            "One task of any kind, e.g. a hello task still running",
            || web::to(srv::task),
        )
        .answers(Answer::One("task")),
        spec(Method::POST, "/adm/v1/ping", Admin, "service", "Alias of POST /srv/v1/ping (2025 API)", || {
            web::to(srv::ping)
        })
        .answers(Answer::One("message"))
        .with_body::<requests::Ping>(),
        spec(Method::POST, "/adm/v1/hello", Admin, "service", "Alias of POST /srv/v1/hello (2025 API)", || {
            web::to(srv::hello)
        })
        .answers(Answer::One("task"))
        .with_body::<requests::Hello>(),
        spec(
            Method::POST,
            "/adm/v1/orgs",
            Admin,
            "orgs",
            "Create an organization, its Administrators role and first administrator",
            || web::to(orgs::admin_create),
        )
        .answers(Answer::One("org"))
        .with_body::<requests::CreateOrg>(),
        spec(Method::GET, "/adm/v1/orgs", Admin, "orgs", "List organizations (filter name)", || {
            web::to(orgs::admin_list)
        })
        .answers(Answer::List("orgs", &orgs::ORGS_LIST)),
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
        .answers(Answer::One("org"))
        .with_body::<requests::CreateOrg>(),
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
        .with_body::<requests::Login>(),
        spec(
            Method::POST,
            "/be/v1/refresh",
            Session,
            "auth",
            "Exchange a refresh token for a new access/refresh pair",
            || web::to(auth::refresh),
        )
        .answers(Answer::One("session")),
        spec(Method::POST, "/be/v1/logout", Session, "auth", "End the session of an access or refresh token", || {
            web::to(auth::logout)
        }),
        spec(Method::POST, "/be/v1/users", User, "users", "Create a user or machine account (beUsers create)", || {
            web::to(users::create)
        })
        .answers(Answer::One("user"))
        .with_body::<requests::CreateUser>(),
        spec(
            Method::GET,
            "/be/v1/users",
            User,
            "users",
            "List accounts (beUsers read; filters username, type, role)",
            || web::to(users::list),
        )
        .answers(Answer::List("users", &users::USERS_LIST)),
        spec(
            Method::PATCH,
            "/be/v1/users",
            User,
            "users",
            "Change an account: profile, roles, own password, resetCreds",
            || web::to(users::change),
        )
        .answers(Answer::One("user"))
        .with_body::<requests::ChangeUser>(),
        spec(Method::GET, "/be/v1/users/{username}", User, "users", "Account details (own, or beUsers read)", || {
            web::to(users::details)
        })
        .answers(Answer::One("user")),
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
        .answers(Answer::One("apiKey"))
        .with_body::<requests::CreateApiKey>(),
        spec(
            Method::GET,
            "/be/v1/apikeys",
            User,
            "users",
            "API keys: own, or all with beUsers read (filter username)",
            || web::to(users::list_api_keys),
        )
        .answers(Answer::List("apikeys", &users::API_KEYS_LIST)),
        spec(
            Method::DELETE,
            "/be/v1/apikeys/{apiKeyId}",
            User,
            "users",
            "Revoke one API key (own, or beUsers update)",
            || web::to(users::delete_api_key),
        ),
        spec(
            Method::GET,
            "/be/v1/sessions",
            User,
            "users",
            "Live login sessions: own, or all of the organization with beUsers read (filter username)",
            || web::to(sessions::list),
        )
        .answers(Answer::List("sessions", &sessions::SESSIONS_LIST)),
        spec(
            Method::DELETE,
            "/be/v1/sessions/{sessionId}",
            User,
            "users",
            "End one session at once, every token of it (own, or beUsers update)",
            || web::to(sessions::delete),
        ),
        spec(
            Method::GET,
            "/be/v1/audit",
            User,
            "audit",
            "Security events of the organization (members of Administrators; filter event, username, createdAfter)",
            || web::to(audit::org_events),
        )
        .answers(Answer::List("audit", &audit::AUDIT_LIST)),
        spec(
            Method::GET,
            "/adm/v1/audit",
            Admin,
            "audit",
            "Box-wide security events: organizations created and deleted (filter event, username, createdAfter)",
            || web::to(audit::box_events),
        )
        .answers(Answer::List("audit", &audit::AUDIT_LIST)),
        spec(Method::GET, "/be/v1/roles", User, "roles", "List roles (roles read; filter name)", || {
            web::to(roles::list)
        })
        .answers(Answer::List("roles", &roles::ROLES_LIST)),
        spec(
            Method::POST,
            "/be/v1/roles",
            User,
            "roles",
            "Create a role (roles create; never beyond the caller's rights)",
            || web::to(roles::create),
        )
        .answers(Answer::One("role"))
        .with_body::<requests::CreateRole>(),
        spec(
            Method::PATCH,
            "/be/v1/roles",
            User,
            "roles",
            "Change a role's label or permissions (roles update)",
            || web::to(roles::change),
        )
        .answers(Answer::One("role"))
        .with_body::<requests::ChangeRole>(),
        spec(Method::GET, "/be/v1/roles/{roleName}", User, "roles", "Role details (roles read)", || {
            web::to(roles::details)
        })
        .answers(Answer::One("role")),
        spec(Method::DELETE, "/be/v1/roles/{roleName}", User, "roles", "Delete an unused role (roles delete)", || {
            web::to(roles::delete)
        }),
        spec(Method::POST, "/be/v1/deployments", User, "deployments", "Create a publish target (deployments create)", || web::to(resources::create_deployment))
        .answers(Answer::One("deployment"))
            .with_body::<requests::CreateDeployment>(),
        spec(Method::GET, "/be/v1/deployments", User, "deployments", "List deployments (deployments read; filters name, status)", || web::to(resources::list_deployments))
        .answers(Answer::List("deployments", &resources::DEPLOYMENTS_LIST)),
        spec(Method::PATCH, "/be/v1/deployments", User, "deployments", "Change a deployment; null removes an optional field (deployments update)", || web::to(resources::change_deployment))
        .answers(Answer::One("deployment"))
            .with_body::<requests::ChangeDeployment>(),
        spec(Method::GET, "/be/v1/deployments/{name}", User, "deployments", "Deployment details with status of the last publish (deployments read)", || web::to(resources::deployment))
        .answers(Answer::One("deployment")),
        spec(Method::DELETE, "/be/v1/deployments/{name}", User, "deployments", "Delete a deployment no app lists; its files are removed in the background (deployments delete)", || web::to(resources::delete_deployment))
        .answers(Answer::One("task")),
        spec(Method::POST, "/be/v1/apps", User, "apps", "Create an app (apps create)", || web::to(resources::create_app))
        .answers(Answer::One("app"))
            .with_body::<requests::CreateApp>(),
        spec(Method::GET, "/be/v1/apps", User, "apps", "List apps (apps read; filters name, status; fields[])", || web::to(resources::list_apps))
        .answers(Answer::List("apps", &resources::APPS_LIST)),
        spec(Method::PATCH, "/be/v1/apps", User, "apps", "Change an app's label, maxBuilds or deployments (apps update)", || web::to(resources::change_app))
        .answers(Answer::One("app"))
            .with_body::<requests::ChangeApp>(),
        spec(Method::GET, "/be/v1/apps/{appName}", User, "apps", "App details with builds and patches (apps read)", || web::to(resources::app))
        .answers(Answer::One("app")),
        spec(Method::DELETE, "/be/v1/apps/{appName}", User, "apps", "Delete an app; its images and patches are removed in the background (apps delete)", || web::to(resources::delete_app))
        .answers(Answer::One("task")),
        spec(Method::POST, "/be/v1/builds", User, "builds", "Import a build from a URL, or (without url) get a one-time upload URL; queues dltar → mkraw → deploy; 409 busy while the app imports (apps update)", || web::to(builds::create_build))
        .answers(Answer::One("task"))
            .with_body::<requests::CreateBuild>(),
        spec(Method::PUT, "/be/v1/uploads/{uploadToken}", None, "builds", "The one-time upload URL of an import: the build tar as the body, streamed to disk; may be repeated until it succeeds or expires", || web::to(builds::upload))
        .answers(Answer::One("task")),
        spec(Method::GET, "/be/v1/tasks", User, "tasks", "List the organization's tasks (tasks read; sort created for creation order; filters appName, type, status, group, createdAfter, createdBefore)", || web::to(builds::list_tasks))
        .answers(Answer::List("tasks", &builds::TASKS_LIST)),
        spec(Method::PATCH, "/be/v1/tasks", User, "tasks", "Acknowledge a task's warnings, or expire a task waiting for an upload or a queued or running mkraw (tasks update)", || web::to(builds::change_task))
        .answers(Answer::One("task"))
            .with_body::<requests::ChangeTask>(),
        spec(Method::POST, "/be/v1/trigger", User, "tasks", "retryTask: re-run a failed task from its checkpoint; processTraces: reorder the app's current build by its start-up traces (tasks execute)", || web::to(builds::trigger))
        .answers(Answer::One("task"))
            .with_body::<requests::Trigger>(),
        spec(Method::GET, "/be/v1/me", User, "users", "The caller's own account, organization and current permissions (any caller), as the login answered them", || web::to(users::me))
        .answers(Answer::One("user")),
        spec(Method::POST, "/be/v1/commit", User, "builds", "Go live or roll back: queues a commit task that makes a retained, processed build (default: the newest) current on every target, current.json written last; 409 conflict on buildId when not retained or not processed (apps update)", || web::to(builds::commit))
        .answers(Answer::One("task"))
            .with_body::<requests::Commit>(),
        spec(Method::POST, traces::PATH, User, "builds", "Report a launcher's start-up reads of a build, first access first (trainings update; a body of at most 4 MiB, at most 20000 reads)", || web::to(traces::submit))
        .answers(Answer::One("trace"))
            .with_body::<requests::SubmitTrace>(),
        spec(Method::GET, "/be/v1/tasks/{taskName}", User, "tasks", "One task of the organization with progress, warnings, exception and attempts (tasks read)", || web::to(builds::task))
        .answers(Answer::One("task")),
        spec(Method::POST, "/be/v1/subscriptions", User, "subscriptions", "Subscribe a webhook or Slack URL to build events; the signing secret is returned once (subscriptions create)", || web::to(resources::create_subscription))
        .answers(Answer::One("subscription"))
            .with_body::<requests::CreateSubscription>(),
        spec(Method::GET, "/be/v1/subscriptions", User, "subscriptions", "List subscriptions (subscriptions read; filters name, type)", || web::to(resources::list_subscriptions))
        .answers(Answer::List("subscriptions", &resources::SUBSCRIPTIONS_LIST)),
        spec(Method::GET, "/be/v1/subscriptions/{subscriptionName}", User, "subscriptions", "A subscription with its newest deliveries: status, attempts, last HTTP status and error (subscriptions read)", || web::to(resources::subscription))
        .answers(Answer::One("subscription")),
        spec(Method::DELETE, "/be/v1/subscriptions/{subscriptionName}", User, "subscriptions", "Delete a subscription (subscriptions delete)", || web::to(resources::delete_subscription)),
        // Organization transfers (issue 13).
        spec(Method::POST, "/be/v1/export", User, "transfers", "Export the caller's organization into a passphrase-protected bundle: queues an export task and answers its one-time download URL (members of Administrators)", || web::to(transfers::start_export))
        .answers(Answer::One("task"))
            .with_body::<requests::StartExport>(),
        spec(Method::GET, "/be/v1/exports/{downloadToken}", None, "transfers", "The one-time download URL of an export: the bundle, streamed, once its task is done; used up when the whole file went out", || web::to(transfers::download))
        .answers(Answer::Text("application/octet-stream")),
        spec(Method::POST, "/be/v1/import", Admin, "transfers", "Start importing an organization bundle: answers a one-time upload URL (admin token)", || web::to(transfers::start_import))
        .answers(Answer::One("import"))
            .with_body::<requests::StartImport>(),
        spec(Method::PUT, "/be/v1/imports/{uploadToken}", None, "transfers", "The one-time upload URL of an import: the bundle as the body; verified (passphrase, format version, integrity, name collision), unpacked and staged with a dry-run report", || web::to(transfers::upload))
        .answers(Answer::One("import")),
        spec(Method::GET, "/adm/v1/imports/{importId}", Admin, "transfers", "An import with its state and dry-run report (admin token)", || web::to(transfers::import_details))
        .answers(Answer::One("import")),
        spec(Method::DELETE, "/adm/v1/imports/{importId}", Admin, "transfers", "Discard an import that was not committed, with its staged files (admin token)", || web::to(transfers::discard_import)),
        spec(Method::POST, "/adm/v1/commit", Admin, "transfers", "Commit Export: apply a staged import in one transaction (admin token)", || web::to(transfers::commit))
        .answers(Answer::One("import"))
            .with_body::<requests::CommitImport>(),
    ]
}

/// Mounts every route of [`routes`]; every GET route also answers HEAD, and a known path with
/// another method answers 405 with `Allow`.
pub fn configure(cfg: &mut web::ServiceConfig) {
    let specs = routes();
    for (slot, path) in route_templates().into_iter().enumerate() {
        let allow = allowed_methods(&specs, path);
        let refuse = move || {
            let allow = allow.clone();
            async move { Err::<HttpResponse, _>(ApiError::MethodNotAllowed(allow)) }
        };
        let mut resource =
            web::resource(path).app_data(middleware::RouteTemplate(path, slot)).default_service(web::to(refuse));
        if path == traces::PATH {
            // A start-up trace is larger than any other body: its own limit, documented with it.
            let limit = crate::resources::traces::BODY_LIMIT;
            resource = resource.app_data(body::BodyLimit(limit)).app_data(web::PayloadConfig::new(limit));
        }
        for spec in specs.iter().filter(|s| s.path == path) {
            resource = resource.route((spec.handler)().method(spec.method.clone()));
            if spec.method == Method::GET {
                // The server sends no body for HEAD but keeps the headers of the GET answer.
                resource = resource.route((spec.handler)().method(Method::HEAD));
            }
        }
        cfg.service(resource.wrap(actix_web::middleware::from_fn(middleware::catch_panic)));
    }
    console::configure(cfg);
    cfg.default_service(web::to(route_not_found));
}

/// Every path of the route table once, in mounting order; a path's position is its slot in
/// [`crate::metrics::RequestMetrics`].
pub fn route_templates() -> Vec<&'static str> {
    let mut paths: Vec<&'static str> = Vec::new();
    for spec in routes() {
        if !paths.contains(&spec.path) {
            paths.push(spec.path);
        }
    }
    // The router tries resources in order; fixed paths first keeps the common case to string
    // comparisons instead of running the pattern matcher of every dynamic path before it.
    paths.sort_by_key(|path| path.contains('{'));
    paths
}

/// The `Allow` value of a path: its methods in the route table, plus HEAD where GET is.
pub fn allowed_methods(specs: &[RouteSpec], path: &str) -> String {
    let mut methods: Vec<&str> = specs.iter().filter(|s| s.path == path).map(|s| s.method.as_str()).collect();
    if methods.contains(&"GET") {
        methods.push("HEAD");
    }
    methods.join(", ")
}

async fn route_not_found() -> ApiResult<HttpResponse> {
    Err(ApiError::NotFound { resource: "route" })
}
