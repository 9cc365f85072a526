//! How resources look on the wire. Never a hash, never a stored secret.

use serde_json::{json, Value};

use crate::store::{api_keys::ApiKey, orgs::Org, roles::Role, users::User};

pub fn org(o: &Org) -> Value {
    json!({
        "name": o.name, "label": o.label, "publicKey": o.public_key,
        "users": o.users, "created": o.created, "updated": o.updated,
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
