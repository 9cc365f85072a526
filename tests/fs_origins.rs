//! `fs` origins: paths that are refused, and answers that do not map the box's file system.

mod common;

use common::{assert_param, Server};
use serde_json::json;

#[test]
fn an_fs_origin_path_with_a_control_character_is_refused() {
    let server = Server::start();
    let admin = server.org_admin("acme");
    let path = format!("{}/origins/a\nb", server.home.path().display());
    let body = json!({"name": "cdn", "origin": {"type": "fs", "path": path}});
    assert_param(&admin.call("POST", "/be/v1/deployments", Some(body)), 400, "invalid-param", "origin.path");
    assert!(!server.home.path().join("origins").exists(), "nothing was created");
}

#[test]
fn a_refused_fs_origin_names_neither_the_resolved_path_nor_the_os_error() {
    let server = Server::start();
    let admin = server.org_admin("acme");
    // A link to a plain file: nothing can be created below it.
    let target = server.home.path().join("hidden-target-file");
    std::fs::write(&target, b"x").unwrap();
    let link = server.home.path().join("link");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    let body = json!({"name": "cdn", "origin": {"type": "fs", "path": link.join("cdn")}});
    let reply = admin.call("POST", "/be/v1/deployments", Some(body));
    assert_param(&reply, 400, "invalid-param", "origin.path");
    let message = reply.body["message"].as_str().unwrap();
    assert!(!message.contains("hidden-target-file") && !message.contains("os error"), "{message}");
    let log = common::eventually(std::time::Duration::from_secs(10), || {
        let log = server.log();
        log.contains("hidden-target-file").then_some(log)
    });
    assert!(log.contains("fs origin"), "the operator finds the details in the log: {log}");
}

#[test]
fn fs_origins_must_resolve_inside_the_origin_roots() {
    let roots = tempfile::tempdir().unwrap();
    let (allowed, elsewhere) = (roots.path().join("origins"), roots.path().join("elsewhere"));
    std::fs::create_dir_all(&allowed).unwrap();
    std::fs::create_dir_all(&elsewhere).unwrap();
    std::os::unix::fs::symlink(&elsewhere, allowed.join("escape")).unwrap();
    let server = Server::start_with(&[("ROCKIT_EDGE_ORIGIN_ROOTS", allowed.to_str().unwrap())]);
    let admin = server.org_admin("acme");
    let create = |name: &str, path: std::path::PathBuf| {
        admin.call("POST", "/be/v1/deployments", Some(json!({"name": name, "origin": {"type": "fs", "path": path}})))
    };
    create("inside", allowed.join("cdn")).assert_ok();
    assert_param(&create("outside", elsewhere.join("cdn")), 400, "invalid-param", "origin.path");
    // A symlink inside the root that leads out of it does not count as inside.
    assert_param(&create("escape", allowed.join("escape").join("cdn")), 400, "invalid-param", "origin.path");
    assert!(!elsewhere.join("cdn").exists(), "nothing was created outside the root");
}
