//! Credentials that contradict each other, and the exact lifetime of tokens this server issues.

mod common;

use std::time::Duration;

use common::{send, Server};

#[test]
fn an_access_token_of_one_org_with_a_beauth_token_of_another_is_conflicting_credentials() {
    let server = Server::start();
    let acme = server.org_admin("acme");
    let globex = server.org_admin("globex");
    let bearer = format!("Bearer {}", acme.access);
    let mixed = [("Authorization", bearer.as_str()), ("x-rockit-beauth-token", globex.access.as_str())];
    send("GET", &server.url("/be/v1/apps"), &mixed, None).assert_error(400, "conflicting-credentials");
    // The same token in both headers is no contradiction.
    let same = [("Authorization", bearer.as_str()), ("x-rockit-beauth-token", acme.access.as_str())];
    send("GET", &server.url("/be/v1/apps"), &same, None).assert_ok();
}

#[test]
fn an_admin_token_from_the_cli_expires_exactly_at_its_ttl() {
    let server = Server::start();
    let out = server.cli(&["admin-token", "--name", "short", "--ttl", "1s"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let token = String::from_utf8(out.stdout).unwrap().trim().to_string();
    // Well within the 60 s leeway other tools' tokens get, this one must already be refused.
    let reply = common::eventually(Duration::from_secs(30), || {
        let reply = send("POST", &server.url("/srv/v1/ping"), &[("x-rockit-admin-token", &token)], None);
        (reply.status != 200).then_some(reply)
    });
    reply.assert_error(401, "token-expired");
}
