//! Deployments, apps and subscriptions (API.md §7–§9): their bodies and validation, PATCH
//! semantics, secrets that never leave the server in clear (not even to its own disk), and the
//! background prune of published files, over HTTP against the real binary.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::{assert_param, assert_timestamp, eventually, send, Reply, Server, Session};
use serde_json::{json, Value};

/// The object's keys, sorted.
fn keys(value: &Value) -> Vec<String> {
    let mut keys: Vec<String> =
        value.as_object().unwrap_or_else(|| panic!("not an object: {value}")).keys().cloned().collect();
    keys.sort();
    keys
}

/// The `name` of every item of a list answer, in order.
fn names(reply: &Reply, list: &str) -> Vec<String> {
    reply.assert_ok()[list].as_array().unwrap().iter().map(|item| item["name"].as_str().unwrap().to_string()).collect()
}

fn fs_origin(path: &Path) -> Value {
    json!({"type": "fs", "path": path})
}

fn s3_origin(secret: &str) -> Value {
    json!({
        "type": "s3", "endpoint": "s3.us-east-1.amazonaws.com", "region": "us-east-1", "bucket": "my-bucket",
        "accessKeyId": "AKIAEXAMPLE", "secretAccessKey": secret,
    })
}

/// An `fs` origin directory of its own in the test's temporary home (not yet created).
fn origin_dir(server: &Server, name: &str) -> PathBuf {
    server.home.path().join("origins").join(name)
}

fn create_deployment(session: &Session, body: Value) -> Reply {
    session.call("POST", "/be/v1/deployments", Some(body))
}

/// Creates an `fs` deployment; answers its directory.
fn fs_deployment(server: &Server, session: &Session, name: &str) -> PathBuf {
    let dir = origin_dir(server, name);
    create_deployment(session, json!({"name": name, "origin": fs_origin(&dir)})).assert_ok();
    dir
}

fn deployment(session: &Session, name: &str) -> Value {
    session.call("GET", &format!("/be/v1/deployments/{name}"), None).assert_ok()["deployment"].clone()
}

fn patch_deployment(session: &Session, body: Value) -> Reply {
    session.call("PATCH", "/be/v1/deployments", Some(body))
}

fn create_app(session: &Session, body: Value) -> Reply {
    session.call("POST", "/be/v1/apps", Some(body))
}

fn app(session: &Session, name: &str) -> Value {
    session.call("GET", &format!("/be/v1/apps/{name}"), None).assert_ok()["app"].clone()
}

fn create_subscription(session: &Session, body: Value) -> Reply {
    session.call("POST", "/be/v1/subscriptions", Some(body))
}

/// A published file, written by hand where the pipeline would put it.
fn publish(path: &Path) -> PathBuf {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, b"published bytes").unwrap();
    path.to_path_buf()
}

/// Waits (through the admin API) until a background task has finished; it must have succeeded.
fn finished(server: &Server, task: &Value) -> Value {
    let token = server.admin_token();
    let path = format!("/srv/v1/tasks/{}", task["name"].as_str().expect("task name"));
    let task = eventually(Duration::from_secs(30), || {
        let task =
            send("GET", &server.url(&path), &[("x-rockit-admin-token", &token)], None).assert_ok()["task"].clone();
        matches!(task["status"].as_str(), Some("done" | "failed")).then_some(task)
    });
    assert_eq!(task["status"], "done", "{task}");
    task
}

/// The background `prune` task a DELETE answers with.
#[track_caller]
fn prune_task(reply: &Reply) -> Value {
    let task = reply.assert_ok()["task"].clone();
    assert_eq!(task["type"], "prune", "{task}");
    assert!(task["name"].is_string(), "{task}");
    assert!(["submitted", "running", "done"].contains(&task["status"].as_str().unwrap_or("")), "{task}");
    task
}

/// The organization's `apps` count in the admin list of organizations.
fn org_apps(server: &Server, org: &str) -> Value {
    let orgs = server.admin("GET", "/adm/v1/orgs", None).assert_ok()["orgs"].clone();
    orgs.as_array().unwrap().iter().find(|o| o["name"] == org).unwrap_or_else(|| panic!("{org} not in {orgs}"))["apps"]
        .clone()
}

// Deployments (API.md §7).

#[test]
fn an_fs_deployment_is_created_with_its_directory_and_shown_with_defaults() {
    let server = Server::start();
    let admin = server.org_admin("acme");
    let dir = origin_dir(&server, "local").join("deep/root");
    assert!(!dir.exists());

    let reply =
        create_deployment(&admin, json!({"name": "local", "originPrefix": "games/v1", "origin": fs_origin(&dir)}));
    let created = reply.assert_ok()["deployment"].clone();
    assert_eq!(
        keys(&created),
        ["created", "downloadAuth", "label", "message", "name", "origin", "originPrefix", "status", "updated"]
    );
    assert_eq!(created["name"], "local");
    assert_eq!(created["label"], "local", "an omitted label defaults to the name");
    assert_eq!(created["originPrefix"], "games/v1");
    assert_eq!(created["origin"], fs_origin(&dir));
    assert_eq!(created["downloadAuth"], Value::Null);
    assert_eq!((&created["status"], &created["message"]), (&json!("ok"), &Value::Null));
    assert_timestamp(&created["created"]);
    assert_timestamp(&created["updated"]);
    assert!(dir.is_dir(), "the origin directory was not created");

    assert_eq!(deployment(&admin, "local"), created);
    let listed = admin.call("GET", "/be/v1/deployments", None);
    assert_eq!(listed.assert_ok()["deployments"], json!([created]));
    assert_eq!(listed.body["total"], 1);
}

#[test]
fn an_s3_deployment_shows_its_secrets_only_as_stars() {
    let server = Server::start();
    let admin = server.org_admin("acme");
    let mut origin = s3_origin("s3-secret-value");
    origin["pathStyle"] = json!(true);
    let body = json!({"name": "cdn", "label": "Our CDN", "origin": origin,
                      "downloadAuth": {"type": "gcore", "key": "gcore-key-value"}});

    let created = create_deployment(&admin, body).assert_ok()["deployment"].clone();
    assert_eq!(created["label"], "Our CDN");
    assert_eq!(
        created["origin"],
        json!({"type": "s3", "endpoint": "s3.us-east-1.amazonaws.com", "region": "us-east-1", "bucket": "my-bucket",
               "accessKeyId": "AKIAEXAMPLE", "secretAccessKey": "****", "pathStyle": true})
    );
    assert_eq!(created["downloadAuth"], json!({"type": "gcore", "key": "****"}));
    assert_eq!(deployment(&admin, "cdn"), created);
}

#[test]
fn an_fs_origin_must_be_a_writable_directory_outside_the_state_directory() {
    let server = Server::start();
    let admin = server.org_admin("acme");
    let file = publish(&server.home.path().join("a-file"));
    let refused = [
        server.state_dir.clone(),
        server.state_dir.join("published"),
        server.home.path().to_path_buf(),
        file.clone(),
        file.join("below"),
        PathBuf::from("/proc/rockit-edge-test"),
        PathBuf::from("relative/path"),
    ];
    for path in &refused {
        let reply = create_deployment(&admin, json!({"name": "cdn", "origin": fs_origin(path)}));
        assert_param(&reply, 400, "invalid-param", "origin.path");
    }
    let listed = admin.call("GET", "/be/v1/deployments", None);
    assert_eq!(listed.assert_ok()["total"], 0);
}

#[test]
fn a_refused_fs_origin_leaves_no_directory_behind() {
    let server = Server::start();
    let admin = server.org_admin("acme");
    let inside = server.state_dir.join("not-an-origin");

    let reply = create_deployment(&admin, json!({"name": "cdn", "origin": fs_origin(&inside)}));
    assert_param(&reply, 400, "invalid-param", "origin.path");
    assert!(!inside.exists(), "a refused request created {} in the state directory", inside.display());
}

#[test]
fn deployment_bodies_are_validated_field_by_field() {
    let server = Server::start();
    let admin = server.org_admin("acme");
    let fs = fs_origin(&origin_dir(&server, "cdn"));
    let s3_with = |field: &str, value: Value| {
        let mut origin = s3_origin("secret");
        match value {
            Value::Null => origin.as_object_mut().unwrap().remove(field),
            value => origin.as_object_mut().unwrap().insert(field.to_string(), value),
        };
        json!({"name": "cdn", "origin": origin})
    };
    let cases = [
        (json!({"origin": fs}), "missing-param", "name"),
        (json!({"name": "cdn-eu", "origin": fs}), "invalid-param", "name"),
        (json!({"name": "c", "origin": fs}), "invalid-param", "name"),
        (json!({"name": "cdn"}), "missing-param", "origin"),
        (json!({"name": "cdn", "origin": "/srv/cdn"}), "invalid-param", "origin"),
        (json!({"name": "cdn", "origin": {"type": "ftp", "path": "/srv/cdn"}}), "invalid-param", "origin.type"),
        (json!({"name": "cdn", "origin": {"path": "/srv/cdn"}}), "missing-param", "origin.type"),
        (json!({"name": "cdn", "origin": {"type": "fs"}}), "missing-param", "origin.path"),
        (s3_with("region", Value::Null), "missing-param", "origin.region"),
        (s3_with("secretAccessKey", Value::Null), "missing-param", "origin.secretAccessKey"),
        (s3_with("endpoint", json!("my-bucket.s3.amazonaws.com")), "invalid-param", "origin.endpoint"),
        (s3_with("bucket", json!("My_Bucket")), "invalid-param", "origin.bucket"),
        (s3_with("bucket", json!("b")), "invalid-param", "origin.bucket"),
        (s3_with("pathStyle", json!("yes")), "invalid-param", "origin.pathStyle"),
        (
            json!({"name": "cdn", "origin": fs, "downloadAuth": {"type": "cloudfront", "key": "k"}}),
            "invalid-param",
            "downloadAuth.type",
        ),
        (json!({"name": "cdn", "origin": fs, "downloadAuth": {"type": "akamai"}}), "missing-param", "downloadAuth.key"),
    ];
    for (body, code, param) in cases {
        let reply = create_deployment(&admin, body.clone());
        assert_eq!(reply.body["param"], param, "{body} answered {:?}", reply.body);
        assert_param(&reply, 400, code, param);
    }
    assert_eq!(admin.call("GET", "/be/v1/deployments", None).assert_ok()["total"], 0);

    // Square brackets are allowed in deployment names (and only there).
    let created = create_deployment(&admin, json!({"name": "cdn[eu]", "origin": fs}));
    assert_eq!(created.assert_ok()["deployment"]["name"], "cdn[eu]");
    assert_eq!(deployment(&admin, "cdn[eu]")["name"], "cdn[eu]");
    let app = create_app(&admin, json!({"name": "game[eu]", "label": "Game"}));
    assert_param(&app, 400, "invalid-param", "name");
}

#[test]
fn an_origin_prefix_must_stay_relative() {
    let server = Server::start();
    let admin = server.org_admin("acme");
    let fs = fs_origin(&origin_dir(&server, "cdn"));
    for prefix in ["../x", "a/../b", "/abs", "with space"] {
        let reply = create_deployment(&admin, json!({"name": "cdn", "originPrefix": prefix, "origin": fs}));
        assert_param(&reply, 400, "invalid-param", "originPrefix");
    }
    let created = create_deployment(&admin, json!({"name": "cdn", "originPrefix": "games/v1", "origin": fs}));
    assert_eq!(created.assert_ok()["deployment"]["originPrefix"], "games/v1");
}

#[test]
fn deployment_names_are_unique_and_unknown_ones_are_not_found() {
    let server = Server::start();
    let admin = server.org_admin("acme");
    fs_deployment(&server, &admin, "cdn");

    let again = create_deployment(&admin, json!({"name": "cdn", "origin": fs_origin(&origin_dir(&server, "x"))}));
    again.assert_error(409, "already-exists");
    for reply in [
        admin.call("GET", "/be/v1/deployments/nothere", None),
        admin.call("DELETE", "/be/v1/deployments/nothere", None),
        patch_deployment(&admin, json!({"name": "nothere", "label": "x"})),
    ] {
        reply.assert_error(404, "not-found");
        assert_eq!(reply.body["resource"], "deployment");
    }
    assert_param(&admin.call("GET", "/be/v1/deployments/bad-name", None), 400, "invalid-param", "name");
}

#[test]
fn deployments_are_listed_with_their_filters() {
    let server = Server::start();
    let admin = server.org_admin("acme");
    for name in ["cdn_eu", "cdn_us", "mirror"] {
        fs_deployment(&server, &admin, name);
    }
    assert_eq!(names(&admin.call("GET", "/be/v1/deployments?name=cdn", None), "deployments"), ["cdn_eu", "cdn_us"]);
    assert_eq!(admin.call("GET", "/be/v1/deployments?status=ok", None).assert_ok()["total"], 3);
    assert_eq!(admin.call("GET", "/be/v1/deployments?status=error", None).assert_ok()["total"], 0);
}

/// The sealed secrets of a deployment as stored: (origin secret, download auth key).
fn sealed_secrets(server: &Server, name: &str) -> (Option<Vec<u8>>, Option<Vec<u8>>) {
    let db = rusqlite::Connection::open(server.database()).unwrap();
    db.query_row("SELECT origin_secret, download_auth_key FROM deployments WHERE name = ?1", [name], |row| {
        Ok((row.get(0)?, row.get(1)?))
    })
    .unwrap()
}

#[test]
fn a_deployment_patch_changes_only_what_is_sent() {
    let server = Server::start();
    let admin = server.org_admin("acme");
    let body = json!({"name": "cdn", "label": "CDN", "originPrefix": "games", "origin": s3_origin("old-secret"),
                      "downloadAuth": {"type": "akamai", "key": "akamai-key"}});
    let created = create_deployment(&admin, body).assert_ok()["deployment"].clone();

    // The label alone.
    let changed =
        patch_deployment(&admin, json!({"name": "cdn", "label": "Edge CDN"})).assert_ok()["deployment"].clone();
    assert_eq!(changed["label"], "Edge CDN");
    for kept in ["origin", "originPrefix", "downloadAuth", "created"] {
        assert_eq!(changed[kept], created[kept], "{kept} changed");
    }
    assert!(changed["updated"].as_str() >= created["updated"].as_str());

    // The S3 secret alone: every other origin field and the download auth stay. (Every write seals
    // afresh, so the stored bytes cannot tell whether the value changed; the at-rest test checks
    // that the rotated value is nowhere in clear.)
    patch_deployment(&admin, json!({"name": "cdn", "origin": {"secretAccessKey": "new-secret"}})).assert_ok();
    let rotated = deployment(&admin, "cdn");
    assert_eq!(rotated["origin"], created["origin"]);
    assert_eq!(rotated["origin"]["secretAccessKey"], "****");
    assert_eq!(rotated["downloadAuth"], json!({"type": "akamai", "key": "****"}));
    let (secret, key) = sealed_secrets(&server, "cdn");
    assert!(secret.is_some() && key.is_some(), "a sealed secret went missing");

    // `null` removes the download auth and resets the label; the origin cannot be removed.
    patch_deployment(&admin, json!({"name": "cdn", "downloadAuth": null})).assert_ok();
    assert_eq!(deployment(&admin, "cdn")["downloadAuth"], Value::Null);
    assert_eq!(sealed_secrets(&server, "cdn").1, None);
    patch_deployment(&admin, json!({"name": "cdn", "label": null})).assert_ok();
    assert_eq!(deployment(&admin, "cdn")["label"], "cdn");
    assert_param(&patch_deployment(&admin, json!({"name": "cdn", "origin": null})), 400, "invalid-param", "origin");
    assert_eq!(deployment(&admin, "cdn")["origin"], created["origin"]);

    // An origin of another type replaces the old one whole, so it needs all of its own fields.
    let partial = patch_deployment(&admin, json!({"name": "cdn", "origin": {"type": "fs"}}));
    assert_param(&partial, 400, "missing-param", "origin.path");
    let dir = origin_dir(&server, "cdn");
    let replaced = patch_deployment(&admin, json!({"name": "cdn", "origin": fs_origin(&dir)}));
    assert_eq!(replaced.assert_ok()["deployment"]["origin"], fs_origin(&dir));
    assert_eq!(replaced.body["deployment"]["originPrefix"], "games");
    assert!(dir.is_dir());
    assert_eq!(sealed_secrets(&server, "cdn").0, None, "the old S3 secret outlived its origin");
}

#[test]
fn a_listed_deployment_is_in_use_and_deleting_it_prunes_the_organizations_files_there() {
    let server = Server::start();
    let admin = server.org_admin("acme");
    let root = origin_dir(&server, "cdn");
    create_deployment(&admin, json!({"name": "cdn", "originPrefix": "pub/v1", "origin": fs_origin(&root)})).assert_ok();
    fs_deployment(&server, &admin, "other");
    create_app(&admin, json!({"name": "game", "label": "Game", "deployments": ["cdn"]})).assert_ok();
    let prefix = root.join("pub/v1");
    let ours = [
        publish(&prefix.join("dxf/acme/game/0001/game.dxf/index.bin")),
        publish(&prefix.join("pat/acme/game/0002/0001/patch.bin")),
    ];
    let others = [publish(&prefix.join("dxf/globex/game/0001/game.dxf/index.bin")), publish(&prefix.join("notes.txt"))];

    let busy = admin.call("DELETE", "/be/v1/deployments/cdn", None);
    busy.assert_error(409, "in-use");
    assert!(ours.iter().all(|f| f.exists()));
    assert_eq!(deployment(&admin, "cdn")["name"], "cdn");

    admin.call("PATCH", "/be/v1/apps", Some(json!({"name": "game", "deployments": ["other"]}))).assert_ok();
    let task = prune_task(&admin.call("DELETE", "/be/v1/deployments/cdn", None));
    admin.call("GET", "/be/v1/deployments/cdn", None).assert_error(404, "not-found");
    eventually(Duration::from_secs(30), || ours.iter().all(|f| !f.exists()).then_some(()));
    finished(&server, &task);
    assert!(!prefix.join("dxf/acme").exists() && !prefix.join("pat/acme").exists());
    for kept in &others {
        assert!(kept.exists(), "{} was removed too", kept.display());
    }
}

// Secrets at rest (API.md §7, §9).

/// Every file under `dir`, recursively, with its bytes (files that vanish meanwhile are skipped).
fn files_under(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut files = Vec::new();
    let mut dirs = vec![dir.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else if let Ok(bytes) = std::fs::read(&path) {
                files.push((path, bytes));
            }
        }
    }
    files
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack.windows(needle.len()).any(|window| window == needle.as_bytes())
}

/// No file under `dir` holds any secret, while the files do hold a clear value stored beside them
/// (so the scan reads what the server wrote).
#[track_caller]
fn assert_no_secret_on_disk(dir: &Path, secrets: &[&str], clear: &str) {
    let files = files_under(dir);
    for (path, bytes) in &files {
        for secret in secrets {
            assert!(!contains(bytes, secret), "{} holds the secret {secret}", path.display());
        }
    }
    let names: Vec<_> = files.iter().map(|(path, _)| path.display().to_string()).collect();
    assert!(files.iter().any(|(_, bytes)| contains(bytes, clear)), "no file holds {clear}: {names:?}");
}

#[test]
fn secrets_are_never_stored_logged_or_shown_in_clear() {
    let mut server = Server::start();
    let admin = server.org_admin("acme");
    let (first_s3, second_s3, auth_key) =
        ("SECRET-s3-3f9a1c77e0d24b8a", "SECRET-s3-rotated-91d0b6c4aa57", "SECRET-cdn-key-5e2f08b1c9d3");
    let mut origin = s3_origin(first_s3);
    origin["accessKeyId"] = json!("AKIA-CLEAR-7c1e40d2");
    let body = json!({"name": "cdn", "origin": origin, "downloadAuth": {"type": "akamai", "key": auth_key}});
    create_deployment(&admin, body).assert_ok();
    let created =
        create_subscription(&admin, json!({"name": "hook", "type": "webhook", "url": "https://ci.example.com/h"}));
    let subscription_secret = created.assert_ok()["secret"].as_str().unwrap().to_string();
    assert!(subscription_secret.len() >= 32, "{subscription_secret}");
    let rotated = patch_deployment(&admin, json!({"name": "cdn", "origin": {"secretAccessKey": second_s3}}));
    let secrets = [first_s3, second_s3, auth_key, subscription_secret.as_str()];

    let answers = [
        rotated,
        admin.call("GET", "/be/v1/deployments", None),
        admin.call("GET", "/be/v1/deployments/cdn", None),
        admin.call("GET", "/be/v1/subscriptions", None),
    ];
    for answer in &answers {
        let text = answer.assert_ok().to_string();
        assert!(secrets.iter().all(|s| !text.contains(s)), "a secret in the answer {text}");
    }
    let backup = server.home.path().join("backup.db");
    let out = server.cli(&["backup", "--out", backup.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(files_under(server.home.path()).iter().any(|(path, _)| *path == backup));

    // While running (database, WAL, secrets file and the backup), then with the WAL checkpointed.
    assert_no_secret_on_disk(server.home.path(), &secrets, "AKIA-CLEAR-7c1e40d2");
    server.stop().expect("the server was running");
    assert_no_secret_on_disk(&server.state_dir, &secrets, "AKIA-CLEAR-7c1e40d2");
    let log = server.log();
    assert!(!log.is_empty());
    for secret in secrets {
        assert!(!log.contains(secret), "the log holds {secret}");
        assert!(!server.stdout.join("\n").contains(secret));
    }
}

// Apps (API.md §8).

#[test]
fn an_app_is_created_with_the_documented_defaults() {
    let server = Server::start();
    let admin = server.org_admin("acme");
    let created = create_app(&admin, json!({"name": "game", "label": "The Game"})).assert_ok()["app"].clone();
    assert_timestamp(&created["created"]);
    assert_timestamp(&created["updated"]);
    let mut shown = created.clone();
    shown.as_object_mut().unwrap().retain(|key, _| key != "created" && key != "updated");
    assert_eq!(
        shown,
        json!({"name": "game", "label": "The Game", "maxBuilds": 5, "iCurBuild": 0, "processing": false,
               "exporting": false, "sizeBytes": 0, "status": "ok", "error": null, "deployments": [],
               "dxfName": null, "builds": [], "patches": []})
    );
    assert_eq!(app(&admin, "game"), created);
    create_app(&admin, json!({"name": "game", "label": "Again"})).assert_error(409, "already-exists");
}

#[test]
fn app_bodies_are_validated() {
    let server = Server::start();
    let admin = server.org_admin("acme");
    let cases = [
        (json!({"label": "Game"}), "missing-param", "name"),
        (json!({"name": "game"}), "missing-param", "label"),
        (json!({"name": "game", "label": "Game", "maxBuilds": 0}), "invalid-param", "maxBuilds"),
        (json!({"name": "game", "label": "Game", "maxBuilds": 101}), "invalid-param", "maxBuilds"),
        (json!({"name": "game", "label": "Game", "maxBuilds": "x"}), "invalid-param", "maxBuilds"),
        (json!({"name": "game", "label": "Game", "maxBuilds": 2.5}), "invalid-param", "maxBuilds"),
        (json!({"name": "game", "label": "Game", "deployments": "cdn"}), "invalid-param", "deployments"),
    ];
    for (body, code, param) in cases {
        assert_param(&create_app(&admin, body), 400, code, param);
    }
    // Well-formed, but no such deployment: a conflict with the organization's state.
    let unknown = json!({"name": "game", "label": "Game", "deployments": ["nothere"]});
    assert_param(&create_app(&admin, unknown), 409, "conflict", "deployments");
    assert_eq!(admin.call("GET", "/be/v1/apps", None).assert_ok()["total"], 0);

    fs_deployment(&server, &admin, "cdn");
    let accepted = [
        (json!({"name": "smallest", "label": "L", "maxBuilds": 1}), "maxBuilds", json!(1)),
        (json!({"name": "largest", "label": "L", "maxBuilds": 100}), "maxBuilds", json!(100)),
        // JSON Schema's `integer` includes 7.0, so the document's promise holds.
        (json!({"name": "whole_float", "label": "L", "maxBuilds": 7.0}), "maxBuilds", json!(7)),
        (json!({"name": "all_null", "label": "L", "deployments": null}), "deployments", json!([])),
        (json!({"name": "all_empty", "label": "L", "deployments": []}), "deployments", json!([])),
        (json!({"name": "one", "label": "L", "deployments": ["cdn"]}), "deployments", json!(["cdn"])),
    ];
    for (body, field, value) in accepted {
        let created = create_app(&admin, body.clone()).assert_ok()["app"].clone();
        assert_eq!(created[field], value, "{body}");
        assert_eq!(app(&admin, body["name"].as_str().unwrap())[field], value, "{body}");
    }
}

#[test]
fn apps_are_listed_with_filters_and_chosen_fields() {
    let server = Server::start();
    let admin = server.org_admin("acme");
    for name in ["space_race", "puzzle", "space_game"] {
        create_app(&admin, json!({"name": name, "label": name.to_uppercase()})).assert_ok();
    }
    assert_eq!(names(&admin.call("GET", "/be/v1/apps", None), "apps"), ["puzzle", "space_game", "space_race"]);
    let space = admin.call("GET", "/be/v1/apps?name=space", None);
    assert_eq!(names(&space, "apps"), ["space_game", "space_race"]);
    assert_eq!(space.body["total"], 2);
    assert_eq!(admin.call("GET", "/be/v1/apps?status=ok", None).assert_ok()["total"], 3);
    assert_eq!(admin.call("GET", "/be/v1/apps?status=error", None).assert_ok()["total"], 0);

    let trimmed = admin.call("GET", "/be/v1/apps?name=puzzle&fields[]=name&fields[]=maxBuilds", None);
    assert_eq!(trimmed.assert_ok()["apps"], json!([{"name": "puzzle", "maxBuilds": 5}]));

    assert_eq!(app(&admin, "puzzle")["label"], "PUZZLE");
    let missing = admin.call("GET", "/be/v1/apps/nothere", None);
    missing.assert_error(404, "not-found");
    assert_eq!(missing.body["resource"], "app");
}

#[test]
fn an_app_patch_changes_label_max_builds_and_deployments() {
    let server = Server::start();
    let admin = server.org_admin("acme");
    for name in ["cdn_a", "cdn_b"] {
        fs_deployment(&server, &admin, name);
    }
    create_app(&admin, json!({"name": "game", "label": "Game"})).assert_ok();
    let patch = |body: Value| admin.call("PATCH", "/be/v1/apps", Some(body));

    let changed = patch(json!({"name": "game", "label": "New Game", "maxBuilds": 12})).assert_ok()["app"].clone();
    assert_eq!((&changed["label"], &changed["maxBuilds"]), (&json!("New Game"), &json!(12)));
    let listed = patch(json!({"name": "game", "deployments": ["cdn_b", "cdn_a"]})).assert_ok()["app"].clone();
    let mut deployments: Vec<_> =
        listed["deployments"].as_array().unwrap().iter().map(|d| d.as_str().unwrap()).collect();
    deployments.sort();
    assert_eq!(deployments, ["cdn_a", "cdn_b"]);
    assert_eq!((&listed["label"], &listed["maxBuilds"]), (&json!("New Game"), &json!(12)), "other fields changed");
    patch(json!({"name": "game", "deployments": null})).assert_ok();
    assert_eq!(app(&admin, "game")["deployments"], json!([]));

    assert_param(&patch(json!({"name": "game", "maxBuilds": 0})), 400, "invalid-param", "maxBuilds");
    assert_param(&patch(json!({"name": "game", "deployments": ["nothere"]})), 409, "conflict", "deployments");
    assert_eq!(app(&admin, "game")["maxBuilds"], 12);
    let missing = patch(json!({"name": "nothere", "label": "x"}));
    missing.assert_error(404, "not-found");
    assert_eq!(missing.body["resource"], "app");
}

#[test]
fn deleting_an_app_prunes_its_files_everywhere_and_leaves_other_apps_alone() {
    let server = Server::start();
    let admin = server.org_admin("acme");
    let cdn = fs_deployment(&server, &admin, "cdn");
    create_app(&admin, json!({"name": "game", "label": "Game", "deployments": ["cdn"]})).assert_ok();
    create_app(&admin, json!({"name": "keep", "label": "Keep"})).assert_ok();
    let depot = server.state_dir.join("depot");
    let files = |app: &str| {
        [
            publish(&depot.join(format!("dxf/acme/{app}/0001/{app}.dxf/index.bin"))),
            publish(&depot.join(format!("pat/acme/{app}/0002/0001/patch.bin"))),
            publish(&cdn.join(format!("dxf/acme/{app}/0001/{app}.dxf/index.bin"))),
        ]
    };
    let (gone, kept) = (files("game"), files("keep"));
    assert_eq!(org_apps(&server, "acme"), 2);

    let task = prune_task(&admin.call("DELETE", "/be/v1/apps/game", None));
    assert_eq!(task["appName"], "game");
    admin.call("GET", "/be/v1/apps/game", None).assert_error(404, "not-found");
    eventually(Duration::from_secs(30), || gone.iter().all(|f| !f.exists()).then_some(()));
    finished(&server, &task);
    assert!(!depot.join("dxf/acme/game").exists() && !depot.join("pat/acme/game").exists());
    for file in &kept {
        assert!(file.exists(), "{} was removed too", file.display());
    }
    assert_eq!(names(&admin.call("GET", "/be/v1/apps", None), "apps"), ["keep"]);
    assert_eq!(org_apps(&server, "acme"), 1);
    admin.call("DELETE", "/be/v1/apps/game", None).assert_error(404, "not-found");
}

// Subscriptions (API.md §9).

#[test]
fn a_subscription_shows_its_signing_secret_only_once() {
    let server = Server::start();
    let admin = server.org_admin("acme");
    let events = json!([{"type": "deploy", "event": "end"}, {"type": "dltar", "event": "error"}]);
    let body = json!({"name": "ci", "type": "webhook", "url": "https://ci.example.com/hook", "events": events});

    let reply = create_subscription(&admin, body);
    let created = reply.assert_ok();
    let secret = created["secret"].as_str().expect("a secret").to_string();
    assert!(secret.len() >= 32, "a weak secret: {secret}");
    let subscription = created["subscription"].clone();
    assert_eq!(keys(&subscription), ["created", "events", "name", "type", "updated", "url"]);
    assert_eq!(
        (&subscription["name"], &subscription["type"], &subscription["url"], &subscription["events"]),
        (&json!("ci"), &json!("webhook"), &json!("https://ci.example.com/hook"), &events)
    );
    assert_timestamp(&subscription["created"]);

    let slack = json!({"name": "team", "type": "slack", "url": "https://hooks.slack.com/services/T/B/X"});
    let other = create_subscription(&admin, slack).assert_ok().clone();
    assert_eq!(other["subscription"]["events"], json!([]), "no events means all of them");
    assert_ne!(other["secret"], created["secret"]);

    let listed = admin.call("GET", "/be/v1/subscriptions", None);
    assert_eq!(listed.assert_ok()["subscriptions"][0], subscription);
    assert!(!listed.body.to_string().contains(&secret));
}

#[test]
fn subscription_bodies_are_validated() {
    let server = Server::start();
    let admin = server.org_admin("acme");
    let with = |field: &str, value: Value| {
        let mut body = json!({"name": "ci", "type": "webhook", "url": "https://ci.example.com/hook"});
        body[field] = value;
        body
    };
    let cases = [
        (with("type", json!("email")), "invalid-param", "type"),
        (with("url", Value::Null), "missing-param", "url"),
        (with("url", json!("ftp://x")), "invalid-param", "url"),
        (with("url", json!("not a url")), "invalid-param", "url"),
        (with("url", json!("https://")), "invalid-param", "url"),
        (with("name", json!("c-i")), "invalid-param", "name"),
        (with("events", json!({"type": "deploy", "event": "end"})), "invalid-param", "events"),
        (with("events", json!([{"type": "deploy", "event": "done"}])), "invalid-param", "events"),
        (with("events", json!([{"type": "build", "event": "end"}])), "invalid-param", "events"),
        (with("events", json!(["deploy"])), "invalid-param", "events"),
        (json!({"name": "ci", "type": "slack", "url": "http://hooks.slack.com/x"}), "invalid-param", "url"),
    ];
    for (body, code, param) in cases {
        let reply = create_subscription(&admin, body.clone());
        assert_eq!(reply.body["param"], param, "{body} answered {:?}", reply.body);
        assert_param(&reply, 400, code, param);
    }
    assert_eq!(admin.call("GET", "/be/v1/subscriptions", None).assert_ok()["total"], 0);

    create_subscription(&admin, with("url", json!("http://10.0.0.5:8080/hook"))).assert_ok();
    let again = create_subscription(&admin, with("type", json!("slack")));
    again.assert_error(409, "already-exists");
    assert_eq!(again.body["resource"], "subscription");
}

#[test]
fn subscriptions_sort_by_name_and_are_gone_once_deleted() {
    let server = Server::start();
    let admin = server.org_admin("acme");
    for name in ["beta", "alpha", "gamma"] {
        let body = json!({"name": name, "type": "webhook", "url": format!("https://{name}.example.com/")});
        create_subscription(&admin, body).assert_ok();
    }
    let list = |query: &str| names(&admin.call("GET", &format!("/be/v1/subscriptions{query}"), None), "subscriptions");
    assert_eq!(list(""), ["alpha", "beta", "gamma"]);
    assert_eq!(list("?order[]=-name"), ["gamma", "beta", "alpha"]);
    assert_eq!(list("?order[]=[-name]"), ["gamma", "beta", "alpha"]);
    assert_eq!(list("?order[]=name"), ["alpha", "beta", "gamma"]);

    admin.call("DELETE", "/be/v1/subscriptions/beta", None).assert_ok();
    assert_eq!(list(""), ["alpha", "gamma"]);
    let again = admin.call("DELETE", "/be/v1/subscriptions/beta", None);
    again.assert_error(404, "not-found");
    assert_eq!(again.body["resource"], "subscription");
}

// Permissions (API.md §3; the full matrix is in permission_matrix.rs).

#[test]
fn a_user_who_may_only_read_apps_lists_them_but_cannot_create_one() {
    let server = Server::start();
    let admin = server.org_admin("acme");
    create_app(&admin, json!({"name": "game", "label": "Game"})).assert_ok();
    let role = admin.create_role("app_readers", json!({"apps": 2}));
    let reader = admin.create_user(&server, "reader", &[&role]);

    assert_eq!(names(&reader.call("GET", "/be/v1/apps", None), "apps"), ["game"]);
    assert_eq!(app(&reader, "game")["name"], "game");
    create_app(&reader, json!({"name": "mine", "label": "Mine"})).assert_error(403, "permission-denied");
    reader.call("DELETE", "/be/v1/apps/game", None).assert_error(403, "permission-denied");
    reader.call("GET", "/be/v1/deployments", None).assert_error(403, "permission-denied");
    assert_eq!(names(&admin.call("GET", "/be/v1/apps", None), "apps"), ["game"]);
}
