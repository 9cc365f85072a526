//! Moving an organization between boxes (issue 13): export on one real server, import and
//! commit on another, every refusal of a bad bundle with nothing changed, and the permissions
//! of the new endpoints.

mod common;
mod engine_support;

use std::io::Read;
use std::path::Path;
use std::time::Duration;

use common::{Reply, Server, Session, PASSWORD};
use engine_support::*;
use serde_json::{json, Value};

/// Imports and exports on a loaded 2-core machine take a while; tasks are polled this long.
const TASKS: Duration = Duration::from_secs(180);
const PASSPHRASE: &str = "moving day passphrase";

/// A box whose bundles derive their keys cheaply (the production default is tested in the
/// bundle's unit tests' format, not its cost).
fn server() -> Server {
    Server::start_with(&[("ROCKIT_EDGE_EXPORT_KDF_ITERATIONS", "1000")])
}

/// The bytes of a GET, whatever the status.
fn get_bytes(url: &str) -> (u16, Vec<u8>) {
    let resp = match ureq::get(url).call() {
        Ok(resp) => resp,
        Err(ureq::Error::Status(_, resp)) => resp,
        Err(e) => panic!("GET {url}: {e}"),
    };
    let status = resp.status();
    let mut body = Vec::new();
    resp.into_reader().read_to_end(&mut body).unwrap();
    (status, body)
}

fn put(url: &str, bytes: &[u8]) -> Reply {
    common::send_raw("PUT", url, &[], Some(("application/octet-stream", bytes)))
}

fn wait_task(admin: &Session, name: &str) -> Value {
    common::eventually(TASKS, || {
        let task = admin.call("GET", &format!("/be/v1/tasks/{name}"), None).assert_ok()["task"].clone();
        matches!(task["status"].as_str(), Some("done" | "failed")).then_some(task)
    })
}

/// Exports the session's organization and downloads the bundle.
fn export(admin: &Session, include_builds: bool) -> Vec<u8> {
    let reply =
        admin.call("POST", "/be/v1/export", Some(json!({"passphrase": PASSPHRASE, "includeBuilds": include_builds})));
    let body = reply.assert_ok();
    assert_eq!(body["task"]["type"], "export");
    assert_eq!(body["download"]["method"], "GET");
    let url = body["download"]["url"].as_str().unwrap().to_string();
    let task = wait_task(admin, body["task"]["name"].as_str().unwrap());
    assert_eq!(task["status"], "done", "{task}");
    let (status, bytes) = get_bytes(&url);
    assert_eq!(status, 200);
    assert_eq!(bytes.len() as u64, task["output"]["sizeBytes"].as_u64().unwrap());
    bytes
}

/// Starts an import with `passphrase` and answers the upload URL and the import id.
fn start_import(server: &Server, passphrase: &str) -> (String, String) {
    let reply = server.admin("POST", "/be/v1/import", Some(json!({"passphrase": passphrase})));
    let body = reply.assert_ok();
    assert_eq!(body["import"]["status"], "waiting");
    assert_eq!(body["upload"]["method"], "PUT");
    (body["upload"]["url"].as_str().unwrap().to_string(), body["import"]["importId"].as_str().unwrap().to_string())
}

fn commit(server: &Server, import_id: &str) -> Reply {
    server.admin("POST", "/adm/v1/commit", Some(json!({"importId": import_id})))
}

fn org_names(server: &Server) -> Vec<String> {
    let body = server.admin("GET", "/adm/v1/orgs?limit=1000", None).assert_ok().clone();
    body["orgs"].as_array().unwrap().iter().map(|o| o["name"].as_str().unwrap().to_string()).collect()
}

/// Nothing of a refused import stays in the state directory.
fn assert_nothing_staged(server: &Server) {
    let dir = server.state_dir.join("imports");
    let left: Vec<_> =
        std::fs::read_dir(&dir).map(|d| d.filter_map(Result::ok).map(|e| e.path()).collect()).unwrap_or_default();
    assert!(left.is_empty(), "left behind: {left:?}");
}

/// Organization `acme` with a role, a person, a machine with an API key, an fs deployment with a
/// download-auth secret, a subscription and an app; its administrator's session and password.
fn populated(server: &Server, cdn: &Path) -> (Session, String, common::Machine) {
    let password = server.create_org("acme");
    let admin = server.login("acme", "admin", &password);
    admin.create_role("builders", json!({"apps": 15, "tasks": 3}));
    admin.create_user(server, "alice", &["builders"]);
    let machine = admin.create_machine("ci_bot", &["builders"]);
    let deployment = json!({"name": "cdn", "origin": {"type": "fs", "path": cdn}, "downloadAuth": {"type": "akamai", "key": "akamai-key-0123456789"}});
    admin.call("POST", "/be/v1/deployments", Some(deployment)).assert_ok();
    admin
        .call(
            "POST",
            "/be/v1/subscriptions",
            Some(json!({"name": "ci_hook", "type": "webhook", "url": "https://ci.example.com/hook"})),
        )
        .assert_ok();
    admin.call("POST", "/be/v1/apps", Some(json!({"name": "game", "label": "A game", "maxBuilds": 3}))).assert_ok();
    (admin, password, machine)
}

/// Uploads a build of `game` and waits until the chain has finished.
fn upload_build(admin: &Session, tar: &[u8]) {
    let reply = admin.call("POST", "/be/v1/builds", Some(json!({"appName": "game"})));
    let url = reply.assert_ok()["upload"]["url"].as_str().unwrap().to_string();
    put(&url, tar).assert_ok();
    common::eventually(TASKS, || {
        let app = admin.call("GET", "/be/v1/apps/game", None).assert_ok()["app"].clone();
        (app["processing"] == false && app["exporting"] == false).then_some(app)
    });
}

fn names(reply: &Reply, key: &str, field: &str) -> Vec<String> {
    let items = reply.assert_ok()[key].as_array().unwrap().clone();
    items.iter().map(|i| i[field].as_str().unwrap().to_string()).collect()
}

fn fetch(depot: &Path, build: u32, extra: &[&str], dest: &Path) {
    let out = std::process::Command::new(common::BIN)
        .args([
            "fetch",
            "--from",
            depot.to_str().unwrap(),
            "--org",
            "acme",
            "--app",
            "game",
            "--build",
            &build.to_string(),
            "--dest",
        ])
        .arg(dest)
        .args(extra)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn an_organization_moves_to_another_box_with_its_builds_and_serves_them_byte_for_byte() {
    let (first, second) = (server(), server());
    let cdn = tempfile::tempdir().unwrap();
    let (admin, password, machine) = populated(&first, cdn.path());
    upload_build(&admin, &tar_of(&game_v1()));
    upload_build(&admin, &tar_of(&game_v2()));
    let app_before = admin.call("GET", "/be/v1/apps/game", None).assert_ok()["app"].clone();
    assert_eq!(app_before["iCurBuild"], 2, "{app_before}");

    let bundle = export(&admin, true);
    assert!(!bundle.windows(PASSWORD.len()).any(|w| w == PASSWORD.as_bytes()), "no password in clear");
    assert!(!bundle.windows(21).any(|w| w == b"akamai-key-0123456789"), "no secret in clear");
    assert!(!bundle.windows(17).any(|w| w == b"alice@example.com"), "the document is encrypted");

    let (upload, import_id) = start_import(&second, PASSPHRASE);
    let staged = put(&upload, &bundle);
    let staged = staged.assert_ok()["import"].clone();
    assert_eq!(staged["status"], "staged");
    let report = &staged["report"];
    assert_eq!(report["orgName"], "acme");
    assert_eq!(report["replacesEmptyOrg"], false);
    assert_eq!(report["create"]["users"], json!(["admin", "alice", "ci_bot"]));
    assert_eq!(report["create"]["apps"], json!(["game"]));
    assert_eq!(report["create"]["builds"], 2);
    assert!(org_names(&second).is_empty(), "a dry run creates nothing");

    // Staged files gone (say, moved away by a commit a crash cut short): no builds without files.
    let staged_builds = second.state_dir.join("imports").join(&import_id).join("files/builds/game");
    let aside = second.state_dir.join("aside");
    std::fs::rename(&staged_builds, &aside).unwrap();
    commit(&second, &import_id).assert_error(409, "conflict");
    std::fs::rename(&aside, &staged_builds).unwrap();

    // Files of the organization already in the depot (say, of a deleted one): nothing is merged.
    let leftover = second.state_dir.join("depot/dxf/acme/game");
    std::fs::create_dir_all(&leftover).unwrap();
    commit(&second, &import_id).assert_error(409, "conflict");
    assert!(org_names(&second).is_empty(), "the refused commit created nothing");
    std::fs::remove_dir(&leftover).unwrap();

    let committed = commit(&second, &import_id);
    assert_eq!(committed.assert_ok()["import"]["status"], "committed");
    assert_eq!(committed.body["org"]["name"], "acme");
    commit(&second, &import_id).assert_error(409, "conflict");

    // Both ends are on the audit trail: who took every password hash out, who brought it in.
    let exported = admin.call("GET", "/be/v1/audit?event=org.exported", None).assert_ok()["audit"].clone();
    assert_eq!(exported.as_array().map(Vec::len), Some(1), "{exported}");
    assert_eq!(exported[0]["username"], "acme/admin", "{exported}");
    assert!(exported[0]["target"].as_str().unwrap().ends_with("includeBuilds=true"), "{exported}");
    let imported = second.admin("GET", "/adm/v1/audit?event=org.imported", None).assert_ok()["audit"].clone();
    assert_eq!(imported.as_array().map(Vec::len), Some(1), "one commit succeeded: {imported}");
    assert_eq!(imported[0]["target"], format!("acme import={import_id}"), "{imported}");

    // The same passwords and API key work on the second box; sessions did not travel.
    let moved = second.login("acme", "admin", &password);
    second.login("acme", "alice", PASSWORD);
    let machine = common::Machine { base: second.base.clone(), ..machine };
    machine.call("GET", "/be/v1/apps/game", None).assert_ok();
    let sessions = moved.call("GET", "/be/v1/sessions?limit=1000", None);
    assert_eq!(sessions.assert_ok()["sessions"].as_array().unwrap().len(), 2, "only the two logins just made");

    assert_eq!(names(&moved.call("GET", "/be/v1/users", None), "users", "username"), ["admin", "alice", "ci_bot"]);
    let roles = names(&moved.call("GET", "/be/v1/roles", None), "roles", "name");
    assert!(roles.contains(&"builders".to_string()) && roles.contains(&"Administrators".to_string()), "{roles:?}");
    let deployment = moved.call("GET", "/be/v1/deployments/cdn", None).assert_ok()["deployment"].clone();
    assert_eq!(deployment["downloadAuth"]["type"], "akamai");
    // A change opens the deployment's sealed secret: it was sealed again under this box's key.
    moved.call("PATCH", "/be/v1/deployments", Some(json!({"name": "cdn", "label": "moved"}))).assert_ok();
    assert_eq!(names(&moved.call("GET", "/be/v1/subscriptions", None), "subscriptions", "name"), ["ci_hook"]);
    let app = moved.call("GET", "/be/v1/apps/game", None).assert_ok()["app"].clone();
    for field in ["iCurBuild", "dxfName", "builds", "patches", "sizeBytes", "deployments", "maxBuilds"] {
        assert_eq!(app[field], app_before[field], "{field}");
    }

    // The reference client rebuilds both builds from the second box's depot, and patches 1 → 2.
    let depot = second.state_dir.join("depot");
    let trees = tempfile::tempdir().unwrap();
    fetch(&depot, 2, &[], &trees.path().join("v2"));
    assert_same_tree(&read_tree(&trees.path().join("v2")), &game_v2());
    let old = trees.path().join("v1");
    fetch(&depot, 1, &[], &old);
    assert_same_tree(&read_tree(&old), &game_v1());
    fetch(&depot, 2, &["--update-from", "1"], &old);
    assert_same_tree(&read_tree(&old), &game_v2());

    // The second box patches from the moved builds: build 3 gets a patch from build 2.
    upload_build(&moved, &tar_of(&game_v1()));
    let app = moved.call("GET", "/be/v1/apps/game", None).assert_ok()["app"].clone();
    assert_eq!(app["iCurBuild"], 3, "{app}");
    assert!(app["patches"].as_array().unwrap().iter().any(|p| p["fromBuildId"] == 2 && p["toBuildId"] == 3), "{app}");
    assert_nothing_staged(&second);
}

#[test]
fn the_download_url_is_used_up_once_the_whole_bundle_went_out() {
    let first = server();
    let admin = first.org_admin("acme");
    let reply = admin.call("POST", "/be/v1/export", Some(json!({"passphrase": PASSPHRASE})));
    let url = reply.assert_ok()["download"]["url"].as_str().unwrap().to_string();
    wait_task(&admin, reply.body["task"]["name"].as_str().unwrap());
    assert_eq!(get_bytes(&url).0, 200);
    // The passphrase was kept (sealed) only while the task could run.
    let db =
        rusqlite::Connection::open_with_flags(first.database(), rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap();
    let input: String = db.query_row("SELECT input FROM tasks WHERE type = 'export'", [], |r| r.get(0)).unwrap();
    assert!(!input.contains("passphrase"), "{input}");
    assert!(!first.state_dir.join("exports").read_dir().unwrap().any(|_| true), "the fetched bundle is deleted");
    let again = common::send("GET", &url, &[], None);
    again.assert_error(404, "not-found");
    assert_eq!(again.body["resource"], "download");
    common::send("GET", &first.url("/be/v1/exports/not-a-capability"), &[], None).assert_error(404, "not-found");
}

#[test]
fn every_bad_bundle_is_refused_with_a_clear_answer_and_changes_nothing() {
    let (first, second) = (server(), server());
    let admin = first.org_admin("acme");
    admin.call("POST", "/be/v1/apps", Some(json!({"name": "game", "label": "A game"}))).assert_ok();
    let good = export(&admin, false);

    let (upload, import_id) = start_import(&second, "a different passphrase");
    common::assert_param(&put(&upload, &good), 400, "invalid-param", "passphrase");
    commit(&second, &import_id).assert_error(409, "conflict");

    let mut tampered = good.clone();
    let middle = good.len() / 2;
    tampered[middle] ^= 0x20;
    let mut newer = good.clone();
    newer[9] = 2;
    let cases: [(&str, &[u8], &str); 4] = [
        ("truncated", &good[..good.len() - 10], "truncated"),
        ("tampered", &tampered, "integrity"),
        ("newer", &newer, "newer"),
        ("not a bundle", b"PK\x03\x04 a zip file", "not an organization bundle"),
    ];
    for (what, bytes, says) in cases {
        let (upload, import_id) = start_import(&second, PASSPHRASE);
        let reply = put(&upload, bytes);
        common::assert_param(&reply, 400, "invalid-param", "bundle");
        assert!(reply.body["message"].as_str().unwrap().contains(says), "{what}: {:?}", reply.body);
        commit(&second, &import_id).assert_error(409, "conflict");
        // The URL stays usable: the right bundle is taken after a refused one.
        if what == "tampered" {
            put(&upload, &good).assert_ok();
            second.admin("DELETE", "/adm/v1/orgs/acme", None).assert_error(404, "not-found");
        }
    }
    assert!(org_names(&second).is_empty(), "nothing was created: {:?}", org_names(&second));
    // The staged (good) import above is the only thing on disk.
    let staged: Vec<_> = std::fs::read_dir(second.state_dir.join("imports")).unwrap().collect();
    assert_eq!(staged.len(), 1);
}

#[test]
fn an_import_onto_an_organization_in_use_is_refused_and_an_empty_one_is_replaced() {
    let (first, second) = (server(), server());
    let admin = first.org_admin("acme");
    admin.create_user(&first, "alice", &[]);
    let bundle = export(&admin, false);

    // In use (an app): refused at staging, and again at commit if it came into use meanwhile.
    let local = second.org_admin("acme");
    local.call("POST", "/be/v1/apps", Some(json!({"name": "local_app", "label": "Mine"}))).assert_ok();
    let (upload, _) = start_import(&second, PASSPHRASE);
    let reply = put(&upload, &bundle);
    reply.assert_error(409, "already-exists");
    assert_eq!(reply.body["resource"], "org");
    local.call("GET", "/be/v1/apps/local_app", None).assert_ok();
    assert_nothing_staged(&second);

    local.call("DELETE", "/be/v1/apps/local_app", None).assert_ok();
    let (upload, import_id) = start_import(&second, PASSPHRASE);
    let staged = put(&upload, &bundle);
    assert_eq!(staged.assert_ok()["import"]["report"]["replacesEmptyOrg"], true);
    local.call("POST", "/be/v1/apps", Some(json!({"name": "late_app", "label": "Mine"}))).assert_ok();
    commit(&second, &import_id).assert_error(409, "already-exists");
    local.call("GET", "/be/v1/apps/late_app", None).assert_ok();

    // Empty again: the commit replaces the local accounts by the bundle's.
    local.call("DELETE", "/be/v1/apps/late_app", None).assert_ok();
    commit(&second, &import_id).assert_ok();
    second.login("acme", "alice", PASSWORD);
    local.call("GET", "/be/v1/apps", None).assert_error(401, "token-revoked");
}

#[test]
fn only_administrators_export_and_only_the_admin_token_imports_and_commits() {
    let first = server();
    let admin = first.org_admin("acme");
    let member = admin.create_user(&first, "alice", &[]);
    member
        .call("POST", "/be/v1/export", Some(json!({"passphrase": PASSPHRASE})))
        .assert_error(403, "permission-denied");
    common::assert_param(
        &admin.call("POST", "/be/v1/export", Some(json!({"passphrase": "too short"}))),
        400,
        "invalid-param",
        "passphrase",
    );
    admin.call("POST", "/be/v1/import", Some(json!({"passphrase": PASSPHRASE}))).assert_error(401, "token-missing");
    admin.call("POST", "/adm/v1/commit", Some(json!({"importId": "import-00"}))).assert_error(401, "token-missing");
    commit(&first, "import-0000000000000000").assert_error(404, "not-found");
    put(&first.url("/be/v1/imports/not-a-capability"), b"x").assert_error(404, "not-found");

    // An export holds the caller's organization only, never another's.
    let other = first.org_admin("other");
    other.create_user(&first, "bob", &[]);
    let bundle = export(&admin, false);
    let second = server();
    let (upload, _) = start_import(&second, PASSPHRASE);
    let report = put(&upload, &bundle).assert_ok()["import"]["report"].clone();
    assert_eq!(report["orgName"], "acme");
    assert_eq!(report["create"]["users"], json!(["admin", "alice"]));
}

#[test]
fn an_export_with_builds_waits_until_no_import_holds_an_app() {
    let first = server();
    let admin = first.org_admin("acme");
    admin.call("POST", "/be/v1/apps", Some(json!({"name": "game", "label": "A game"}))).assert_ok();
    // An import in upload mode holds the app until its tar arrives.
    admin.call("POST", "/be/v1/builds", Some(json!({"appName": "game"}))).assert_ok();
    let body = json!({"passphrase": PASSPHRASE, "includeBuilds": true});
    let reply = admin.call("POST", "/be/v1/export", Some(body));
    reply.assert_error(409, "busy");
    assert!(reply.body["message"].as_str().unwrap().contains("game"), "{:?}", reply.body);
    // Without builds the export does not touch build files and goes ahead.
    admin.call("POST", "/be/v1/export", Some(json!({"passphrase": PASSPHRASE}))).assert_ok();
}

#[test]
fn a_download_waits_for_its_export_and_a_failed_export_says_so() {
    let first = server();
    let admin = first.org_admin("acme");
    // A file where the exports directory belongs: every attempt of the task fails.
    std::fs::write(first.state_dir.join("exports"), b"in the way").unwrap();
    let reply = admin.call("POST", "/be/v1/export", Some(json!({"passphrase": PASSPHRASE})));
    let url = reply.assert_ok()["download"]["url"].as_str().unwrap().to_string();
    common::send("GET", &url, &[], None).assert_error(409, "busy");
    let task = wait_task(&admin, reply.body["task"]["name"].as_str().unwrap());
    assert_eq!(task["status"], "failed", "{task}");
    common::send("GET", &url, &[], None).assert_error(409, "conflict");
}

#[test]
fn an_import_is_refused_when_this_box_does_not_allow_its_origins_or_it_is_too_large() {
    let first = server();
    let cdn = tempfile::tempdir().unwrap();
    let (admin, _, _) = populated(&first, cdn.path());
    let bundle = export(&admin, false);
    let allowed = tempfile::tempdir().unwrap();
    let roots = allowed.path().to_str().unwrap().to_string();
    let second = Server::start_with(&[
        ("ROCKIT_EDGE_EXPORT_KDF_ITERATIONS", "1000"),
        ("ROCKIT_EDGE_ORIGIN_ROOTS", &roots),
        ("ROCKIT_EDGE_MAX_BUNDLE_BYTES", &(bundle.len() + 1).to_string()),
    ]);
    let (upload, _) = start_import(&second, PASSPHRASE);
    let reply = put(&upload, &bundle);
    common::assert_param(&reply, 400, "invalid-param", "bundle");
    assert!(reply.body["message"].as_str().unwrap().contains("deployment cdn"), "{:?}", reply.body);

    let mut larger = bundle.clone();
    larger.extend_from_slice(b"xx");
    common::assert_param(&put(&upload, &larger), 400, "invalid-param", "body");
    assert!(org_names(&second).is_empty());
    assert_nothing_staged(&second);
}

/// PUTs `body` over a raw connection in `pieces` with `pause` before each, so the server sees
/// exactly that rhythm (an HTTP client library may buffer small pieces); answers the status line
/// and the rest of the answer.
fn put_slowly(url: &str, body: &[u8], pieces: usize, pause: Duration) -> String {
    use std::io::Write;
    let rest = url.strip_prefix("http://").unwrap();
    let (host, path) = rest.split_at(rest.find('/').unwrap());
    let mut stream = std::net::TcpStream::connect(host).unwrap();
    let head = format!(
        "PUT {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/octet-stream\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).unwrap();
    for piece in body.chunks(body.len().div_ceil(pieces)) {
        std::thread::sleep(pause);
        stream.write_all(piece).unwrap();
        stream.flush().unwrap();
    }
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    answer
}

#[test]
fn a_bundle_upload_may_take_longer_than_the_body_timeout_while_it_keeps_flowing() {
    let first = server();
    let admin = first.org_admin("acme");
    let bundle = export(&admin, false);
    let second =
        Server::start_with(&[("ROCKIT_EDGE_EXPORT_KDF_ITERATIONS", "1000"), ("ROCKIT_EDGE_BODY_TIMEOUT", "2s")]);
    let (upload, _) = start_import(&second, PASSPHRASE);
    // Ten pieces 400 ms apart: 4 s in all, twice the body timeout, never a 2 s pause.
    let answer = put_slowly(&upload, &bundle, 10, Duration::from_millis(400));
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains(r#""status":"staged""#), "{answer}");
}

#[test]
fn an_import_shows_its_report_until_it_is_committed_or_discarded() {
    let first = server();
    let admin = first.org_admin("acme");
    let bundle = export(&admin, false);
    let second = server();
    let (upload, import_id) = start_import(&second, PASSPHRASE);
    let path = format!("/adm/v1/imports/{import_id}");
    assert_eq!(second.admin("GET", &path, None).assert_ok()["import"]["status"], "waiting");
    put(&upload, &bundle).assert_ok();
    let staged = second.admin("GET", &path, None).assert_ok()["import"].clone();
    assert_eq!((staged["status"].as_str(), staged["report"]["orgName"].as_str()), (Some("staged"), Some("acme")));
    admin.call("GET", &path, None).assert_error(401, "token-missing");

    second.admin("DELETE", &path, None).assert_ok();
    second.admin("GET", &path, None).assert_error(404, "not-found");
    commit(&second, &import_id).assert_error(404, "not-found");
    put(&upload, &bundle).assert_error(404, "not-found");
    assert_nothing_staged(&second);

    let (upload, import_id) = start_import(&second, PASSPHRASE);
    put(&upload, &bundle).assert_ok();
    commit(&second, &import_id).assert_ok();
    second.admin("DELETE", &format!("/adm/v1/imports/{import_id}"), None).assert_error(409, "conflict");
    assert_eq!(org_names(&second), ["acme"]);
}
