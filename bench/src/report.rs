//! The Markdown report: absolute figures, ratios against the baseline measured in the same run,
//! the targets of the benchmark issue, and the machine it ran on.

use std::fmt::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::workloads::{Stats, Workload};
use crate::ServerResults;

fn find<'a>(results: &'a [ServerResults], name: &str) -> Option<&'a ServerResults> {
    results.iter().find(|r| r.name == name)
}

fn cell(stats: Option<&Stats>, f: impl Fn(&Stats) -> f64, unit: &str) -> String {
    match stats {
        None => "—".into(),
        Some(s) if s.errors > 0 => {
            format!("invalid ({} errors: {})", s.errors, s.first_error.as_deref().unwrap_or("?"))
        }
        Some(s) => format!("{:.1}{unit}", f(s)),
    }
}

fn ratio(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) if b > 0.0 && a.is_finite() && b.is_finite() => Some(a / b),
        _ => None,
    }
}

fn valid(s: Option<&Stats>) -> Option<&Stats> {
    s.filter(|s| s.errors == 0 && s.ok > 0)
}

fn show_ratio(r: Option<f64>) -> String {
    r.map_or("—".into(), |r| format!("{r:.2}×"))
}

/// One target line: figure, ratio, the target, and whether it was met.
fn target(out: &mut String, figure: &str, value: Option<f64>, goal: &str, met: impl Fn(f64) -> bool) {
    let verdict = match value {
        None => "not measured",
        Some(v) if met(v) => "met",
        Some(_) => "MISSED",
    };
    let _ = writeln!(out, "| {figure} | {} | {goal} | {verdict} |", show_ratio(value));
}

pub fn table(results: &[ServerResults], smoke: bool, notes: &[String]) -> String {
    let rockit = find(results, "rockit-edge");
    let pb = find(results, "PocketBase");
    let floor = find(results, "floor");
    let mut out = String::new();
    let _ = writeln!(
        out,
        "## rockit-edge benchmark ({})\n",
        if smoke { "smoke mode: ~1 s per workload, numbers are not meaningful" } else { "full run" }
    );
    let names: Vec<&str> = results.iter().map(|r| r.name.as_str()).collect();
    let _ = writeln!(out, "| figure | {} | rockit-edge / PocketBase |", names.join(" | "));
    let _ = writeln!(out, "|---|{}---|", "---|".repeat(names.len()));
    let throughput = |s: &Stats| s.throughput();
    let p50 = |s: &Stats| s.percentile_ms(0.50);
    let p99 = |s: &Stats| s.percentile_ms(0.99);
    for work in [Workload::Login, Workload::Refresh, Workload::List, Workload::Create] {
        for (label, f, unit) in
            [("req/s", &throughput as &dyn Fn(&Stats) -> f64, ""), ("p50", &p50, " ms"), ("p99", &p99, " ms")]
        {
            let row: Vec<String> = results.iter().map(|r| cell(r.get(work), f, unit)).collect();
            let r = ratio(valid(rockit.and_then(|r| r.get(work))).map(f), valid(pb.and_then(|r| r.get(work))).map(f));
            let _ = writeln!(out, "| {} {label} | {} | {} |", work.name(), row.join(" | "), show_ratio(r));
        }
    }
    let flood: Vec<String> = results.iter().map(|r| cell(r.flood_list.as_ref(), p99, " ms")).collect();
    let flood_ratio = ratio(
        valid(rockit.and_then(|r| r.flood_list.as_ref())).map(p99),
        valid(pb.and_then(|r| r.flood_list.as_ref())).map(p99),
    );
    let _ = writeln!(out, "| list p99 under login flood | {} | {} |", flood.join(" | "), show_ratio(flood_ratio));
    let logins: Vec<String> = results.iter().map(|r| cell(r.flood_logins.as_ref(), throughput, "")).collect();
    let _ = writeln!(out, "| flood logins req/s (background) | {} | |", logins.join(" | "));
    let mem = |f: &dyn Fn(&ServerResults) -> u64| -> Vec<String> {
        results.iter().map(|r| format!("{:.1} MiB", f(r) as f64 / 1024.0)).collect()
    };
    let idle_ratio = ratio(rockit.map(|r| r.idle_kib as f64), pb.map(|r| r.idle_kib as f64));
    let _ =
        writeln!(out, "| idle resident memory | {} | {} |", mem(&|r| r.idle_kib).join(" | "), show_ratio(idle_ratio));
    let _ = writeln!(
        out,
        "| peak resident memory | {} | {} |",
        mem(&|r| r.peak_kib).join(" | "),
        show_ratio(ratio(rockit.map(|r| r.peak_kib as f64), pb.map(|r| r.peak_kib as f64)))
    );
    let size_ratio = ratio(rockit.map(|r| r.binary_bytes as f64), pb.map(|r| r.binary_bytes as f64));
    let sizes: Vec<String> = results.iter().map(|r| format!("{:.1} MiB", r.binary_bytes as f64 / 1048576.0)).collect();
    let _ = writeln!(out, "| binary size | {} | {} |", sizes.join(" | "), show_ratio(size_ratio));
    let starts: Vec<String> = results.iter().map(|r| format!("{:.0} ms", r.startup.as_secs_f64() * 1000.0)).collect();
    let _ = writeln!(
        out,
        "| spawn to first healthy answer | {} | {} |",
        starts.join(" | "),
        show_ratio(ratio(rockit.map(|r| r.startup.as_secs_f64()), pb.map(|r| r.startup.as_secs_f64())))
    );
    let durability: Vec<String> = results.iter().map(|r| r.durability.clone()).collect();
    let _ = writeln!(out, "| SQLite durability | {} | |", durability.join(" | "));

    let _ = writeln!(out, "\n### Targets\n\n| figure | measured | target | verdict |\n|---|---|---|---|");
    let through = |r: Option<&ServerResults>, w| valid(r.and_then(|r| r.get(w))).map(|s| s.throughput());
    target(
        &mut out,
        "refresh throughput vs PocketBase",
        ratio(through(rockit, Workload::Refresh), through(pb, Workload::Refresh)),
        "≥ 3×",
        |v| v >= 3.0,
    );
    target(
        &mut out,
        "list throughput vs PocketBase",
        ratio(through(rockit, Workload::List), through(pb, Workload::List)),
        "≥ 5×",
        |v| v >= 5.0,
    );
    target(
        &mut out,
        "list throughput vs floor",
        ratio(through(rockit, Workload::List), through(floor, Workload::List)),
        "≥ 0.35×",
        |v| v >= 0.35,
    );
    target(
        &mut out,
        "create throughput vs PocketBase",
        ratio(through(rockit, Workload::Create), through(pb, Workload::Create)),
        "≥ 3×",
        |v| v >= 3.0,
    );
    let own = valid(rockit.and_then(|r| r.get(Workload::List))).map(p99);
    let flooded = valid(rockit.and_then(|r| r.flood_list.as_ref())).map(p99);
    target(&mut out, "list p99 under flood vs own unloaded p99", ratio(flooded, own), "≤ 3×", |v| v <= 3.0);
    target(&mut out, "list p99 under flood vs PocketBase's under flood", flood_ratio, "< 1×", |v| v < 1.0);
    target(&mut out, "idle resident memory vs PocketBase", idle_ratio, "≤ 0.33×", |v| v <= 1.0 / 3.0);
    target(&mut out, "binary size vs PocketBase", size_ratio, "≤ 0.5×", |v| v <= 0.5);
    for note in notes {
        let _ = writeln!(out, "\nNote: {note}");
    }
    let _ = writeln!(out, "\n{}", machine());
    out
}

fn command_line(cmd: &str, args: &[&str]) -> String {
    Command::new(cmd)
        .args(args)
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|_| "unknown".into())
}

/// CPU model, cores, rustc version and date.
pub fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|s| s.trim().to_string())
        })
        .unwrap_or_else(|| "unknown".into());
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0);
    format!(
        "Machine: {cpu}, {cores} cores; {}; {}. Load: 16 keep-alive connections per workload from a driver on the same machine \
         (32 more for the login flood), warm-up then a fixed duration; every non-2xx answer invalidates its row.",
        command_line("rustc", &["--version"]),
        chrono::Utc::now().format("%Y-%m-%d %H:%M UTC"),
    )
}

pub fn write(dir: &Path, table: &str, smoke: bool) -> Result<PathBuf, String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let name = format!("{}-{}.md", chrono::Utc::now().format("%Y-%m-%dT%H%M"), if smoke { "smoke" } else { "full" });
    let path = dir.join(name);
    std::fs::write(&path, table).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    Ok(path)
}
