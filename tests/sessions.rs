//! Login, sessions and credentials (API.md §2, §5): org selection, refresh rotation and reuse
//! detection, logout, revocation on the very next request, expiry, failed-login rate limiting,
//! password hashes and the rules for combining credentials.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::{send, Reply, Server, Session, PASSWORD};
use serde_json::{json, Value};

// ---------------------------------------------------------------------------------------------
// Helpers

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

/// `POST /be/v1/login` with a body and extra headers.
fn login_request(server: &Server, headers: &[(&str, &str)], body: Value) -> Reply {
    send("POST", &server.url("/be/v1/login"), headers, Some(body))
}

/// The first step: username + password, no organization.
fn password_login(server: &Server, username: &str, password: &str) -> Reply {
    login_request(server, &[], json!({"username": username, "password": password}))
}

/// The organization selection token of a successful password login.
fn org_selection_token(server: &Server, username: &str, password: &str) -> String {
    password_login(server, username, password).assert_ok()["orgSelection"]["token"].as_str().unwrap().to_string()
}

/// The shortcut login (username + password + orgName) from a given client address, as a trusted
/// proxy would report it.
fn login_from(server: &Server, forwarded_for: &str, username: &str, password: &str) -> Reply {
    login_request(
        server,
        &[("X-Forwarded-For", forwarded_for)],
        json!({"username": username, "password": password, "orgName": "acme"}),
    )
}

/// `POST` to a `/be/v1` auth endpoint with `Authorization: Bearer <token>`.
fn post_with_token(server: &Server, path: &str, token: &str, body: Option<Value>) -> Reply {
    send("POST", &server.url(path), &[("Authorization", &bearer(token))], body)
}

fn refresh(server: &Server, token: &str) -> Reply {
    post_with_token(server, "/be/v1/refresh", token, Some(json!({})))
}

fn logout(server: &Server, token: &str) -> Reply {
    post_with_token(server, "/be/v1/logout", token, None)
}

/// `GET` with any token as a Bearer access token.
fn get_with_token(server: &Server, path: &str, token: &str) -> Reply {
    send("GET", &server.url(path), &[("Authorization", &bearer(token))], None)
}

/// Checks that `session` has exactly the §2.4 shape and answers it.
#[track_caller]
fn assert_session_shape(session: &Value) -> &Value {
    let keys = |v: &Value| v.as_object().map(|o| o.keys().cloned().collect::<Vec<_>>()).unwrap_or_default();
    assert_eq!(keys(session), ["access", "id", "refresh"], "{session}");
    for kind in ["access", "refresh"] {
        assert_eq!(keys(&session[kind]), ["expires", "token"], "{session}");
        assert!(session[kind]["token"].as_str().is_some_and(|t| t.split('.').count() == 3), "{session}");
        assert!(session[kind]["expires"].as_i64().is_some_and(|e| e > unix_now() as i64), "{session}");
    }
    assert!(session["id"].as_str().is_some_and(|id| !id.is_empty()), "{session}");
    session
}

/// A `Session` from a successful login or refresh answer.
fn session_from(server: &Server, org: &str, username: &str, reply: &Reply) -> Session {
    let session = assert_session_shape(&reply.assert_ok()["session"]);
    Session {
        base: server.base.clone(),
        access: session["access"]["token"].as_str().unwrap().to_string(),
        refresh: session["refresh"]["token"].as_str().unwrap().to_string(),
        id: session["id"].as_str().unwrap().to_string(),
        org: org.to_string(),
        username: username.to_string(),
    }
}

fn unix_now() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs_f64()
}

/// Sleeps until the Unix time `at` (fractional seconds).
fn sleep_until(at: f64) {
    let wait = at - unix_now();
    if wait > 0.0 {
        std::thread::sleep(Duration::from_secs_f64(wait));
    }
}

/// Sleeps until the whole second after `expires` has begun, so the token is expired under any
/// reading of `exp` (the exact boundary has its own test).
fn sleep_past(expires: i64) {
    sleep_until(expires as f64 + 1.1);
}

fn median(mut values: Vec<Duration>) -> Duration {
    values.sort();
    values[values.len() / 2]
}

fn timed(f: impl FnOnce() -> Reply) -> (Duration, Reply) {
    let start = Instant::now();
    let reply = f();
    (start.elapsed(), reply)
}

/// The administrator's permissions: every resource of API.md §3 at its maximum.
fn all_permissions() -> Value {
    json!({
        "apps": 15, "beUsers": 15, "bundles": 15, "consumption": 2, "dependencies": 15,
        "deployments": 15, "keys": 15, "roles": 15, "sources": 15, "subscriptions": 15,
        "tasks": 31, "trainings": 6,
    })
}

fn stored_password_hash(server: &Server, org: &str, username: &str) -> String {
    let db = rusqlite::Connection::open_with_flags(server.database(), rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
        .expect("open database");
    db.query_row(
        "SELECT u.password_hash FROM users u JOIN orgs o ON o.id = u.org_id WHERE o.name = ?1 AND u.username = ?2",
        [org, username],
        |row| row.get(0),
    )
    .expect("stored hash")
}

/// A second server process on an existing state directory with different settings (the
/// fixture's `restart` keeps the settings of the first start).
struct OtherProcess {
    child: Child,
    base: String,
}

impl OtherProcess {
    fn start(server: &Server, env: &[(&str, &str)]) -> OtherProcess {
        let env: Vec<(String, String)> = env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let mut child = common::command(&server.state_dir, &env)
            .args(["serve", "--listen", "127.0.0.1:0"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn rockit-edge");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let base = lines
            .by_ref()
            .map_while(Result::ok)
            .find_map(|line| line.split_whitespace().find(|w| w.starts_with("http://")).map(str::to_string))
            .expect("server announces its address");
        // Keep draining stdout so the server never blocks on a full pipe.
        std::thread::spawn(move || lines.map_while(Result::ok).for_each(drop));
        OtherProcess { child, base }
    }
}

impl Drop for OtherProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ---------------------------------------------------------------------------------------------
// 1. Login in two steps

#[test]
fn a_password_login_lists_exactly_the_orgs_where_that_password_matches() {
    let server = Server::start();
    let acme_pw = server.create_org("acme");
    let globex_pw = server.create_org("globex");
    assert_ne!(acme_pw, globex_pw);

    let reply = password_login(&server, "admin", &acme_pw);
    let body = reply.assert_ok();
    assert_eq!(body["orgs"], json!([{"name": "acme", "label": "acme label"}]));
    assert!(body["orgSelection"]["token"].as_str().is_some_and(|t| t.split('.').count() == 3), "{body}");
    assert!(body["orgSelection"]["expires"].as_i64().is_some_and(|e| e > unix_now() as i64), "{body}");

    let body = password_login(&server, "admin", &globex_pw).assert_ok().clone();
    assert_eq!(body["orgs"], json!([{"name": "globex", "label": "globex label"}]));

    // The same username with the same password in two organizations: both are listed.
    for (org, pw) in [("acme", &acme_pw), ("globex", &globex_pw)] {
        server.login(org, "admin", pw).create_user(&server, "dave", &[]);
    }
    let body = password_login(&server, "dave", PASSWORD).assert_ok().clone();
    let mut names: Vec<_> = body["orgs"].as_array().unwrap().iter().map(|o| o["name"].as_str().unwrap()).collect();
    names.sort();
    assert_eq!(names, ["acme", "globex"]);
}

#[test]
fn the_org_selection_token_opens_a_session_with_user_and_permissions() {
    let server = Server::start();
    let password = server.create_org("acme");
    let selection = org_selection_token(&server, "admin", &password);

    let reply = login_request(&server, &[("Authorization", &bearer(&selection))], json!({"orgName": "acme"}));
    let body = reply.assert_ok();
    assert_session_shape(&body["session"]);
    assert_eq!(body["user"]["username"], "admin", "{body}");
    assert_eq!(body["permissions"], all_permissions());
    assert!(!body.to_string().contains("pbkdf2"), "a password hash leaked: {body}");

    // The session works.
    let session = session_from(&server, "acme", "admin", &reply);
    session.call("GET", "/be/v1/users/admin", None).assert_ok();
}

#[test]
fn an_org_selection_token_does_not_open_an_org_where_the_password_did_not_match() {
    let server = Server::start();
    let acme_pw = server.create_org("acme");
    server.create_org("globex");
    let selection = org_selection_token(&server, "admin", &acme_pw);

    let reply = login_request(&server, &[("Authorization", &bearer(&selection))], json!({"orgName": "globex"}));
    reply.assert_error(404, "not-found");
    assert_eq!(reply.body["resource"], "org", "{:?}", reply.body);
}

#[test]
fn the_shortcut_login_works_without_a_header_and_answers_the_same() {
    let server = Server::start();
    let password = server.create_org("acme");
    let reply = login_request(&server, &[], json!({"username": "admin", "password": password, "orgName": "acme"}));
    let body = reply.assert_ok();
    assert_session_shape(&body["session"]);
    assert_eq!(body["user"]["username"], "admin");
    assert_eq!(body["permissions"], all_permissions());
    assert!(!body.to_string().contains("pbkdf2"), "a password hash leaked: {body}");
}

// ---------------------------------------------------------------------------------------------
// 2. Failed logins look alike

#[test]
fn unknown_user_and_wrong_password_get_identical_answers() {
    let server = Server::start();
    server.create_org("acme");
    let unknown = password_login(&server, "nobody", "whatever-password");
    let wrong = password_login(&server, "admin", "whatever-password");
    unknown.assert_error(401, "invalid-credentials");
    wrong.assert_error(401, "invalid-credentials");
    assert_eq!(unknown.body, wrong.body);

    // The shortcut form too.
    let body = |user: &str| json!({"username": user, "password": "whatever-password", "orgName": "acme"});
    let unknown = login_request(&server, &[], body("nobody"));
    let wrong = login_request(&server, &[], body("admin"));
    unknown.assert_error(401, "invalid-credentials");
    assert_eq!(unknown.body, wrong.body);
}

#[test]
fn unknown_user_and_wrong_password_take_similar_time() {
    let server =
        Server::start_with(&[("ROCKIT_EDGE_PBKDF2_ITERATIONS", "200000"), ("ROCKIT_EDGE_LOGIN_MAX_FAILURES", "1000")]);
    server.create_org("acme");
    let unknown = || password_login(&server, "nobody_at_all", "not-the-password");
    let wrong = || password_login(&server, "admin", "not-the-password");
    // Warm up both paths once.
    unknown().assert_error(401, "invalid-credentials");
    wrong().assert_error(401, "invalid-credentials");

    let (mut unknown_times, mut wrong_times) = (Vec::new(), Vec::new());
    for _ in 0..6 {
        let (time, reply) = timed(unknown);
        reply.assert_error(401, "invalid-credentials");
        unknown_times.push(time);
        let (time, reply) = timed(wrong);
        reply.assert_error(401, "invalid-credentials");
        wrong_times.push(time);
    }
    let (unknown, wrong) = (median(unknown_times), median(wrong_times));
    let ratio = unknown.as_secs_f64() / wrong.as_secs_f64();
    assert!((0.4..=2.5).contains(&ratio), "unknown user {unknown:?} vs wrong password {wrong:?} (ratio {ratio:.2})");
}

// ---------------------------------------------------------------------------------------------
// 3. Refresh

#[test]
fn a_refresh_gives_new_tokens_for_the_same_session() {
    let server = Server::start();
    let first = server.org_admin("acme");

    let second = session_from(&server, "acme", "admin", &refresh(&server, &first.refresh));
    assert_eq!(second.id, first.id);
    // The access token may come out byte-identical when refreshed within the login's second
    // (same claims); the refresh token must always be new.
    assert_ne!(second.refresh, first.refresh);
    second.call("GET", "/be/v1/users/admin", None).assert_ok();

    // An empty body is accepted too.
    let reply = send("POST", &server.url("/be/v1/refresh"), &[("Authorization", &bearer(&second.refresh))], None);
    let third = session_from(&server, "acme", "admin", &reply);
    assert_eq!(third.id, first.id);
    assert_ne!(third.refresh, second.refresh);
    third.call("GET", "/be/v1/users/admin", None).assert_ok();
}

#[test]
fn a_reused_refresh_token_revokes_the_whole_session() {
    let server = Server::start();
    let first = server.org_admin("acme");
    let second = session_from(&server, "acme", "admin", &refresh(&server, &first.refresh));
    let newest = session_from(&server, "acme", "admin", &refresh(&server, &second.refresh));
    newest.call("GET", "/be/v1/users/admin", None).assert_ok();

    refresh(&server, &first.refresh).assert_error(401, "token-revoked");
    refresh(&server, &newest.refresh).assert_error(401, "token-revoked");
    newest.call("GET", "/be/v1/users/admin", None).assert_error(401, "token-revoked");
}

#[test]
fn a_refresh_without_a_token_is_missing_param() {
    let server = Server::start();
    send("POST", &server.url("/be/v1/refresh"), &[], Some(json!({}))).assert_error(400, "missing-param");
}

#[test]
fn a_token_of_the_wrong_kind_is_token_invalid() {
    let server = Server::start();
    let password = server.create_org("acme");
    let session = server.login("acme", "admin", &password);
    let selection = org_selection_token(&server, "admin", &password);

    refresh(&server, &session.access).assert_error(401, "token-invalid");
    get_with_token(&server, "/be/v1/users/admin", &session.refresh).assert_error(401, "token-invalid");
    get_with_token(&server, "/be/v1/users/admin", &selection).assert_error(401, "token-invalid");
    // None of that harmed the session.
    session.call("GET", "/be/v1/users/admin", None).assert_ok();
}

// ---------------------------------------------------------------------------------------------
// 4. Concurrent refreshes

#[test]
fn concurrent_refreshes_with_one_token_succeed_exactly_once() {
    let server = Server::start();
    let session = server.org_admin("acme");
    let barrier = Arc::new(Barrier::new(8));
    let replies: Vec<Reply> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..8)
            .map(|_| {
                let (barrier, server, token) = (barrier.clone(), &server, session.refresh.as_str());
                scope.spawn(move || {
                    barrier.wait();
                    refresh(server, token)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let successes = replies.iter().filter(|r| r.status == 200).count();
    assert_eq!(successes, 1, "{:?}", replies.iter().map(|r| (r.status, r.error().to_string())).collect::<Vec<_>>());
    for reply in replies.iter().filter(|r| r.status != 200) {
        reply.assert_error(401, "token-revoked");
    }
}

// ---------------------------------------------------------------------------------------------
// 5. Logout

#[test]
fn logout_ends_the_session_and_a_second_logout_is_token_revoked() {
    let server = Server::start();
    let session = server.org_admin("acme");
    assert_eq!(logout(&server, &session.access).assert_ok(), &json!({"status": "success"}));
    session.call("GET", "/be/v1/users/admin", None).assert_error(401, "token-revoked");
    refresh(&server, &session.refresh).assert_error(401, "token-revoked");
    logout(&server, &session.access).assert_error(401, "token-revoked");
}

#[test]
fn logout_with_the_refresh_token_ends_the_session_too() {
    let server = Server::start();
    let session = server.org_admin("acme");
    logout(&server, &session.refresh).assert_ok();
    session.call("GET", "/be/v1/users/admin", None).assert_error(401, "token-revoked");
    refresh(&server, &session.refresh).assert_error(401, "token-revoked");
    logout(&server, &session.refresh).assert_error(401, "token-revoked");
}

// ---------------------------------------------------------------------------------------------
// 6. Revocation on the very next request

#[test]
fn a_deleted_users_access_token_is_revoked_at_once() {
    let server = Server::start();
    let admin = server.org_admin("acme");
    let bob = admin.create_user(&server, "bob", &[]);
    bob.call("GET", "/be/v1/users/bob", None).assert_ok();
    admin.call("DELETE", "/be/v1/users/bob", None).assert_ok();
    bob.call("GET", "/be/v1/users/bob", None).assert_error(401, "token-revoked");
}

#[test]
fn removing_a_users_role_takes_effect_on_the_next_request() {
    let server = Server::start();
    let admin = server.org_admin("acme");
    admin.create_role("viewer", json!({"roles": 2}));
    let bob = admin.create_user(&server, "bob", &["viewer"]);
    bob.call("GET", "/be/v1/roles", None).assert_ok();
    admin.call("PATCH", "/be/v1/users", Some(json!({"username": "bob", "roles": []}))).assert_ok();
    bob.call("GET", "/be/v1/roles", None).assert_error(403, "permission-denied");
}

#[test]
fn emptying_a_roles_permissions_takes_effect_on_the_next_request() {
    let server = Server::start();
    let admin = server.org_admin("acme");
    admin.create_role("viewer", json!({"roles": 2}));
    let bob = admin.create_user(&server, "bob", &["viewer"]);
    bob.call("GET", "/be/v1/roles", None).assert_ok();
    admin.call("PATCH", "/be/v1/roles", Some(json!({"name": "viewer", "permissions": {}}))).assert_ok();
    bob.call("GET", "/be/v1/roles", None).assert_error(403, "permission-denied");
}

#[test]
fn me_answers_the_callers_account_and_the_permissions_its_roles_grant_now() {
    let server = Server::start();
    let admin = server.org_admin("acme");
    admin.create_role("viewer", json!({"roles": 2, "apps": 6}));
    let bob = admin.create_user(&server, "bob", &["viewer"]);
    let me = bob.call("GET", "/be/v1/me", None).assert_ok().clone();
    assert_eq!((me["user"]["username"].clone(), me["orgName"].clone()), (json!("bob"), json!("acme")));
    assert_eq!((me["permissions"]["roles"].clone(), me["permissions"]["apps"].clone()), (json!(2), json!(6)));
    assert_eq!(me["permissions"]["beUsers"], 0);
    // A role change shows on the next call, without a new login.
    admin.call("PATCH", "/be/v1/roles", Some(json!({"name": "viewer", "permissions": {"apps": 2}}))).assert_ok();
    let me = bob.call("GET", "/be/v1/me", None).assert_ok().clone();
    assert_eq!((me["permissions"]["roles"].clone(), me["permissions"]["apps"].clone()), (json!(0), json!(2)));
    // A machine account with an API key asks the same way.
    let bot = admin.create_machine("bot", &["viewer"]);
    let me = bot.call("GET", "/be/v1/me", None).assert_ok().clone();
    assert_eq!((me["user"]["type"].clone(), me["permissions"]["apps"].clone()), (json!("machine"), json!(2)));
}

#[test]
fn me_without_credentials_is_refused() {
    let server = Server::start();
    common::send("GET", &server.url("/be/v1/me"), &[], None).assert_error(401, "token-missing");
}

#[test]
fn a_credential_reset_revokes_the_users_sessions_and_old_password() {
    let server = Server::start();
    let admin = server.org_admin("acme");
    let bob = admin.create_user(&server, "bob", &[]);
    let reply = admin.call("PATCH", "/be/v1/users", Some(json!({"username": "bob", "resetCreds": true})));
    let new_password = reply.assert_ok()["initialPassword"].as_str().expect("initialPassword").to_string();
    assert_ne!(new_password, PASSWORD);

    bob.call("GET", "/be/v1/users/bob", None).assert_error(401, "token-revoked");
    password_login(&server, "bob", PASSWORD).assert_error(401, "invalid-credentials");
    server.login("acme", "bob", &new_password).call("GET", "/be/v1/users/bob", None).assert_ok();
}

#[test]
fn an_own_password_change_revokes_the_other_sessions_but_not_the_current_one() {
    let server = Server::start();
    let admin = server.org_admin("acme");
    let s1 = admin.create_user(&server, "bob", &[]);
    let s2 = server.login("acme", "bob", PASSWORD);
    let change = |old: &str, new: &str| s1.call("PATCH", "/be/v1/users", Some(json!({"oldPW": old, "newPW": new})));

    // A wrong current password is well-formed, so not a 400 (no schema can know it), and not a
    // 401, which would tell clients that their session is gone.
    let reply = change("not-my-password", "a-brand-new-password");
    reply.assert_error(403, "permission-denied");
    assert_eq!(reply.body["param"], "oldPW", "{:?}", reply.body);
    let reply = change(PASSWORD, "short");
    reply.assert_error(400, "invalid-param");
    assert_eq!(reply.body["param"], "newPW", "{:?}", reply.body);
    // Refused changes revoke nothing.
    s2.call("GET", "/be/v1/users/bob", None).assert_ok();

    change(PASSWORD, "a-brand-new-password").assert_ok();
    s2.call("GET", "/be/v1/users/bob", None).assert_error(401, "token-revoked");
    refresh(&server, &s2.refresh).assert_error(401, "token-revoked");
    s1.call("GET", "/be/v1/users/bob", None).assert_ok();
    let s1 = session_from(&server, "acme", "bob", &refresh(&server, &s1.refresh));
    s1.call("GET", "/be/v1/users/bob", None).assert_ok();

    password_login(&server, "bob", PASSWORD).assert_error(401, "invalid-credentials");
    server.login("acme", "bob", "a-brand-new-password");
}

// ---------------------------------------------------------------------------------------------
// 7. Expiry

#[test]
fn an_expired_access_token_is_token_expired_and_refresh_still_works() {
    let server = Server::start_with(&[("ROCKIT_EDGE_ACCESS_TTL", "2s")]);
    let password = server.create_org("acme");
    let reply = login_request(&server, &[], json!({"username": "admin", "password": password, "orgName": "acme"}));
    let session = session_from(&server, "acme", "admin", &reply);
    session.call("GET", "/be/v1/users/admin", None).assert_ok();

    sleep_past(reply.body["session"]["access"]["expires"].as_i64().unwrap());
    session.call("GET", "/be/v1/users/admin", None).assert_error(401, "token-expired");
    let renewed = session_from(&server, "acme", "admin", &refresh(&server, &session.refresh));
    renewed.call("GET", "/be/v1/users/admin", None).assert_ok();
}

#[test]
fn an_expired_refresh_token_is_token_expired_and_its_session_is_removed() {
    let server = Server::start_with(&[("ROCKIT_EDGE_REFRESH_TTL", "2s")]);
    let password = server.create_org("acme");
    let reply = login_request(&server, &[], json!({"username": "admin", "password": password, "orgName": "acme"}));
    let session = session_from(&server, "acme", "admin", &reply);

    sleep_past(reply.body["session"]["refresh"]["expires"].as_i64().unwrap());
    refresh(&server, &session.refresh).assert_error(401, "token-expired");

    let server = server.restart();
    let db = rusqlite::Connection::open_with_flags(server.database(), rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
        .expect("open database");
    let rows: i64 =
        db.query_row("SELECT count(*) FROM sessions WHERE id = ?1", [&session.id], |row| row.get(0)).unwrap();
    assert_eq!(rows, 0, "expired session {} is still stored", session.id);
}

#[test]
fn tokens_are_refused_from_the_second_named_in_expires() {
    // RFC 7519 §4.1.4: `exp` is the time "on or after which" a token must not be accepted.
    let server = Server::start_with(&[("ROCKIT_EDGE_ACCESS_TTL", "2s"), ("ROCKIT_EDGE_REFRESH_TTL", "2s")]);
    let password = server.create_org("acme");
    let reply = login_request(&server, &[], json!({"username": "admin", "password": password, "orgName": "acme"}));
    let session = session_from(&server, "acme", "admin", &reply);
    let expires = |kind: &str| reply.body["session"][kind]["expires"].as_i64().unwrap();

    sleep_until(expires("access").max(expires("refresh")) as f64 + 0.2);
    let access = session.call("GET", "/be/v1/users/admin", None);
    let refreshed = refresh(&server, &session.refresh);
    assert_eq!(
        [(access.status, access.error()), (refreshed.status, refreshed.error())],
        [(401, "token-expired"), (401, "token-expired")],
        "tokens still accepted at {:.1}, after their expires {}/{}",
        unix_now(),
        expires("access"),
        expires("refresh"),
    );
}

// ---------------------------------------------------------------------------------------------
// 8. Rate limiting of failed logins

#[test]
fn failed_logins_for_one_account_are_rate_limited_until_the_window_passes() {
    let server = Server::start_with(&[("ROCKIT_EDGE_LOGIN_WINDOW", "2s")]);
    let password = server.create_org("acme");
    let started = Instant::now();
    for _ in 0..5 {
        password_login(&server, "admin", "not-the-password").assert_error(401, "invalid-credentials");
    }
    for pw in ["not-the-password", password.as_str()] {
        let reply = password_login(&server, "admin", pw);
        reply.assert_error(429, "rate-limited");
        let retry_after: u64 = reply.retry_after.as_deref().and_then(|v| v.parse().ok()).expect("Retry-After seconds");
        assert!((1..=2).contains(&retry_after), "Retry-After {retry_after}");
    }
    // No permanent lock-out: once the window has passed the right password works again.
    std::thread::sleep(Duration::from_millis(2300).saturating_sub(started.elapsed()));
    password_login(&server, "admin", &password).assert_ok();
    server.login("acme", "admin", &password);
}

#[test]
fn failed_logins_from_one_address_are_limited_across_usernames() {
    let server = Server::start_with(&[("ROCKIT_EDGE_LOGIN_MAX_FAILURES", "3")]);
    server.create_org("acme");
    for user in ["guess1", "guess2", "guess3"] {
        password_login(&server, user, "not-the-password").assert_error(401, "invalid-credentials");
    }
    let reply = password_login(&server, "guess4", "not-the-password");
    reply.assert_error(429, "rate-limited");
    assert!(reply.retry_after.is_some(), "429 without Retry-After");
}

/// Three failures from 10.1.1.1 (a new username each time), then one attempt from each address.
fn failures_from_one_forwarded_address(server: &Server) -> (Reply, Reply) {
    for user in ["guess1", "guess2", "guess3"] {
        login_from(server, "10.1.1.1", user, "not-the-password").assert_error(401, "invalid-credentials");
    }
    let same = login_from(server, "10.1.1.1", "guess4", "not-the-password");
    let other = login_from(server, "10.2.2.2", "guess5", "not-the-password");
    (same, other)
}

#[test]
fn behind_a_trusted_proxy_the_forwarded_address_is_the_client() {
    let server =
        Server::start_with(&[("ROCKIT_EDGE_LOGIN_MAX_FAILURES", "3"), ("ROCKIT_EDGE_TRUSTED_PROXIES", "127.0.0.1")]);
    let password = server.create_org("acme");
    let (same, other) = failures_from_one_forwarded_address(&server);
    same.assert_error(429, "rate-limited");
    other.assert_error(401, "invalid-credentials");
    login_from(&server, "10.2.2.2", "admin", &password).assert_ok();
}

#[test]
fn without_trusted_proxies_x_forwarded_for_is_ignored() {
    let server = Server::start_with(&[("ROCKIT_EDGE_LOGIN_MAX_FAILURES", "3")]);
    server.create_org("acme");
    let (same, other) = failures_from_one_forwarded_address(&server);
    same.assert_error(429, "rate-limited");
    other.assert_error(429, "rate-limited");
}

// ---------------------------------------------------------------------------------------------
// 9. Password hashes

#[test]
fn password_hashes_are_pbkdf2_and_rehashed_when_the_iterations_rise() {
    let mut server = Server::start();
    let password = server.create_org("acme");
    let hash = stored_password_hash(&server, "acme", "admin");
    assert!(hash.starts_with("$pbkdf2-sha256$i=1000$"), "{hash}");
    server.stop();

    let other = OtherProcess::start(&server, &[("ROCKIT_EDGE_PBKDF2_ITERATIONS", "2000")]);
    let login = |pw: &str| {
        let body = json!({"username": "admin", "password": pw, "orgName": "acme"});
        send("POST", &format!("{}/be/v1/login", other.base), &[], Some(body))
    };
    login(&password).assert_ok();
    let hash = common::eventually(Duration::from_secs(10), || {
        Some(stored_password_hash(&server, "acme", "admin")).filter(|h| !h.starts_with("$pbkdf2-sha256$i=1000$"))
    });
    assert!(hash.starts_with("$pbkdf2-sha256$i=2000$"), "{hash}");
    // The new hash still accepts the same password (and only that one).
    login(&password).assert_ok();
    login("not-the-password").assert_error(401, "invalid-credentials");
}

// ---------------------------------------------------------------------------------------------
// 10. Credential rules

#[test]
fn login_and_password_fields_are_strings_and_null_is_a_missing_param() {
    let server = Server::start();
    let admin = server.org_admin("acme");
    // The document says these fields are strings (not nullable), so schema-valid bodies are never
    // refused for a missing field; `null` is schema-invalid and refused as missing.
    let body = json!({"username": null, "password": PASSWORD, "orgName": "acme"});
    let reply = send("POST", &server.url("/be/v1/login"), &[], Some(body));
    reply.assert_error(400, "missing-param");
    assert_eq!(reply.body["param"], "username", "{:?}", reply.body);
    let reply = admin.call("PATCH", "/be/v1/users", Some(json!({"oldPW": null, "newPW": "a-brand-new-password"})));
    reply.assert_error(400, "missing-param");
    assert_eq!(reply.body["param"], "oldPW", "{:?}", reply.body);
}

#[test]
fn a_token_and_an_api_key_together_conflict() {
    let server = Server::start();
    let admin = server.org_admin("acme");
    let bot = admin.create_machine("bot", &[]);
    let auth = bearer(&admin.access);
    let headers = [
        ("Authorization", auth.as_str()),
        ("x-rockit-orgname", "acme"),
        ("x-rockit-username", "bot"),
        ("x-rockit-api-key", bot.key.as_str()),
    ];
    send("GET", &server.url("/be/v1/users/admin"), &headers, None).assert_error(400, "conflicting-credentials");
}

#[test]
fn a_partial_api_key_triple_is_an_invalid_api_key_naming_the_missing_header() {
    let server = Server::start();
    server.org_admin("acme");
    let headers = [("x-rockit-orgname", "acme"), ("x-rockit-username", "bot")];
    let reply = send("GET", &server.url("/be/v1/users/bot"), &headers, None);
    reply.assert_error(401, "invalid-api-key");
    assert_eq!(reply.body["param"], "x-rockit-api-key", "{:?}", reply.body);
    // A key alone (what an auth probe sends) is refused the same way.
    let reply = send("GET", &server.url("/be/v1/users/bot"), &[("x-rockit-api-key", "nope")], None);
    reply.assert_error(401, "invalid-api-key");
    assert_eq!(reply.body["param"], "x-rockit-orgname", "{:?}", reply.body);
    send("GET", &server.url("/be/v1/users/bot"), &[], None).assert_error(401, "token-missing");
}

#[test]
fn an_api_key_works_only_with_its_own_org_and_username() {
    let server = Server::start();
    let admin = server.org_admin("acme");
    server.org_admin("globex");
    admin.create_role("reader", json!({"beUsers": 2}));
    let bot = admin.create_machine("bot", &["reader"]);
    admin.create_machine("bot2", &["reader"]);
    bot.call("GET", "/be/v1/users/bot", None).assert_ok();

    let variants = [
        ("wrong key", common::Machine { key: format!("{}x", bot.key), ..bot.clone() }),
        ("wrong org", common::Machine { org: "globex".into(), ..bot.clone() }),
        ("unknown org", common::Machine { org: "nowhere".into(), ..bot.clone() }),
        ("wrong username", common::Machine { username: "bot2".into(), ..bot.clone() }),
    ];
    for (what, machine) in variants {
        let reply = machine.call("GET", "/be/v1/users/bot", None);
        assert_eq!((reply.status, reply.error()), (401, "invalid-api-key"), "{what}: {:?}", reply.body);
    }
}

#[test]
fn a_deleted_api_key_is_refused_on_the_next_request() {
    let server = Server::start();
    let admin = server.org_admin("acme");
    admin.create_role("reader", json!({"beUsers": 2}));
    let bot = admin.create_machine("bot", &["reader"]);
    bot.call("GET", "/be/v1/users/bot", None).assert_ok();
    admin.call("DELETE", &format!("/be/v1/apikeys/{}", bot.key_id), None).assert_ok();
    bot.call("GET", "/be/v1/users/bot", None).assert_error(401, "invalid-api-key");
}

#[test]
fn api_keys_do_not_work_on_login_refresh_and_logout() {
    let server = Server::start();
    let admin = server.org_admin("acme");
    let bot = admin.create_machine("bot", &[]);
    let headers = [("x-rockit-orgname", "acme"), ("x-rockit-username", "bot"), ("x-rockit-api-key", bot.key.as_str())];
    for path in ["/be/v1/login", "/be/v1/refresh", "/be/v1/logout"] {
        let reply = send("POST", &server.url(path), &headers, Some(json!({})));
        assert_eq!((reply.status, reply.error()), (400, "invalid-param"), "{path}: {:?}", reply.body);
    }
}

#[test]
fn the_beauth_header_works_like_a_bearer_token() {
    let server = Server::start();
    let admin = server.org_admin("acme");
    let reply = send("GET", &server.url("/be/v1/users/admin"), &[("x-rockit-beauth-token", &admin.access)], None);
    assert_eq!(reply.assert_ok()["user"]["username"], "admin");
}

// ---------------------------------------------------------------------------------------------
// 11. A login flood does not starve other requests

#[test]
fn a_flood_of_logins_does_not_stop_other_requests() {
    let server = Server::start_with(&[("ROCKIT_EDGE_PBKDF2_ITERATIONS", "100000")]);
    let password = server.create_org("acme");
    let admin = server.login("acme", "admin", &password);
    let stop = AtomicBool::new(false);
    let logins = AtomicUsize::new(0);

    let mut answers = Vec::new();
    std::thread::scope(|scope| {
        for _ in 0..16 {
            scope.spawn(|| {
                while !stop.load(Ordering::Relaxed) {
                    if password_login(&server, "admin", &password).status == 200 {
                        logins.fetch_add(1, Ordering::Relaxed);
                    }
                }
            });
        }
        let started = Instant::now();
        std::thread::sleep(Duration::from_millis(300));
        while answers.len() < 6 || started.elapsed() < Duration::from_secs(2) {
            answers.push(("healthz", send("GET", &server.url("/healthz"), &[], None)));
            answers.push(("roles", admin.call("GET", "/be/v1/roles", None)));
        }
        stop.store(true, Ordering::Relaxed);
    });
    for (what, reply) in &answers {
        assert_eq!(reply.status, 200, "{what} during the flood: {:?}", reply.body);
    }
    assert!(logins.load(Ordering::Relaxed) > 0, "the flood never logged in");
}
