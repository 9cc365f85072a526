//! `rockit-bench`: rockit-edge, PocketBase and a bare actix-web floor measured on one machine in
//! one run. Prints a Markdown table of absolute figures and ratios and writes it, with the
//! machine's description, to `bench/results/`.
//!
//! Usage: `rockit-bench --rockit BIN --floor BIN [--pocketbase BIN] [--smoke] [--out DIR]`
//! (`bench/run` builds everything, installs PocketBase and calls this).

mod http;
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
            other => return Err(format!("unknown argument {other}")),
        }
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
    pub fn get(&self, w: Workload) -> Option<&Stats> {
        self.workloads.iter().find(|(k, _)| *k == w).map(|(_, s)| s)
    }
}

async fn measure(
    kind: Kind,
    mut server: servers::Running,
    account: servers::Account,
    workloads: &[Workload],
    warmup: Duration,
    duration: Duration,
    durability: &str,
) -> ServerResults {
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
    for &work in workloads {
        eprintln!("  {} {} ...", server.name, work.name());
        let stats = workloads::run(kind, &server.host, account.clone(), work, USERS, warmup, duration).await;
        results.workloads.push((work, stats));
    }
    if kind != Kind::Floor {
        eprintln!("  {} list-under-login-flood ...", server.name);
        let flood = tokio::spawn({
            let (host, account) = (server.host.clone(), account.clone());
            async move { workloads::run(kind, &host, account, Workload::Login, FLOOD_USERS, warmup, duration).await }
        });
        let list = workloads::run(kind, &server.host, account.clone(), Workload::List, USERS, warmup, duration).await;
        results.flood_list = Some(list);
        results.flood_logins = flood.await.ok();
    }
    results.peak_kib = server.memory_kib().1;
    server.stop();
    results
}

async fn bench(o: Options) -> Result<(), String> {
    let (warmup, duration) = if o.smoke {
        (Duration::from_millis(200), Duration::from_secs(1))
    } else {
        (Duration::from_secs(3), Duration::from_secs(10))
    };
    let work_dir = std::env::temp_dir().join(format!("rockit-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&work_dir);
    std::fs::create_dir_all(&work_dir).map_err(|e| e.to_string())?;
    let all = [Workload::Login, Workload::Refresh, Workload::List, Workload::Create];
    let mut results = Vec::new();

    eprintln!("floor");
    let floor = servers::start_floor(&o.floor).await?;
    let account = servers::Account { org: String::new(), username: String::new(), password: String::new() };
    results.push(measure(Kind::Floor, floor, account, &[Workload::List], warmup, duration, "-").await);

    eprintln!("rockit-edge");
    let (rockit, account) = servers::start_rockit(&o.rockit, &work_dir).await?;
    results.push(measure(Kind::Rockit, rockit, account, &all, warmup, duration, "synchronous=FULL (default)").await);

    let mut notes = Vec::new();
    match &o.pocketbase {
        Some(bin) => {
            eprintln!("PocketBase");
            let (pb, account) = servers::start_pocketbase(bin, &work_dir).await?;
            results.push(
                measure(Kind::PocketBase, pb, account, &all, warmup, duration, "synchronous=NORMAL (its default)")
                    .await,
            );
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
    if let Err(e) = runtime.block_on(bench(options)) {
        eprintln!("rockit-bench: {e}");
        std::process::exit(1);
    }
}
