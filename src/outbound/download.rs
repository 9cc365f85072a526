//! Resumable download of a build tar (the `dltar` task in URL mode): streamed to a part file,
//! never held in memory, resumed with `Range` + `If-Range` after a dropped connection or a
//! restart when the origin offers ranges and a validator, started over when it does not.
//!
//! Durability: a [`Checkpoint`] only ever names bytes that were fsynced. After a crash the part
//! file may hold more (or garbage past the synced length on power loss); resuming truncates it
//! to the checkpoint first, so the finished file is always a byte-exact copy.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::disk::{self, SpaceShortage};
use super::policy::{AddressClass, OutboundPolicy};
use super::{agent, resolve_checked};

/// Where the tar comes from: `url` is a string or `{"url","headers"}` in the API (API.md §8).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Source {
    pub url: String,
    /// Extra request headers (e.g. an authorization for the build server). Sent to the named host
    /// only, never to a host a redirect leads to.
    pub headers: Vec<(String, String)>,
}

/// Bounds of one download.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// The largest tar accepted.
    pub max_bytes: u64,
    /// The `size` the client announced; the download must end with exactly this many bytes.
    pub expected_bytes: Option<u64>,
    /// Free space kept on the disk beyond the download (the database, logs, the engine's output).
    pub reserve_bytes: u64,
    /// Connection and per-read timeout.
    pub timeout: Duration,
    /// Reconnections within one call after a dropped connection, each resuming where it broke.
    pub reconnects: u32,
}

/// What survives between attempts: stored in the task's checkpoint after every fsync.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// Bytes at the start of the part file that are known to be on disk.
    pub durable_bytes: u64,
    /// The origin's validator (a strong ETag, else Last-Modified) for those bytes; without one,
    /// resuming could splice two different files, so the next attempt starts over.
    pub validator: Option<String>,
    /// The total size the origin announced.
    pub total_bytes: Option<u64>,
}

/// How the caller follows a download: progress for the task row, checkpoints to persist,
/// and a way to cancel (the task expired or the server is stopping).
pub trait Observer {
    fn progress(&mut self, done: u64, total: Option<u64>);
    /// Persists `checkpoint`; an error stops the download (nothing may run ahead of the record).
    fn checkpoint(&mut self, checkpoint: &Checkpoint) -> io::Result<()>;
    fn cancelled(&self) -> bool;
}

/// Why a download did not finish. [`DownloadError::exception`] gives the API's exception object.
#[derive(Debug)]
pub enum DownloadError {
    /// Not an http(s) URL, or one without a host.
    BadUrl(String),
    /// The host resolves only to addresses the outbound policy forbids.
    Refused {
        host: String,
        class: AddressClass,
    },
    /// The origin answered with an error status.
    Http {
        status: u16,
    },
    /// Connecting or reading failed (DNS, refused, reset, timeout, premature end).
    Network(String),
    /// The tar is larger than the configured maximum.
    TooLarge {
        limit: u64,
        actual: u64,
    },
    /// The finished (or announced) size differs from the `size` the client gave.
    SizeMismatch {
        actual: u64,
        expected: u64,
    },
    /// The disk cannot hold the download.
    NoSpace(SpaceShortage),
    /// Writing the part file failed.
    Disk(io::Error),
    Cancelled,
    TooManyRedirects,
}

impl DownloadError {
    /// Whether another attempt later could succeed: network trouble and 5xx/408/429 answers,
    /// not bad input.
    pub fn retryable(&self) -> bool {
        match self {
            DownloadError::Network(_) => true,
            DownloadError::Http { status } => *status >= 500 || *status == 408 || *status == 429,
            DownloadError::NoSpace(_) | DownloadError::Disk(_) => true,
            _ => false,
        }
    }

    /// The task's `exception` object: a human `message` plus the compat fields (`httpStatus`,
    /// `sizeBytesActual`, `sizeBytesExpected`) where they apply.
    pub fn exception(&self) -> Value {
        let message = self.to_string();
        match self {
            DownloadError::Http { status } => json!({"message": message, "httpStatus": status}),
            DownloadError::SizeMismatch { actual, expected } => {
                json!({"message": message, "sizeBytesActual": actual, "sizeBytesExpected": expected})
            }
            DownloadError::TooLarge { actual, .. } => json!({"message": message, "sizeBytesActual": actual}),
            _ => json!({ "message": message }),
        }
    }
}

impl std::fmt::Display for DownloadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DownloadError::BadUrl(why) => write!(f, "the build URL is not usable: {why}"),
            DownloadError::Refused { host, class } => {
                write!(f, "the build URL's host {host} is {}, which this server may not connect to", class.describe())
            }
            DownloadError::Http { status } => write!(f, "the build server answered HTTP {status}"),
            DownloadError::Network(why) => write!(f, "downloading the build failed: {why}"),
            DownloadError::TooLarge { limit, actual } => {
                write!(f, "the build is {actual} bytes, more than the limit of {limit} bytes")
            }
            DownloadError::SizeMismatch { actual, expected } => {
                write!(f, "the build has {actual} bytes, but the import announced {expected}")
            }
            DownloadError::NoSpace(shortage) => write!(f, "{shortage}"),
            // Only the error kind: an OS message could reveal the state directory's path.
            DownloadError::Disk(e) => write!(f, "writing the downloaded build failed ({})", e.kind()),
            DownloadError::Cancelled => write!(f, "the download was cancelled"),
            DownloadError::TooManyRedirects => write!(f, "the build URL redirected too often"),
        }
    }
}

impl std::error::Error for DownloadError {}

/// How the whole file was received.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Downloaded {
    pub bytes: u64,
    /// Times a dropped connection was resumed with a range request.
    pub resumed: u32,
    /// Times the download had to start over (no ranges, no validator, or a changed file).
    pub restarted: u32,
}

const REDIRECTS: usize = 5;
/// fsync and checkpoint this often: a crash costs at most this much re-download.
const CHECKPOINT_EVERY: u64 = 32 << 20;
const PROGRESS_EVERY: u64 = 1 << 20;
const BUFFER: usize = 256 << 10;

/// Downloads `source` into `part`, resuming from `checkpoint`, until the whole file is there.
pub fn download(
    source: &Source,
    policy: OutboundPolicy,
    limits: &Limits,
    part: &Path,
    checkpoint: Checkpoint,
    observer: &mut dyn Observer,
) -> Result<Downloaded, DownloadError> {
    let mut file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(part)
        .map_err(DownloadError::Disk)?;
    let on_disk = file.metadata().map_err(DownloadError::Disk)?.len();
    let mut state = Transfer {
        done: if checkpoint.validator.is_some() { on_disk.min(checkpoint.durable_bytes) } else { 0 },
        validator: checkpoint.validator.clone(),
        total: checkpoint.total_bytes,
        synced: 0,
        resumed: 0,
        restarted: 0,
    };
    truncate_to(&mut file, state.done)?;
    state.synced = state.done;
    let dir = part.parent().unwrap_or(Path::new("."));
    if let Some(expected) = limits.expected_bytes {
        if expected > limits.max_bytes {
            return Err(DownloadError::TooLarge { limit: limits.max_bytes, actual: expected });
        }
        check_space(dir, expected.saturating_sub(state.done), limits.reserve_bytes)?;
    }

    let mut failures = 0;
    loop {
        if observer.cancelled() {
            return Err(DownloadError::Cancelled);
        }
        match attempt(source, policy, limits, &mut file, dir, &mut state, observer) {
            Ok(()) => break,
            Err(Interrupted::Fatal(e)) => {
                // Keep what is durable for the next attempt (a task retry or a restart).
                let _ = sync_and_checkpoint(&mut file, &mut state, observer);
                return Err(e);
            }
            Err(Interrupted::Dropped(why)) => {
                sync_and_checkpoint(&mut file, &mut state, observer)?;
                failures += 1;
                if failures > limits.reconnects {
                    return Err(DownloadError::Network(why));
                }
                if state.validator.is_none() {
                    // Without a validator the bytes so far cannot be trusted to match a resumed
                    // tail: start over.
                    state.restart(&mut file)?;
                } else {
                    state.resumed += 1;
                }
                std::thread::sleep(Duration::from_millis(200 * u64::from(failures)));
            }
        }
    }
    sync_and_checkpoint(&mut file, &mut state, observer)?;
    if let Some(expected) = limits.expected_bytes {
        if state.done != expected {
            return Err(DownloadError::SizeMismatch { actual: state.done, expected });
        }
    }
    observer.progress(state.done, Some(state.done));
    Ok(Downloaded { bytes: state.done, resumed: state.resumed, restarted: state.restarted })
}

/// The running state of one download across reconnections.
struct Transfer {
    done: u64,
    validator: Option<String>,
    total: Option<u64>,
    synced: u64,
    resumed: u32,
    restarted: u32,
}

impl Transfer {
    fn restart(&mut self, file: &mut File) -> Result<(), DownloadError> {
        if self.done > 0 {
            self.restarted += 1;
        }
        self.done = 0;
        self.synced = 0;
        self.validator = None;
        truncate_to(file, 0)
    }
}

enum Interrupted {
    /// The connection broke after it had started: worth resuming at once.
    Dropped(String),
    Fatal(DownloadError),
}

impl From<DownloadError> for Interrupted {
    fn from(e: DownloadError) -> Self {
        match e {
            DownloadError::Network(why) => Interrupted::Dropped(why),
            other => Interrupted::Fatal(other),
        }
    }
}

fn attempt(
    source: &Source,
    policy: OutboundPolicy,
    limits: &Limits,
    file: &mut File,
    dir: &Path,
    state: &mut Transfer,
    observer: &mut dyn Observer,
) -> Result<(), Interrupted> {
    let resume_from = state.done;
    let response = request(source, policy, limits.timeout, resume_from, state.validator.as_deref())?;
    let status = response.status();
    let body_total = match (status, resume_from) {
        (206, from) if from > 0 => {
            let Some((start, total)) = response.header("Content-Range").and_then(parse_content_range) else {
                return Err(Interrupted::Fatal(DownloadError::Network(
                    "the build server sent a partial answer without a usable Content-Range".into(),
                )));
            };
            if start != from {
                // A range we did not ask for: trust nothing and start over on the next round.
                state.restart(file)?;
                return Err(Interrupted::Dropped("the build server resumed at the wrong offset".into()));
            }
            total
        }
        (200, _) => {
            if resume_from > 0 {
                // The origin ignored the range or the file changed (If-Range failed): start over.
                state.restart(file)?;
            }
            response.header("Content-Length").and_then(|v| v.parse::<u64>().ok())
        }
        (other, _) => return Err(Interrupted::Fatal(DownloadError::Http { status: other })),
    };
    state.validator = validator(&response);
    if let Some(total) = body_total {
        state.total = Some(total);
        if total > limits.max_bytes {
            return Err(Interrupted::Fatal(DownloadError::TooLarge { limit: limits.max_bytes, actual: total }));
        }
        if let Some(expected) = limits.expected_bytes {
            if total != expected {
                return Err(Interrupted::Fatal(DownloadError::SizeMismatch { actual: total, expected }));
            }
        }
        check_space(dir, total.saturating_sub(state.done), limits.reserve_bytes)?;
    }
    file.seek(SeekFrom::Start(state.done)).map_err(DownloadError::Disk)?;
    let mut reader = response.into_reader();
    let mut buffer = vec![0u8; BUFFER];
    let mut last_progress = state.done;
    // So each checkpoint's sync finds the bytes mostly written already.
    let mut writeback = crate::engine::fsutil::EarlyWriteback::starting_at(state.done);
    let mut pacer = crate::api_load::Pacer::default();
    loop {
        if observer.cancelled() {
            return Err(Interrupted::Fatal(DownloadError::Cancelled));
        }
        let n = match reader.read(&mut buffer) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                return Err(Interrupted::Dropped(format!("the connection broke after {} bytes ({e})", state.done)))
            }
        };
        if state.done + n as u64 > limits.max_bytes {
            return Err(Interrupted::Fatal(DownloadError::TooLarge {
                limit: limits.max_bytes,
                actual: state.done + n as u64,
            }));
        }
        file.write_all(&buffer[..n]).map_err(DownloadError::Disk)?;
        writeback.wrote(file, n as u64);
        state.done += n as u64;
        // Yield to the API's requests (`api_load`), as an upload does.
        if let Some(pause) = pacer.after(n as u64, crate::api_load::busy) {
            std::thread::sleep(pause);
        }
        if state.done - state.synced >= CHECKPOINT_EVERY {
            sync_and_checkpoint(file, state, observer)?;
        }
        if state.done - last_progress >= PROGRESS_EVERY {
            observer.progress(state.done, state.total);
            last_progress = state.done;
        }
    }
    match state.total {
        Some(total) if state.done < total => {
            Err(Interrupted::Dropped(format!("the connection ended after {} of {total} bytes", state.done)))
        }
        _ => Ok(()),
    }
}

/// One GET, following redirects by hand so every hop passes the outbound policy and the caller's
/// headers never travel to another host.
fn request(
    source: &Source,
    policy: OutboundPolicy,
    timeout: Duration,
    resume_from: u64,
    validator: Option<&str>,
) -> Result<ureq::Response, DownloadError> {
    let first = url::Url::parse(&source.url).map_err(|e| DownloadError::BadUrl(e.to_string()))?;
    let mut url = first.clone();
    for _ in 0..=REDIRECTS {
        let addrs = resolve_checked(&url, policy)?;
        let mut req = agent(timeout, addrs).get(url.as_str());
        if url.host_str() == first.host_str() && url.port_or_known_default() == first.port_or_known_default() {
            for (name, value) in &source.headers {
                req = req.set(name, value);
            }
        }
        if resume_from > 0 {
            req = req.set("Range", &format!("bytes={resume_from}-"));
            if let Some(v) = validator {
                req = req.set("If-Range", v);
            }
        }
        let response = match req.call() {
            Ok(r) => r,
            Err(ureq::Error::Status(status, _)) => return Err(DownloadError::Http { status }),
            Err(ureq::Error::Transport(t)) => return Err(DownloadError::Network(transport_reason(&t))),
        };
        if !(300..400).contains(&response.status()) {
            return Ok(response);
        }
        let location =
            response.header("Location").ok_or(DownloadError::Http { status: response.status() })?.to_string();
        url = url.join(&location).map_err(|e| DownloadError::BadUrl(format!("bad redirect: {e}")))?;
    }
    Err(DownloadError::TooManyRedirects)
}

/// Why a connection failed, without the URL ureq puts in front: a build URL may carry a
/// credential in its query (a presigned signature), and the reason ends up in the task's
/// exception, in webhook and Slack messages, and in the log.
fn transport_reason(t: &ureq::Transport) -> String {
    let mut why = t.kind().to_string();
    if let Some(message) = t.message() {
        why = format!("{why}: {message}");
    }
    if let Some(source) = std::error::Error::source(t) {
        why = format!("{why}: {source}");
    }
    why
}

/// A strong ETag, else Last-Modified: what `If-Range` may carry (RFC 9110 §13.1.5).
fn validator(response: &ureq::Response) -> Option<String> {
    let ranges =
        response.header("Accept-Ranges").is_some_and(|v| v.eq_ignore_ascii_case("bytes")) || response.status() == 206;
    if !ranges {
        return None;
    }
    match response.header("ETag") {
        Some(etag) if !etag.starts_with("W/") => Some(etag.to_string()),
        _ => response.header("Last-Modified").map(str::to_string),
    }
}

/// `bytes START-END/TOTAL` → (START, TOTAL if known).
fn parse_content_range(value: &str) -> Option<(u64, Option<u64>)> {
    let rest = value.trim().strip_prefix("bytes ")?;
    let (range, total) = rest.split_once('/')?;
    let (start, _end) = range.split_once('-')?;
    let total = if total == "*" { None } else { Some(total.parse().ok()?) };
    Some((start.parse().ok()?, total))
}

fn check_space(dir: &Path, needed: u64, reserve: u64) -> Result<(), DownloadError> {
    match disk::ensure_room(dir, needed, reserve) {
        Ok(Ok(())) => Ok(()),
        Ok(Err(shortage)) => Err(DownloadError::NoSpace(shortage)),
        Err(e) => Err(DownloadError::Disk(e)),
    }
}

fn truncate_to(file: &mut File, len: u64) -> Result<(), DownloadError> {
    file.set_len(len).map_err(DownloadError::Disk)?;
    file.seek(SeekFrom::Start(len)).map_err(DownloadError::Disk)?;
    Ok(())
}

fn sync_and_checkpoint(
    file: &mut File,
    state: &mut Transfer,
    observer: &mut dyn Observer,
) -> Result<(), DownloadError> {
    file.sync_data().map_err(DownloadError::Disk)?;
    state.synced = state.done;
    observer
        .checkpoint(&Checkpoint {
            durable_bytes: state.done,
            validator: state.validator.clone(),
            total_bytes: state.total,
        })
        .map_err(DownloadError::Disk)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_range_with_total_parses() {
        assert_eq!(parse_content_range("bytes 100-199/1000"), Some((100, Some(1000))));
        assert_eq!(parse_content_range("bytes 5-9/*"), Some((5, None)));
        assert_eq!(parse_content_range("items 1-2/3"), None);
    }

    #[test]
    fn only_server_side_failures_are_retryable() {
        assert!(DownloadError::Http { status: 503 }.retryable());
        assert!(DownloadError::Http { status: 429 }.retryable());
        assert!(!DownloadError::Http { status: 404 }.retryable());
        assert!(!DownloadError::SizeMismatch { actual: 1, expected: 2 }.retryable());
        assert!(DownloadError::Network("reset".into()).retryable());
    }

    #[test]
    fn exceptions_carry_the_compat_fields() {
        let e = DownloadError::Http { status: 404 }.exception();
        assert_eq!(e["httpStatus"], 404);
        let e = DownloadError::SizeMismatch { actual: 10, expected: 12 }.exception();
        assert_eq!((e["sizeBytesActual"].as_u64(), e["sizeBytesExpected"].as_u64()), (Some(10), Some(12)));
    }

    #[test]
    fn a_disk_error_does_not_reveal_paths() {
        let e = DownloadError::Disk(io::Error::new(io::ErrorKind::PermissionDenied, "/var/lib/rockit-edge/work/x"));
        assert!(!e.to_string().contains("/var/lib"));
    }
}
