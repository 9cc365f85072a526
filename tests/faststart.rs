//! FastStart against the real server (issue 11): launchers send start-up traces with
//! `POST /be/v1/traces`, `processTraces` builds a trace-ordered image of the current build,
//! publishes it under a new dxfName and switches the app to it; the reference client rebuilds it
//! byte for byte from the `fs` deployment.

mod common;
mod engine_support;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::Path;
use std::time::Duration;

use common::{assert_param, Server, Session};
use engine_support::*;
use rockit_edge::engine::client::Client;
use rockit_edge::engine::image::IndexKind;
use rockit_edge::engine::origin::DirOrigin;
use rockit_edge::engine::Index;
use serde_json::{json, Value};

/// Imports and trace processing on a loaded 2-core machine take a while.
const CHAIN: Duration = Duration::from_secs(180);

/// Serves `body` whole to every GET (the build server of an import).
fn build_origin(body: Vec<u8>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/native-build.tar", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
            }
            let head = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", body.len());
            let _ = stream.write_all(head.as_bytes()).and_then(|_| stream.write_all(&body));
        }
    });
    url
}

/// Waits until the app is neither processing nor exporting and answers it.
fn settled(admin: &Session, app: &str) -> Value {
    common::eventually(CHAIN, || {
        let app = admin.call("GET", &format!("/be/v1/apps/{app}"), None).assert_ok()["app"].clone();
        (app["processing"] == false && app["exporting"] == false).then_some(app)
    })
}

/// A server whose org `acme` has an `fs` deployment in `cdn` and app `game` at build 1.
fn game_at_build_1(cdn: &Path) -> (Server, Session) {
    let server = Server::start_with(&[("ROCKIT_EDGE_OUTBOUND_ALLOW_LOOPBACK", "true")]);
    let admin = server.org_admin("acme");
    let deployment = json!({"name": "cdn", "origin": {"type": "fs", "path": cdn.to_str().unwrap()}});
    admin.call("POST", "/be/v1/deployments", Some(deployment)).assert_ok();
    admin.call("POST", "/be/v1/apps", Some(json!({"name": "game", "label": "A game"}))).assert_ok();
    let tar = tar_of(&game_v1());
    let url = build_origin(tar.clone());
    admin.call("POST", "/be/v1/builds", Some(json!({"appName": "game", "url": url, "size": tar.len()}))).assert_ok();
    assert_eq!(settled(&admin, "game")["iCurBuild"], 1);
    (server, admin)
}

fn reads() -> Value {
    json!([
        {"path": "data/level1.pak", "offset": 1_200_000, "len": 70_000},
        {"path": "docs/readme.txt", "offset": 0, "len": 10},
        {"path": "data/level2.pak", "offset": 300_000, "len": 1_000},
    ])
}

fn trace(reads: Value) -> Value {
    json!({"appName": "game", "buildId": 1, "reads": reads})
}

/// The chunk-table slots the reads touch, each once, in first-access order.
fn touched_slots(index: &Index, reads: &Value) -> Vec<u32> {
    let mut slots = Vec::new();
    for r in reads.as_array().unwrap() {
        let (offset, len) = (r["offset"].as_u64().unwrap(), r["len"].as_u64().unwrap());
        let entry = index.files.iter().find(|e| e.path == r["path"]).unwrap();
        let IndexKind::File { chunks, .. } = &entry.kind else { panic!("no file") };
        let mut at = 0u64;
        for &slot in chunks {
            let raw = index.chunks[slot as usize].raw_len as u64;
            if at + raw > offset && at < offset + len && !slots.contains(&slot) {
                slots.push(slot);
            }
            at += raw;
        }
    }
    slots
}

fn process_traces(admin: &Session) -> common::Reply {
    admin.call("POST", "/be/v1/trigger", Some(json!({"action": "processTraces", "appName": "game"})))
}

#[test]
fn process_traces_publishes_a_reordered_image_of_the_current_build_and_switches_the_app_to_it() {
    let cdn = tempfile::tempdir().unwrap();
    let (server, admin) = game_at_build_1(cdn.path());
    let before = admin.call("GET", "/be/v1/apps/game", None).assert_ok()["app"]["dxfName"].clone();

    let stored = admin.call("POST", "/be/v1/traces", Some(trace(reads())));
    assert_eq!(stored.assert_ok()["trace"], json!({"appName": "game", "buildId": 1, "reads": 3, "traces": 1}));
    let task = process_traces(&admin).assert_ok()["task"].clone();
    assert_eq!(task["type"], "mkfast");
    assert_eq!(task["buildId"], 1);
    let app = settled(&admin, "game");
    let name = task["name"].as_str().unwrap();
    let done = admin.call("GET", &format!("/be/v1/tasks/{name}"), None).assert_ok()["task"].clone();
    assert_eq!(done["status"], "done", "{done}");
    assert_eq!(done["progress"]["done"], done["progress"]["total"], "{done}");
    assert_eq!(app["iCurBuild"], 1);
    assert_eq!(app["status"], "ok");
    let dxf_name = app["dxfName"].as_str().unwrap().to_string();
    assert_ne!(app["dxfName"], before, "the app switched to the new image");

    // Published on the deployment and in the depot, under the same build id.
    let rel = format!("dxf/acme/game/0001/{dxf_name}/index.zst");
    let index = Index::decode(&std::fs::read(cdn.path().join(&rel)).unwrap()).unwrap();
    assert!(server.state_dir.join("depot").join(&rel).is_file());
    let slots = touched_slots(&index, &reads());
    assert!(slots.len() >= 3, "{slots:?}");
    assert_eq!(slots, (0..slots.len() as u32).collect::<Vec<_>>(), "start-up chunks lead, in first-access order");
    let preload: u64 = index.chunks[..slots.len()].iter().map(|c| c.stored_len as u64).sum();
    assert_eq!(index.preload_bytes, Some(preload));

    let tree = tempfile::tempdir().unwrap();
    let dest = tree.path().join("game");
    let published = DirOrigin { root: cdn.path().to_path_buf() };
    Client::new(&published, "acme", "game").rebuild(1, Some(&dxf_name), &dest).unwrap();
    assert_same_tree(&read_tree(&dest), &game_v1());

    // Launchers that follow the go-live pointer, on the deployment and in the depot, switch too.
    for root in [cdn.path().to_path_buf(), server.state_dir.join("depot")] {
        let pointer: Value =
            serde_json::from_slice(&std::fs::read(root.join("dxf/acme/game/current.json")).unwrap()).unwrap();
        assert_eq!(pointer["buildId"], 1, "{pointer}");
        assert_eq!(pointer["dxfName"], dxf_name.as_str(), "{pointer}");
    }

    // The old image stays for launchers still fetching it.
    let old = cdn.path().join(format!("dxf/acme/game/0001/{}/index.zst", before.as_str().unwrap()));
    assert!(old.is_file());
}

#[test]
fn several_traces_merge_into_one_order_by_earliest_access() {
    let cdn = tempfile::tempdir().unwrap();
    let (_server, admin) = game_at_build_1(cdn.path());
    let first = json!([{"path": "docs/readme.txt", "offset": 0, "len": 10}, {"path": "data/level2.pak", "offset": 0, "len": 10}]);
    let second = json!([{"path": "data/level1.pak", "offset": 1_400_000, "len": 10}, {"path": "docs/readme.txt", "offset": 0, "len": 10}]);
    admin.call("POST", "/be/v1/traces", Some(trace(first))).assert_ok();
    let stored = admin.call("POST", "/be/v1/traces", Some(trace(second)));
    assert_eq!(stored.assert_ok()["trace"]["traces"], 2);
    process_traces(&admin).assert_ok();
    let app = settled(&admin, "game");
    let rel = format!("dxf/acme/game/0001/{}/index.zst", app["dxfName"].as_str().unwrap());
    let index = Index::decode(&std::fs::read(cdn.path().join(rel)).unwrap()).unwrap();
    // Position 0 of either trace comes first (older trace first), then position 1.
    let merged = json!([
        {"path": "docs/readme.txt", "offset": 0, "len": 10},
        {"path": "data/level1.pak", "offset": 1_400_000, "len": 10},
        {"path": "data/level2.pak", "offset": 0, "len": 10},
    ]);
    let slots = touched_slots(&index, &merged);
    assert_eq!(slots, vec![0, 1, 2]);
    let preload: u64 = index.chunks[..3].iter().map(|c| c.stored_len as u64).sum();
    assert_eq!(index.preload_bytes, Some(preload));
}

#[test]
fn process_traces_without_traces_is_a_conflict_that_says_what_is_missing() {
    let cdn = tempfile::tempdir().unwrap();
    let (server, admin) = game_at_build_1(cdn.path());
    let reply = process_traces(&admin);
    reply.assert_error(409, "conflict");
    assert!(reply.body["message"].as_str().unwrap().contains("no start-up traces"), "{:?}", reply.body);
    // An app without any build has nothing to reorder either.
    admin.call("POST", "/be/v1/apps", Some(json!({"name": "empty", "label": "Empty"}))).assert_ok();
    let reply = admin.call("POST", "/be/v1/trigger", Some(json!({"action": "processTraces", "appName": "empty"})));
    reply.assert_error(409, "conflict");
    assert!(reply.body["message"].as_str().unwrap().contains("no build"), "{:?}", reply.body);
    let reply = admin.call("POST", "/be/v1/trigger", Some(json!({"action": "processTraces", "appName": "nope"})));
    reply.assert_error(404, "not-found");
    // Nothing was queued, the app is free.
    let tasks = admin.call("GET", "/be/v1/tasks?type=mkfast", None).assert_ok()["tasks"].clone();
    assert_eq!(tasks, json!([]));
    drop(server);
}

#[test]
fn traces_that_do_not_fit_the_build_are_refused_and_nothing_is_stored() {
    let cdn = tempfile::tempdir().unwrap();
    let (_server, admin) = game_at_build_1(cdn.path());
    let post = |body: Value| admin.call("POST", "/be/v1/traces", Some(body));

    let unknown = post(trace(json!([{"path": "no/such.file", "offset": 0, "len": 1}])));
    assert_param(&unknown, 409, "conflict", "reads");
    assert!(unknown.body["message"].as_str().unwrap().contains("no/such.file"), "{:?}", unknown.body);
    let past_end = post(trace(json!([{"path": "docs/readme.txt", "offset": 4_999, "len": 2}])));
    assert_param(&past_end, 409, "conflict", "reads");
    let directory = post(trace(json!([{"path": "data", "offset": 0, "len": 1}])));
    assert_param(&directory, 409, "conflict", "reads");
    post(json!({"appName": "game", "buildId": 2, "reads": reads()})).assert_error(404, "not-found");
    post(json!({"appName": "nope", "buildId": 1, "reads": reads()})).assert_error(404, "not-found");

    assert_param(&post(trace(json!([]))), 400, "invalid-param", "reads");
    let empty_read = post(trace(json!([{"path": "docs/readme.txt", "offset": 0, "len": 0}])));
    assert_param(&empty_read, 400, "invalid-param", "reads.len");
    let long_path = post(trace(json!([{"path": "a".repeat(1025), "offset": 0, "len": 1}])));
    assert_param(&long_path, 400, "invalid-param", "reads.path");
    let one = json!({"path": "docs/readme.txt", "offset": 0, "len": 1});
    let too_many = post(trace(Value::Array(vec![one.clone(); 20_001])));
    assert_param(&too_many, 400, "invalid-param", "reads");
    assert_param(&post(json!({"appName": "game", "reads": reads()})), 400, "missing-param", "buildId");

    // None of these left a trace behind.
    process_traces(&admin).assert_error(409, "conflict");
    // A trace larger than the general JSON limit (64 KiB) but within its own is accepted.
    let many = post(trace(Value::Array(vec![one; 5_000])));
    assert_eq!(many.assert_ok()["trace"]["reads"], 5_000);
}

#[test]
fn a_launcher_account_with_only_trainings_update_sends_traces_and_nothing_more() {
    let cdn = tempfile::tempdir().unwrap();
    let (server, admin) = game_at_build_1(cdn.path());
    let role = admin.create_role("launcher", json!({"trainings": 4}));
    let launcher = admin.create_machine("launcher_bot", &[&role]);
    launcher.call("POST", "/be/v1/traces", Some(trace(reads()))).assert_ok();
    let refused = launcher.call("POST", "/be/v1/trigger", Some(json!({"action": "processTraces", "appName": "game"})));
    refused.assert_error(403, "permission-denied");
    launcher.call("GET", "/be/v1/apps/game", None).assert_error(403, "permission-denied");

    let reader_role = admin.create_role("reader", json!({"trainings": 2, "apps": 2}));
    let reader = admin.create_user(&server, "reader", &[&reader_role]);
    reader.call("POST", "/be/v1/traces", Some(trace(reads()))).assert_error(403, "permission-denied");

    // Another organization sees neither the app nor its build.
    let other = server.org_admin("other");
    other.call("POST", "/be/v1/traces", Some(trace(reads()))).assert_error(404, "not-found");
    other
        .call("POST", "/be/v1/trigger", Some(json!({"action": "processTraces", "appName": "game"})))
        .assert_error(404, "not-found");
    let stored = admin.call("POST", "/be/v1/traces", Some(trace(reads())));
    assert_eq!(stored.assert_ok()["trace"]["traces"], 2, "only the launcher's and this trace are stored");
}

#[test]
fn a_crash_during_process_traces_reruns_it_to_the_same_image_and_publishes_it_whole() {
    use rockit_edge::engine::{layout, ChunkStore, Engine, EngineOptions, Hooks};
    // A large file keeps the image and its publishing running long enough to be caught.
    let mut tree = game_v1();
    tree.insert("data/movie.bin".into(), file(noise(42, 64 << 20)));
    let tar = tar_of(&tree);
    let server = Server::start_with(&[("ROCKIT_EDGE_OUTBOUND_ALLOW_LOOPBACK", "true")]);
    let admin = server.org_admin("acme");
    let cdns: Vec<tempfile::TempDir> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    for (i, cdn) in cdns.iter().enumerate() {
        let origin = json!({"type": "fs", "path": cdn.path().to_str().unwrap()});
        admin
            .call("POST", "/be/v1/deployments", Some(json!({"name": format!("cdn{i}"), "origin": origin})))
            .assert_ok();
    }
    admin.call("POST", "/be/v1/apps", Some(json!({"name": "game", "label": "Game"}))).assert_ok();
    let url = build_origin(tar.clone());
    admin.call("POST", "/be/v1/builds", Some(json!({"appName": "game", "url": url, "size": tar.len()}))).assert_ok();
    settled(&admin, "game");
    let startup = json!([
        {"path": "data/movie.bin", "offset": 40 << 20, "len": 1 << 20},
        {"path": "docs/readme.txt", "offset": 0, "len": 10},
    ]);
    admin.call("POST", "/be/v1/traces", Some(trace(startup.clone()))).assert_ok();
    let name = process_traces(&admin).assert_ok()["task"]["name"].as_str().unwrap().to_string();

    let deadline = std::time::Instant::now() + CHAIN;
    loop {
        let task = admin.call("GET", &format!("/be/v1/tasks/{name}"), None).assert_ok()["task"].clone();
        match task["status"].as_str() {
            Some("running") => break,
            Some("done") => panic!("mkfast finished before the test could kill the server during it"),
            Some("failed") => panic!("mkfast failed: {task}"),
            _ => {}
        }
        assert!(std::time::Instant::now() < deadline, "mkfast never ran");
        std::thread::sleep(Duration::from_millis(5));
    }
    let mut server = server;
    server.kill();
    let server = server.restart();
    let admin = Session { base: server.base.clone(), ..admin };
    let app = settled(&admin, "game");
    let task = admin.call("GET", &format!("/be/v1/tasks/{name}"), None).assert_ok()["task"].clone();
    assert_eq!(task["status"], "done", "{task}");

    // The image an uninterrupted run writes (the engine is deterministic).
    let work = tempfile::tempdir().unwrap();
    let store = ChunkStore::open(work.path().join("chunks")).unwrap();
    let engine = Engine::start(EngineOptions::default()).unwrap();
    let manifest = engine.import_tar(&tar[..], None, &store, &Hooks::default()).unwrap();
    let reads: Vec<rockit_edge::engine::startup::Read> = serde_json::from_value(startup).unwrap();
    let out = layout::build_dir(&work.path().join("depot"), "acme", "game", 1);
    let expected = engine.write_startup_image(&manifest, &store, &out, &reads, &Hooks::default()).unwrap();
    assert_eq!(app["dxfName"], expected.dxf_name.as_str(), "{app}");
    let kinds = admin.call("GET", "/be/v1/tasks?type=mkfast", None).assert_ok()["tasks"].clone();
    assert_eq!(kinds.as_array().unwrap().len(), 1, "one mkfast task, not a duplicate");
    for cdn in &cdns {
        assert_eq!(leftovers(cdn.path()), Vec::<String>::new(), "half-written objects on a deployment");
        let dest = tempfile::tempdir().unwrap();
        let published = DirOrigin { root: cdn.path().to_path_buf() };
        Client::new(&published, "acme", "game").rebuild(1, Some(&expected.dxf_name), &dest.path().join("t")).unwrap();
        assert_same_tree(&read_tree(&dest.path().join("t")), &tree);
    }
    assert_eq!(leftovers(&server.state_dir.join("depot")), Vec::<String>::new());
}
