//! A full disk: writes answer 507, reads and sessions keep working, readiness reports it, the
//! log says it once, and everything recovers by itself once space is freed. The state directory
//! is moved onto a small tmpfs, which needs the right to mount (root, as in CI's container); without
//! it the test fails rather than passing unchecked.

mod common;
mod engine_support;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::{send, Server, Session};
use engine_support::{game_v1, tar_of};
use serde_json::json;

/// A tmpfs mounted over a directory; unmounted on drop.
struct SmallFs(PathBuf);

impl SmallFs {
    fn mount(dir: &Path, size: &str) -> Option<SmallFs> {
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size},mode=0700"), "tmpfs"])
            .arg(dir)
            .stderr(std::process::Stdio::null())
            .status()
            .ok()?;
        status.success().then(|| SmallFs(dir.to_path_buf()))
    }
}

impl Drop for SmallFs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// Fills the file system holding `path` until a write fails for lack of space.
fn fill(path: &Path) {
    let mut file = std::fs::File::create(path).unwrap();
    let chunk = vec![0u8; 64 * 1024];
    while file.write_all(&chunk).and_then(|_| file.sync_data()).is_ok() {}
}

/// A server whose state directory is on a small tmpfs, and a session of an organization admin.
fn on_a_small_disk(size: &str) -> (Server, Session, SmallFs) {
    let mut server = Server::start();
    let mut session = server.org_admin("acme");
    server.stop();
    let saved = server.home.path().join("saved");
    let copied = Command::new("cp").arg("-a").arg(&server.state_dir).arg(&saved).status().unwrap();
    assert!(copied.success());
    // No skipping where mounting is refused: a pass must mean the behaviour was checked. CI runs
    // as root (verified on the CI machine type), so it can mount; elsewhere run as root too.
    let small = SmallFs::mount(&server.state_dir, size)
        .expect("mounting a tmpfs failed: this test needs the right to mount (run the tests as root, as CI does)");
    let restored = Command::new("cp").arg("-a").arg(format!("{}/.", saved.display())).arg(&server.state_dir).status();
    assert!(restored.unwrap().success());
    let server = server.restart();
    session.base = server.base.clone();
    session.call("GET", "/be/v1/apps", None).assert_ok();
    (server, session, small)
}

#[test]
fn a_full_disk_answers_507_keeps_reads_working_and_recovers_by_itself() {
    // The state directory moves onto an 8 MiB file system.
    let (server, session, _small) = on_a_small_disk("8m");

    let filler = server.state_dir.join("filler");
    fill(&filler);
    let create = |n: usize| session.call("POST", "/be/v1/apps", Some(json!({"name": format!("app{n}"), "label": "x"})));
    let full = (0..300).map(create).find(|reply| reply.status != 200).expect("a write fails once the disk is full");
    full.assert_error(507, "insufficient-storage");
    create(1000).assert_error(507, "insufficient-storage");
    // Reads and the existing session still work; readiness says writes do not.
    session.call("GET", "/be/v1/apps", None).assert_ok();
    session.call("GET", "/be/v1/users/admin", None).assert_ok();
    let ready = send("GET", &server.url("/readyz"), &[], None);
    assert_eq!(ready.status, 503, "{:?}", ready.body);
    assert_eq!(send("GET", &server.url("/healthz"), &[], None).status, 200);

    std::fs::remove_file(&filler).unwrap();
    common::eventually(Duration::from_secs(30), || {
        (send("GET", &server.url("/readyz"), &[], None).status == 200).then_some(())
    });
    create(2000).assert_ok();
    let log = server.log();
    assert_eq!(log.matches("the disk is full").count(), 1, "logged once for the episode:\n{log}");
    assert!(log.contains("disk space is available again"), "{log}");
}

#[test]
fn an_upload_onto_a_full_disk_answers_507_leaves_no_part_behind_and_can_be_sent_again() {
    let (server, session, _small) = on_a_small_disk("16m");
    session.call("POST", "/be/v1/apps", Some(json!({"name": "game", "label": "x"}))).assert_ok();
    let tar = tar_of(&game_v1());
    let reply = session.call("POST", "/be/v1/builds", Some(json!({"appName": "game", "size": tar.len()})));
    let url = reply.assert_ok()["upload"]["url"].as_str().unwrap().to_string();

    let filler = server.state_dir.join("filler");
    fill(&filler);
    let put = || common::send_raw("PUT", &url, &[], Some(("application/x-tar", &tar[..])));
    put().assert_error(507, "insufficient-storage");
    let mut left = Vec::new();
    let mut dirs = vec![server.state_dir.join("builds")];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            if entry.file_type().unwrap().is_dir() {
                dirs.push(entry.path());
            } else {
                left.push(entry.path());
            }
        }
    }
    assert_eq!(left, Vec::<PathBuf>::new(), "a refused upload leaves nothing behind");

    std::fs::remove_file(&filler).unwrap();
    put().assert_ok();
    let app = common::eventually(Duration::from_secs(180), || {
        let app = session.call("GET", "/be/v1/apps/game", None).assert_ok()["app"].clone();
        (app["processing"] == false && app["exporting"] == false).then_some(app)
    });
    assert_eq!(app["iCurBuild"], 1, "{app}");
}
