//! Acknowledged writes survive a crash: `kill -9` during a concurrent write load, then every
//! create that was answered 200 is there after the restart.

mod common;

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::Server;
use serde_json::json;

/// Creates apps until told to stop or the server goes away; records each name answered 200.
fn writer(base: String, access: String, prefix: String, acked: Arc<Mutex<Vec<String>>>, stop: Arc<AtomicBool>) {
    let agent = ureq::AgentBuilder::new().timeout(Duration::from_secs(30)).build();
    let mut n = 0;
    while !stop.load(Ordering::Relaxed) {
        let name = format!("{prefix}_{n}");
        n += 1;
        let reply = agent
            .post(&format!("{base}/be/v1/apps"))
            .set("Authorization", &format!("Bearer {access}"))
            .send_json(json!({"name": name, "label": "durable"}));
        match reply {
            Ok(resp) if resp.status() == 200 => acked.lock().unwrap().push(name),
            Ok(_) | Err(ureq::Error::Status(..)) => {}
            // The server is gone (killed): nothing more can be acknowledged.
            Err(_) => return,
        }
    }
}

#[test]
fn no_acknowledged_write_is_lost_when_the_server_is_killed_under_load() {
    let mut server = Server::start();
    let mut session = server.org_admin("acme");
    let mut acked_all = BTreeSet::new();
    for round in 0..3 {
        let acked = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let writers: Vec<_> = (0..4)
            .map(|w| {
                let (base, access) = (server.base.clone(), session.access.clone());
                let (acked, stop) = (acked.clone(), stop.clone());
                std::thread::spawn(move || writer(base, access, format!("r{round}w{w}"), acked, stop))
            })
            .collect();
        common::eventually(Duration::from_secs(60), || (acked.lock().unwrap().len() >= 40).then_some(()));
        server.kill();
        stop.store(true, Ordering::Relaxed);
        for w in writers {
            w.join().unwrap();
        }
        acked_all.extend(acked.lock().unwrap().iter().cloned());

        server = server.restart();
        session.base = server.base.clone();
        let reply = session.call("GET", "/be/v1/apps?limit=1000", None);
        let stored: BTreeSet<String> = reply.assert_ok()["apps"]
            .as_array()
            .unwrap()
            .iter()
            .map(|app| app["name"].as_str().unwrap().to_string())
            .collect();
        let lost: Vec<&String> = acked_all.difference(&stored).collect();
        assert!(lost.is_empty(), "round {round}: acknowledged but lost: {lost:?}");
        let db = rusqlite::Connection::open(server.database()).unwrap();
        let check: String = db.query_row("PRAGMA integrity_check", [], |r| r.get(0)).unwrap();
        assert_eq!(check, "ok");
    }
}
