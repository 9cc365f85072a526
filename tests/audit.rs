//! The audit trail (issue 14): security events with principal and client address, for the
//! organization's Administrators (`GET /be/v1/audit`) and admin-token holders (`/adm/v1/audit`).

mod common;

use std::time::{Duration, Instant};

use common::{send, Server, Session};
use serde_json::{json, Value};

fn events(caller: &Session, query: &str) -> Vec<Value> {
    let reply = caller.call("GET", &format!("/be/v1/audit{query}"), None);
    reply.assert_ok()["audit"].as_array().expect("an audit array").clone()
}

fn box_events(server: &Server, query: &str) -> Vec<Value> {
    let reply = server.admin("GET", &format!("/adm/v1/audit{query}"), None);
    reply.assert_ok()["audit"].as_array().expect("an audit array").clone()
}

fn failed_login(server: &Server, org: &str, username: &str) {
    let body = json!({"username": username, "password": "not the password", "orgName": org});
    send("POST", &server.url("/be/v1/login"), &[], Some(body)).assert_error(401, "invalid-credentials");
}

#[test]
fn logins_and_failed_logins_are_recorded_with_principal_and_client_address() {
    let server = Server::start();
    let admin = server.org_admin("acme");
    failed_login(&server, "acme", "admin");

    let failed = events(&admin, "?event=login.failed");
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert_eq!((&failed[0]["username"], &failed[0]["client"]), (&json!("admin"), &json!("127.0.0.1")));
    let succeeded = events(&admin, "?event=login.succeeded");
    assert_eq!(succeeded.len(), 1, "{succeeded:?}");
    assert_eq!(succeeded[0]["username"], "admin");
    assert!(succeeded[0]["created"].as_str().is_some_and(|c| !c.is_empty()));
}

#[test]
fn ending_a_session_and_creating_an_api_key_are_recorded_with_who_and_what() {
    let server = Server::start();
    let admin = server.org_admin("acme");
    let laptop = admin.create_user(&server, "roaming", &[]);
    admin.call("DELETE", &format!("/be/v1/sessions/{}", laptop.id), None).assert_ok();
    admin.create_machine("deploy_bot", &[]);
    let reply = admin.call("POST", "/be/v1/apikeys", Some(json!({"username": "deploy_bot"})));
    let body = reply.assert_ok();
    let (key, key_id) = (body["apiKey"].as_str().unwrap(), body["apiKeyId"].as_str().unwrap());

    let revoked = events(&admin, "?event=session.revoked");
    assert_eq!(revoked.len(), 1, "{revoked:?}");
    assert_eq!(revoked[0]["username"], "admin");
    assert_eq!(revoked[0]["target"], "roaming");
    assert_eq!(revoked[0]["client"], "127.0.0.1");
    let keys = events(&admin, "?event=apikey.created");
    assert!(
        keys.iter().any(|e| e["target"] == format!("deploy_bot {key_id}").as_str()),
        "no apikey.created for deploy_bot: {keys:?}"
    );
    admin.call("DELETE", &format!("/be/v1/apikeys/{key_id}"), None).assert_ok();
    let deleted = events(&admin, "?event=apikey.deleted");
    assert_eq!(deleted.len(), 1, "{deleted:?}");
    assert_eq!(deleted[0]["target"], format!("deploy_bot {key_id}").as_str());
    let text = serde_json::to_string(&events(&admin, "?limit=1000")).unwrap();
    assert!(!text.contains(key), "the key itself is in the audit trail");
}

#[test]
fn only_administrators_read_the_trail_and_another_organization_sees_none_of_it() {
    let server = Server::start();
    let admin_a = server.org_admin("org_a");
    let everything = admin_a.create_role(
        "all_bits",
        json!({"apps": 15, "deployments": 15, "subscriptions": 15, "tasks": 31, "roles": 15, "beUsers": 15}),
    );
    let almost = admin_a.create_user(&server, "almost_admin", &[&everything]);
    almost.call("GET", "/be/v1/audit", None).assert_error(403, "permission-denied");

    failed_login(&server, "org_a", "almost_admin");
    let admin_b = server.org_admin("org_b");
    let seen_by_b = serde_json::to_string(&events(&admin_b, "?limit=1000")).unwrap();
    assert!(!seen_by_b.contains("almost_admin"), "{seen_by_b}");
    assert!(!seen_by_b.contains("org_a"), "{seen_by_b}");
    assert!(serde_json::to_string(&events(&admin_a, "?limit=1000")).unwrap().contains("almost_admin"));
}

#[test]
fn the_trail_filters_by_event_username_and_creation_time() {
    let server = Server::start();
    let admin = server.org_admin("acme");
    admin.create_user(&server, "second_user", &[]);
    failed_login(&server, "acme", "second_user");

    let by_name = events(&admin, "?username=second");
    assert!(!by_name.is_empty() && by_name.iter().all(|e| e["username"] == "second_user"), "{by_name:?}");
    assert!(events(&admin, "?createdAfter=2999-01-01T00:00:00Z").is_empty());
    assert_eq!(
        events(&admin, "?createdAfter=2000-01-01T00:00:00%2B02:00&limit=1000").len(),
        events(&admin, "?limit=1000").len()
    );
    admin.call("GET", "/be/v1/audit?createdAfter=yesterday", None).assert_error(400, "invalid-param");
    admin.call("GET", "/be/v1/audit?createdAfter=", None).assert_error(400, "invalid-param");
}

#[test]
fn organizations_created_and_deleted_are_box_wide_events_for_the_admin_token() {
    let server = Server::start();
    let admin = server.org_admin("acme");
    server.create_org("doomed");
    server.admin("DELETE", "/adm/v1/orgs/doomed", None).assert_ok();

    let created = box_events(&server, "?event=org.created&limit=1000");
    let targets: Vec<&str> = created.iter().filter_map(|e| e["target"].as_str()).collect();
    assert!(targets.contains(&"acme") && targets.contains(&"doomed"), "{created:?}");
    assert!(created.iter().all(|e| e["username"] == "admin-token:tests"), "{created:?}");
    let deleted = box_events(&server, "?event=org.deleted");
    assert_eq!(deleted.len(), 1, "{deleted:?}");
    assert_eq!(deleted[0]["target"], "doomed");
    // Box-wide events are not an organization's, and the admin list needs the admin token.
    assert!(events(&admin, "?event=org.created").is_empty());
    let anonymous = send("GET", &server.url("/adm/v1/audit"), &[], None);
    assert_eq!(anonymous.status, 401, "{:?}", anonymous.body);
}

#[test]
fn events_older_than_the_retention_are_removed() {
    let server = Server::start_with(&[("ROCKIT_EDGE_AUDIT_RETENTION", "2s")]);
    server.create_org("acme");
    assert_eq!(box_events(&server, "?event=org.created").len(), 1);
    // Reading the box-wide trail records nothing, so it empties once housekeeping has run.
    let deadline = Instant::now() + Duration::from_secs(120);
    while !box_events(&server, "?event=org.created").is_empty() {
        assert!(Instant::now() < deadline, "org.created is still in the trail past audit_retention");
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// Polls the server log until a line satisfies `wanted` (the access log is written in batches).
fn log_line(server: &Server, wanted: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(line) = server.log().lines().find(|l| wanted(l)) {
            return line.to_string();
        }
        assert!(Instant::now() < deadline, "no such access line in:\n{}", server.log());
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn access_log_lines_name_the_principal_and_the_client_address() {
    let server = Server::start();
    let admin = server.org_admin("acme");
    admin.call("GET", "/be/v1/users/admin", None).assert_ok();
    server.admin("GET", "/srv/v1/versions", None).assert_ok();
    send("GET", &server.url("/be/v1/users/admin"), &[], None).assert_error(401, "token-missing");

    let member = log_line(&server, |l| l.contains("access] GET /be/v1/users/{username} 200"));
    assert!(member.ends_with(" 127.0.0.1 acme/admin"), "{member}");
    let admin_line = log_line(&server, |l| l.contains("access] GET /srv/v1/versions 200"));
    assert!(admin_line.ends_with(" 127.0.0.1 admin-token:tests"), "{admin_line}");
    let anonymous = log_line(&server, |l| l.contains("access] GET /be/v1/users/{username} 401"));
    assert!(anonymous.ends_with(" 127.0.0.1 -"), "{anonymous}");
}

// Issue 14's remaining gaps: rights, accounts, credentials, maintenance and admin-token
// revocation, each with who did it and from where.

/// The one event of this kind, checked to name the actor `admin` acting from loopback.
fn only_event_by_admin(caller: &Session, event: &str) -> Value {
    let found = events(caller, &format!("?event={event}&limit=1000"));
    assert_eq!(found.len(), 1, "{event}: {found:?}");
    assert_eq!((&found[0]["username"], &found[0]["client"]), (&json!("admin"), &json!("127.0.0.1")), "{found:?}");
    common::assert_timestamp(&found[0]["created"]);
    found[0].clone()
}

#[test]
fn creating_a_role_is_recorded_with_what_it_grants() {
    let server = Server::start();
    let admin = server.org_admin("acme");
    admin.create_role("builders", json!({"apps": 15, "tasks": 2}));
    assert_eq!(only_event_by_admin(&admin, "role.created")["target"], "builders apps=15 tasks=2");
}

#[test]
fn changing_a_roles_permissions_is_recorded_with_before_and_after() {
    let server = Server::start();
    let admin = server.org_admin("acme");
    admin.create_role("builders", json!({"apps": 15}));
    let change = json!({"name": "builders", "permissions": {"apps": 2, "roles": 2}});
    admin.call("PATCH", "/be/v1/roles", Some(change)).assert_ok();
    assert_eq!(only_event_by_admin(&admin, "role.changed")["target"], "builders apps=15 -> apps=2 roles=2");
}

#[test]
fn deleting_a_role_is_recorded() {
    let server = Server::start();
    let admin = server.org_admin("acme");
    admin.create_role("temporary", json!({}));
    admin.call("DELETE", "/be/v1/roles/temporary", None).assert_ok();
    assert_eq!(only_event_by_admin(&admin, "role.deleted")["target"], "temporary");
}

#[test]
fn creating_a_user_is_recorded_with_its_roles() {
    let server = Server::start();
    let admin = server.org_admin("acme");
    let role = admin.create_role("readers", json!({"apps": 2}));
    admin.create_user(&server, "newcomer", &[&role]);
    assert_eq!(only_event_by_admin(&admin, "user.created")["target"], "newcomer roles=[readers]");
}

#[test]
fn deleting_a_user_is_recorded() {
    let server = Server::start();
    let admin = server.org_admin("acme");
    admin.create_user(&server, "leaver", &[]);
    admin.call("DELETE", "/be/v1/users/leaver", None).assert_ok();
    assert_eq!(only_event_by_admin(&admin, "user.deleted")["target"], "leaver");
}

#[test]
fn changing_a_users_roles_is_recorded_with_the_new_roles() {
    let server = Server::start();
    let admin = server.org_admin("acme");
    let role = admin.create_role("deployers", json!({"deployments": 15}));
    admin.create_user(&server, "promoted", &[]);
    admin.call("PATCH", "/be/v1/users", Some(json!({"username": "promoted", "roles": [role]}))).assert_ok();
    assert_eq!(only_event_by_admin(&admin, "user.roles.changed")["target"], "promoted roles=[deployers]");
    // A profile change alone is not a rights change.
    admin.call("PATCH", "/be/v1/users", Some(json!({"username": "promoted", "title": "Dr"}))).assert_ok();
    assert_eq!(events(&admin, "?event=user.roles.changed").len(), 1);
}

#[test]
fn the_api_key_of_a_new_machine_account_is_recorded() {
    let server = Server::start();
    let admin = server.org_admin("acme");
    let bot = admin.create_machine("ci_bot", &[]);
    let created = only_event_by_admin(&admin, "apikey.created");
    assert_eq!(created["target"], format!("ci_bot {}", bot.key_id).as_str());
    assert!(!serde_json::to_string(&events(&admin, "?limit=1000")).unwrap().contains(&bot.key));
}

#[test]
fn reset_credentials_is_recorded_and_a_machines_new_key_with_it() {
    let server = Server::start();
    let admin = server.org_admin("acme");
    admin.create_user(&server, "forgetful", &[]);
    admin.call("PATCH", "/be/v1/users", Some(json!({"username": "forgetful", "resetCreds": true}))).assert_ok();
    assert_eq!(only_event_by_admin(&admin, "credentials.reset")["target"], "forgetful");

    admin.create_machine("leaky_bot", &[]);
    let reply = admin.call("PATCH", "/be/v1/users", Some(json!({"username": "leaky_bot", "resetCreds": true})));
    let new_key_id = reply.assert_ok()["apiKeyId"].as_str().unwrap().to_string();
    let resets = events(&admin, "?event=credentials.reset");
    assert!(resets.iter().any(|e| e["target"] == "leaky_bot"), "{resets:?}");
    let keys = events(&admin, "?event=apikey.created&limit=1000");
    assert!(keys.iter().any(|e| e["target"] == format!("leaky_bot {new_key_id}").as_str()), "{keys:?}");
}

#[test]
fn switching_maintenance_on_and_off_is_a_box_wide_event_with_the_admin_and_address() {
    let server = Server::start();
    let on = json!({"enabled": true, "message": "upgrading", "retryAfter": 60});
    server.admin("POST", "/srv/v1/maintenance", Some(on)).assert_ok();
    server.admin("POST", "/srv/v1/maintenance", Some(json!({"enabled": false}))).assert_ok();
    for event in ["maintenance.on", "maintenance.off"] {
        let found = box_events(&server, &format!("?event={event}"));
        assert_eq!(found.len(), 1, "{event}: {found:?}");
        assert_eq!((&found[0]["username"], &found[0]["client"]), (&json!("admin-token:tests"), &json!("127.0.0.1")));
    }
}

#[test]
fn revoking_admin_tokens_from_the_command_line_is_a_box_wide_event_naming_the_os_user() {
    let server = Server::start();
    let out = server.cli(&["admin-token", "--name", "ops", "--revoke"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(!String::from_utf8_lossy(&out.stderr).contains("warning"), "{}", String::from_utf8_lossy(&out.stderr));
    let found = box_events(&server, "?event=admintoken.revoked");
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(found[0]["username"].as_str().unwrap().starts_with("cli:"), "{found:?}");
    assert_eq!(found[0]["client"], "local");
    assert!(found[0]["target"].as_str().unwrap().starts_with("ops before "), "{found:?}");
}
