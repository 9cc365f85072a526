//! How resources look on the wire. Never a hash, never a stored secret.

use schemars::JsonSchema;
use serde::Serialize;
use serde_json::Value;

use crate::store::audit::Entry;
use crate::store::{api_keys::ApiKey, orgs::Org, roles::Role, sessions::SessionInfo, users::User};

// Each view is a typed struct: serialized straight from the stored row (no `Value` tree per list
// item) and, through schemars, the answer's schema in `/openapi.json`, so the two cannot differ.

/// An organization (API.md §3).
#[derive(Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct OrgView<'a> {
    name: &'a str,
    label: &'a str,
    public_key: Option<&'a str>,
    users: i64,
    apps: i64,
    created: &'a str,
    updated: &'a str,
}

pub fn org(o: &Org) -> OrgView<'_> {
    OrgView {
        name: &o.name,
        label: &o.label,
        public_key: o.public_key.as_deref(),
        users: o.users,
        apps: o.apps,
        created: &o.created,
        updated: &o.updated,
    }
}

/// A person's or a machine's account; never its password hash.
#[derive(Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct UserView<'a> {
    username: &'a str,
    #[serde(rename = "type")]
    #[schemars(extend("enum" = ["user", "machine"]))]
    kind: &'a str,
    email: Option<&'a str>,
    firstname: Option<&'a str>,
    surname: Option<&'a str>,
    title: Option<&'a str>,
    label: Option<&'a str>,
    roles: &'a [String],
    created: &'a str,
    updated: &'a str,
    last_login: Option<&'a str>,
}

pub fn user(u: &User) -> UserView<'_> {
    UserView {
        username: &u.username,
        kind: u.kind.as_ref(),
        email: u.email.as_deref(),
        firstname: u.firstname.as_deref(),
        surname: u.surname.as_deref(),
        title: u.title.as_deref(),
        label: u.label.as_deref(),
        roles: &u.roles,
        created: &u.created,
        updated: &u.updated,
        last_login: u.last_login.as_deref(),
    }
}

/// A role with its permission bits per resource.
#[derive(Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RoleView<'a> {
    name: &'a str,
    label: &'a str,
    #[schemars(with = "std::collections::BTreeMap<String, u8>")]
    permissions: Value,
    builtin: bool,
    users: i64,
    created: &'a str,
    updated: &'a str,
}

pub fn role(r: &Role) -> RoleView<'_> {
    RoleView {
        name: &r.name,
        label: &r.label,
        permissions: r.permissions.to_json(),
        builtin: r.builtin,
        users: r.users,
        created: &r.created,
        updated: &r.updated,
    }
}

/// An API key's public part; the key itself is shown once, at creation.
#[derive(Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApiKeyView<'a> {
    api_key_id: &'a str,
    username: &'a str,
    created: &'a str,
    last_used: Option<&'a str>,
}

pub fn api_key(k: &ApiKey) -> ApiKeyView<'_> {
    ApiKeyView { api_key_id: &k.id, username: &k.username, created: &k.created, last_used: k.last_used.as_deref() }
}

/// A live login session: who, since when, from where, until when. Never a token or its hash.
#[derive(Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LiveSessionView<'a> {
    session_id: &'a str,
    username: &'a str,
    created: &'a str,
    /// When the session last swapped its refresh token; `null` if it never has.
    refreshed: Option<&'a str>,
    /// The client address of the login (after `trusted_proxies`), if recorded.
    client: Option<&'a str>,
    /// Unix time at which the session's refresh token expires.
    expires: i64,
}

pub fn live_session(s: &SessionInfo) -> LiveSessionView<'_> {
    LiveSessionView {
        session_id: &s.id,
        username: &s.username,
        created: &s.created,
        refreshed: s.refreshed.as_deref(),
        client: s.client.as_deref(),
        expires: s.expires,
    }
}

/// A security event of the audit trail.
#[derive(Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuditEntryView<'a> {
    id: i64,
    created: &'a str,
    /// E.g. `login.succeeded`, `login.failed`, `session.revoked`, `apikey.created`, `apikey.deleted`,
    /// `org.created`, `org.deleted`.
    event: &'a str,
    /// Who acted (`org/user`, a login's username, or `admin-token:<name>`).
    username: Option<&'a str>,
    /// The client address the request came from.
    client: Option<&'a str>,
    /// What the event was about (a username, an organization, `owner keyId`).
    target: Option<&'a str>,
}

pub fn audit_entry(e: &Entry) -> AuditEntryView<'_> {
    AuditEntryView {
        id: e.id,
        created: &e.at,
        event: &e.event,
        username: e.principal.as_deref(),
        client: e.client.as_deref(),
        target: e.target.as_deref(),
    }
}

/// A deployment with every secret shown as `****`.
#[derive(Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeploymentView<'a> {
    name: &'a str,
    label: &'a str,
    origin_prefix: &'a str,
    /// The origin's fields as sent, `secretAccessKey` masked.
    #[schemars(with = "serde_json::Map<String, Value>")]
    origin: Value,
    download_auth: Option<DownloadAuthView<'a>>,
    status: &'a str,
    message: Option<&'a str>,
    created: &'a str,
    updated: &'a str,
}

/// Which download authentication a deployment uses; the key is always masked.
#[derive(Serialize, JsonSchema)]
pub struct DownloadAuthView<'a> {
    #[serde(rename = "type")]
    kind: &'a str,
    key: &'static str,
}

pub fn deployment(d: &crate::store::deployments::Deployment) -> DeploymentView<'_> {
    let mut origin = d.origin.clone();
    if d.origin_secret.is_some() {
        origin["secretAccessKey"] = Value::from(crate::domain::origins::MASK);
    }
    DeploymentView {
        name: &d.name,
        label: &d.label,
        origin_prefix: &d.origin_prefix,
        origin,
        download_auth: d
            .download_auth_type
            .as_deref()
            .map(|kind| DownloadAuthView { kind, key: crate::domain::origins::MASK }),
        status: &d.status,
        message: d.message.as_deref(),
        created: &d.created,
        updated: &d.updated,
    }
}

/// An app as the API shows it (API.md §8); serialized directly, it is on the hot list path.
#[derive(Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AppView<'a> {
    name: &'a str,
    label: &'a str,
    max_builds: i64,
    i_cur_build: i64,
    processing: bool,
    exporting: bool,
    size_bytes: i64,
    /// `ok`, or `error` once an import of the app failed for good (a task of its chain failed
    /// after its automatic attempts); it stays `error`, through a retry too, until a build is
    /// committed. A cancelled or expired import leaves it as it was.
    status: &'a str,
    /// Why the app's last import failed: the failed task's `exception.message`.
    error: Option<&'a str>,
    deployments: &'a [String],
    dxf_name: Option<&'a str>,
    builds: Vec<BuildView<'a>>,
    patches: Vec<PatchView>,
    created: &'a str,
    updated: &'a str,
}

#[derive(Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BuildView<'a> {
    build_id: i64,
    build_name: Option<&'a str>,
    size_bytes: i64,
    created: &'a str,
}

#[derive(Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PatchView {
    from_build_id: i64,
    to_build_id: i64,
    size_bytes: i64,
}

pub fn app(a: &crate::store::apps::App) -> AppView<'_> {
    AppView {
        name: &a.name,
        label: &a.label,
        max_builds: a.max_builds,
        i_cur_build: a.i_cur_build,
        processing: a.processing,
        exporting: a.exporting,
        size_bytes: a.size_bytes,
        status: &a.status,
        error: a.error.as_deref(),
        deployments: &a.deployments,
        dxf_name: a.dxf_name.as_deref(),
        builds: a
            .builds
            .iter()
            .map(|b| BuildView {
                build_id: b.build_id,
                build_name: b.name.as_deref(),
                size_bytes: b.size_bytes,
                created: &b.created,
            })
            .collect(),
        patches: a
            .patches
            .iter()
            .map(|p| PatchView { from_build_id: p.from_build_id, to_build_id: p.to_build_id, size_bytes: p.size_bytes })
            .collect(),
        created: &a.created,
        updated: &a.updated,
    }
}

/// A subscription; its signing secret is never shown after creation.
#[derive(Serialize, JsonSchema)]
pub struct SubscriptionView<'a> {
    name: &'a str,
    #[serde(rename = "type")]
    #[schemars(extend("enum" = ["webhook", "slack"]))]
    kind: &'a str,
    url: &'a str,
    /// `[{"type","event"}]`; empty means every event.
    #[schemars(with = "Vec<serde_json::Map<String, Value>>")]
    events: &'a Value,
    created: &'a str,
    updated: &'a str,
    /// Details only (`GET /be/v1/subscriptions/{name}`): the newest deliveries, newest first, so
    /// an operator sees why a receiver got nothing.
    #[serde(skip_serializing_if = "Option::is_none")]
    deliveries: Option<Vec<DeliveryView<'a>>>,
}

pub fn subscription(s: &crate::store::subscriptions::Subscription) -> SubscriptionView<'_> {
    SubscriptionView {
        name: &s.name,
        kind: &s.kind,
        url: &s.url,
        events: &s.events,
        created: &s.created,
        updated: &s.updated,
        deliveries: None,
    }
}

/// A subscription with its newest deliveries.
pub fn subscription_details<'a>(
    s: &'a crate::store::subscriptions::Subscription,
    deliveries: &'a [crate::store::webhooks::Delivery],
) -> SubscriptionView<'a> {
    SubscriptionView { deliveries: Some(deliveries.iter().map(delivery).collect()), ..subscription(s) }
}

/// One delivery of an event to a subscription and how its attempts went.
#[derive(Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeliveryView<'a> {
    /// The delivery id: the `jti` of its token, the same on every attempt.
    id: &'a str,
    task_name: &'a str,
    #[serde(rename = "type")]
    task_type: &'a str,
    #[schemars(extend("enum" = ["submit", "begin", "end", "error"]))]
    event: &'a str,
    app_name: Option<&'a str>,
    /// `pending` (being retried), `delivered`, or `failed` (given up).
    #[schemars(extend("enum" = ["pending", "delivered", "failed"]))]
    status: &'a str,
    attempts: i64,
    /// The HTTP status of the last attempt, if the receiver answered at all.
    last_status: Option<i64>,
    /// Why the last attempt failed.
    last_error: Option<&'a str>,
    created: &'a str,
    last_attempt: Option<&'a str>,
    /// When the next attempt is due (pending deliveries only).
    next_attempt: Option<&'a str>,
    /// When it was delivered or given up.
    finished: Option<&'a str>,
}

fn delivery(d: &crate::store::webhooks::Delivery) -> DeliveryView<'_> {
    DeliveryView {
        id: &d.id,
        task_name: &d.task_name,
        task_type: &d.task_type,
        event: &d.event,
        app_name: d.app_name.as_deref(),
        status: &d.status,
        attempts: d.attempts,
        last_status: d.last_status,
        last_error: d.last_error.as_deref(),
        created: &d.created,
        last_attempt: d.last_attempt.as_deref(),
        next_attempt: d.next_attempt.as_deref(),
        finished: d.finished.as_deref(),
    }
}

/// A task (API.md §9); its input and retry bookkeeping stay inside.
#[derive(Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TaskView<'a> {
    name: &'a str,
    #[serde(rename = "type")]
    kind: &'a str,
    #[schemars(extend("enum" = ["submitted", "running", "done", "failed", "expired"]))]
    status: &'a str,
    group: Option<&'a str>,
    app_name: Option<&'a str>,
    build_id: Option<i64>,
    progress: ProgressView,
    #[schemars(with = "Vec<Value>")]
    warnings: &'a [Value],
    #[serde(skip_serializing_if = "Option::is_none")]
    exception: Option<&'a Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    output: Option<&'a Value>,
    attempts: i64,
    created: &'a str,
    started: Option<&'a str>,
    ended: Option<&'a str>,
}

#[derive(Serialize, JsonSchema)]
pub struct ProgressView {
    done: i64,
    total: i64,
}

pub fn task(t: &crate::store::tasks::Task) -> TaskView<'_> {
    TaskView {
        name: &t.name,
        kind: &t.kind,
        status: t.status.as_ref(),
        group: t.group.as_deref(),
        app_name: t.app_name.as_deref(),
        build_id: t.build_id,
        progress: ProgressView { done: t.progress.done, total: t.progress.total },
        warnings: &t.warnings,
        exception: t.exception.as_ref(),
        output: t.output.as_ref(),
        attempts: t.attempts,
        created: &t.created,
        started: t.started.as_deref(),
        ended: t.ended.as_deref(),
    }
}

/// A fresh access + refresh pair (API.md §2.4).
#[derive(Serialize, JsonSchema)]
pub struct SessionView<'a> {
    access: TokenView<'a>,
    id: &'a str,
    refresh: TokenView<'a>,
}

/// A token and when it expires (Unix seconds).
#[derive(Serialize, JsonSchema)]
pub struct TokenView<'a> {
    expires: i64,
    token: &'a str,
}

pub fn session(s: &crate::identity::sessions::SessionTokens) -> SessionView<'_> {
    SessionView {
        access: TokenView { expires: s.access.1, token: &s.access.0 },
        id: &s.id,
        refresh: TokenView { expires: s.refresh.1, token: &s.refresh.0 },
    }
}
