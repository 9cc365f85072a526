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
use crate::workloads::{self, Kind, Stats, Workload};

pub struct PipelineOptions {
    pub rockit: PathBuf,
    /// Build series to import in order, each at least one tar (`--series a.tar,b.tar`).
    pub series: Vec<Vec<PathBuf>>,
    /// Synthetic builds in MiB (each its own app).
    pub synthetic_mib: Vec<u64>,
    pub smoke: bool,
    pub out: PathBuf,
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
    /// `zstd -3 -T0` of the same tar, timed right after the import.
    zstd: Duration,
    /// The mkraw task (chunking, image, patches), from its start to its end.
    mkraw: Option<Duration>,
    /// Size of the patch from the previous build of the series, if any.
    patch_bytes: Option<u64>,
    /// `rockit-edge fetch --update-from` of that patch: time.
    apply: Option<Duration>,
    /// What that update read from the depot (the patch and any new chunks it fetches).
    fetched: Option<u64>,
}

struct Session {
    host: String,
    auth: String,
}

impl Session {
    async fn call(&self, method: &str, path: &str, body: Option<Value>) -> Result<Value, String> {
        let answer =
            once(&self.host, method, path, &[("authorization", &self.auth)], body.map(|b| b.to_string())).await?;
        if answer.status != 200 {
            return Err(format!(
                "{method} {path} answered {}: {}",
                answer.status,
                String::from_utf8_lossy(&answer.body)
            ));
        }
        Ok(answer.json())
    }
}

fn seconds_since(a: &str, b: &str) -> Option<Duration> {
    let a = chrono::DateTime::parse_from_rfc3339(a).ok()?;
    let b = chrono::DateTime::parse_from_rfc3339(b).ok()?;
    (b - a).to_std().ok()
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
/// server's memory meanwhile. `running` is set while the import is in flight, for the overlap
/// check of the list window.
async fn import(
    s: &Session,
    server_pid: u32,
    app: &str,
    tar: &Path,
    build: u64,
    running: Arc<std::sync::atomic::AtomicBool>,
) -> Result<(Duration, u64, Option<Duration>), String> {
    use std::sync::atomic::Ordering;
    let bytes = std::fs::metadata(tar).map_err(|e| format!("{}: {e}", tar.display()))?.len();
    running.store(true, Ordering::SeqCst);
    let t0 = Instant::now();
    let started = s.call("POST", "/be/v1/builds", Some(json!({"appName": app, "size": bytes}))).await?;
    let url = started["upload"]["url"].as_str().ok_or("no upload URL")?.to_string();
    let group = started["task"]["group"].as_str().unwrap_or_default().to_string();
    let mut put = Command::new("curl")
        .args(["-sS", "-f", "-o", "/dev/null", "-H", "content-type: application/x-tar", "-T"])
        .arg(tar)
        .arg(&url)
        .spawn()
        .map_err(|e| format!("cannot run curl: {e}"))?;
    let mut peak = 0u64;
    let mut put_done = false;
    loop {
        peak = peak.max(rss_kib(server_pid));
        if !put_done {
            if let Some(status) = put.try_wait().map_err(|e| e.to_string())? {
                if !status.success() {
                    running.store(false, Ordering::SeqCst);
                    return Err(format!("uploading {} failed: {status}", tar.display()));
                }
                put_done = true;
            }
        }
        let app_now = s.call("GET", &format!("/be/v1/apps/{app}"), None).await?;
        let a = &app_now["app"];
        if a["iCurBuild"].as_u64() == Some(build) && a["processing"] != true && a["exporting"] != true {
            break;
        }
        if let Some(error) = a.get("error").filter(|e| !e.is_null()) {
            running.store(false, Ordering::SeqCst);
            return Err(format!("importing {} failed: {error}", tar.display()));
        }
        if t0.elapsed() > Duration::from_secs(3600) {
            running.store(false, Ordering::SeqCst);
            return Err(format!("importing {} took more than an hour", tar.display()));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let end_to_end = t0.elapsed();
    running.store(false, Ordering::SeqCst);
    let tasks = s.call("GET", &format!("/be/v1/tasks?group={group}&limit=10"), None).await?;
    let mkraw = tasks["tasks"].as_array().and_then(|all| {
        let t = all.iter().find(|t| t["type"] == "mkraw")?;
        seconds_since(t["started"].as_str()?, t["ended"].as_str()?)
    });
    Ok((end_to_end, peak, mkraw))
}

/// The list workload (16 users) for `duration` after a short warm-up.
async fn list_p99(host: &str, account: &Arc<Account>, duration: Duration) -> Stats {
    workloads::run(Kind::Rockit, host, account.clone(), Workload::List, 16, Duration::from_millis(500), duration).await
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
    for mib in &o.synthetic_mib {
        let tar = work.join(format!("synthetic-{mib}MiB.tar"));
        eprintln!("generating {}", tar.display());
        timed(Command::new("python3").arg("bench/pipeline/synthetic.py").arg(mib.to_string()).arg(&tar))?;
        series.push(vec![tar]);
    }
    let (mut server, account) = servers::start_rockit(&o.rockit, work).await?;
    let state = work.join("rockit-state");
    let pid = server.child.id();
    let login = workloads::rockit_login(&server.host, &account).await?;
    let auth = format!("Bearer {}", login["session"]["access"]["token"].as_str().unwrap_or_default());
    let s = Session { host: server.host.clone(), auth };
    let account = Arc::new(account);
    let window = if o.smoke { Duration::from_secs(1) } else { Duration::from_secs(5) };

    eprintln!("list workload, idle");
    let idle = list_p99(&server.host, &account, window).await;

    let mut imports = Vec::new();
    let mut busy: Option<(Stats, bool)> = None;
    for (i, tars) in series.iter().enumerate() {
        let app = format!("pipe{i}");
        s.call("POST", "/be/v1/apps", Some(json!({"name": app, "label": name_of(&tars[0])}))).await?;
        for (b, tar) in tars.iter().enumerate() {
            let build = b as u64 + 1;
            eprintln!("importing {} as {app} build {build}", tar.display());
            let running = Arc::new(std::sync::atomic::AtomicBool::new(false));
            // The largest synthetic build (the last series) carries the list window.
            let measure_window = i + 1 == series.len() && busy.is_none() && b == 0;
            let (end_to_end, peak_rss_kib, mkraw) = if measure_window {
                let importing = {
                    let (s2, app2, tar2, running2) = (
                        Session { host: s.host.clone(), auth: s.auth.clone() },
                        app.clone(),
                        tar.clone(),
                        running.clone(),
                    );
                    tokio::spawn(async move { import(&s2, pid, &app2, &tar2, build, running2).await })
                };
                // Let the upload get going so the window sits inside the import.
                tokio::time::sleep(Duration::from_millis(300)).await;
                let stats = list_p99(&server.host, &account, window).await;
                let overlapped = running.load(std::sync::atomic::Ordering::SeqCst);
                busy = Some((stats, overlapped));
                importing.await.map_err(|e| e.to_string())??
            } else {
                import(&s, pid, &app, tar, build, running).await?
            };
            let bytes = std::fs::metadata(tar).map_err(|e| e.to_string())?.len();
            let zstd =
                timed(Command::new("zstd").args(["-q", "-3", "-T0", "-f"]).arg(tar).arg("-o").arg(work.join("z.zst")))?;
            let mut one = Import {
                app: app.clone(),
                tar: tar.clone(),
                bytes,
                build,
                end_to_end,
                peak_rss_kib,
                zstd,
                mkraw,
                patch_bytes: None,
                apply: None,
                fetched: None,
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
    let vm_hwm = server.memory_kib().1;
    server.stop();

    let mut pairs = Vec::new();
    for tars in &o.series {
        for w in tars.windows(2) {
            eprintln!("baselines {} → {}", name_of(&w[0]), name_of(&w[1]));
            pairs.push((name_of(&w[0]), name_of(&w[1]), baselines(&w[0], &w[1])?));
        }
    }
    let report = render(o, &imports, &pairs, &idle, busy.as_ref(), vm_hwm);
    println!("{report}");
    std::fs::create_dir_all(&o.out).map_err(|e| e.to_string())?;
    let name =
        format!("{}-pipeline{}.md", chrono::Utc::now().format("%Y-%m-%dT%H%M"), if o.smoke { "-smoke" } else { "" });
    let path = o.out.join(name);
    std::fs::write(&path, &report).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    eprintln!("written to {}", path.display());
    Ok(())
}

fn render(
    o: &PipelineOptions,
    imports: &[Import],
    pairs: &[Pair],
    idle: &Stats,
    busy: Option<&(Stats, bool)>,
    vm_hwm: u64,
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
        "Real release server, upload mode of `POST /be/v1/builds`, one run; `bash bench/run --pipeline`.\n"
    );
    let _ = writeln!(out, "## Import (end to end: POST → committed build) vs `zstd -3 -T0` on the same tar\n");
    let _ = writeln!(
        out,
        "| app | tar | bytes | end to end | import | zstd -3 -T0 | ratio | mkraw task | peak RSS during import |"
    );
    let _ = writeln!(out, "|---|---|---:|---:|---:|---:|---:|---:|---:|");
    for i in imports {
        let ratio = i.zstd.as_secs_f64() / i.end_to_end.as_secs_f64().max(1e-9);
        let _ = writeln!(
            out,
            "| {} | {} | {} | {:.2} s | {} | {} | {ratio:.2}× | {} | {} MiB |",
            i.app,
            name_of(&i.tar),
            i.bytes,
            i.end_to_end.as_secs_f64(),
            mb_s(i.bytes, i.end_to_end),
            mb_s(i.bytes, i.zstd),
            i.mkraw.map(|d| format!("{:.2} s", d.as_secs_f64())).unwrap_or_else(|| "?".into()),
            i.peak_rss_kib / 1024
        );
    }
    let _ = writeln!(out, "\nServer VmHWM over the whole run: {} MiB.\n", vm_hwm / 1024);
    let _ = writeln!(out, "## Patch N−1 → N vs baselines (same tars)\n");
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
    let _ =
        writeln!(out, "## List workload (16 users, `GET /be/v1/apps?limit=10`-style pages) idle vs during an import\n");
    let _ = writeln!(out, "| window | requests | errors | p50 | p99 | valid |");
    let _ = writeln!(out, "|---|---:|---:|---:|---:|---|");
    let row = |out: &mut String, label: &str, s: &Stats, valid: &str| {
        let _ = writeln!(
            out,
            "| {label} | {} | {} | {:.2} ms | {:.2} ms | {valid} |",
            s.ok,
            s.errors,
            s.percentile_ms(0.50),
            s.percentile_ms(0.99)
        );
    };
    row(&mut out, "idle", idle, if idle.errors == 0 { "yes" } else { "no: errors" });
    match busy {
        Some((s, overlapped)) => {
            let valid = if !overlapped {
                "no: the import ended before the window closed"
            } else if s.errors > 0 {
                "no: errors"
            } else {
                "yes (the import was still running when the window closed)"
            };
            row(&mut out, "during the last import", s, valid)
        }
        None => {
            let _ = writeln!(out, "| during an import | – | – | – | – | not measured (no build imported) |");
        }
    }
    let _ = writeln!(out, "\n{}", crate::report::machine());
    out
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
