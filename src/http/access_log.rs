//! The access log: one line per request, written by a thread of its own. Formatting a line costs
//! little; writing it to stderr costs a system call, which on the request path cost about a
//! sixth of the list endpoint's throughput. The writer wakes every few milliseconds and writes
//! whatever lines are queued in one go, so requests never make a system call (or wake a thread)
//! for their line, and many lines share one write. Requests hand over the plain facts; the
//! timestamp and the text are formatted on the writer thread, off the request path.

use std::borrow::Cow;
use std::io::Write;
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime};

use actix_web::http::Method;

use crate::identity::principal::Principal;

/// How long a line may wait before it is written.
const FLUSH_EVERY: std::time::Duration = std::time::Duration::from_millis(20);

/// Where request handlers send their lines.
#[derive(Clone)]
pub struct AccessLog {
    lines: mpsc::Sender<Line>,
}

/// Who made a request, as the authentication extractors found it (kept in the request's
/// extensions for the access log).
#[derive(Clone)]
pub enum Who {
    Member(Arc<Principal>),
    /// An admin-token holder, by the token's `username` claim.
    Admin(String),
}

impl std::fmt::Display for Who {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Who::Member(p) => write!(f, "{}/{}", p.org_name, p.username),
            Who::Admin(name) => write!(f, "admin-token:{name}"),
        }
    }
}

/// What the log says about one request. Never a header, a body or the raw path.
pub struct Line {
    pub at: SystemTime,
    pub method: Method,
    /// The route template (`/be/v1/apps/{appName}`), never the concrete path.
    pub route: Cow<'static, str>,
    pub status: u16,
    pub took: Duration,
    /// The client address (after `trusted_proxies`).
    pub client: String,
    /// The authenticated principal, if the request got that far.
    pub who: Option<Who>,
}

impl std::fmt::Display for Line {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let at = chrono::DateTime::<chrono::Utc>::from(self.at).to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        let ms = self.took.as_secs_f64() * 1e3;
        // The same shape as the rest of the log (env_logger's default format).
        write!(f, "[{at} INFO  access] {} {} {} {ms:.1}ms {}", self.method, self.route, self.status, self.client)?;
        match &self.who {
            Some(who) => write!(f, " {who}"),
            None => write!(f, " -"),
        }
    }
}

/// The writer thread, to wait for at exit so the last lines reach stderr.
pub struct AccessLogWriter(JoinHandle<()>);

impl AccessLogWriter {
    /// Waits (at most two seconds) for the writer to drain once every sender is gone.
    pub fn finish(self) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
        while !self.0.is_finished() && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
    }
}

impl AccessLog {
    pub fn start() -> std::io::Result<(AccessLog, AccessLogWriter)> {
        let (lines, queue) = mpsc::channel::<Line>();
        let writer = std::thread::Builder::new().name("access-log".into()).spawn(move || {
            let mut out = std::io::BufWriter::with_capacity(16 * 1024, std::io::stderr());
            loop {
                let mut open = true;
                loop {
                    match queue.try_recv() {
                        Ok(line) => {
                            let _ = writeln!(out, "{line}");
                        }
                        Err(mpsc::TryRecvError::Empty) => break,
                        Err(mpsc::TryRecvError::Disconnected) => {
                            open = false;
                            break;
                        }
                    }
                }
                let _ = out.flush();
                if !open {
                    return;
                }
                std::thread::sleep(FLUSH_EVERY);
            }
        })?;
        Ok((AccessLog { lines }, AccessLogWriter(writer)))
    }

    /// Whether lines are written at all (the access target logs at info): callers skip
    /// gathering a line's facts otherwise.
    pub fn enabled(&self) -> bool {
        log::log_enabled!(target: "access", log::Level::Info)
    }

    /// Queues one line.
    pub fn record(&self, line: Line) {
        let _ = self.lines.send(line);
    }
}
