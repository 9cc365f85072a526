//! Crash safety of the build chain (issue 9): the real server is killed with SIGKILL while a
//! stage runs, then restarted on the same state directory. The chain must finish with the image
//! an uninterrupted import gives, rebuild the build byte for byte, and leave no temporary or
//! half-written object where clients read.

mod common;
mod engine_support;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::time::Duration;

use common::{Server, Session};
use engine_support::*;
use rockit_edge::engine::client::Client;
use rockit_edge::engine::origin::DirOrigin;
use rockit_edge::engine::{layout, ChunkStore, Engine, EngineOptions, Hooks};
use serde_json::{json, Value};

const CHAIN: Duration = Duration::from_secs(300);
const DEPLOYMENTS: usize = 3;

/// The test game plus a large file, so that each stage runs long enough to be caught running.
fn big_game() -> Tree {
    let mut tree = game_v1();
    tree.insert("data/movie.bin".into(), file(noise(42, 48 << 20)));
    tree
}

/// Serves `body` (no ranges) at `pace` per 256 KiB, so a download takes a while.
fn origin(body: Vec<u8>, pace: Duration) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/native-build.tar", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let body = body.clone();
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                        break;
                    }
                }
                let head = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", body.len());
                if stream.write_all(head.as_bytes()).is_err() {
                    return;
                }
                for piece in body.chunks(256 << 10) {
                    if stream.write_all(piece).is_err() {
                        return;
                    }
                    std::thread::sleep(pace);
                }
            });
        }
    });
    url
}

/// The dxfName an uninterrupted import of `tar` gives (the engine is deterministic).
fn expected_dxf_name(tar: &[u8]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let store = ChunkStore::open(dir.path().join("chunks")).unwrap();
    let engine = Engine::start(EngineOptions::default()).unwrap();
    let manifest = engine.import_tar(tar, None, &store, &Hooks::default()).unwrap();
    let out = layout::build_dir(&dir.path().join("depot"), "acme", "game", 1);
    engine.write_image(&manifest, &store, &out, &Hooks::default()).unwrap().dxf_name
}

fn stage_state(admin: &Session, group: &str, stage: &str) -> Option<Value> {
    let page = admin.call("GET", &format!("/be/v1/tasks?group={group}&type={stage}"), None);
    page.assert_ok()["tasks"].as_array().and_then(|t| t.first().cloned())
}

/// One crash test at a time: each holds a few hundred MB on disk and keeps both cores busy.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Kills the server while `stage` runs, restarts it and checks the finished build.
fn killed_during(stage: &str, pace: Duration) {
    let _one_at_a_time = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let server = Server::start_with(&[("ROCKIT_EDGE_OUTBOUND_ALLOW_LOOPBACK", "true")]);
    let admin = server.org_admin("acme");
    let cdns: Vec<tempfile::TempDir> = (0..DEPLOYMENTS).map(|_| tempfile::tempdir().unwrap()).collect();
    for (i, cdn) in cdns.iter().enumerate() {
        let origin = json!({"type": "fs", "path": cdn.path().to_str().unwrap()});
        admin
            .call("POST", "/be/v1/deployments", Some(json!({"name": format!("cdn{i}"), "origin": origin})))
            .assert_ok();
    }
    admin.call("POST", "/be/v1/apps", Some(json!({"name": "game", "label": "Game"}))).assert_ok();
    let tree = big_game();
    let tar = tar_of(&tree);
    let url = origin(tar.clone(), pace);
    let reply = admin.call("POST", "/be/v1/builds", Some(json!({"appName": "game", "url": url, "size": tar.len()})));
    let group = reply.assert_ok()["task"]["group"].as_str().unwrap().to_string();

    // Poll hard: the kill must land while the stage runs, not after it.
    let deadline = std::time::Instant::now() + CHAIN;
    loop {
        let state = stage_state(&admin, &group, stage);
        match state.as_ref().and_then(|t| t["status"].as_str()) {
            Some("running") => break,
            Some("done") => panic!("{stage} finished before the test could kill the server during it"),
            Some("failed") => panic!("{stage} failed: {state:?}"),
            _ => {}
        }
        assert!(std::time::Instant::now() < deadline, "{stage} never ran");
        std::thread::sleep(Duration::from_millis(5));
    }
    let mut server = server;
    server.kill();
    let server = server.restart();
    // The session outlives the restart (the keys are in the state directory); the port does not.
    let admin = Session { base: server.base.clone(), ..admin };

    let app = common::eventually(CHAIN, || {
        let app = admin.call("GET", "/be/v1/apps/game", None).assert_ok()["app"].clone();
        (app["iCurBuild"] == 1 && app["exporting"] == false).then_some(app)
    });
    assert_eq!(app["status"], "ok", "{app}");
    assert_eq!(app["dxfName"], expected_dxf_name(&tar), "the image is the one an uninterrupted import writes");
    let chain =
        admin.call("GET", &format!("/be/v1/tasks?group={group}&order[]=created"), None).assert_ok()["tasks"].clone();
    let kinds: Vec<&str> = chain.as_array().unwrap().iter().map(|t| t["type"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["dltar", "mkraw", "deploy"], "one task per stage, none duplicated");
    for cdn in &cdns {
        assert_eq!(leftovers(cdn.path()), Vec::<String>::new(), "half-written objects on a deployment");
        let dest = tempfile::tempdir().unwrap();
        let published = DirOrigin { root: cdn.path().to_path_buf() };
        Client::new(&published, "acme", "game").rebuild(1, None, &dest.path().join("tree")).unwrap();
        assert_same_tree(&read_tree(&dest.path().join("tree")), &tree);
    }
    assert_eq!(leftovers(&server.state_dir.join("depot")), Vec::<String>::new());
}

#[test]
fn a_crash_during_the_download_restarts_it_and_the_chain_finishes() {
    killed_during("dltar", Duration::from_millis(20));
}

#[test]
fn a_crash_during_mkraw_reruns_it_to_the_same_image() {
    killed_during("mkraw", Duration::ZERO);
}

#[test]
fn a_crash_during_deploy_leaves_no_half_visible_object_and_the_deploy_completes() {
    killed_during("deploy", Duration::ZERO);
}

/// `base` with `data/movie.bin` edited at a few places that depend on `edit`: each build's movie
/// differs from the others', so each patch pair computes its own large delta.
fn movie_build(edit: u64) -> Tree {
    let mut tree = game_v1();
    let mut movie = noise(42, 16 << 20);
    for k in 0..4u64 {
        let at = ((edit * 7 + k * 13) % 97) as usize * (movie.len() / 100);
        movie[at..at + 16].copy_from_slice(&noise(100 + edit * 10 + k, 16));
    }
    tree.insert("data/movie.bin".into(), file(movie));
    tree
}

/// The patches mkraw recorded as finished in its checkpoint.
fn checkpointed_patches(server: &Server, build_id: i64) -> usize {
    let db = rusqlite::Connection::open(server.database()).unwrap();
    let checkpoint: Option<String> = db
        .query_row("SELECT checkpoint FROM tasks WHERE type = 'mkraw' AND build_id = ?1", [build_id], |r| r.get(0))
        .unwrap_or(None);
    let value: Value = checkpoint.and_then(|c| serde_json::from_str(&c).ok()).unwrap_or(Value::Null);
    value["patches"].as_array().map_or(0, Vec::len)
}

#[test]
fn a_crash_between_patch_pairs_keeps_the_finished_pair_and_computes_only_the_rest() {
    use std::os::unix::fs::MetadataExt;
    // Three imports with large deltas, in a debug build, on a shared box: generous.
    const CHAIN: Duration = Duration::from_secs(900);
    let _one_at_a_time = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let server = Server::start_with(&[("ROCKIT_EDGE_OUTBOUND_ALLOW_LOOPBACK", "true")]);
    let admin = server.org_admin("acme");
    admin.call("POST", "/be/v1/apps", Some(json!({"name": "game", "label": "Game"}))).assert_ok();
    let trees: Vec<Tree> = (1..=3).map(movie_build).collect();
    for (i, tree) in trees.iter().enumerate() {
        let tar = tar_of(tree);
        let url = origin(tar.clone(), Duration::ZERO);
        admin
            .call("POST", "/be/v1/builds", Some(json!({"appName": "game", "url": url, "size": tar.len()})))
            .assert_ok();
        if i < 2 {
            common::eventually(CHAIN, || {
                let app = admin.call("GET", "/be/v1/apps/game", None).assert_ok()["app"].clone();
                (app["iCurBuild"] == i + 1 && app["processing"] == false && app["exporting"] == false).then_some(())
            });
        }
    }

    // Build 3 has two patch pairs, 2→3 first. Kill the server once 2→3 is recorded done.
    let deadline = std::time::Instant::now() + CHAIN;
    while checkpointed_patches(&server, 3) == 0 {
        assert!(std::time::Instant::now() < deadline, "the first patch pair of build 3 never finished");
        std::thread::sleep(Duration::from_millis(5));
    }
    let mut server = server;
    server.kill();
    let db = rusqlite::Connection::open(server.database()).unwrap();
    let status: String =
        db.query_row("SELECT status FROM tasks WHERE type = 'mkraw' AND build_id = 3", [], |r| r.get(0)).unwrap();
    assert_eq!(status, "running", "the kill landed after mkraw");
    drop(db);
    let dat = layout::patch_dir(&server.state_dir.join("depot"), "acme", "game", 3, 2).join(layout::PATCH_DATA_FILE);
    let before = std::fs::metadata(&dat).unwrap().ino();

    let server = server.restart();
    let admin = Session { base: server.base.clone(), ..admin };
    let app = common::eventually(CHAIN, || {
        let app = admin.call("GET", "/be/v1/apps/game", None).assert_ok()["app"].clone();
        (app["iCurBuild"] == 3 && app["exporting"] == false).then_some(app)
    });
    assert_eq!(app["status"], "ok", "{app}");
    let log = server.log();
    assert!(log.contains("build 3: patch 2→3 kept from an earlier attempt"), "{log}");
    assert_eq!(log.matches("build 3: patch 2→3 written").count(), 1, "2→3 was computed again:\n{log}");
    assert_eq!(log.matches("build 3: patch 1→3 written").count(), 1, "{log}");
    assert_eq!(std::fs::metadata(&dat).unwrap().ino(), before, "patch.dat of 2→3 was rewritten");
    let mut froms: Vec<i64> = app["patches"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["toBuildId"] == 3)
        .map(|p| p["fromBuildId"].as_i64().unwrap())
        .collect();
    froms.sort_unstable();
    assert_eq!(froms, [1, 2]);

    let depot = DirOrigin { root: server.state_dir.join("depot") };
    for from in [1u32, 2] {
        let dest = tempfile::tempdir().unwrap();
        let client = Client::new(&depot, "acme", "game");
        client.rebuild(from, None, &dest.path().join("tree")).unwrap();
        client.update(from, 3, &dest.path().join("tree")).unwrap();
        assert_same_tree(&read_tree(&dest.path().join("tree")), &trees[2]);
    }
    assert_eq!(leftovers(&server.state_dir.join("depot")), Vec::<String>::new());
}
