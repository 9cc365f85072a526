//! `--pipeline`: the build pipeline measured end to end on the real release server, each figure in
//! the same run as its baseline (issue 9). Real build series (pygame, panda3d tars from
//! `bench/pipeline/inputs.sh`) and a synthetic build (`bench/pipeline/synthetic.py`) go through
//! `POST /be/v1/builds` in upload mode; the report holds import throughput against `zstd -3 -T0`
//! on the same tar, the server's peak RSS per import, patch sizes against the baselines of
//! `bench/pipeline/baselines.sh`, the reference client's apply throughput, end-to-end times, and
//! the list workload's p99 idle and while an import runs.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::http::once;
use crate::servers::{self, Account};
use crate::workloads::{self, Stats};

pub struct PipelineOptions {
    pub rockit: PathBuf,
    /// Build series to import in order, each at least one tar (`--series a.tar,b.tar`).
    pub series: Vec<Vec<PathBuf>>,
    /// Synthetic builds in MiB (each its own app).
    pub synthetic_mib: Vec<u64>,
    /// The uploading `curl` of the import under the list workload runs at nice 19. In use the
    /// upload comes from a build machine elsewhere; on the bench box its client otherwise takes a
    /// core at the priority of the server's request threads, and the list windows during the
    /// upload measure that contest. The series' imports (the throughput figures) keep it normal.
    pub nice_upload: bool,
    pub smoke: bool,
    pub out: PathBuf,
}

type Utc = chrono::DateTime<chrono::Utc>;

/// The machine's load at one moment: `uptime`'s load averages and the kernel's CPU pressure
/// (`/proc/pressure/cpu`, "some" line). The box is shared, so every figure needs this next to it.
struct Load {
    label: String,
    at: Utc,
    uptime: String,
    psi: String,
}

fn load(label: &str) -> Load {
    let uptime = Command::new("uptime")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|_| "?".into());
    let psi = std::fs::read_to_string("/proc/pressure/cpu")
        .ok()
        .and_then(|p| p.lines().next().map(str::to_string))
        .unwrap_or_else(|| "?".into());
    Load { label: label.into(), at: chrono::Utc::now(), uptime, psi }
}

/// The 1-minute load average of an `uptime` line.
fn load1(uptime: &str) -> &str {
    uptime.split("load average:").nth(1).and_then(|l| l.split(',').next()).map(str::trim).unwrap_or("?")
}

/// One task of the build's chain as the tasks API reports it.
struct Phase {
    kind: String,
    started: Option<Utc>,
    ended: Option<Utc>,
}

/// One window of the list workload, placed on the wall clock.
struct Window {
    from: Utc,
    to: Utc,
    stats: Stats,
}

/// What one import saw on the wall clock: for the timeline, per-phase memory and the check that
/// a latency window really overlapped the import.
struct Timeline {
    posted: Utc,
    uploaded: Option<Utc>,
    committed: Utc,
    phases: Vec<Phase>,
    /// The server's VmRSS, KiB, sampled about every 100 ms from the POST to the commit.
    rss: Vec<(Utc, u64)>,
    /// The server's CPU time (user + system, all threads), seconds, sampled with the RSS.
    cpu: Vec<(Utc, f64)>,
}

impl Timeline {
    fn phase(&self, kind: &str) -> Option<&Phase> {
        self.phases.iter().find(|p| p.kind == kind)
    }

    /// VmRSS at the POST, KiB: what the process held before this import (freed heap that
    /// glibc keeps from earlier imports included), so `peak − this` is what the import added.
    fn rss_at_post(&self) -> u64 {
        self.rss.first().map(|(_, k)| *k).unwrap_or(0)
    }

    /// Highest VmRSS sampled while the task of `kind` ran, KiB.
    fn peak_during(&self, kind: &str) -> Option<u64> {
        let p = self.phase(kind)?;
        let (from, to) = (p.started?, p.ended?);
        self.rss.iter().filter(|(t, _)| *t >= from && *t <= to).map(|(_, k)| *k).max()
    }

    /// The server's CPU seconds while the task of `kind` ran: between the last sample before
    /// its start and the first after its end (so at most ~100 ms of neighbouring work each side).
    fn cpu_during(&self, kind: &str) -> Option<f64> {
        let p = self.phase(kind)?;
        let (from, to) = (p.started?, p.ended?);
        let before = self.cpu.iter().rev().find(|(t, _)| *t <= from)?.1;
        let after = self.cpu.iter().find(|(t, _)| *t >= to)?.1;
        Some(after - before)
    }

    /// The tasks whose run overlaps `[from, to]`, or where the window sits otherwise.
    fn phases_over(&self, from: Utc, to: Utc) -> String {
        let names: Vec<&str> = self
            .phases
            .iter()
            .filter(|p| p.started.is_some_and(|s| s <= to) && p.ended.is_none_or(|e| e >= from))
            .map(|p| p.kind.as_str())
            .collect();
        if !names.is_empty() {
            names.join("+")
        } else if to < self.posted || from > self.committed {
            "outside the import".into()
        } else if self.phases.iter().filter_map(|p| p.started).min().is_some_and(|first| to <= first) {
            // In upload mode the chain's first task starts once the PUT has arrived.
            "upload (before the first task)".into()
        } else {
            "between tasks".into()
        }
    }
}

/// One imported build and what it cost.
struct Import {
    app: String,
    tar: PathBuf,
    bytes: u64,
    build: u64,
    /// From the `POST /be/v1/builds` to the app showing the committed build.
    end_to_end: Duration,
    /// Highest VmRSS of the server sampled during the import, KiB.
    peak_rss_kib: u64,
    /// `zstd -3 -T0` of the same tar right after the import: the median of three runs.
    zstd: Duration,
    /// The mkraw task (chunking, image, patches), from its start to its end.
    mkraw: Option<Duration>,
    /// Size of the patch from the previous build of the series, if any.
    patch_bytes: Option<u64>,
    /// `rockit-edge fetch --update-from` of that patch: time.
    apply: Option<Duration>,
    /// What that update read from the depot (the patch and any new chunks it fetches).
    fetched: Option<u64>,
    timeline: Timeline,
    /// The machine's load just before the POST.
    load: Load,
}

/// The harness's own session. An 8 GiB import on a loaded box can outlive an access token
/// (15 minutes by default), so a 401 logs in again once and repeats the call.
#[derive(Clone)]
struct Session {
    host: String,
    account: Arc<Account>,
    auth: Arc<std::sync::Mutex<String>>,
}

/// A fresh `Bearer` header value for `account`.
async fn bearer(host: &str, account: &Account) -> Result<String, String> {
    let login = workloads::rockit_login(host, account).await?;
    Ok(format!("Bearer {}", login["session"]["access"]["token"].as_str().unwrap_or_default()))
}

impl Session {
    async fn call(&self, method: &str, path: &str, body: Option<Value>) -> Result<Value, String> {
        let body = body.map(|b| b.to_string());
        let mut answer = self.once(method, path, body.clone()).await?;
        if answer.status == 401 {
            let fresh = bearer(&self.host, &self.account).await?;
            *self.auth.lock().map_err(|_| "session lock poisoned")? = fresh;
            answer = self.once(method, path, body).await?;
        }
        if answer.status != 200 {
            return Err(format!(
                "{method} {path} answered {}: {}",
                answer.status,
                String::from_utf8_lossy(&answer.body)
            ));
        }
        Ok(answer.json())
    }

    async fn once(&self, method: &str, path: &str, body: Option<String>) -> Result<crate::http::Answer, String> {
        let auth = self.auth.lock().map_err(|_| "session lock poisoned")?.clone();
        once(&self.host, method, path, &[("authorization", &auth)], body).await
    }
}

fn seconds_since(a: &str, b: &str) -> Option<Duration> {
    let a = chrono::DateTime::parse_from_rfc3339(a).ok()?;
    let b = chrono::DateTime::parse_from_rfc3339(b).ok()?;
    (b - a).to_std().ok()
}

/// User + system CPU seconds of every thread of process `pid` so far (/proc/PID/stat).
fn cpu_seconds(pid: u32) -> f64 {
    static TICKS: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    let ticks = *TICKS.get_or_init(|| {
        let out = Command::new("getconf").arg("CLK_TCK").output().ok();
        out.and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok()).unwrap_or(100.0)
    });
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may hold spaces), counted from field 3 (state).
    let fields: Vec<&str> =
        stat.rsplit_once(')').map(|(_, rest)| rest.split_whitespace().collect()).unwrap_or_default();
    let tick = |n: usize| fields.get(n).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (tick(11) + tick(12)) / ticks
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// The median time of three `zstd -3 -T0` runs on `tar`: one run varied from 257 to 362 MB/s
/// within an hour on the shared box, which moved the import's ratio more than any change did.
fn zstd_median(tar: &Path, out: &Path) -> Result<Duration, String> {
    let mut runs = (0..3)
        .map(|_| timed(Command::new("zstd").args(["-q", "-3", "-T0", "-f"]).arg(tar).arg("-o").arg(out)))
        .collect::<Result<Vec<_>, _>>()?;
    runs.sort();
    Ok(runs[1])
}

fn timed(cmd: &mut Command) -> Result<Duration, String> {
    Ok(timed_output(cmd)?.0)
}

/// Runs `cmd` to its end: its wall time and its standard output.
fn timed_output(cmd: &mut Command) -> Result<(Duration, String), String> {
    let t = Instant::now();
    let out = cmd.output().map_err(|e| format!("cannot run {cmd:?}: {e}"))?;
    if !out.status.success() {
        return Err(format!("{cmd:?} failed: {}", String::from_utf8_lossy(&out.stderr)));
    }
    Ok((t.elapsed(), String::from_utf8_lossy(&out.stdout).into_owned()))
}

/// The "N bytes fetched" of `rockit-edge fetch`'s summary line.
fn bytes_fetched(summary: &str) -> Option<u64> {
    let words: Vec<&str> = summary.split_whitespace().collect();
    let at = words.windows(2).position(|w| w == ["bytes", "fetched"])?;
    words.get(at.checked_sub(1)?)?.parse().ok()
}

/// Imports `tar` as the next build of `app` and waits for it to be committed, sampling the
/// server's memory meanwhile. `running` is cleared once the import has ended (the caller sets it
/// before starting, so a concurrent window loop never sees a false start).
async fn import(
    s: &Session,
    server_pid: u32,
    app: &str,
    tar: &Path,
    build: u64,
    running: Arc<std::sync::atomic::AtomicBool>,
    nice_upload: bool,
) -> Result<(Duration, Timeline, Option<Duration>), String> {
    use std::sync::atomic::Ordering;
    struct Clear(Arc<std::sync::atomic::AtomicBool>);
    impl Drop for Clear {
        fn drop(&mut self) {
            self.0.store(false, Ordering::SeqCst);
        }
    }
    let _clear = Clear(running);
    let bytes = std::fs::metadata(tar).map_err(|e| format!("{}: {e}", tar.display()))?.len();
    let t0 = Instant::now();
    let posted = chrono::Utc::now();
    let started = s.call("POST", "/be/v1/builds", Some(json!({"appName": app, "size": bytes}))).await?;
    let url = started["upload"]["url"].as_str().ok_or("no upload URL")?.to_string();
    let group = started["task"]["group"].as_str().unwrap_or_default().to_string();
    let mut put = if nice_upload {
        let mut nice = Command::new("nice");
        nice.args(["-n", "19", "curl"]);
        nice
    } else {
        Command::new("curl")
    };
    let mut put = put
        .args(["-sS", "-f", "-o", "/dev/null", "-H", "content-type: application/x-tar", "-T"])
        .arg(tar)
        .arg(&url)
        .spawn()
        .map_err(|e| format!("cannot run curl: {e}"))?;
    let mut rss = Vec::new();
    let mut cpu = Vec::new();
    let mut uploaded = None;
    loop {
        let now = chrono::Utc::now();
        rss.push((now, rss_kib(server_pid)));
        cpu.push((now, cpu_seconds(server_pid)));
        if uploaded.is_none() {
            if let Some(status) = put.try_wait().map_err(|e| e.to_string())? {
                if !status.success() {
                    return Err(format!("uploading {} failed: {status}", tar.display()));
                }
                uploaded = Some(chrono::Utc::now());
            }
        }
        let app_now = s.call("GET", &format!("/be/v1/apps/{app}"), None).await?;
        let a = &app_now["app"];
        if a["iCurBuild"].as_u64() == Some(build) && a["processing"] != true && a["exporting"] != true {
            break;
        }
        if let Some(error) = a.get("error").filter(|e| !e.is_null()) {
            return Err(format!("importing {} failed: {error}", tar.display()));
        }
        // A failed dltar or mkraw leaves the app as it was (no `error`: the live build is
        // untouched), so the chain's own tasks say whether it stopped.
        if uploaded.is_some() && a["processing"] != true && a["exporting"] != true {
            let tasks = s.call("GET", &format!("/be/v1/tasks?group={group}&status=failed"), None).await?;
            if let Some(failed) = tasks["tasks"].as_array().and_then(|t| t.first()) {
                return Err(format!("importing {} failed: {} {}", tar.display(), failed["type"], failed["exception"]));
            }
        }
        if t0.elapsed() > Duration::from_secs(3600) {
            return Err(format!("importing {} took more than an hour", tar.display()));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let end_to_end = t0.elapsed();
    let committed = chrono::Utc::now();
    rss.push((committed, rss_kib(server_pid)));
    cpu.push((committed, cpu_seconds(server_pid)));
    drop(_clear);
    let tasks = s.call("GET", &format!("/be/v1/tasks?group={group}&limit=10"), None).await?;
    let at = |v: &Value| v.as_str().and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok()).map(|t| t.to_utc());
    let mut phases: Vec<Phase> = tasks["tasks"]
        .as_array()
        .map(|all| {
            all.iter()
                .map(|t| Phase {
                    kind: t["type"].as_str().unwrap_or("?").to_string(),
                    started: at(&t["started"]),
                    ended: at(&t["ended"]),
                })
                .collect()
        })
        .unwrap_or_default();
    phases.sort_by_key(|p| p.started);
    let mkraw = tasks["tasks"].as_array().and_then(|all| {
        let t = all.iter().find(|t| t["type"] == "mkraw")?;
        seconds_since(t["started"].as_str()?, t["ended"].as_str()?)
    });
    Ok((end_to_end, Timeline { posted, uploaded, committed, phases, rss, cpu }, mkraw))
}

/// Runs list windows of `window` with `gap` between them for as long as `running` is set, each
/// placed on the wall clock, so the report can show which windows really fell inside the import.
async fn windows_while(
    host: &str,
    account: &Arc<Account>,
    first: Option<String>,
    running: &std::sync::atomic::AtomicBool,
    window: Duration,
    gap: Duration,
) -> Vec<Window> {
    use std::sync::atomic::Ordering;
    let mut out = Vec::new();
    // One login for all windows while its token is young (access tokens live 15 minutes by
    // default): a login costs seconds on the loaded box, which would push windows late.
    let mut session: Option<(String, Instant)> = first.map(|auth| (auth, Instant::now()));
    while running.load(Ordering::SeqCst) {
        if session.as_ref().is_none_or(|(_, at)| at.elapsed() > Duration::from_secs(600)) {
            session = bearer(host, account).await.ok().map(|auth| (auth, Instant::now()));
        }
        out.push(list_window(host, account, session.as_ref().map(|(a, _)| a.as_str()), window).await);
        let until = Instant::now() + gap;
        while running.load(Ordering::SeqCst) && Instant::now() < until {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    out
}

/// One list window on the wall clock, with `auth` if given, else after a login of its own.
async fn list_window(host: &str, account: &Arc<Account>, auth: Option<&str>, window: Duration) -> Window {
    let stats = list_p99(host, account, auth, window).await;
    let (now, now_utc) = (Instant::now(), chrono::Utc::now());
    let on_clock =
        |i: Instant| now_utc - chrono::Duration::from_std(now.saturating_duration_since(i)).unwrap_or_default();
    let from = stats.recorded_from.map(on_clock).unwrap_or(now_utc);
    let to = stats.recorded_from.map(|i| on_clock(i + window)).unwrap_or(now_utc);
    Window { from, to, stats }
}

/// The list workload: 16 keep-alive connections asking for `GET /be/v1/apps?limit=10` pages
/// for `duration` after a 0.5 s warm-up. They share one session (`auth`, or a single login
/// just before the window): a login per connection (PBKDF2 each) took 45 s on the loaded box,
/// long enough to miss a whole 1 GiB import.
async fn list_p99(host: &str, account: &Arc<Account>, auth: Option<&str>, duration: Duration) -> Stats {
    let mut total = Stats::default();
    let fresh = match auth {
        Some(auth) => Ok(auth.to_string()),
        None => bearer(host, account).await,
    };
    let auth = match fresh {
        Ok(auth) => auth,
        Err(e) => {
            total.errors += 1;
            total.first_error = Some(e);
            return total;
        }
    };
    let warmup = Duration::from_millis(500);
    let start = Instant::now();
    let (record_from, end) = (start + warmup, start + warmup + duration);
    let mut users = Vec::new();
    for _ in 0..16 {
        let (host, auth) = (host.to_string(), auth.clone());
        users.push(tokio::spawn(async move {
            let mut stats = Stats::default();
            let mut conn = crate::http::Conn::open(&host).await.ok();
            while Instant::now() < end {
                let t = Instant::now();
                let outcome = match conn.as_mut() {
                    Some(c) => workloads::list_page(c, &auth).await,
                    None => Err("not connected".to_string()),
                };
                let took = t.elapsed();
                if outcome.is_err() {
                    conn = crate::http::Conn::open(&host).await.ok();
                }
                if t < record_from {
                    continue;
                }
                stats.record(outcome, took);
            }
            stats
        }));
    }
    for user in users {
        if let Ok(stats) = user.await {
            total.ok += stats.ok;
            total.errors += stats.errors;
            if total.first_error.is_none() {
                total.first_error = stats.first_error;
            }
            total.latencies_us.extend(stats.latencies_us);
        }
    }
    total.elapsed = duration;
    total.recorded_from = Some(record_from);
    total
}

/// The list windows around the measured import: during it and right after it.
struct Measured {
    /// The extra import the windows ran during (not one of the series' imports).
    tar: PathBuf,
    bytes: u64,
    end_to_end: Duration,
    timeline: Timeline,
    during: Vec<Window>,
    after: Window,
}

/// One pair of a series (old name, new name) with its baseline rows: (figure, bytes, seconds).
type Pair = (String, String, Vec<(String, u64, f64)>);

/// Baseline rows of `bench/pipeline/baselines.sh` for one pair: (figure, bytes, seconds).
fn baselines(old: &Path, new: &Path) -> Result<Vec<(String, u64, f64)>, String> {
    let out = Command::new("bash")
        .arg("bench/pipeline/baselines.sh")
        .args([old, new])
        .output()
        .map_err(|e| format!("cannot run baselines.sh: {e}"))?;
    if !out.status.success() {
        return Err(format!("baselines.sh failed: {}", String::from_utf8_lossy(&out.stderr)));
    }
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            Some((f.first()?.to_string(), f.get(2)?.parse().ok()?, f.get(3)?.parse().ok()?))
        })
        .collect())
}

fn name_of(tar: &Path) -> String {
    tar.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default()
}

fn mb_s(bytes: u64, d: Duration) -> String {
    format!("{:.0} MB/s", bytes as f64 / 1e6 / d.as_secs_f64().max(1e-9))
}

pub async fn run(o: PipelineOptions) -> Result<(), String> {
    let work = std::env::temp_dir().join(format!("rockit-bench-pipeline-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work).map_err(|e| e.to_string())?;
    let result = run_in(&o, &work).await;
    let _ = std::fs::remove_dir_all(&work);
    result
}

async fn run_in(o: &PipelineOptions, work: &Path) -> Result<(), String> {
    let mut series = o.series.clone();
    // The generator is deterministic and writes under a temporary name, so a tar already in
    // bench/work/synthetic is complete and the same bytes: generating 8 GiB takes minutes.
    let cache = Path::new("bench/work/synthetic");
    std::fs::create_dir_all(cache).map_err(|e| format!("{}: {e}", cache.display()))?;
    for mib in &o.synthetic_mib {
        let tar = cache.join(format!("synthetic-{mib}MiB.tar"));
        if !tar.is_file() {
            eprintln!("generating {}", tar.display());
            timed(Command::new("python3").arg("bench/pipeline/synthetic.py").arg(mib.to_string()).arg(&tar))?;
        }
        series.push(vec![tar]);
    }
    let (mut server, account) = servers::start_rockit(&o.rockit, work).await?;
    let state = work.join("rockit-state");
    let mut pid = server.child.id();
    let account = Arc::new(account);
    let auth = bearer(&server.host, &account).await?;
    let mut s =
        Session { host: server.host.clone(), account: account.clone(), auth: Arc::new(std::sync::Mutex::new(auth)) };
    let window = if o.smoke { Duration::from_secs(1) } else { Duration::from_secs(5) };

    let mut loads = vec![load("start of the run")];
    eprintln!("list workload, idle");
    let idle = list_window(&server.host, &account, None, window).await;

    let mut imports = Vec::new();
    let mut busy: Option<Measured> = None;
    // The highest VmHWM of the server processes of the run.
    let mut vm_hwm = 0;
    for (i, tars) in series.iter().enumerate() {
        if i > 0 {
            // Each series starts in a fresh server process (same state): otherwise a series
            // starts from the heap the one before left behind, and its peak RSS says as much
            // about the order of the series as about its builds.
            vm_hwm = vm_hwm.max(server.memory_kib().1);
            servers::restart_rockit(&mut server, work).await?;
            pid = server.child.id();
            s.host = server.host.clone();
        }
        let app = format!("pipe{i}");
        s.call("POST", "/be/v1/apps", Some(json!({"name": app, "label": name_of(&tars[0])}))).await?;
        for (b, tar) in tars.iter().enumerate() {
            let build = b as u64 + 1;
            eprintln!("importing {} as {app} build {build}", tar.display());
            let running = Arc::new(std::sync::atomic::AtomicBool::new(true));
            let before = load(&format!("before importing {}", name_of(tar)));
            let (end_to_end, timeline, mkraw) = import(&s, pid, &app, tar, build, running, false).await?;
            let bytes = std::fs::metadata(tar).map_err(|e| e.to_string())?.len();
            let zstd = zstd_median(tar, &work.join("z.zst"))?;
            let mut one = Import {
                app: app.clone(),
                tar: tar.clone(),
                bytes,
                build,
                end_to_end,
                peak_rss_kib: timeline.rss.iter().map(|(_, k)| *k).max().unwrap_or(0),
                zstd,
                mkraw,
                patch_bytes: None,
                apply: None,
                fetched: None,
                timeline,
                load: before,
            };
            if build > 1 {
                let app_now = s.call("GET", &format!("/be/v1/apps/{app}"), None).await?;
                one.patch_bytes = app_now["app"]["patches"].as_array().and_then(|p| {
                    p.iter()
                        .find(|p| {
                            p["fromBuildId"].as_u64() == Some(build - 1) && p["toBuildId"].as_u64() == Some(build)
                        })
                        .and_then(|p| p["sizeBytes"].as_u64())
                });
                let tree = work.join(format!("tree-{app}"));
                let _ = std::fs::remove_dir_all(&tree);
                let fetch = |to: u64, from: Option<u64>| {
                    let mut cmd = Command::new(&o.rockit);
                    cmd.args(["fetch", "--from"]).arg(state.join("depot")).args(["--org", &account.org, "--app", &app]);
                    cmd.args(["--build", &to.to_string(), "--dest"]).arg(&tree);
                    if let Some(from) = from {
                        cmd.args(["--update-from", &from.to_string()]);
                    }
                    cmd
                };
                timed(&mut fetch(build - 1, None))?;
                let (took, summary) = timed_output(&mut fetch(build, Some(build - 1)))?;
                one.apply = Some(took);
                one.fetched = bytes_fetched(&summary);
            }
            imports.push(one);
        }
    }
    // The list windows run during one more import of the last series' first tar into an app of
    // its own (its own chunk store, so the import does all its work again). The series' imports
    // above ran alone: their throughput and memory are the import's, not the import's share of
    // a box the list flood also wants.
    if let Some(tar) = series.last().and_then(|tars| tars.first()) {
        let app = format!("pipe{}_under_load", series.len() - 1);
        s.call("POST", "/be/v1/apps", Some(json!({"name": app, "label": name_of(tar)}))).await?;
        eprintln!("importing {} as {app} under the list workload", tar.display());
        loads.push(load(&format!("before the measured import of {}", name_of(tar))));
        let running = Arc::new(std::sync::atomic::AtomicBool::new(true));
        // The windows' session is made before the POST, so the first window starts right after
        // it (the windows' warm-up then lets the upload get going).
        let first = bearer(&server.host, &account).await.ok();
        let importing = {
            let (s2, app2, tar2, running2, nice) =
                (s.clone(), app.clone(), tar.clone(), running.clone(), o.nice_upload);
            tokio::spawn(async move { import(&s2, pid, &app2, &tar2, 1, running2, nice).await })
        };
        tokio::time::sleep(Duration::from_millis(100)).await;
        let during = {
            let (host, account, running) = (server.host.clone(), account.clone(), running.clone());
            tokio::spawn(async move { windows_while(&host, &account, first, &running, window, window * 2).await })
        };
        let (end_to_end, timeline, _) = importing.await.map_err(|e| e.to_string())??;
        let during = during.await.map_err(|e| e.to_string())?;
        loads.push(load(&format!("right after the measured import of {}", name_of(tar))));
        eprintln!("list workload, idle again after the import");
        let after = list_window(&server.host, &account, None, window).await;
        let bytes = std::fs::metadata(tar).map_err(|e| e.to_string())?.len();
        busy = Some(Measured { tar: tar.clone(), bytes, end_to_end, timeline, during, after });
    }
    let vm_hwm = vm_hwm.max(server.memory_kib().1);
    server.stop();
    loads.push(load("end of the imports"));

    let mut pairs = Vec::new();
    for tars in &o.series {
        for w in tars.windows(2) {
            eprintln!("baselines {} → {}", name_of(&w[0]), name_of(&w[1]));
            pairs.push((name_of(&w[0]), name_of(&w[1]), baselines(&w[0], &w[1])?));
        }
    }
    loads.push(load("end of the baselines"));
    let report = render(o, &imports, &pairs, &idle, busy.as_ref(), vm_hwm, &loads);
    println!("{report}");
    std::fs::create_dir_all(&o.out).map_err(|e| e.to_string())?;
    let name =
        format!("{}-pipeline{}.md", chrono::Utc::now().format("%Y-%m-%dT%H%M"), if o.smoke { "-smoke" } else { "" });
    let path = o.out.join(name);
    std::fs::write(&path, &report).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    eprintln!("written to {}", path.display());
    Ok(())
}

fn hms(t: Utc) -> String {
    t.format("%H:%M:%S%.3f").to_string()
}

fn ms(v: f64) -> String {
    format!("{v:.2} ms")
}

fn mib(kib: Option<u64>) -> String {
    kib.map(|k| format!("{} MiB", k / 1024)).unwrap_or_else(|| "–".into())
}

/// All the windows' samples as one.
fn pooled<'a>(windows: impl Iterator<Item = &'a Window>) -> Stats {
    let mut all = Stats::default();
    for w in windows {
        all.ok += w.stats.ok;
        all.errors += w.stats.errors;
        all.latencies_us.extend(&w.stats.latencies_us);
        all.elapsed += w.stats.elapsed;
    }
    all
}

fn render(
    o: &PipelineOptions,
    imports: &[Import],
    pairs: &[Pair],
    idle: &Window,
    busy: Option<&Measured>,
    vm_hwm: u64,
    loads: &[Load],
) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# Pipeline benchmark{} ({})\n",
        if o.smoke { " (smoke: no figure counts)" } else { "" },
        chrono::Utc::now().format("%Y-%m-%d %H:%M UTC")
    );
    let _ = writeln!(
        out,
        "Real release server, upload mode of `POST /be/v1/builds`, one run; `bash bench/run --pipeline{}{}`.\n",
        if o.synthetic_mib.iter().any(|m| *m >= 8192) { " --full" } else { "" },
        if o.nice_upload { " --nice-upload" } else { "" }
    );
    let _ = writeln!(out, "## Import vs `zstd -3 -T0` on the same tar\n");
    let _ = writeln!(
        out,
        "End to end: from the POST to the committed build, the upload over loopback (`curl` on the same \
         cores) included. mkraw: the task that reads the uploaded tar from disk, chunks, hashes and \
         compresses it into the chunk store and writes the image (and patches, for a build with a \
         predecessor), the work `zstd -3 -T0` is compared with; its CPU is the server's user + system \
         time while the task ran.\n"
    );
    let _ = writeln!(
        out,
        "| app | tar | bytes | end to end | import (end to end) | zstd -3 -T0 (median of 3) | ratio (end to end) | \
         mkraw task | mkraw | ratio (mkraw) | server CPU in mkraw | peak RSS during import | RSS at the POST | growth | \
         … while uploading (dltar) | … mkraw | … deploy | load (1 min) before |"
    );
    let _ = writeln!(out, "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for i in imports {
        let ratio = i.zstd.as_secs_f64() / i.end_to_end.as_secs_f64().max(1e-9);
        let mkraw_ratio = i.mkraw.map(|m| i.zstd.as_secs_f64() / m.as_secs_f64().max(1e-9));
        let mkraw_cpu = i.timeline.cpu_during("mkraw").map(|c| c / (i.bytes as f64 / 1e9));
        let _ = writeln!(
            out,
            "| {} | {} | {} | {:.2} s | {} | {} | {ratio:.2}× | {} | {} | {} | {} | {} MiB | {} MiB | +{} MiB | {} | {} | {} | {} |",
            i.app,
            name_of(&i.tar),
            i.bytes,
            i.end_to_end.as_secs_f64(),
            mb_s(i.bytes, i.end_to_end),
            mb_s(i.bytes, i.zstd),
            i.mkraw.map(|d| format!("{:.2} s", d.as_secs_f64())).unwrap_or_else(|| "?".into()),
            i.mkraw.map(|d| mb_s(i.bytes, d)).unwrap_or_else(|| "?".into()),
            mkraw_ratio.map(|r| format!("{r:.2}×")).unwrap_or_else(|| "?".into()),
            mkraw_cpu.map(|c| format!("{c:.2} s/GB")).unwrap_or_else(|| "?".into()),
            i.peak_rss_kib / 1024,
            i.timeline.rss_at_post() / 1024,
            i.peak_rss_kib.saturating_sub(i.timeline.rss_at_post()) / 1024,
            mib(i.timeline.peak_during("dltar")),
            mib(i.timeline.peak_during("mkraw")),
            mib(i.timeline.peak_during("deploy")),
            load1(&i.load.uptime),
        );
    }
    let _ = writeln!(
        out,
        "\nServer VmHWM, the highest of the run's server processes (one per series): {} MiB.",
        vm_hwm / 1024
    );
    // Peak RSS independent of build size: the synthetic builds (one app each, same generator)
    // are the comparable series.
    let synthetic: Vec<&Import> = imports.iter().filter(|i| name_of(&i.tar).starts_with("synthetic-")).collect();
    if let (Some(small), Some(large)) =
        (synthetic.iter().min_by_key(|i| i.bytes), synthetic.iter().max_by_key(|i| i.bytes))
    {
        if large.bytes > small.bytes {
            let r = large.peak_rss_kib as f64 / small.peak_rss_kib.max(1) as f64;
            let _ = writeln!(
                out,
                "Peak RSS, {} vs {}: {} MiB vs {} MiB = {r:.2}× (target: within 10 %, {}); growth over \
                 the RSS at the POST: +{} MiB vs +{} MiB. Each series runs in a fresh server process on \
                 the same state, so both imports start from the same heap.",
                name_of(&large.tar),
                name_of(&small.tar),
                large.peak_rss_kib / 1024,
                small.peak_rss_kib / 1024,
                if r <= 1.10 { "met" } else { "MISSED" },
                large.peak_rss_kib.saturating_sub(large.timeline.rss_at_post()) / 1024,
                small.peak_rss_kib.saturating_sub(small.timeline.rss_at_post()) / 1024,
            );
        }
    }
    let _ = writeln!(out, "\n## Patch N−1 → N vs baselines (same tars)\n");
    let _ = writeln!(
        out,
        "| pair | rockit-edge patch | bytes the update fetched | mkraw task | apply (`fetch --update-from`) | baselines (bytes, seconds) |"
    );
    let _ = writeln!(out, "|---|---:|---:|---:|---:|---|");
    for (k, i) in imports.iter().filter(|i| i.build > 1).enumerate() {
        let base = pairs
            .get(k)
            .map(|(_, _, rows)| {
                rows.iter()
                    .filter(|(f, _, _)| !f.starts_with("zstd -3"))
                    .map(|(f, b, s)| format!("{f}: {b} B, {s:.2} s"))
                    .collect::<Vec<_>>()
                    .join("; ")
            })
            .unwrap_or_default();
        let pair = pairs.get(k).map(|(a, b, _)| format!("{a} → {b}")).unwrap_or_else(|| name_of(&i.tar));
        let _ = writeln!(
            out,
            "| {pair} | {} | {} | {} | {} | {base} |",
            i.patch_bytes.map(|b| format!("{b} B")).unwrap_or_else(|| "?".into()),
            i.fetched.map(|b| format!("{b} B")).unwrap_or_else(|| "?".into()),
            i.mkraw.map(|d| format!("{:.2} s", d.as_secs_f64())).unwrap_or_else(|| "?".into()),
            i.apply.map(|d| format!("{:.2} s ({})", d.as_secs_f64(), mb_s(i.bytes, d))).unwrap_or_else(|| "?".into()),
        );
    }
    let _ = writeln!(
        out,
        "\nThe patch is the API's `sizeBytes`; the update also fetches new chunks from the image \
         (`fetch` ops), so \"bytes the update fetched\" is what a launcher downloads. The mkraw \
         task builds the image and the patches together, so it bounds patch generation time from \
         above. Apply throughput is the new build's tar size over the update's wall time.\n"
    );
    render_latency(&mut out, idle, busy, o.nice_upload);
    let _ = writeln!(out, "## Load on the shared machine\n");
    let _ = writeln!(out, "| when | UTC | uptime | /proc/pressure/cpu |");
    let _ = writeln!(out, "|---|---|---|---|");
    for l in loads {
        let _ = writeln!(out, "| {} | {} | `{}` | `{}` |", l.label, hms(l.at), l.uptime, l.psi);
    }
    let _ = writeln!(out, "\n{}", crate::report::machine());
    out
}

/// The list workload idle and during the measured import, with the import's timeline so a
/// reader can check that the windows fall inside it.
fn render_latency(out: &mut String, idle: &Window, busy: Option<&Measured>, nice_upload: bool) {
    let _ = writeln!(out, "## List workload (16 users, `GET /be/v1/apps?limit=10`) idle vs during an import\n");
    let Some(m) = busy else {
        let _ = writeln!(out, "Not measured (no build imported).\n");
        return;
    };
    let t = &m.timeline;
    let since = |at: Utc| format!("{:+.1} s", (at - t.posted).as_seconds_f64());
    let _ = writeln!(
        out,
        "The windows ran during one more import of {} ({} bytes) into an app of its own, after the \
         series' imports (which ran alone); end to end it took {:.2} s under the list load. Its \
         upload's `curl` ran at {}.\n",
        name_of(&m.tar),
        m.bytes,
        m.end_to_end.as_secs_f64(),
        if nice_upload { "nice 19 (`--nice-upload`)" } else { "normal priority" }
    );
    let _ = writeln!(out, "Timeline of that import:\n");
    let _ = writeln!(out, "| event | UTC | since the POST |");
    let _ = writeln!(out, "|---|---|---:|");
    let mut events = vec![("POST /be/v1/builds".to_string(), t.posted)];
    if let Some(u) = t.uploaded {
        events.push(("upload (PUT) finished".into(), u));
    }
    for p in &t.phases {
        if let Some(s) = p.started {
            events.push((format!("{} task started", p.kind), s));
        }
        if let Some(e) = p.ended {
            events.push((format!("{} task ended", p.kind), e));
        }
    }
    events.push(("the harness saw the build committed".into(), t.committed));
    events.sort_by_key(|(_, at)| *at);
    for (what, at) in &events {
        let _ = writeln!(out, "| {what} | {} | {} |", hms(*at), since(*at));
    }
    let _ = writeln!(out, "\nList windows (5 s of load, then 10 s without, from the POST to the commit):\n");
    let _ =
        writeln!(out, "| window | from (UTC) | to (UTC) | since the POST | during | requests | errors | p50 | p99 |");
    let _ = writeln!(out, "|---|---|---|---:|---|---:|---:|---:|---:|");
    let row = |out: &mut String, label: &str, w: &Window, during: &str| {
        let _ = writeln!(
            out,
            "| {label} | {} | {} | {} … {} | {during} | {} | {} | {} | {} |",
            hms(w.from),
            hms(w.to),
            since(w.from),
            since(w.to),
            w.stats.ok,
            w.stats.errors,
            ms(w.stats.percentile_ms(0.50)),
            ms(w.stats.percentile_ms(0.99))
        );
    };
    row(out, "idle, before the imports", idle, "nothing");
    let inside = |w: &&Window| w.from >= t.posted && w.to <= t.committed;
    for (k, w) in m.during.iter().enumerate() {
        let label = format!("during #{}", k + 1);
        let mut during = t.phases_over(w.from, w.to);
        if !inside(&w) {
            during.push_str(" (not wholly inside the import: left out below)");
        }
        row(out, &label, w, &during);
    }
    row(out, "idle, right after the import", &m.after, "nothing");
    let all = pooled(m.during.iter().filter(inside));
    let idle_p99 = idle.stats.percentile_ms(0.99);
    let after_p99 = m.after.stats.percentile_ms(0.99);
    let busy_p99 = all.percentile_ms(0.99);
    let n = m.during.iter().filter(inside).count();
    let _ = writeln!(out, "\n| summary | requests | errors | p50 | p99 | p99 / idle p99 |");
    let _ = writeln!(out, "|---|---:|---:|---:|---:|---:|");
    let _ = writeln!(
        out,
        "| idle before | {} | {} | {} | {} | 1.00× |",
        idle.stats.ok,
        idle.stats.errors,
        ms(idle.stats.percentile_ms(0.5)),
        ms(idle_p99)
    );
    let _ = writeln!(
        out,
        "| idle after | {} | {} | {} | {} | {:.2}× |",
        m.after.stats.ok,
        m.after.stats.errors,
        ms(m.after.stats.percentile_ms(0.5)),
        ms(after_p99),
        after_p99 / idle_p99
    );
    let _ = writeln!(
        out,
        "| during the import ({n} windows pooled) | {} | {} | {} | {} | {:.2}× |",
        all.ok,
        all.errors,
        ms(all.percentile_ms(0.5)),
        ms(busy_p99),
        busy_p99 / idle_p99
    );
    let verdict = if n == 0 {
        "not measured: no window fell wholly inside the import"
    } else if all.errors > 0 || idle.stats.errors > 0 {
        "invalid: errors"
    } else if busy_p99 <= 3.0 * idle_p99 {
        "met"
    } else {
        "MISSED"
    };
    let _ = writeln!(out, "\nTarget p99 during the import ≤ 3× idle: {verdict}.\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fetch_summary_gives_the_bytes_fetched() {
        let line = "build 2 in /tmp/x: 3 files written, 5 kept, 1234 bytes fetched\n";
        assert_eq!(bytes_fetched(line), Some(1234));
        assert_eq!(bytes_fetched("nothing here"), None);
    }
}
