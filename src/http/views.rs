//! How resources look on the wire. Never a hash, never a stored secret.

use serde::Serialize;
use serde_json::{json, Value};

use crate::store::{api_keys::ApiKey, orgs::Org, roles::Role, users::User};

pub fn org(o: &Org) -> Value {
    json!({
        "name": o.name, "label": o.label, "publicKey": o.public_key,
        "users": o.users, "apps": o.apps, "created": o.created, "updated": o.updated,
    })
}

pub fn user(u: &User) -> Value {
    json!({
        "username": u.username, "type": u.kind, "email": u.email, "firstname": u.firstname,
        "surname": u.surname, "title": u.title, "label": u.label, "roles": u.roles,
        "created": u.created, "updated": u.updated, "lastLogin": u.last_login,
    })
}

pub fn role(r: &Role) -> Value {
    json!({
        "name": r.name, "label": r.label, "permissions": r.permissions.to_json(), "builtin": r.builtin,
        "users": r.users, "created": r.created, "updated": r.updated,
    })
}

pub fn api_key(k: &ApiKey) -> Value {
    json!({"apiKeyId": k.id, "username": k.username, "created": k.created, "lastUsed": k.last_used})
}

/// A deployment with every secret shown as `****`.
pub fn deployment(d: &crate::store::deployments::Deployment) -> Value {
    let mut origin = d.origin.clone();
    if d.origin_secret.is_some() {
        origin["secretAccessKey"] = json!(crate::domain::origins::MASK);
    }
    let download_auth = d
        .download_auth_type
        .as_ref()
        .map_or(Value::Null, |kind| json!({"type": kind, "key": crate::domain::origins::MASK}));
    json!({
        "name": d.name, "label": d.label, "originPrefix": d.origin_prefix, "origin": origin,
        "downloadAuth": download_auth, "status": d.status, "message": d.message,
        "created": d.created, "updated": d.updated,
    })
}

/// An app as the API shows it (API.md §8); serialized directly, it is on the hot list path.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AppView<'a> {
    name: &'a str,
    label: &'a str,
    max_builds: i64,
    i_cur_build: i64,
    processing: bool,
    exporting: bool,
    size_bytes: i64,
    status: &'a str,
    error: Option<&'a str>,
    deployments: &'a [String],
    dxf_name: Option<&'a str>,
    builds: Vec<BuildView<'a>>,
    patches: Vec<PatchView>,
    created: &'a str,
    updated: &'a str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BuildView<'a> {
    build_id: i64,
    build_name: Option<&'a str>,
    size_bytes: i64,
    created: &'a str,
}

#[derive(Serialize)]
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
pub fn subscription(s: &crate::store::subscriptions::Subscription) -> Value {
    json!({"name": s.name, "type": s.kind, "url": s.url, "events": s.events, "created": s.created, "updated": s.updated})
}
