//! The build pipeline end to end (issue 9): `POST /be/v1/builds` against the real server, the tar
//! served by a small HTTP origin the test starts on loopback, the chain dltar → mkraw → deploy,
//! and the published image and patch read back with the reference client, file by file.

mod common;
mod engine_support;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::Path;
use std::time::Duration;

use common::{Server, Session};
use engine_support::*;
use rockit_edge::engine::client::Client;
use rockit_edge::engine::origin::DirOrigin;
use serde_json::{json, Value};

/// Imports on a loaded 2-core machine take a while; the chain is polled for up to this long.
const CHAIN: Duration = Duration::from_secs(180);

fn server() -> Server {
    Server::start_with(&[("ROCKIT_EDGE_OUTBOUND_ALLOW_LOOPBACK", "true")])
}

fn create_app(admin: &Session, name: &str, extra: Value) {
    let mut body = json!({"name": name, "label": "A game"});
    body.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
    admin.call("POST", "/be/v1/apps", Some(body)).assert_ok();
}

fn create_fs_deployment(admin: &Session, name: &str, path: &Path) {
    let body = json!({"name": name, "origin": {"type": "fs", "path": path.to_str().unwrap()}});
    admin.call("POST", "/be/v1/deployments", Some(body)).assert_ok();
}

/// Starts an import and answers its first task.
fn import(admin: &Session, app: &str, url: &str, size: usize) -> Value {
    let reply = admin.call("POST", "/be/v1/builds", Some(json!({"appName": app, "url": url, "size": size})));
    reply.assert_ok()["task"].clone()
}

/// Waits until the app is neither processing nor exporting and answers it.
fn settled(admin: &Session, app: &str) -> Value {
    common::eventually(CHAIN, || {
        let app = admin.call("GET", &format!("/be/v1/apps/{app}"), None).assert_ok()["app"].clone();
        (app["processing"] == false && app["exporting"] == false).then_some(app)
    })
}

fn task(admin: &Session, name: &str) -> Value {
    admin.call("GET", &format!("/be/v1/tasks/{name}"), None).assert_ok()["task"].clone()
}

#[test]
fn an_imported_build_is_published_to_an_fs_deployment_and_its_patch_updates_the_old_tree() {
    let server = server();
    let admin = server.org_admin("acme");
    let cdn = tempfile::tempdir().unwrap();
    create_fs_deployment(&admin, "cdn", cdn.path());
    create_app(&admin, "game", json!({}));

    let v1 = tar_of(&game_v1());
    let origin = BuildOrigin::start(v1.clone());
    let first = import(&admin, "game", &origin.url, v1.len());
    assert_eq!(first["type"], "dltar");
    assert!(first["group"].as_str().is_some_and(|g| !g.is_empty()));
    assert_eq!(first["buildId"], 1);
    let app = settled(&admin, "game");
    assert_eq!(app["iCurBuild"], 1, "{app}");
    assert_eq!(app["status"], "ok");
    let dltar = task(&admin, first["name"].as_str().unwrap());
    assert_eq!(dltar["status"], "done");
    assert_eq!(dltar["progress"]["done"], v1.len());

    let tree = tempfile::tempdir().unwrap();
    let dest = tree.path().join("game");
    let published = DirOrigin { root: cdn.path().to_path_buf() };
    Client::new(&published, "acme", "game").rebuild(1, app["dxfName"].as_str(), &dest).unwrap();
    assert_same_tree(&read_tree(&dest), &game_v1());

    let v2 = tar_of(&game_v2());
    origin.serve(v2.clone());
    import(&admin, "game", &origin.url, v2.len());
    let app = settled(&admin, "game");
    assert_eq!(app["iCurBuild"], 2, "{app}");
    assert_eq!(app["builds"].as_array().unwrap().len(), 2);
    assert_eq!(app["patches"][0]["fromBuildId"], 1);
    assert_eq!(app["patches"][0]["toBuildId"], 2);
    let report = Client::new(&published, "acme", "game").update(1, 2, &dest).unwrap();
    assert_same_tree(&read_tree(&dest), &game_v2());
    assert!(report.bytes_fetched < v2.len() as u64, "the update fetched {} bytes", report.bytes_fetched);
    // The depot holds the same objects as the deployment.
    let depot = DirOrigin { root: server.state_dir.join("depot") };
    let copy = tree.path().join("from-depot");
    Client::new(&depot, "acme", "game").rebuild(2, None, &copy).unwrap();
    assert_same_tree(&read_tree(&copy), &game_v2());
}

#[test]
fn a_second_import_of_the_same_app_is_busy_until_the_first_ends() {
    let server = server();
    let admin = server.org_admin("acme");
    create_app(&admin, "game", json!({}));
    // A build server that accepts the connection and never answers: the first import waits.
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/native-build.tar", silent.local_addr().unwrap());
    import(&admin, "game", &url, 10);
    let reply = admin.call("POST", "/be/v1/builds", Some(json!({"appName": "game", "url": url})));
    reply.assert_error(409, "busy");
    let app = admin.call("GET", "/be/v1/apps/game", None).assert_ok()["app"].clone();
    assert_eq!(app["processing"], true);
}

#[test]
fn a_build_server_error_fails_the_download_with_its_http_status_and_frees_the_app() {
    let server = server();
    let admin = server.org_admin("acme");
    create_app(&admin, "game", json!({}));
    let origin = BuildOrigin::start(Vec::new());
    let first = import(&admin, "game", &origin.url, 10);
    let failed = common::eventually(CHAIN, || {
        let t = task(&admin, first["name"].as_str().unwrap());
        (t["status"] == "failed").then_some(t)
    });
    assert_eq!(failed["exception"]["httpStatus"], 404, "{failed}");
    let app = settled(&admin, "game");
    assert_eq!(app["iCurBuild"], 0);
    // The app says why its import failed, as the failed task does.
    assert_eq!((&app["status"], &app["error"]), (&json!("error"), &failed["exception"]["message"]), "{app}");
    // The app is free for the next import, which does not reuse the failed import's number
    // (files of that attempt may still be on disk); its commit clears the error.
    let v1 = tar_of(&game_v1());
    origin.serve(v1.clone());
    import(&admin, "game", &origin.url, v1.len());
    let app = settled(&admin, "game");
    assert_eq!((&app["iCurBuild"], &app["status"], &app["error"]), (&json!(2), &json!("ok"), &Value::Null), "{app}");
}

fn tasks_of_group(admin: &Session, group: &str) -> Vec<Value> {
    let page = admin.call("GET", &format!("/be/v1/tasks?group={group}&order[]=created"), None);
    page.assert_ok()["tasks"].as_array().unwrap().clone()
}

#[test]
fn the_tasks_of_an_import_form_one_group_in_chain_order_and_filter_by_type_and_app() {
    let server = server();
    let admin = server.org_admin("acme");
    create_app(&admin, "game", json!({}));
    let v1 = tar_of(&game_v1());
    let origin = BuildOrigin::start(v1.clone());
    let first = import(&admin, "game", &origin.url, v1.len());
    settled(&admin, "game");
    let group = first["group"].as_str().unwrap();
    let chain = tasks_of_group(&admin, group);
    let kinds: Vec<&str> = chain.iter().map(|t| t["type"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["dltar", "mkraw", "deploy"]);
    assert!(chain.iter().all(|t| t["status"] == "done" && t["buildId"] == 1 && t["attempts"] == 1), "{chain:?}");
    let mkraws = admin.call("GET", "/be/v1/tasks?type=mkraw&appName=GAM", None);
    assert_eq!(mkraws.assert_ok()["total"], 1);
    let none = admin.call("GET", "/be/v1/tasks?appName=other", None);
    assert_eq!(none.assert_ok()["total"], 0);
    let later = admin.call("GET", "/be/v1/tasks?createdAfter=2999-01-01T00:00:00Z", None);
    assert_eq!(later.assert_ok()["total"], 0);
    let bad = admin.call("GET", "/be/v1/tasks?createdAfter=yesterday", None);
    common::assert_param(&bad, 400, "invalid-param", "createdAfter");
}

#[test]
fn a_file_that_is_not_a_tar_fails_mkraw_with_the_compat_file_read_failed_fields() {
    let server = server();
    let admin = server.org_admin("acme");
    create_app(&admin, "game", json!({}));
    let junk = b"this is a text file, not a native build tar".repeat(40);
    let origin = BuildOrigin::start(junk.clone());
    let first = import(&admin, "game", &origin.url, junk.len());
    let app = settled(&admin, "game");
    assert_eq!(app["iCurBuild"], 0);
    let chain = tasks_of_group(&admin, first["group"].as_str().unwrap());
    let mkraw = chain.iter().find(|t| t["type"] == "mkraw").expect("an mkraw task");
    assert_eq!(mkraw["status"], "failed");
    let fields = &mkraw["exception"]["fileReadFailed"];
    assert!(fields["filename"].is_string(), "{mkraw}");
    assert!(fields["typeExpected"].is_string() && fields["typeDetected"].is_string(), "{mkraw}");
    assert_eq!(mkraw["attempts"], 1, "a refused build is not retried");
    assert!(chain.iter().all(|t| t["type"] != "deploy"));
    assert_eq!((&app["status"], &app["error"]), (&json!("error"), &mkraw["exception"]["message"]), "{app}");
}

#[test]
fn a_failed_download_retried_with_retry_task_resumes_the_chain_to_a_committed_build() {
    let server = server();
    let admin = server.org_admin("acme");
    create_app(&admin, "game", json!({}));
    let origin = BuildOrigin::start(Vec::new());
    let v1 = tar_of(&game_v1());
    let first = import(&admin, "game", &origin.url, v1.len());
    let name = first["name"].as_str().unwrap().to_string();
    common::eventually(CHAIN, || (task(&admin, &name)["status"] == "failed").then_some(()));
    assert_eq!(settled(&admin, "game")["iCurBuild"], 0);
    let retry = json!({"action": "retryTask", "taskName": name});
    let unknown = json!({"action": "retryTask", "taskName": "dltar-000000000000"});
    admin.call("POST", "/be/v1/trigger", Some(unknown)).assert_error(404, "not-found");

    // The build server has the file now: the same task runs again and the chain goes on.
    origin.serve(v1);
    let again = admin.call("POST", "/be/v1/trigger", Some(retry.clone()));
    assert_eq!(again.assert_ok()["task"]["status"], "submitted");
    let app = settled(&admin, "game");
    assert_eq!(app["iCurBuild"], 1, "{app}");
    let done = task(&admin, &name);
    assert_eq!((done["status"].as_str(), done["attempts"].as_i64()), (Some("done"), Some(2)));
    // Only a failed task is retried.
    admin.call("POST", "/be/v1/trigger", Some(retry)).assert_error(409, "conflict");
}

#[test]
fn acknowledging_warnings_clears_them_and_expire_is_refused_for_a_task_not_waiting_for_an_upload() {
    let server = server();
    let admin = server.org_admin("acme");
    create_app(&admin, "game", json!({}));
    let v1 = tar_of(&game_v1());
    let origin = BuildOrigin::start(v1.clone());
    let first = import(&admin, "game", &origin.url, v1.len());
    settled(&admin, "game");
    let chain = tasks_of_group(&admin, first["group"].as_str().unwrap());
    let mkraw = chain.iter().find(|t| t["type"] == "mkraw").unwrap();
    // The test game has an empty file: the import warns about it.
    assert!(!mkraw["warnings"].as_array().unwrap().is_empty(), "{mkraw}");
    let acked = admin.call("PATCH", "/be/v1/tasks", Some(json!({"name": mkraw["name"], "ackWarnings": true})));
    assert_eq!(acked.assert_ok()["task"]["warnings"], json!([]));
    let expire = admin.call("PATCH", "/be/v1/tasks", Some(json!({"name": mkraw["name"], "expire": true})));
    expire.assert_error(409, "conflict");
}

#[test]
fn finished_tasks_are_removed_after_the_retention_period() {
    let server =
        Server::start_with(&[("ROCKIT_EDGE_OUTBOUND_ALLOW_LOOPBACK", "true"), ("ROCKIT_EDGE_TASK_RETENTION", "1s")]);
    let admin = server.org_admin("acme");
    create_app(&admin, "game", json!({}));
    let v1 = tar_of(&game_v1());
    let origin = BuildOrigin::start(v1.clone());
    let first = import(&admin, "game", &origin.url, v1.len());
    let group = first["group"].as_str().unwrap().to_string();
    common::eventually(CHAIN, || tasks_of_group(&admin, &group).is_empty().then_some(()));
    // The build itself stays: only the task history goes.
    assert_eq!(settled(&admin, "game")["iCurBuild"], 1);
    // The list totals follow the removal: a page past the start counts every match (from
    // counters), the whole list (one short page) holds them.
    for query in
        ["appName=gam", "createdAfter=2000-01-01T00:00:00Z", "appName=GAME&createdBefore=2999-01-01T00:00:00Z", ""]
    {
        let all = admin.call("GET", &format!("/be/v1/tasks?{query}&limit=1000"), None);
        let held = all.assert_ok()["tasks"].as_array().unwrap().len();
        assert!(held < 3, "the chain's tasks went: {:?}", all.body);
        let page = admin.call("GET", &format!("/be/v1/tasks?{query}&offset=5&limit=1"), None);
        assert_eq!(page.assert_ok()["total"], held, "tasks?{query}: {:?}", page.body);
    }
}

/// Starts an import in upload mode and answers (first task, upload URL).
fn import_by_upload(admin: &Session, app: &str, size: usize) -> (Value, String) {
    let reply = admin.call("POST", "/be/v1/builds", Some(json!({"appName": app, "size": size})));
    let body = reply.assert_ok();
    assert_eq!(body["upload"]["method"], "PUT");
    common::assert_timestamp(&body["upload"]["expires"]);
    (body["task"].clone(), body["upload"]["url"].as_str().unwrap().to_string())
}

fn put(url: &str, body: &[u8]) -> common::Reply {
    common::send_raw("PUT", url, &[], Some(("application/x-tar", body)))
}

#[test]
fn a_finished_upload_shows_the_bytes_received_as_its_progress() {
    let server = server();
    let admin = server.org_admin("acme");
    create_app(&admin, "game", json!({}));
    let v1 = tar_of(&game_v1());
    let (first, url) = import_by_upload(&admin, "game", v1.len());
    put(&url, &v1).assert_ok();
    settled(&admin, "game");
    let dltar = task(&admin, first["name"].as_str().unwrap());
    assert_eq!(dltar["status"], "done", "{dltar}");
    assert_eq!(dltar["progress"], json!({"done": v1.len(), "total": v1.len()}), "{dltar}");
}

#[test]
fn an_uploaded_build_is_imported_and_its_one_time_url_is_then_used_up() {
    let server = server();
    let admin = server.org_admin("acme");
    create_app(&admin, "game", json!({}));
    let v1 = tar_of(&game_v1());
    let (first, url) = import_by_upload(&admin, "game", v1.len());
    assert_eq!(first["status"], "submitted");
    // Nothing runs before the upload arrives.
    assert_eq!(task(&admin, first["name"].as_str().unwrap())["attempts"], 0);

    // A failed PUT (not the announced size) keeps nothing and may be repeated.
    common::assert_param(&put(&url, &v1[..1000]), 400, "invalid-param", "size");
    let app = admin.call("GET", "/be/v1/apps/game", None).assert_ok()["app"].clone();
    assert_eq!(app["processing"], true);
    put(&url, &v1).assert_ok();
    let app = settled(&admin, "game");
    assert_eq!(app["iCurBuild"], 1, "{app}");
    put(&url, &v1).assert_error(404, "not-found");

    let tree = tempfile::tempdir().unwrap();
    let depot = DirOrigin { root: server.state_dir.join("depot") };
    Client::new(&depot, "acme", "game").rebuild(1, None, &tree.path().join("game")).unwrap();
    assert_same_tree(&read_tree(&tree.path().join("game")), &game_v1());
}

#[test]
fn expiring_a_waiting_upload_frees_the_app_and_kills_its_url() {
    let server = server();
    let admin = server.org_admin("acme");
    create_app(&admin, "game", json!({}));
    let (first, url) = import_by_upload(&admin, "game", 100);
    let name = first["name"].clone();
    let expired = admin.call("PATCH", "/be/v1/tasks", Some(json!({"name": name, "expire": true})));
    assert_eq!(expired.assert_ok()["task"]["status"], "expired");
    put(&url, &[0; 100]).assert_error(404, "not-found");
    let app = admin.call("GET", "/be/v1/apps/game", None).assert_ok()["app"].clone();
    // A cancelled import is no failure: the app's status stays as it was.
    assert_eq!(
        (&app["processing"], &app["status"], &app["error"]),
        (&json!(false), &json!("ok"), &Value::Null),
        "{app}"
    );
    // Only a waiting upload expires.
    let again = admin.call("PATCH", "/be/v1/tasks", Some(json!({"name": name, "expire": true})));
    again.assert_error(409, "conflict");
}

#[test]
fn an_upload_url_that_nobody_uses_expires_on_its_own() {
    let server = Server::start_with(&[("ROCKIT_EDGE_UPLOAD_TTL", "1s")]);
    let admin = server.org_admin("acme");
    create_app(&admin, "game", json!({}));
    let (first, url) = import_by_upload(&admin, "game", 100);
    let name = first["name"].as_str().unwrap().to_string();
    common::eventually(CHAIN, || (task(&admin, &name)["status"] == "expired").then_some(()));
    assert_eq!(settled(&admin, "game")["iCurBuild"], 0);
    put(&url, &[0; 100]).assert_error(404, "not-found");
}

#[test]
fn an_upload_above_the_size_limit_is_refused() {
    let server = Server::start_with(&[("ROCKIT_EDGE_MAX_BUILD_BYTES", "4096")]);
    let admin = server.org_admin("acme");
    create_app(&admin, "game", json!({}));
    let announced = admin.call("POST", "/be/v1/builds", Some(json!({"appName": "game", "size": 5000})));
    common::assert_param(&announced, 409, "conflict", "size");
    let reply = admin.call("POST", "/be/v1/builds", Some(json!({"appName": "game"})));
    let url = reply.assert_ok()["upload"]["url"].as_str().unwrap().to_string();
    common::assert_param(&put(&url, &[7; 5000]), 400, "invalid-param", "body");
    // Within the limit the same URL still takes a body (a text file: mkraw refuses it later).
    put(&url, &[7; 4000]).assert_ok();
}

#[test]
fn build_max_builds_plus_one_evicts_the_oldest_and_its_published_objects_go_after_the_grace_period() {
    let server =
        Server::start_with(&[("ROCKIT_EDGE_OUTBOUND_ALLOW_LOOPBACK", "true"), ("ROCKIT_EDGE_PRUNE_GRACE", "1s")]);
    let admin = server.org_admin("acme");
    let cdn = tempfile::tempdir().unwrap();
    create_fs_deployment(&admin, "cdn", cdn.path());
    create_app(&admin, "game", json!({"maxBuilds": 2}));
    let mut v3 = game_v2();
    v3.insert("data/level3.pak".into(), file(noise(77, 300_000)));
    let origin = BuildOrigin::start(Vec::new());
    for tree in [game_v1(), game_v2(), v3.clone()] {
        let tar = tar_of(&tree);
        origin.serve(tar.clone());
        import(&admin, "game", &origin.url, tar.len());
        settled(&admin, "game");
    }
    let app = admin.call("GET", "/be/v1/apps/game", None).assert_ok()["app"].clone();
    assert_eq!(app["iCurBuild"], 3);
    let builds: Vec<i64> = app["builds"].as_array().unwrap().iter().map(|b| b["buildId"].as_i64().unwrap()).collect();
    assert_eq!(builds, [2, 3]);
    assert_eq!(
        app["patches"],
        json!([{"fromBuildId": 2, "toBuildId": 3, "sizeBytes": app["patches"][0]["sizeBytes"]}])
    );

    for root in [cdn.path().to_path_buf(), server.state_dir.join("depot")] {
        common::eventually(CHAIN, || (!root.join("dxf/acme/game/0001").exists()).then_some(()));
        common::eventually(CHAIN, || (!root.join("pat/acme/game/0002/0001").exists()).then_some(()));
        assert!(root.join("dxf/acme/game/0002").is_dir() && root.join("dxf/acme/game/0003").is_dir());
        assert!(root.join("pat/acme/game/0003/0002").is_dir());
    }
    // The retained builds still update: 2 → 3 with the patch.
    let tree = tempfile::tempdir().unwrap();
    let dest = tree.path().join("game");
    let published = DirOrigin { root: cdn.path().to_path_buf() };
    Client::new(&published, "acme", "game").rebuild(2, None, &dest).unwrap();
    Client::new(&published, "acme", "game").update(2, 3, &dest).unwrap();
    assert_same_tree(&read_tree(&dest), &v3);
}

/// A build server with ranges and a strong ETag that drops its first connection halfway.
fn dropping_origin(body: Vec<u8>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/native-build.tar", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for (n, stream) in listener.incoming().enumerate() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut start = 0;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("range: bytes=") {
                    start = v.trim().trim_end_matches('-').parse::<usize>().unwrap();
                }
            }
            let part = &body[start..];
            let head = if start > 0 {
                format!(
                    "HTTP/1.1 206 Partial Content\r\nContent-Range: bytes {start}-{}/{}\r\nContent-Length: {}\r\n",
                    body.len() - 1,
                    body.len(),
                    part.len()
                )
            } else {
                format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n", part.len())
            };
            let head = format!("{head}Accept-Ranges: bytes\r\nETag: \"v1\"\r\nConnection: close\r\n\r\n");
            let cut = if n == 0 { part.len() / 2 } else { part.len() };
            let _ = stream.write_all(head.as_bytes()).and_then(|_| stream.write_all(&part[..cut]));
        }
    });
    url
}

#[test]
fn a_download_cut_off_midway_resumes_with_a_range_request_and_the_build_is_committed() {
    let server = server();
    let admin = server.org_admin("acme");
    create_app(&admin, "game", json!({}));
    let v1 = tar_of(&game_v1());
    let first = import(&admin, "game", &dropping_origin(v1.clone()), v1.len());
    assert_eq!(settled(&admin, "game")["iCurBuild"], 1);
    let dltar = task(&admin, first["name"].as_str().unwrap());
    assert_eq!(dltar["output"]["resumed"], 1, "{dltar}");
    assert_eq!(dltar["output"]["restarted"], 0, "{dltar}");
    let tree = tempfile::tempdir().unwrap();
    let depot = DirOrigin { root: server.state_dir.join("depot") };
    Client::new(&depot, "acme", "game").rebuild(1, None, &tree.path().join("game")).unwrap();
    assert_same_tree(&read_tree(&tree.path().join("game")), &game_v1());
}

#[test]
fn a_build_url_on_this_machine_is_refused_unless_the_setting_allows_loopback() {
    let server = Server::start();
    let admin = server.org_admin("acme");
    create_app(&admin, "game", json!({}));
    let v1 = tar_of(&game_v1());
    let origin = BuildOrigin::start(v1.clone());
    let first = import(&admin, "game", &origin.url, v1.len());
    let name = first["name"].as_str().unwrap().to_string();
    let failed = common::eventually(CHAIN, || {
        let t = task(&admin, &name);
        (t["status"] == "failed").then_some(t)
    });
    let message = failed["exception"]["message"].as_str().unwrap();
    assert!(message.contains("may not connect"), "{failed}");
    assert_eq!(failed["attempts"], 1, "a refused address is not retried");
    assert_eq!(settled(&admin, "game")["iCurBuild"], 0);
    let bad = admin.call("POST", "/be/v1/builds", Some(json!({"appName": "game", "url": "ftp://example.com/b.tar"})));
    common::assert_param(&bad, 400, "invalid-param", "url");
}

/// Every task's input as the database holds it.
fn stored_task_inputs(server: &Server) -> Vec<String> {
    let db = rusqlite::Connection::open(server.database()).unwrap();
    let mut select = db.prepare("SELECT input FROM tasks").unwrap();
    let inputs = select.query_map([], |r| r.get(0)).unwrap().map(Result::unwrap).collect();
    inputs
}

#[test]
fn request_headers_for_the_build_server_reach_it_and_are_stored_only_sealed() {
    let server = server();
    let admin = server.org_admin("acme");
    create_app(&admin, "game", json!({}));
    let v1 = tar_of(&game_v1());
    let origin = BuildOrigin::start(v1.clone());
    let secret = "Bearer build-server-credential-4711";
    let url = json!({"url": origin.url, "headers": {"Authorization": secret}});
    admin.call("POST", "/be/v1/builds", Some(json!({"appName": "game", "url": url}))).assert_ok();
    assert_eq!(settled(&admin, "game")["iCurBuild"], 1);
    let heads = origin.heads.lock().unwrap().clone();
    assert!(heads.iter().any(|h| h.contains(&format!("authorization: {secret}")) || h.contains(&format!("Authorization: {secret}"))), "{heads:?}");
    let inputs = stored_task_inputs(&server);
    assert!(!inputs.is_empty() && inputs.iter().all(|i| !i.contains("build-server-credential")), "{inputs:?}");
    assert!(inputs.iter().any(|i| i.contains("sealedHeaders")));
}

#[test]
fn a_credential_in_the_build_urls_query_reaches_the_build_server_and_is_stored_only_sealed() {
    let server = server();
    let admin = server.org_admin("acme");
    create_app(&admin, "game", json!({}));
    let origin = BuildOrigin::start(tar_of(&game_v1()));
    let url = format!("{}?X-Amz-Signature=presigned-credential-4711", origin.url);
    admin.call("POST", "/be/v1/builds", Some(json!({"appName": "game", "url": url}))).assert_ok();
    assert_eq!(settled(&admin, "game")["iCurBuild"], 1);
    let heads = origin.heads.lock().unwrap().clone();
    assert!(heads.iter().any(|h| h.contains("?X-Amz-Signature=presigned-credential-4711 ")), "{heads:?}");
    let inputs = stored_task_inputs(&server);
    assert!(!inputs.is_empty() && inputs.iter().all(|i| !i.contains("presigned-credential")), "{inputs:?}");
    assert!(inputs.iter().any(|i| i.contains("sealedUrl") && i.contains("/native-build.tar")), "{inputs:?}");
}

#[test]
fn an_empty_or_malformed_time_filter_is_refused_not_ignored() {
    let server = server();
    let admin = server.org_admin("acme");
    for query in ["createdBefore=", "createdAfter=yesterday"] {
        let reply = admin.call("GET", &format!("/be/v1/tasks?{query}"), None);
        let param = query.split('=').next().unwrap();
        common::assert_param(&reply, 400, "invalid-param", param);
    }
    admin.call("GET", "/be/v1/tasks?createdAfter=2026-01-01T00:00:00Z", None).assert_ok();
}

#[test]
fn a_build_url_that_is_not_http_with_a_host_is_refused() {
    let server = server();
    let admin = server.org_admin("acme");
    create_app(&admin, "game", json!({}));
    for url in ["http://", "ftp://example.com/x.tar", "http:// spaced/x.tar"] {
        let reply = admin.call("POST", "/be/v1/builds", Some(json!({"appName": "game", "url": url})));
        common::assert_param(&reply, 400, "invalid-param", "url");
    }
}

#[test]
fn expiring_a_running_mkraw_stops_it_removes_its_outputs_and_frees_the_app_for_the_next_import() {
    let server = server();
    let admin = server.org_admin("acme");
    create_app(&admin, "game", json!({}));
    // Large enough that mkraw is still importing when the request arrives.
    let mut big = game_v1();
    big.insert("data/movie.bin".into(), file(noise(42, 64 << 20)));
    let tar = tar_of(&big);
    let origin = BuildOrigin::start(tar.clone());
    let group = import(&admin, "game", &origin.url, tar.len())["group"].as_str().unwrap().to_string();
    let mkraw = common::eventually(CHAIN, || {
        tasks_of_group(&admin, &group).into_iter().find(|t| t["type"] == "mkraw" && t["status"] == "running")
    });
    let name = mkraw["name"].as_str().unwrap().to_string();
    admin.call("PATCH", "/be/v1/tasks", Some(json!({"name": name, "expire": true}))).assert_ok();
    let ended = common::eventually(CHAIN, || Some(task(&admin, &name)).filter(|t| t["status"] != "running"));
    assert_eq!(ended["status"], "expired", "{ended}");

    // The chain stopped: no deploy, no build, nothing of build 1 left in the depot.
    let kinds: Vec<Value> = tasks_of_group(&admin, &group).iter().map(|t| t["type"].clone()).collect();
    assert_eq!(kinds, [json!("dltar"), json!("mkraw")]);
    let app = admin.call("GET", "/be/v1/apps/game", None).assert_ok()["app"].clone();
    assert_eq!((&app["processing"], &app["exporting"], &app["iCurBuild"]), (&json!(false), &json!(false), &json!(0)));
    let depot = server.state_dir.join("depot");
    for dir in ["dxf/acme/game/0001", "pat/acme/game/0001"] {
        assert!(!depot.join(dir).exists(), "{dir} is left in the depot");
    }
    assert!(!server.state_dir.join("builds").join("1").join("manifests").join("0001.json").exists());
    // An expired task is not retried.
    let retry = admin.call("POST", "/be/v1/trigger", Some(json!({"action": "retryTask", "taskName": name})));
    retry.assert_error(409, "conflict");

    // The app is free: the next import runs to a committed build (number 1 is burned).
    let v1 = tar_of(&game_v1());
    origin.serve(v1.clone());
    import(&admin, "game", &origin.url, v1.len());
    assert_eq!(settled(&admin, "game")["iCurBuild"], 2);
}

#[test]
fn an_eviction_that_cannot_read_a_retained_manifest_still_commits_the_live_build_and_warns() {
    let server = server();
    let admin = server.org_admin("acme");
    let cdn = tempfile::tempdir().unwrap();
    create_fs_deployment(&admin, "cdn", cdn.path());
    create_app(&admin, "game", json!({"maxBuilds": 2}));
    let origin = BuildOrigin::start(Vec::new());
    for tree in [game_v1(), game_v2()] {
        let tar = tar_of(&tree);
        origin.serve(tar.clone());
        import(&admin, "game", &origin.url, tar.len());
        settled(&admin, "game");
    }
    // Build 2 stays retained when build 3 evicts build 1, but its manifest cannot be read.
    let manifests: Vec<_> = std::fs::read_dir(server.state_dir.join("builds"))
        .unwrap()
        .map(|app| app.unwrap().path().join("manifests/0002.json"))
        .filter(|m| m.is_file())
        .collect();
    assert_eq!(manifests.len(), 1);
    std::fs::remove_file(&manifests[0]).unwrap();

    let mut v3 = game_v2();
    v3.insert("data/level3.pak".into(), file(noise(78, 200_000)));
    let tar = tar_of(&v3);
    origin.serve(tar.clone());
    let group = import(&admin, "game", &origin.url, tar.len())["group"].as_str().unwrap().to_string();
    let app = settled(&admin, "game");
    // Published everywhere, so committed: the app names the build launchers now get.
    assert_eq!(app["iCurBuild"], 3, "{app}");
    assert_eq!(app["error"], Value::Null);
    let builds: Vec<i64> = app["builds"].as_array().unwrap().iter().map(|b| b["buildId"].as_i64().unwrap()).collect();
    assert_eq!(builds, [2, 3]);
    let current: Value =
        serde_json::from_slice(&std::fs::read(cdn.path().join("dxf/acme/game/current.json")).unwrap()).unwrap();
    assert_eq!(current["buildId"], 3);
    let deploy = tasks_of_group(&admin, &group).into_iter().find(|t| t["type"] == "deploy").unwrap();
    assert_eq!(deploy["status"], "done", "{deploy}");
    let codes: Vec<&str> = deploy["warnings"].as_array().unwrap().iter().filter_map(|w| w["code"].as_str()).collect();
    assert_eq!(codes, ["evictionIncomplete"], "{deploy}");
    // It names the file relative to the state directory, which members have no business knowing.
    let message = deploy["warnings"][0]["message"].as_str().unwrap();
    assert!(message.contains("manifests/0002.json"), "{message}");
    assert!(!message.contains(&*server.state_dir.to_string_lossy()), "{message}");
    // And the live build is whole on the origin.
    let tree = tempfile::tempdir().unwrap();
    let dest = tree.path().join("game");
    let published = DirOrigin { root: cdn.path().to_path_buf() };
    Client::new(&published, "acme", "game").rebuild(3, None, &dest).unwrap();
    assert_same_tree(&read_tree(&dest), &v3);
}
