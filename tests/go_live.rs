//! Go live and roll back (issue 11): `POST /be/v1/commit` against the real server, imports that
//! stage a build with `"commit": false`, and the reference client (`rockit-edge fetch` without
//! `--build`) following `current.json` from a directory and from an HTTP origin with ranges.

mod common;
mod engine_support;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::{Server, Session};
use engine_support::*;
use serde_json::{json, Value};

/// Imports on a loaded 2-core machine take a while; tasks are polled for up to this long.
const CHAIN: Duration = Duration::from_secs(180);

fn create_fs_deployment(admin: &Session, name: &str, path: &Path) {
    let body = json!({"name": name, "origin": {"type": "fs", "path": path.to_str().unwrap()}});
    admin.call("POST", "/be/v1/deployments", Some(body)).assert_ok();
}

fn create_app(admin: &Session, name: &str, extra: Value) {
    let mut body = json!({"name": name, "label": "A game"});
    body.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
    admin.call("POST", "/be/v1/apps", Some(body)).assert_ok();
}

fn app_of(admin: &Session, name: &str) -> Value {
    admin.call("GET", &format!("/be/v1/apps/{name}"), None).assert_ok()["app"].clone()
}

/// Waits until the app is neither importing nor committing (no waiting or running task of it
/// but a prune, which waits out its grace period) and answers it.
fn settled(admin: &Session, name: &str) -> Value {
    common::eventually(CHAIN, || {
        let running = admin.call("GET", &format!("/be/v1/tasks?appName={name}&limit=100"), None).assert_ok()["tasks"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["type"] != "prune" && (t["status"] == "submitted" || t["status"] == "running"));
        let app = app_of(admin, name);
        (!running && app["processing"] == false && app["exporting"] == false).then_some(app)
    })
}

/// Imports `tree` by upload (optionally staged) and waits for the app to settle.
fn import(admin: &Session, name: &str, tree: &Tree, extra: Value) -> Value {
    let tar = tar_of(tree);
    let mut body = json!({"appName": name, "size": tar.len()});
    body.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
    let reply = admin.call("POST", "/be/v1/builds", Some(body));
    let url = reply.assert_ok()["upload"]["url"].as_str().unwrap().to_string();
    common::send_raw("PUT", &url, &[], Some(("application/x-tar", &tar))).assert_ok();
    settled(admin, name)
}

/// Commits and waits for the commit task to end; answers the task as it ended.
fn commit(admin: &Session, body: Value) -> Value {
    let task = admin.call("POST", "/be/v1/commit", Some(body)).assert_ok()["task"].clone();
    assert_eq!(task["type"], "commit", "{task}");
    let name = task["name"].as_str().unwrap().to_string();
    common::eventually(CHAIN, || {
        let task = admin.call("GET", &format!("/be/v1/tasks/{name}"), None).assert_ok()["task"].clone();
        (task["status"] == "done" || task["status"] == "failed").then_some(task)
    })
}

fn pointer(root: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(root.join("dxf/acme/game/current.json")).unwrap()).unwrap()
}

/// `rockit-edge fetch` without `--build`: whatever `current.json` names.
fn fetch_current(from: &str, dest: &Path) -> String {
    let out = Command::new(common::BIN)
        .args(["fetch", "--from", from, "--org", "acme", "--app", "game", "--dest"])
        .arg(dest)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "stdout: {stdout}\nstderr: {}", String::from_utf8_lossy(&out.stderr));
    stdout
}

#[test]
fn a_rollback_to_the_first_build_and_forward_again_is_followed_by_the_client_from_a_directory_and_http() {
    let server = Server::start();
    let admin = server.org_admin("acme");
    let cdn = tempfile::tempdir().unwrap();
    create_fs_deployment(&admin, "cdn", cdn.path());
    create_app(&admin, "game", json!({}));
    let first = import(&admin, "game", &game_v1(), json!({}));
    let dxf1 = first["dxfName"].as_str().unwrap().to_string();
    assert_eq!(pointer(cdn.path())["buildId"], 1, "an import goes live by default");
    let second = import(&admin, "game", &game_v2(), json!({}));
    assert_eq!(second["iCurBuild"], 2);
    let dxf2 = second["dxfName"].as_str().unwrap().to_string();
    for root in [cdn.path().to_path_buf(), server.state_dir.join("depot")] {
        let p = pointer(&root);
        assert_eq!((p["buildId"].clone(), p["dxfName"].clone()), (json!(2), json!(dxf2)), "{}", root.display());
    }

    // Roll back.
    let task = commit(&admin, json!({"appName": "game", "buildId": 1}));
    assert_eq!(task["status"], "done", "{task}");
    assert_eq!(task["buildId"], 1);
    let app = app_of(&admin, "game");
    assert_eq!((app["iCurBuild"].clone(), app["dxfName"].clone()), (json!(1), json!(dxf1)), "{app}");
    for root in [cdn.path().to_path_buf(), server.state_dir.join("depot")] {
        let p = pointer(&root);
        assert_eq!(p["buildId"], 1, "{}", root.display());
        assert_eq!(p["dxfName"], dxf1);
        assert_eq!(p["sizeBytes"], app["builds"][0]["sizeBytes"]);
        common::assert_timestamp(&p["committedAt"]);
    }
    let http = common::serve_directory(cdn.path().to_path_buf(), true);
    let trees = tempfile::tempdir().unwrap();
    for (i, from) in [cdn.path().to_str().unwrap().to_string(), http.clone()].iter().enumerate() {
        let dest = trees.path().join(format!("rolled-back-{i}"));
        let said = fetch_current(from, &dest);
        assert!(said.starts_with("build 1 "), "{said}");
        assert_same_tree(&read_tree(&dest), &game_v1());
    }

    // Forward again: without buildId the newest processed build.
    let task = commit(&admin, json!({"appName": "game"}));
    assert_eq!((task["status"].clone(), task["buildId"].clone()), (json!("done"), json!(2)), "{task}");
    assert_eq!(app_of(&admin, "game")["iCurBuild"], 2);
    for (i, from) in [cdn.path().to_str().unwrap().to_string(), http].iter().enumerate() {
        let dest = trees.path().join(format!("forward-{i}"));
        assert!(fetch_current(from, &dest).starts_with("build 2 "));
        assert_same_tree(&read_tree(&dest), &game_v2());
    }
}

#[test]
fn an_import_with_commit_false_is_staged_and_goes_live_only_when_committed() {
    let server = Server::start();
    let admin = server.org_admin("acme");
    let cdn = tempfile::tempdir().unwrap();
    create_fs_deployment(&admin, "cdn", cdn.path());
    create_app(&admin, "game", json!({}));
    import(&admin, "game", &game_v1(), json!({}));
    let staged = import(&admin, "game", &game_v2(), json!({"commit": false}));
    assert_eq!(staged["iCurBuild"], 1, "{staged}");
    assert_eq!(staged["status"], "ok");
    let builds: Vec<i64> =
        staged["builds"].as_array().unwrap().iter().map(|b| b["buildId"].as_i64().unwrap()).collect();
    assert_eq!(builds, [1, 2]);
    // Published, but the launchers' pointer still names build 1.
    assert!(cdn.path().join("dxf/acme/game/0002").is_dir());
    assert_eq!(pointer(cdn.path())["buildId"], 1);

    assert_eq!(commit(&admin, json!({"appName": "game"}))["status"], "done");
    assert_eq!(app_of(&admin, "game")["iCurBuild"], 2);
    assert_eq!(pointer(cdn.path())["buildId"], 2);
}

#[test]
fn a_staged_build_never_evicts_the_live_one() {
    let server = Server::start();
    let admin = server.org_admin("acme");
    create_app(&admin, "game", json!({"maxBuilds": 2}));
    import(&admin, "game", &game_v1(), json!({}));
    import(&admin, "game", &game_v2(), json!({"commit": false}));
    let mut v3 = game_v2();
    v3.insert("data/level3.pak".into(), file(noise(77, 100_000)));
    let app = import(&admin, "game", &v3, json!({"commit": false}));
    let builds: Vec<i64> = app["builds"].as_array().unwrap().iter().map(|b| b["buildId"].as_i64().unwrap()).collect();
    assert_eq!((app["iCurBuild"].clone(), builds), (json!(1), vec![1, 3]), "{app}");
    // The live build can still be committed again and the staged one over it.
    assert_eq!(commit(&admin, json!({"appName": "game", "buildId": 3}))["status"], "done");
}

#[test]
fn a_build_that_is_not_retained_or_not_processed_is_a_conflict_on_build_id() {
    let server = Server::start();
    let admin = server.org_admin("acme");
    create_app(&admin, "game", json!({}));
    let none = admin.call("POST", "/be/v1/commit", Some(json!({"appName": "game"})));
    common::assert_param(&none, 409, "conflict", "buildId");
    import(&admin, "game", &game_v1(), json!({}));
    let unknown = admin.call("POST", "/be/v1/commit", Some(json!({"appName": "game", "buildId": 7})));
    common::assert_param(&unknown, 409, "conflict", "buildId");
    // An import still waiting for its upload has a build number but no processed build; the
    // app is held by it meanwhile.
    let waiting = admin.call("POST", "/be/v1/builds", Some(json!({"appName": "game"}))).assert_ok()["task"].clone();
    assert_eq!(waiting["buildId"], 2);
    let busy = admin.call("POST", "/be/v1/commit", Some(json!({"appName": "game", "buildId": 1})));
    busy.assert_error(409, "busy");
    admin.call("PATCH", "/be/v1/tasks", Some(json!({"name": waiting["name"], "expire": true}))).assert_ok();
    let expired = admin.call("POST", "/be/v1/commit", Some(json!({"appName": "game", "buildId": 2})));
    common::assert_param(&expired, 409, "conflict", "buildId");
    assert_eq!(app_of(&admin, "game")["iCurBuild"], 1);
}

#[test]
fn committing_needs_apps_update_and_an_app_of_the_callers_organization() {
    let server = Server::start();
    let admin = server.org_admin("acme");
    create_app(&admin, "game", json!({}));
    import(&admin, "game", &game_v1(), json!({}));
    admin.call("POST", "/be/v1/commit", Some(json!({"appName": "nosuchapp"}))).assert_error(404, "not-found");

    admin.create_role("readers", json!({"apps": 2, "tasks": 2}));
    let reader = admin.create_user(&server, "reader", &["readers"]);
    let refused = reader.call("POST", "/be/v1/commit", Some(json!({"appName": "game"})));
    refused.assert_error(403, "permission-denied");

    let other = server.org_admin("globex");
    other.call("POST", "/be/v1/commit", Some(json!({"appName": "game"}))).assert_error(404, "not-found");
    assert_eq!(app_of(&admin, "game")["iCurBuild"], 1);
}

#[test]
fn a_commit_body_with_a_bad_build_id_or_unknown_field_is_invalid() {
    let server = Server::start();
    let admin = server.org_admin("acme");
    create_app(&admin, "game", json!({}));
    for (body, param) in [
        (json!({"appName": "game", "buildId": 0}), "buildId"),
        (json!({"appName": "game", "buildId": "1"}), "buildId"),
        (json!({"appName": "game", "build": 1}), "build"),
        (json!({"buildId": 1}), "appName"),
    ] {
        let reply = admin.call("POST", "/be/v1/commit", Some(body.clone()));
        assert_eq!(reply.status, 400, "{body}: {:?}", reply.body);
        assert_eq!(reply.body["param"], param, "{body}: {:?}", reply.body);
    }
}

#[test]
fn a_commit_copies_the_image_to_a_deployment_added_after_the_import() {
    let server = Server::start();
    let admin = server.org_admin("acme");
    create_app(&admin, "game", json!({}));
    import(&admin, "game", &game_v1(), json!({}));
    let late = tempfile::tempdir().unwrap();
    create_fs_deployment(&admin, "late", late.path());
    assert!(!late.path().join("dxf/acme/game/0001").exists());

    assert_eq!(commit(&admin, json!({"appName": "game", "buildId": 1}))["status"], "done");
    assert_eq!(pointer(late.path())["buildId"], 1);
    let tree = tempfile::tempdir().unwrap();
    let dest = tree.path().join("game");
    fetch_current(late.path().to_str().unwrap(), &dest);
    assert_same_tree(&read_tree(&dest), &game_v1());
}

#[test]
fn fetch_without_a_build_and_without_a_live_one_says_so() {
    let empty = tempfile::tempdir().unwrap();
    let out = Command::new(common::BIN)
        .args(["fetch", "--from", empty.path().to_str().unwrap(), "--org", "acme", "--app", "game", "--dest"])
        .arg(empty.path().join("game"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("current.json"), "{stderr}");
}
