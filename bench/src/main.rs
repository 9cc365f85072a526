//! `rockit-bench`: rockit-edge, PocketBase and a bare actix-web floor measured on one machine in
//! one run. Prints a Markdown table of absolute figures and ratios and writes it, with the
//! machine's description, to `bench/results/`.
//!
//! Usage: `rockit-bench --rockit BIN --floor BIN [--pocketbase BIN] [--smoke] [--out DIR]`
//! (`bench/run` builds everything, installs PocketBase and calls this), or
//! `rockit-bench --pipeline --rockit BIN [--series A.tar,B.tar]… [--synthetic-mib N]… [--smoke]`
//! for the build pipeline (`bench/run --pipeline`, see `pipeline.rs`).

mod http;
mod pipeline;
mod report;
mod servers;
mod workloads;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use workloads::{Kind, Stats, Workload};

/// 16 connections per workload, 32 more for the login flood (the numbers).
const USERS: usize = 16;
const FLOOD_USERS: usize = 32;

struct Options {
    rockit: PathBuf,
    floor: PathBuf,
    pocketbase: Option<PathBuf>,
    pocketbase_missing: Option<String>,
    smoke: bool,
    out: PathBuf,
    /// Servers to measure (default all): floor, rockit, pocketbase. For profiling one of them.
    servers: Vec<String>,
    /// Overrides the measured seconds per workload (after the warm-up).
    seconds: Option<u64>,
    /// Workloads to run (default all), for profiling one of them.
    workloads: Option<Vec<String>>,
    /// The build pipeline instead of the API workloads.
    pipeline: bool,
    series: Vec<Vec<PathBuf>>,
    synthetic_mib: Vec<u64>,
    /// Runs the uploading `curl` at nice 19 (see `PipelineOptions::nice_upload`).
    nice_upload: bool,
}

fn options() -> Result<Options, String> {
    let mut args = std::env::args().skip(1);
    let mut o = Options {
        rockit: PathBuf::new(),
        floor: PathBuf::new(),
        pocketbase: None,
        pocketbase_missing: None,
        smoke: false,
        out: PathBuf::from("bench/results"),
        servers: vec!["floor".into(), "rockit".into(), "pocketbase".into()],
        seconds: None,
        workloads: None,
        pipeline: false,
        series: Vec::new(),
        synthetic_mib: Vec::new(),
        nice_upload: false,
    };
    while let Some(arg) = args.next() {
        let mut value = || args.next().ok_or(format!("{arg} needs a value"));
        match arg.as_str() {
            "--rockit" => o.rockit = value()?.into(),
            "--floor" => o.floor = value()?.into(),
            "--pocketbase" => o.pocketbase = Some(value()?.into()),
            "--pocketbase-missing" => o.pocketbase_missing = Some(value()?),
            "--smoke" => o.smoke = true,
            "--out" => o.out = value()?.into(),
            "--servers" => o.servers = value()?.split(',').map(str::to_string).collect(),
            "--workloads" => o.workloads = Some(value()?.split(',').map(str::to_string).collect()),
            "--seconds" => o.seconds = Some(value()?.parse().map_err(|_| "--seconds takes a whole number")?),
            "--pipeline" => o.pipeline = true,
            "--nice-upload" => o.nice_upload = true,
            "--series" => o.series.push(value()?.split(',').map(PathBuf::from).collect()),
            "--synthetic-mib" => {
                o.synthetic_mib.push(value()?.parse().map_err(|_| "--synthetic-mib takes a whole number")?)
            }
            other => return Err(format!("unknown argument {other}")),
        }
    }
    if o.pipeline && !o.rockit.as_os_str().is_empty() {
        return Ok(o);
    }
    if o.rockit.as_os_str().is_empty() || o.floor.as_os_str().is_empty() {
        return Err("usage: rockit-bench --rockit BIN --floor BIN [--pocketbase BIN] [--smoke] [--out DIR]".into());
    }
    Ok(o)
}

/// Results of one server.
#[derive(Default)]
pub struct ServerResults {
    pub name: String,
    pub workloads: Vec<(Workload, Stats)>,
    pub flood_list: Option<Stats>,
    pub flood_logins: Option<Stats>,
    pub idle_kib: u64,
    pub peak_kib: u64,
    pub binary_bytes: u64,
    pub startup: Duration,
    pub durability: String,
}

impl ServerResults {
    /// `list` p99 while 32 other connections send logins non-stop.
    async fn flood_list_and_logins(
        &mut self,
        kind: Kind,
        host: &str,
        account: &Arc<servers::Account>,
        warmup: Duration,
        duration: Duration,
    ) {
        eprintln!("  {} list-under-login-flood ...", self.name);
        let flood = tokio::spawn({
            let (host, account) = (host.to_string(), account.clone());
            async move { workloads::run(kind, &host, account, Workload::Login, FLOOD_USERS, warmup, duration).await }
        });
        self.flood_list =
            Some(workloads::run(kind, host, account.clone(), Workload::List, USERS, warmup, duration).await);
        self.flood_logins = flood.await.ok();
    }

    pub fn get(&self, w: Workload) -> Option<&Stats> {
        self.workloads.iter().find(|(k, _)| *k == w).map(|(_, s)| s)
    }
}

/// What to run against each server.
struct Plan {
    workloads: Vec<Workload>,
    flood: bool,
    warmup: Duration,
    duration: Duration,
}

async fn measure(
    kind: Kind,
    mut server: servers::Running,
    account: servers::Account,
    plan: &Plan,
    durability: &str,
) -> ServerResults {
    let (warmup, duration) = (plan.warmup, plan.duration);
    let account = Arc::new(account);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (idle_kib, _) = server.memory_kib();
    let mut results = ServerResults {
        name: server.name.to_string(),
        idle_kib,
        binary_bytes: std::fs::metadata(&server.binary).map(|m| m.len()).unwrap_or(0),
        startup: server.startup,
        durability: durability.to_string(),
        ..Default::default()
    };
    // The flood runs before `create`, so every list sees the same 20 seeded apps.
    for &work in &plan.workloads {
        if work == Workload::Create && plan.flood && kind != Kind::Floor {
            results.flood_list_and_logins(kind, &server.host, &account, warmup, duration).await;
        }
        eprintln!("  {} {} ...", server.name, work.name());
        let stats = workloads::run(kind, &server.host, account.clone(), work, USERS, warmup, duration).await;
        results.workloads.push((work, stats));
    }
    if plan.flood && kind != Kind::Floor && results.flood_list.is_none() {
        results.flood_list_and_logins(kind, &server.host, &account, warmup, duration).await;
    }
    results.peak_kib = server.memory_kib().1;
    server.stop();
    results
}

async fn bench(o: Options) -> Result<(), String> {
    let (warmup, mut duration) = if o.smoke {
        (Duration::from_millis(200), Duration::from_secs(1))
    } else {
        (Duration::from_secs(3), Duration::from_secs(10))
    };
    if let Some(seconds) = o.seconds {
        duration = Duration::from_secs(seconds);
    }
    let wanted = |name: &str| o.servers.iter().any(|s| s == name);
    let work_dir = std::env::temp_dir().join(format!("rockit-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&work_dir);
    std::fs::create_dir_all(&work_dir).map_err(|e| e.to_string())?;
    let every = [Workload::Login, Workload::Refresh, Workload::List, Workload::Create];
    let all: Vec<Workload> = every
        .into_iter()
        .filter(|w| o.workloads.as_ref().is_none_or(|only| only.iter().any(|n| n == w.name())))
        .collect();
    let flood = o.workloads.as_ref().is_none_or(|only| only.iter().any(|n| n == "flood"));
    let plan = Plan { workloads: all, flood, warmup, duration };
    let floor_plan = Plan { workloads: vec![Workload::List], flood: false, warmup, duration };
    let mut results = Vec::new();

    if wanted("floor") {
        eprintln!("floor");
        let floor = servers::start_floor(&o.floor).await?;
        let account = servers::Account { org: String::new(), username: String::new(), password: String::new() };
        results.push(measure(Kind::Floor, floor, account, &floor_plan, "-").await);
    }
    if wanted("rockit") {
        eprintln!("rockit-edge");
        let (rockit, account) = servers::start_rockit(&o.rockit, &work_dir).await?;
        results.push(measure(Kind::Rockit, rockit, account, &plan, "synchronous=FULL (default)").await);
    }

    let mut notes = Vec::new();
    match &o.pocketbase {
        _ if !wanted("pocketbase") => notes.push("PocketBase was not selected (--servers)".into()),
        Some(bin) => {
            eprintln!("PocketBase");
            let (pb, account) = servers::start_pocketbase(bin, &work_dir).await?;
            results.push(measure(Kind::PocketBase, pb, account, &plan, "synchronous=NORMAL (its default)").await);
        }
        None => notes.push(format!(
            "PocketBase was not measured: {}",
            o.pocketbase_missing.as_deref().unwrap_or("no --pocketbase binary given")
        )),
    }
    let _ = std::fs::remove_dir_all(&work_dir);

    let table = report::table(&results, o.smoke, &notes);
    println!("{table}");
    let invalid = results
        .iter()
        .any(|r| r.workloads.iter().any(|(_, s)| s.errors > 0) || r.flood_list.as_ref().is_some_and(|s| s.errors > 0));
    let file = report::write(&o.out, &table, o.smoke)?;
    eprintln!("written to {}", file.display());
    if invalid {
        return Err("some workloads answered errors: the rows marked invalid do not count".into());
    }
    Ok(())
}

fn main() {
    let options = match options() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("rockit-bench: {e}");
            std::process::exit(2);
        }
    };
    let runtime =
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("tokio runtime");
    let outcome = if options.pipeline {
        let o = pipeline::PipelineOptions {
            rockit: options.rockit,
            series: options.series,
            synthetic_mib: options.synthetic_mib,
            nice_upload: options.nice_upload,
            smoke: options.smoke,
            out: options.out,
        };
        runtime.block_on(pipeline::run(o))
    } else {
        runtime.block_on(bench(options))
    };
    if let Err(e) = outcome {
        eprintln!("rockit-bench: {e}");
        std::process::exit(1);
    }
}
