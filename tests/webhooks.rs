//! Webhooks and Slack (issue 11 item 4): task events reach receiver stubs the tests start on
//! loopback — signed with the subscription's secret over a body hash, retried after failures,
//! slow answers and outages, in order per app — and the subscription's details say what happened.

mod common;
mod engine_support;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use common::{Server, Session};
use engine_support::*;
use serde_json::{json, Value};

/// Imports and retries on a loaded 2-core machine take a while; everything is polled this long.
const PATIENCE: Duration = Duration::from_secs(180);

fn server(extra: &[(&str, &str)]) -> Server {
    let mut env = vec![
        ("ROCKIT_EDGE_OUTBOUND_ALLOW_LOOPBACK", "true"),
        ("ROCKIT_EDGE_WEBHOOK_RETRY_DELAYS", "200ms"),
        ("ROCKIT_EDGE_WEBHOOK_TIMEOUT", "1s"),
    ];
    env.extend_from_slice(extra);
    Server::start_with(&env)
}

/// One request a receiver got, and the status it answered.
#[derive(Clone, Debug)]
struct Received {
    headers: HashMap<String, String>,
    body: Vec<u8>,
    answered: u16,
}

impl Received {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("a JSON body")
    }

    /// (type, event) of a webhook body.
    fn event(&self) -> (String, String) {
        let body = self.json();
        (body["type"].as_str().unwrap_or("").into(), body["event"].as_str().unwrap_or("").into())
    }
}

/// How a receiver answers one request: after `delay`, with `status`.
#[derive(Clone, Copy)]
struct Answer {
    status: u16,
    delay: Duration,
}

const OK: Answer = Answer { status: 200, delay: Duration::ZERO };

type Behaviour = Arc<dyn Fn(usize, &[u8]) -> Answer + Send + Sync>;

/// A webhook receiver on loopback: every request is recorded with what it was answered; each
/// connection has its own thread, so a slow answer does not hold the next attempt back.
struct Receiver {
    addr: SocketAddr,
    got: Arc<Mutex<Vec<Received>>>,
}

impl Receiver {
    fn start(behaviour: impl Fn(usize, &[u8]) -> Answer + Send + Sync + 'static) -> Receiver {
        Receiver::on(TcpListener::bind("127.0.0.1:0").unwrap(), Arc::new(behaviour))
    }

    fn on(listener: TcpListener, behaviour: Behaviour) -> Receiver {
        let addr = listener.local_addr().unwrap();
        let got = Arc::new(Mutex::new(Vec::new()));
        let seen = got.clone();
        let counter = Arc::new(Mutex::new(0usize));
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let (seen, behaviour, counter) = (seen.clone(), behaviour.clone(), counter.clone());
                std::thread::spawn(move || serve_one(stream, &seen, &*behaviour, &counter));
            }
        });
        Receiver { addr, got }
    }

    fn url(&self) -> String {
        format!("http://{}/hook", self.addr)
    }

    fn received(&self) -> Vec<Received> {
        self.got.lock().unwrap().clone()
    }

    /// The requests answered 2xx, in the order they arrived.
    fn delivered(&self) -> Vec<Received> {
        self.received().into_iter().filter(|r| (200..300).contains(&r.answered)).collect()
    }

    /// Waits until `n` requests were answered 2xx and answers them.
    fn wait_delivered(&self, n: usize) -> Vec<Received> {
        common::eventually(PATIENCE, || Some(self.delivered()).filter(|d| d.len() >= n))
    }
}

fn serve_one(
    mut stream: std::net::TcpStream,
    seen: &Mutex<Vec<Received>>,
    behaviour: &(dyn Fn(usize, &[u8]) -> Answer + Send + Sync),
    counter: &Mutex<usize>,
) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut headers = HashMap::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            headers.insert(name.trim().to_ascii_lowercase(), value.trim().to_string());
        }
    }
    let length: usize = headers.get("content-length").and_then(|l| l.parse().ok()).unwrap_or(0);
    let mut body = vec![0; length];
    if reader.read_exact(&mut body).is_err() {
        return;
    }
    let index = {
        let mut n = counter.lock().unwrap();
        *n += 1;
        *n - 1
    };
    let answer = behaviour(index, &body);
    // Recorded on arrival, so the list is in the order the server sent; a delayed reply comes
    // after the server's timeout and counts as not delivered (0).
    let answered = if answer.delay.is_zero() { answer.status } else { 0 };
    seen.lock().unwrap().push(Received { headers, body, answered });
    std::thread::sleep(answer.delay);
    let reply = format!("HTTP/1.1 {} X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n", answer.status);
    let _ = stream.write_all(reply.as_bytes()).and_then(|_| stream.flush());
}

/// Creates a subscription; answers its signing secret.
fn subscribe(admin: &Session, name: &str, kind: &str, url: &str, events: Value) -> String {
    let body = json!({"name": name, "type": kind, "url": url, "events": events});
    admin.call("POST", "/be/v1/subscriptions", Some(body)).assert_ok()["secret"].as_str().unwrap().to_string()
}

fn details(admin: &Session, name: &str) -> Value {
    admin.call("GET", &format!("/be/v1/subscriptions/{name}"), None).assert_ok()["subscription"].clone()
}

fn create_app(admin: &Session, name: &str) {
    admin.call("POST", "/be/v1/apps", Some(json!({"name": name, "label": "A game"}))).assert_ok();
}

/// An import whose download the build server answers 404: `dltar` submit, begin, error.
fn failing_import(server: &Server, admin: &Session, app: &str) -> String {
    let url = server.url("/no/such/native-build.tar");
    let reply = admin.call("POST", "/be/v1/builds", Some(json!({"appName": app, "url": url})));
    let task = reply.assert_ok()["task"]["name"].as_str().unwrap().to_string();
    common::eventually(PATIENCE, || {
        let t = admin.call("GET", &format!("/be/v1/tasks/{task}"), None).assert_ok()["task"].clone();
        (t["status"] == "failed").then_some(())
    });
    task
}

/// Checks the `x-rockit-subscriptions` token of a delivery against `secret` and the body; answers
/// its claims.
fn verified_claims(received: &Received, secret: &str) -> Value {
    let token = received.headers.get("x-rockit-subscriptions").expect("a token header");
    let (signing_input, signature) = token.rsplit_once('.').unwrap();
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret.as_bytes());
    let signature = URL_SAFE_NO_PAD.decode(signature).unwrap();
    ring::hmac::verify(&key, signing_input.as_bytes(), &signature).expect("signed with the subscription secret");
    let (header, payload) = signing_input.split_once('.').unwrap();
    let header: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(header).unwrap()).unwrap();
    assert_eq!(header["alg"], "HS256");
    let claims: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap();
    let digest = ring::digest::digest(&ring::digest::SHA256, &received.body);
    let hex: String = digest.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(claims["bodySha256"], hex, "the token covers exactly this body");
    assert_eq!(claims["iss"], "rockit-edge");
    assert!(claims["exp"].as_i64().unwrap() > claims["iat"].as_i64().unwrap());
    claims
}

fn pairs(events: &[(&str, &str)]) -> Vec<(String, String)> {
    events.iter().map(|(t, e)| (t.to_string(), e.to_string())).collect()
}

#[test]
fn every_event_of_an_import_reaches_a_webhook_in_order_signed_over_its_body() {
    let server = server(&[]);
    let admin = server.org_admin("acme");
    let receiver = Receiver::start(|_, _| OK);
    let secret = subscribe(&admin, "ci", "webhook", &receiver.url(), json!([]));
    create_app(&admin, "game");

    let mut tree = Tree::new();
    tree.insert("bin".into(), Node::Dir);
    tree.insert("bin/game".into(), exe(noise(1, 50_000)));
    tree.insert("readme.txt".into(), file(text(2, 4_000)));
    let tar = tar_of(&tree);
    let reply = admin.call("POST", "/be/v1/builds", Some(json!({"appName": "game", "buildName": "nightly"})));
    let upload = reply.assert_ok()["upload"]["url"].as_str().unwrap().to_string();
    common::send_raw("PUT", &upload, &[], Some(("application/x-tar", &tar))).assert_ok();

    let got = receiver.wait_delivered(9);
    let events: Vec<_> = got.iter().map(Received::event).collect();
    assert_eq!(
        events,
        pairs(&[
            ("dltar", "submit"),
            ("dltar", "begin"),
            ("dltar", "end"),
            ("mkraw", "submit"),
            ("mkraw", "begin"),
            ("mkraw", "end"),
            ("deploy", "submit"),
            ("deploy", "begin"),
            ("deploy", "end"),
        ])
    );
    let app = admin.call("GET", "/be/v1/apps/game", None).assert_ok()["app"].clone();
    let mut jtis = Vec::new();
    for delivery in &got {
        let claims = verified_claims(delivery, &secret);
        assert_eq!(claims["sub"], "ci");
        jtis.push(claims["jti"].as_str().unwrap().to_string());
        assert_eq!(delivery.headers.get("content-type").map(String::as_str), Some("application/json"));
        let body = delivery.json();
        assert_eq!((body["orgName"].as_str(), body["appName"].as_str()), (Some("acme"), Some("game")));
        assert_eq!(body["buildName"], "nightly");
        assert!(body["taskName"].as_str().unwrap().starts_with(body["type"].as_str().unwrap()));
        common::assert_timestamp(&body["time"]);
        let text = String::from_utf8_lossy(&delivery.body);
        assert!(!text.contains(&secret), "never the signing secret in a body");
        assert!(!text.contains(upload.rsplit('/').next().unwrap()), "never the upload capability in a body");
    }
    jtis.sort();
    jtis.dedup();
    assert_eq!(jtis.len(), 9, "every delivery has its own jti");
    let deploy_end = got[8].json();
    assert_eq!(deploy_end["dxfName"], app["dxfName"], "deploy end names the image that went live");

    // The last answer may reach the receiver just before the server records it.
    let shown = common::eventually(PATIENCE, || {
        let shown = details(&admin, "ci");
        let all = shown["deliveries"].as_array().is_some_and(|d| d.iter().all(|d| d["status"] == "delivered"));
        all.then_some(shown)
    });
    let deliveries = shown["deliveries"].as_array().unwrap();
    assert_eq!(deliveries.len(), 9);
    assert!(deliveries.iter().all(|d| d["status"] == "delivered" && d["attempts"] == 1 && d["lastStatus"] == 200));
    assert_eq!(deliveries[0]["event"], "end", "newest first");
    assert!(shown.get("secret").is_none());
}

#[test]
fn a_failing_receiver_gets_the_event_again_with_the_same_jti_and_the_details_say_why() {
    let server = server(&[]);
    let admin = server.org_admin("acme");
    // 500 twice, then fine.
    let flaky = Receiver::start(|n, _| if n < 2 { Answer { status: 500, delay: Duration::ZERO } } else { OK });
    let secret = subscribe(&admin, "flaky", "webhook", &flaky.url(), json!([]));
    let broken = Receiver::start(|_, _| Answer { status: 503, delay: Duration::ZERO });
    subscribe(&admin, "broken", "webhook", &broken.url(), json!([]));
    // Only what it asked for.
    let picky = Receiver::start(|_, _| OK);
    subscribe(&admin, "picky", "webhook", &picky.url(), json!([{"type": "dltar", "event": "error"}]));
    create_app(&admin, "game");
    let task = failing_import(&server, &admin, "game");

    let got = flaky.wait_delivered(3);
    let all = flaky.received();
    assert_eq!(all.iter().map(|r| r.answered).take(3).collect::<Vec<_>>(), [500, 500, 200]);
    let jtis: Vec<Value> = all.iter().take(3).map(|r| verified_claims(r, &secret)["jti"].clone()).collect();
    assert!(jtis.iter().all(|j| *j == jtis[0]), "one delivery, one jti across retries: {jtis:?}");
    assert_eq!(
        got.iter().map(Received::event).collect::<Vec<_>>(),
        pairs(&[("dltar", "submit"), ("dltar", "begin"), ("dltar", "error")])
    );
    let error = got[2].json();
    assert_eq!(error["taskName"], task.as_str());
    assert_eq!(error["exception"]["httpStatus"], 404, "{error}");
    let submit = details(&admin, "flaky")["deliveries"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(
        (submit["event"].as_str(), submit["status"].as_str(), submit["attempts"].as_i64()),
        (Some("submit"), Some("delivered"), Some(3))
    );

    // The receiver that never accepts: its first event stays pending, with the reason shown, and
    // holds the app's later events back.
    let stuck = common::eventually(PATIENCE, || {
        let deliveries = details(&admin, "broken")["deliveries"].as_array().unwrap().clone();
        let head = deliveries.last().cloned()?;
        (head["attempts"].as_i64() >= Some(2)).then_some(deliveries)
    });
    let head = stuck.last().unwrap();
    assert_eq!(
        (head["event"].as_str(), head["status"].as_str(), head["lastStatus"].as_i64()),
        (Some("submit"), Some("pending"), Some(503))
    );
    assert!(head["lastError"].as_str().unwrap().contains("503"), "{head}");
    common::assert_timestamp(&head["nextAttempt"]);
    assert!(broken.received().iter().all(|r| r.event() == ("dltar".into(), "submit".into())), "later events wait");
    assert!(stuck.iter().all(|d| d["attempts"] == 0 || d["event"] == "submit"));

    let only = picky.wait_delivered(1);
    assert_eq!(only.iter().map(Received::event).collect::<Vec<_>>(), pairs(&[("dltar", "error")]));
    assert_eq!(details(&admin, "picky")["deliveries"].as_array().unwrap().len(), 1);
}

#[test]
fn a_receiver_slower_than_the_timeout_is_tried_again_until_it_answers_in_time() {
    let server = server(&[]);
    let admin = server.org_admin("acme");
    let slow = Arc::new(AtomicBool::new(true));
    let switch = slow.clone();
    let receiver = Receiver::start(move |_, _| {
        if switch.load(Ordering::SeqCst) {
            Answer { status: 200, delay: Duration::from_secs(3) }
        } else {
            OK
        }
    });
    let secret = subscribe(&admin, "slow", "webhook", &receiver.url(), json!([{"type": "dltar", "event": "submit"}]));
    create_app(&admin, "game");
    failing_import(&server, &admin, "game");

    let timed_out = common::eventually(PATIENCE, || {
        let head = details(&admin, "slow")["deliveries"][0].clone();
        (head["attempts"].as_i64() >= Some(1)).then_some(head)
    });
    assert_eq!(timed_out["status"], "pending", "an answer after the timeout does not count: {timed_out}");
    assert!(timed_out["lastStatus"].is_null(), "{timed_out}");
    assert!(!timed_out["lastError"].as_str().unwrap().is_empty());

    slow.store(false, Ordering::SeqCst);
    let got = receiver.wait_delivered(1);
    // The receiver has answered; the server records the attempt right after.
    let delivered = common::eventually(PATIENCE, || {
        let head = details(&admin, "slow")["deliveries"][0].clone();
        (head["status"] == "delivered").then_some(head)
    });
    assert!(delivered["attempts"].as_i64().unwrap() >= 2, "{delivered}");
    let first_try = &receiver.received()[0];
    assert_eq!(verified_claims(first_try, &secret)["jti"], verified_claims(&got[0], &secret)["jti"]);
}

#[test]
fn a_receiver_that_was_down_gets_every_event_afterwards_in_order() {
    let server = server(&[]);
    let admin = server.org_admin("acme");
    // A port that nothing listens on, until the receiver comes up on it.
    let addr = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let url = format!("http://{addr}/hook");
    let secret = subscribe(&admin, "later", "webhook", &url, json!([]));
    create_app(&admin, "game");
    create_app(&admin, "tool");
    let first = failing_import(&server, &admin, "game");
    let other = failing_import(&server, &admin, "tool");
    let second = failing_import(&server, &admin, "game");
    let refused = common::eventually(PATIENCE, || {
        let deliveries = details(&admin, "later")["deliveries"].as_array().unwrap().clone();
        let head = deliveries.last().cloned()?;
        (head["attempts"].as_i64() >= Some(2)).then_some(head)
    });
    assert!(refused["lastStatus"].is_null());
    assert!(!refused["lastError"].as_str().unwrap().is_empty(), "{refused}");

    let receiver = Receiver::on(TcpListener::bind(addr).unwrap(), Arc::new(|_, _| OK));
    let got = receiver.wait_delivered(9);
    let of = |app: &str| -> Vec<(String, String)> {
        got.iter()
            .filter(|r| r.json()["appName"] == app)
            .map(|r| {
                (r.json()["taskName"].as_str().unwrap().to_string(), r.json()["event"].as_str().unwrap().to_string())
            })
            .collect()
    };
    let expected = |tasks: &[&str]| -> Vec<(String, String)> {
        tasks.iter().flat_map(|t| ["submit", "begin", "error"].map(|e| (t.to_string(), e.to_string()))).collect()
    };
    assert_eq!(of("game"), expected(&[&first, &second]), "one app's events in the order they happened");
    assert_eq!(of("tool"), expected(&[&other]));
    for delivery in &got {
        verified_claims(delivery, &secret);
    }
}

#[test]
fn a_delivery_is_given_up_after_the_limit_and_the_apps_next_events_follow() {
    let server = server(&[("ROCKIT_EDGE_WEBHOOK_GIVE_UP_AFTER", "2s")]);
    let admin = server.org_admin("acme");
    let receiver = Receiver::start(|_, body| {
        let submit = serde_json::from_slice::<Value>(body).is_ok_and(|b| b["event"] == "submit");
        if submit {
            Answer { status: 500, delay: Duration::ZERO }
        } else {
            OK
        }
    });
    subscribe(&admin, "ci", "webhook", &receiver.url(), json!([]));
    create_app(&admin, "game");
    failing_import(&server, &admin, "game");

    let got = receiver.wait_delivered(2);
    assert_eq!(got.iter().map(Received::event).collect::<Vec<_>>(), pairs(&[("dltar", "begin"), ("dltar", "error")]));
    let deliveries = details(&admin, "ci")["deliveries"].as_array().unwrap().clone();
    let submit = deliveries.iter().find(|d| d["event"] == "submit").unwrap();
    assert_eq!((submit["status"].as_str(), submit["lastStatus"].as_i64()), (Some("failed"), Some(500)), "{submit}");
    assert!(submit["nextAttempt"].is_null());
    common::assert_timestamp(&submit["finished"]);
}

#[test]
fn slack_gets_one_text_line_and_no_token_or_secret() {
    let server = server(&[]);
    let admin = server.org_admin("acme");
    let slack = Receiver::start(|_, _| OK);
    let secret = subscribe(&admin, "chat", "slack", &slack.url(), json!([{"type": "dltar", "event": "error"}]));
    create_app(&admin, "game");
    let task = failing_import(&server, &admin, "game");

    let got = slack.wait_delivered(1);
    let body = got[0].json();
    let text = body["text"].as_str().expect("a text field");
    assert_eq!(body.as_object().unwrap().len(), 1, "Slack gets `text` only: {body}");
    assert!(text.starts_with("dltar error: acme/game build 1"), "{text}");
    assert!(text.contains(&task) && text.contains("404"), "{text}");
    assert!(!String::from_utf8_lossy(&got[0].body).contains(&secret));
    assert!(!got[0].headers.contains_key("x-rockit-subscriptions"), "Slack has no use for the token");
}

#[test]
fn a_plain_http_slack_url_is_refused_unless_it_is_loopback_under_the_test_setting() {
    let strict = Server::start();
    let admin = strict.org_admin("acme");
    let body = json!({"name": "chat", "type": "slack", "url": "http://127.0.0.1:9/hook"});
    common::assert_param(&admin.call("POST", "/be/v1/subscriptions", Some(body)), 400, "invalid-param", "url");
}

#[test]
fn finished_deliveries_are_removed_after_the_retention_period() {
    let server = server(&[("ROCKIT_EDGE_WEBHOOK_RETENTION", "1s")]);
    let admin = server.org_admin("acme");
    let receiver = Receiver::start(|_, _| OK);
    subscribe(&admin, "ci", "webhook", &receiver.url(), json!([]));
    create_app(&admin, "game");
    failing_import(&server, &admin, "game");
    receiver.wait_delivered(3);
    common::eventually(PATIENCE, || details(&admin, "ci")["deliveries"].as_array().unwrap().is_empty().then_some(()));
}

#[test]
fn an_unknown_subscription_is_not_found_and_a_malformed_name_is_refused() {
    let server = server(&[]);
    let admin = server.org_admin("acme");
    admin.call("GET", "/be/v1/subscriptions/nobody", None).assert_error(404, "not-found");
    common::assert_param(
        &admin.call("GET", "/be/v1/subscriptions/a-b", None),
        400,
        "invalid-param",
        "subscriptionName",
    );
}
