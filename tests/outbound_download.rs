//! The build download (dltar's URL mode) against small HTTP origins the test starts on loopback:
//! one that drops the connection mid-body, one without range support, one whose file changes.

use std::io::{self, BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rockit_edge::outbound::download::{download, Checkpoint, DownloadError, Limits, Observer, Source};
use rockit_edge::outbound::policy::{AddressClass, OutboundPolicy};

/// How the test origin behaves.
#[derive(Clone, Default)]
struct Behaviour {
    ranges: bool,
    etag: Option<String>,
    /// Close the connection after this many body bytes, on the first request only.
    drop_first_after: Option<usize>,
    /// Answer every request with this status and no body.
    status: Option<u16>,
    /// Redirect the first request to this URL.
    redirect_to: Option<String>,
}

struct Origin {
    url: String,
    /// Each request's head, as received.
    requests: Arc<Mutex<Vec<String>>>,
}

impl Origin {
    fn start(body: Vec<u8>, behaviour: Behaviour) -> Origin {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/build.tar", listener.local_addr().unwrap());
        let requests = Arc::new(Mutex::new(Vec::new()));
        let seen = requests.clone();
        let served = Arc::new(AtomicUsize::new(0));
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let n = served.fetch_add(1, Ordering::SeqCst);
                let _ = serve(stream, &body, &behaviour, n, &seen);
            }
        });
        Origin { url, requests }
    }

    fn heads(&self) -> Vec<String> {
        self.requests.lock().unwrap().clone()
    }
}

fn serve(stream: TcpStream, body: &[u8], b: &Behaviour, n: usize, seen: &Mutex<Vec<String>>) -> io::Result<()> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut head = String::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 || line == "\r\n" {
            break;
        }
        head.push_str(&line);
    }
    seen.lock().unwrap().push(head.clone());
    let mut out = stream;
    if let Some(status) = b.status {
        return write!(out, "HTTP/1.1 {status} Nope\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    }
    if let (Some(target), 0) = (&b.redirect_to, n) {
        return write!(
            out,
            "HTTP/1.1 302 Found\r\nLocation: {target}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        );
    }
    let header = |name: &str| {
        head.lines().find_map(|l| {
            l.split_once(':').filter(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.trim().to_string())
        })
    };
    let mut extra = String::new();
    if b.ranges {
        extra.push_str("Accept-Ranges: bytes\r\n");
    }
    if let Some(etag) = &b.etag {
        extra.push_str(&format!("ETag: {etag}\r\n"));
    }
    let if_range_ok = header("If-Range").is_none_or(|v| Some(&v) == b.etag.as_ref());
    let start = match header("Range") {
        Some(r) if b.ranges && if_range_ok => {
            r.trim_start_matches("bytes=").trim_end_matches('-').parse::<usize>().unwrap()
        }
        _ => 0,
    };
    let part = &body[start..];
    if start > 0 {
        write!(
            out,
            "HTTP/1.1 206 Partial Content\r\nContent-Range: bytes {start}-{}/{}\r\nContent-Length: {}\r\n{extra}Connection: close\r\n\r\n",
            body.len() - 1,
            body.len(),
            part.len()
        )?;
    } else {
        write!(out, "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n{extra}Connection: close\r\n\r\n", part.len())?;
    }
    match b.drop_first_after {
        Some(cut) if n == 0 => {
            out.write_all(&part[..cut.min(part.len())])?;
            out.flush()?;
            // Dropping the socket now ends the body early: the client sees a short read.
            Ok(())
        }
        _ => out.write_all(part),
    }
}

/// Deterministic, incompressible-looking content.
fn content(len: usize) -> Vec<u8> {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

#[derive(Default)]
struct Recorder {
    checkpoints: Vec<Checkpoint>,
    progress_calls: usize,
    cancel: bool,
}

impl Observer for Recorder {
    fn progress(&mut self, _done: u64, _total: Option<u64>) {
        self.progress_calls += 1;
    }
    fn checkpoint(&mut self, checkpoint: &Checkpoint) -> io::Result<()> {
        self.checkpoints.push(checkpoint.clone());
        Ok(())
    }
    fn cancelled(&self) -> bool {
        self.cancel
    }
}

const LOOPBACK: OutboundPolicy = OutboundPolicy { allow_loopback: true, allow_link_local: false };

fn limits() -> Limits {
    Limits {
        max_bytes: 1 << 30,
        expected_bytes: None,
        reserve_bytes: 0,
        timeout: Duration::from_secs(30),
        reconnects: 3,
    }
}

fn part_file() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("native-build.tar.part");
    (dir, path)
}

fn source(url: &str) -> Source {
    Source { url: url.to_string(), headers: vec![] }
}

#[test]
fn a_whole_file_arrives_byte_for_byte() {
    let body = content(3 << 20);
    let origin = Origin::start(body.clone(), Behaviour::default());
    let (_dir, part) = part_file();
    let mut rec = Recorder::default();
    let done = download(&source(&origin.url), LOOPBACK, &limits(), &part, Checkpoint::default(), &mut rec).unwrap();
    assert_eq!(done.bytes, body.len() as u64);
    assert_eq!(std::fs::read(&part).unwrap(), body);
    assert!(rec.progress_calls >= 3, "progress was reported while the bytes came in");
    assert_eq!(rec.checkpoints.last().unwrap().durable_bytes, body.len() as u64);
}

#[test]
fn a_dropped_connection_resumes_with_a_range_request() {
    let body = content(2 << 20);
    let behaviour =
        Behaviour { ranges: true, etag: Some("\"v1\"".into()), drop_first_after: Some(700_000), ..Default::default() };
    let origin = Origin::start(body.clone(), behaviour);
    let (_dir, part) = part_file();
    let done =
        download(&source(&origin.url), LOOPBACK, &limits(), &part, Checkpoint::default(), &mut Recorder::default())
            .unwrap();
    assert_eq!((done.resumed, done.restarted), (1, 0));
    assert_eq!(std::fs::read(&part).unwrap(), body);
    let heads = origin.heads();
    assert_eq!(heads.len(), 2);
    assert!(heads[1].contains("Range: bytes=700000-"), "{}", heads[1]);
    assert!(heads[1].contains("If-Range: \"v1\""), "{}", heads[1]);
}

#[test]
fn without_range_support_a_dropped_download_starts_over() {
    let body = content(1 << 20);
    let origin = Origin::start(body.clone(), Behaviour { drop_first_after: Some(300_000), ..Default::default() });
    let (_dir, part) = part_file();
    let done =
        download(&source(&origin.url), LOOPBACK, &limits(), &part, Checkpoint::default(), &mut Recorder::default())
            .unwrap();
    assert_eq!((done.resumed, done.restarted), (0, 1));
    assert_eq!(std::fs::read(&part).unwrap(), body);
    assert!(!origin.heads()[1].contains("Range:"));
}

#[test]
fn a_restart_resumes_from_the_durable_checkpoint_not_from_the_file_length() {
    let body = content(1 << 20);
    let origin =
        Origin::start(body.clone(), Behaviour { ranges: true, etag: Some("\"v1\"".into()), ..Default::default() });
    let (_dir, part) = part_file();
    // A crash left 600 000 bytes in the file, of which only the first 400 000 were recorded as
    // durable, and the tail is garbage (power loss after a write that never reached the disk).
    let mut on_disk = body[..400_000].to_vec();
    on_disk.extend(std::iter::repeat_n(0xAA, 200_000));
    std::fs::write(&part, &on_disk).unwrap();
    let checkpoint =
        Checkpoint { durable_bytes: 400_000, validator: Some("\"v1\"".into()), total_bytes: Some(body.len() as u64) };
    let done =
        download(&source(&origin.url), LOOPBACK, &limits(), &part, checkpoint, &mut Recorder::default()).unwrap();
    assert_eq!(done.bytes, body.len() as u64);
    assert_eq!(std::fs::read(&part).unwrap(), body);
    assert!(origin.heads()[0].contains("Range: bytes=400000-"));
}

#[test]
fn a_file_that_changed_since_the_checkpoint_is_fetched_again_whole() {
    let body = content(500_000);
    let origin =
        Origin::start(body.clone(), Behaviour { ranges: true, etag: Some("\"v2\"".into()), ..Default::default() });
    let (_dir, part) = part_file();
    std::fs::write(&part, content(100_000).iter().map(|b| b ^ 0xFF).collect::<Vec<u8>>()).unwrap();
    let checkpoint = Checkpoint { durable_bytes: 100_000, validator: Some("\"v1\"".into()), total_bytes: None };
    let done =
        download(&source(&origin.url), LOOPBACK, &limits(), &part, checkpoint, &mut Recorder::default()).unwrap();
    assert_eq!(done.restarted, 1);
    assert_eq!(std::fs::read(&part).unwrap(), body);
}

#[test]
fn a_size_other_than_announced_fails_with_the_compat_fields() {
    let origin = Origin::start(content(1000), Behaviour::default());
    let (_dir, part) = part_file();
    let limits = Limits { expected_bytes: Some(999), ..limits() };
    let err = download(&source(&origin.url), LOOPBACK, &limits, &part, Checkpoint::default(), &mut Recorder::default())
        .unwrap_err();
    assert!(matches!(err, DownloadError::SizeMismatch { actual: 1000, expected: 999 }), "{err:?}");
    assert!(!err.retryable());
    let exception = err.exception();
    assert_eq!(exception["sizeBytesActual"], 1000);
    assert_eq!(exception["sizeBytesExpected"], 999);
}

#[test]
fn an_error_status_is_reported_as_http_status_and_only_5xx_is_retried() {
    for (status, retryable) in [(404, false), (403, false), (503, true)] {
        let origin = Origin::start(vec![], Behaviour { status: Some(status), ..Default::default() });
        let (_dir, part) = part_file();
        let err =
            download(&source(&origin.url), LOOPBACK, &limits(), &part, Checkpoint::default(), &mut Recorder::default())
                .unwrap_err();
        assert_eq!(err.exception()["httpStatus"], status);
        assert_eq!(err.retryable(), retryable, "{status}");
    }
}

#[test]
fn a_failed_connection_is_reported_without_the_url_and_its_credentials() {
    // A port nothing listens on: the connection is refused.
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let url = format!("http://127.0.0.1:{port}/build.tar?X-Amz-Signature=s3cr3tsignature");
    let (_dir, part) = part_file();
    let limits = Limits { reconnects: 0, ..limits() };
    let err =
        download(&source(&url), LOOPBACK, &limits, &part, Checkpoint::default(), &mut Recorder::default()).unwrap_err();
    assert!(matches!(err, DownloadError::Network(_)), "{err:?}");
    let message = err.exception()["message"].as_str().unwrap().to_string();
    assert!(message.contains("Connection"), "says what failed: {message}");
    assert!(!message.contains("s3cr3t") && !message.contains("build.tar"), "{message}");
}

#[test]
fn loopback_is_refused_by_the_default_policy_before_any_connection() {
    let origin = Origin::start(content(10), Behaviour::default());
    let (_dir, part) = part_file();
    let err = download(
        &source(&origin.url),
        OutboundPolicy::default(),
        &limits(),
        &part,
        Checkpoint::default(),
        &mut Recorder::default(),
    )
    .unwrap_err();
    assert!(matches!(err, DownloadError::Refused { class: AddressClass::Loopback, .. }), "{err:?}");
    assert!(err.to_string().contains("loopback"));
    assert!(origin.heads().is_empty(), "no request reached the origin");
}

#[test]
fn the_metadata_address_is_refused_even_when_loopback_is_allowed() {
    let (_dir, part) = part_file();
    let err = download(
        &source("http://169.254.169.254/latest/meta-data/"),
        LOOPBACK,
        &limits(),
        &part,
        Checkpoint::default(),
        &mut Recorder::default(),
    )
    .unwrap_err();
    assert!(matches!(err, DownloadError::Refused { class: AddressClass::LinkLocal, .. }), "{err:?}");
    assert!(!err.retryable());
}

#[test]
fn a_redirect_to_a_forbidden_address_is_refused() {
    let origin = Origin::start(
        content(10),
        Behaviour { redirect_to: Some("http://169.254.169.254/x".into()), ..Default::default() },
    );
    let (_dir, part) = part_file();
    let err =
        download(&source(&origin.url), LOOPBACK, &limits(), &part, Checkpoint::default(), &mut Recorder::default())
            .unwrap_err();
    assert!(matches!(err, DownloadError::Refused { class: AddressClass::LinkLocal, .. }), "{err:?}");
}

#[test]
fn caller_headers_go_to_the_named_host_only_not_to_a_redirect_target() {
    let body = content(1000);
    let target = Origin::start(body.clone(), Behaviour::default());
    // Same server, other host name: `localhost` instead of 127.0.0.1.
    let elsewhere = target.url.replace("127.0.0.1", "localhost");
    let origin = Origin::start(vec![], Behaviour { redirect_to: Some(elsewhere), ..Default::default() });
    let (_dir, part) = part_file();
    let src = Source { url: origin.url.clone(), headers: vec![("Authorization".into(), "Bearer build-secret".into())] };
    download(&src, LOOPBACK, &limits(), &part, Checkpoint::default(), &mut Recorder::default()).unwrap();
    assert_eq!(std::fs::read(&part).unwrap(), body);
    assert!(origin.heads()[0].contains("Bearer build-secret"));
    assert!(!target.heads()[0].contains("build-secret"), "the secret did not follow the redirect");
}

#[test]
fn a_file_above_the_limit_is_refused_from_its_announced_length() {
    let origin = Origin::start(content(5000), Behaviour::default());
    let (_dir, part) = part_file();
    let limits = Limits { max_bytes: 4096, ..limits() };
    let err = download(&source(&origin.url), LOOPBACK, &limits, &part, Checkpoint::default(), &mut Recorder::default())
        .unwrap_err();
    assert!(matches!(err, DownloadError::TooLarge { limit: 4096, actual: 5000 }), "{err:?}");
    assert!(std::fs::metadata(&part).unwrap().len() == 0, "nothing was written");
}

#[test]
fn a_download_that_cannot_fit_on_the_disk_does_not_start() {
    let origin = Origin::start(content(10), Behaviour::default());
    let (_dir, part) = part_file();
    let limits = Limits { max_bytes: u64::MAX, expected_bytes: Some(u64::MAX / 4), ..limits() };
    let err = download(&source(&origin.url), LOOPBACK, &limits, &part, Checkpoint::default(), &mut Recorder::default())
        .unwrap_err();
    assert!(matches!(err, DownloadError::NoSpace(_)), "{err:?}");
    assert!(err.to_string().contains("not enough disk space"));
    assert!(origin.heads().is_empty());
}

#[test]
fn a_cancelled_download_stops() {
    let origin = Origin::start(content(10), Behaviour::default());
    let (_dir, part) = part_file();
    let mut rec = Recorder { cancel: true, ..Default::default() };
    let err = download(&source(&origin.url), LOOPBACK, &limits(), &part, Checkpoint::default(), &mut rec).unwrap_err();
    assert!(matches!(err, DownloadError::Cancelled));
}
