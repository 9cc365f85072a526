//! The Prometheus text exposition format (version 0.0.4) of everything `/metrics` reports.

use std::fmt::Write;
use std::path::Path;
use std::sync::atomic::Ordering;

use super::RequestMetrics;
use crate::state::AppState;

/// Tasks waiting or running per status: how many, and the oldest one's creation time (RFC 3339).
pub type QueueDepths = [(String, i64, String)];

/// A label value with `\`, `"` and newlines escaped as the format demands.
fn label(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

fn requests(out: &mut String, metrics: &RequestMetrics) {
    const CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];
    let used: Vec<_> =
        metrics.templates.iter().zip(metrics.slots.iter()).filter(|(_, s)| s.latency.count() > 0).collect();
    header(out, "rockit_http_requests_total", "counter", "Requests answered, per route template and status class.");
    for (route, slot) in &used {
        for (class, counter) in CLASSES.iter().zip(slot.by_class.iter()) {
            let n = counter.load(Ordering::Relaxed);
            if n > 0 {
                let _ = writeln!(out, "rockit_http_requests_total{{route=\"{}\",class=\"{class}\"}} {n}", label(route));
            }
        }
    }
    header(out, "rockit_http_request_duration_seconds", "histogram", "Time to answer, per route template.");
    for (route, slot) in &used {
        slot.latency.render(out, "rockit_http_request_duration_seconds", &format!("route=\"{}\"", label(route)), 1e6);
    }
}

fn queue(out: &mut String, depths: &QueueDepths, now: chrono::DateTime<chrono::Utc>) {
    header(out, "rockit_tasks", "gauge", "Tasks waiting (submitted) or running.");
    for status in ["submitted", "running"] {
        let n = depths.iter().find(|(s, _, _)| s == status).map_or(0, |(_, n, _)| *n);
        let _ = writeln!(out, "rockit_tasks{{status=\"{status}\"}} {n}");
    }
    header(out, "rockit_task_oldest_age_seconds", "gauge", "Age of the oldest task per status (0 when none).");
    for status in ["submitted", "running"] {
        let age = depths
            .iter()
            .find(|(s, _, _)| s == status)
            .and_then(|(_, _, created)| chrono::DateTime::parse_from_rfc3339(created).ok())
            .map_or(0, |created| (now - created.with_timezone(&chrono::Utc)).num_seconds().max(0));
        let _ = writeln!(out, "rockit_task_oldest_age_seconds{{status=\"{status}\"}} {age}");
    }
}

fn file_size(path: &Path) -> u64 {
    std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}

/// Everything `/metrics` shows, given the queue depths read from the database.
pub fn render(state: &AppState, depths: &QueueDepths) -> String {
    let mut out = String::with_capacity(16 * 1024);
    requests(&mut out, &state.requests);
    queue(&mut out, depths, chrono::Utc::now());

    let writer = state.store.writer_stats();
    header(&mut out, "rockit_writer_batch_jobs", "histogram", "Write jobs committed together in one transaction.");
    writer.batch_sizes.render(&mut out, "rockit_writer_batch_jobs", "", 1.0);
    header(&mut out, "rockit_writer_commit_duration_seconds", "histogram", "Time of each COMMIT (fsync included).");
    writer.commit_micros.render(&mut out, "rockit_writer_commit_duration_seconds", "", 1e6);

    let database = state.settings.database_path();
    let mut wal = database.clone().into_os_string();
    wal.push("-wal");
    header(&mut out, "rockit_database_bytes", "gauge", "Size of the database file.");
    let _ = writeln!(out, "rockit_database_bytes {}", file_size(&database));
    header(&mut out, "rockit_wal_bytes", "gauge", "Size of the write-ahead log.");
    let _ = writeln!(out, "rockit_wal_bytes {}", file_size(Path::new(&wal)));
    if let Ok(free) = crate::outbound::disk::available_bytes(&state.settings.state_dir) {
        header(
            &mut out,
            "rockit_state_dir_free_bytes",
            "gauge",
            "Bytes free for the server on the state directory's file system.",
        );
        let _ = writeln!(out, "rockit_state_dir_free_bytes {free}");
    }

    header(&mut out, "rockit_login_failures_total", "counter", "Logins refused for wrong credentials since start.");
    let _ = writeln!(out, "rockit_login_failures_total {}", state.identity.login_failures.load(Ordering::Relaxed));
    out
}
