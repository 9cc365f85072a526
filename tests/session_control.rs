//! Session control (issue 14): `GET /be/v1/sessions` and `DELETE /be/v1/sessions/{id}`, so an
//! administrator can end a lost laptop's session without resetting the password.

mod common;

use common::{send, Reply, Server, Session, PASSWORD};
use serde_json::{json, Value};

fn refresh(server: &Server, token: &str) -> Reply {
    send("POST", &server.url("/be/v1/refresh"), &[("Authorization", &format!("Bearer {token}"))], Some(json!({})))
}

/// The sessions a caller sees, as the list's items.
fn sessions_seen_by(caller: &Session, query: &str) -> Vec<Value> {
    let reply = caller.call("GET", &format!("/be/v1/sessions{query}"), None);
    reply.assert_ok()["sessions"].as_array().expect("a sessions array").clone()
}

fn ids(items: &[Value]) -> Vec<&str> {
    items.iter().filter_map(|s| s["sessionId"].as_str()).collect()
}

#[test]
fn an_administrator_ends_a_lost_laptops_session_and_its_tokens_fail_at_once() {
    let server = Server::start();
    let admin = server.org_admin("acme");
    let laptop = admin.create_user(&server, "roaming", &[]);
    let phone = server.login("acme", "roaming", PASSWORD);
    // The laptop's access token is in the principal cache before the session ends.
    laptop.call("GET", "/be/v1/users/roaming", None).assert_ok();

    let listed = sessions_seen_by(&admin, "?username=roaming");
    let mut seen = ids(&listed);
    seen.sort_unstable();
    let mut expected = vec![laptop.id.as_str(), phone.id.as_str()];
    expected.sort_unstable();
    assert_eq!(seen, expected);

    admin.call("DELETE", &format!("/be/v1/sessions/{}", laptop.id), None).assert_ok();
    laptop.call("GET", "/be/v1/users/roaming", None).assert_error(401, "token-revoked");
    refresh(&server, &laptop.refresh).assert_error(401, "token-revoked");
    // Only that session ended: the phone and the password still work.
    phone.call("GET", "/be/v1/users/roaming", None).assert_ok();
    server.login("acme", "roaming", PASSWORD);
    assert!(!ids(&sessions_seen_by(&admin, "?limit=1000")).contains(&laptop.id.as_str()));
}

#[test]
fn the_sessions_list_shows_who_when_and_where_but_never_a_token() {
    let server = Server::start();
    let admin = server.org_admin("acme");
    let listed = sessions_seen_by(&admin, "");
    assert_eq!(listed.len(), 1, "{listed:?}");
    let session = &listed[0];
    assert_eq!(session["sessionId"], admin.id.as_str());
    assert_eq!(session["username"], "admin");
    assert_eq!(session["client"], "127.0.0.1");
    assert!(session["created"].as_str().is_some_and(|c| !c.is_empty()), "{session}");
    assert_eq!(session["refreshed"], Value::Null, "{session}");
    assert!(session["expires"].as_i64().is_some_and(|e| e > 0), "{session}");
    let text = serde_json::to_string(&listed).unwrap();
    for secret in [&admin.access, &admin.refresh] {
        assert!(!text.contains(secret.as_str()), "a token is shown: {text}");
    }
    assert!(!text.to_lowercase().contains("hash"), "{text}");

    refresh(&server, &admin.refresh).assert_ok();
    let after = sessions_seen_by(&admin, "");
    assert!(after[0]["refreshed"].as_str().is_some_and(|r| !r.is_empty()), "{after:?}");
}

#[test]
fn a_user_without_beusers_rights_sees_and_ends_only_its_own_sessions() {
    let server = Server::start();
    let admin = server.org_admin("acme");
    let first = admin.create_user(&server, "plain", &[]);
    let second = server.login("acme", "plain", PASSWORD);

    let mut seen = ids(&sessions_seen_by(&first, "?limit=1000")).into_iter().map(String::from).collect::<Vec<_>>();
    seen.sort_unstable();
    let mut own = vec![first.id.clone(), second.id.clone()];
    own.sort_unstable();
    assert_eq!(seen, own, "a plain user sees exactly its own sessions");

    let reply = first.call("DELETE", &format!("/be/v1/sessions/{}", admin.id), None);
    reply.assert_error(403, "permission-denied");
    admin.call("GET", "/be/v1/users/admin", None).assert_ok();

    first.call("DELETE", &format!("/be/v1/sessions/{}", second.id), None).assert_ok();
    second.call("GET", "/be/v1/users/plain", None).assert_error(401, "token-revoked");
    first.call("GET", "/be/v1/users/plain", None).assert_ok();
}

#[test]
fn another_organization_neither_sees_nor_ends_a_session() {
    let server = Server::start();
    let admin_a = server.org_admin("org_a");
    let admin_b = server.org_admin("org_b");
    assert_eq!(ids(&sessions_seen_by(&admin_b, "?limit=1000")), [admin_b.id.as_str()]);
    admin_b.call("DELETE", &format!("/be/v1/sessions/{}", admin_a.id), None).assert_error(404, "not-found");
    admin_a.call("GET", "/be/v1/users/admin", None).assert_ok();
}

#[test]
fn an_ended_or_unknown_session_is_not_found() {
    let server = Server::start();
    let password = server.create_org("acme");
    let admin = server.login("acme", "admin", &password);
    let other = server.login("acme", "admin", &password);
    admin.call("DELETE", &format!("/be/v1/sessions/{}", other.id), None).assert_ok();
    admin.call("DELETE", &format!("/be/v1/sessions/{}", other.id), None).assert_error(404, "not-found");
    admin.call("DELETE", "/be/v1/sessions/0123456789abcdef", None).assert_error(404, "not-found");
}
