//! How resources look on the wire. Never a hash, never a stored secret.

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

pub fn app(a: &crate::store::apps::App) -> Value {
    let builds: Vec<Value> = a
        .builds
        .iter()
        .map(|b| json!({"buildId": b.build_id, "buildName": b.name, "sizeBytes": b.size_bytes, "created": b.created}))
        .collect();
    let patches: Vec<Value> = a
        .patches
        .iter()
        .map(|p| json!({"fromBuildId": p.from_build_id, "toBuildId": p.to_build_id, "sizeBytes": p.size_bytes}))
        .collect();
    json!({
        "name": a.name, "label": a.label, "maxBuilds": a.max_builds, "iCurBuild": a.i_cur_build,
        "processing": a.processing, "exporting": a.exporting, "sizeBytes": a.size_bytes, "status": a.status,
        "error": a.error, "deployments": a.deployments, "dxfName": a.dxf_name, "builds": builds, "patches": patches,
        "created": a.created, "updated": a.updated,
    })
}

/// A subscription; its signing secret is never shown after creation.
pub fn subscription(s: &crate::store::subscriptions::Subscription) -> Value {
    json!({"name": s.name, "type": s.kind, "url": s.url, "events": s.events, "created": s.created, "updated": s.updated})
}
