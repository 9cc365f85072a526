//! The command-line tools besides `serve`. Each one works on the same `--state-dir` and
//! `--config` as the server and answers with a one-line reason on failure.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::path::Path;
use std::time::Duration;

use serde_json::json;

use crate::auth::jws::SigningKey;
use crate::auth::keyring::{Keyring, TokenKind};
use crate::config::{parse_duration, Settings};
use crate::store::{migrations, open_connection, Pragmas};

/// Signs admin claims with the `admin_secret` setting if given, else with the state directory's.
fn sign_admin(settings: &Settings, claims: &serde_json::Value) -> Result<String, String> {
    if let Some(secret) = &settings.admin_secret {
        let bytes = crate::auth::b64_decode_any(secret).ok_or("admin_secret is not base64")?;
        return Ok(SigningKey::new("adm", &bytes).sign(claims));
    }
    let keyring = Keyring::load_or_create(&settings.state_dir, None, false).map_err(|e| e.to_string())?;
    Ok(keyring.key(TokenKind::Admin).sign(claims))
}

/// `admin-token`: prints a token for `name` living `ttl` (`never`, a duration, or the
/// `admin_token_ttl` setting when not given).
pub fn admin_token(settings: &Settings, name: &str, ttl: Option<&str>) -> Result<(), String> {
    let name = name.trim();
    if name.is_empty() {
        return Err("--name must not be empty".into());
    }
    let now = chrono::Utc::now();
    let lifetime = match ttl {
        Some("never") => None,
        Some(text) => Some(parse_duration(text).map_err(|e| format!("--ttl: {e} (or `never`)"))?),
        None => settings.admin_token_ttl,
    };
    // `iat` to the millisecond (a NumericDate may have a fraction), so a token minted right after
    // a revocation is told apart from those it revokes.
    let iat = now.timestamp_millis() as f64 / 1000.0;
    let mut claims = json!({"username": name, "iat": iat});
    if let Some(lifetime) = lifetime {
        claims["exp"] = json!(now.timestamp() + lifetime.as_secs() as i64);
    }
    println!("{}", sign_admin(settings, &claims)?);
    Ok(())
}

/// `admin-token --revoke`: refuses, from now on, every token named `name` issued before `before`
/// (RFC 3339; default now). A running server applies it at its next admin request.
pub fn revoke_admin_tokens(settings: &Settings, name: &str, before: Option<&str>) -> Result<(), String> {
    let name = name.trim();
    if name.is_empty() {
        return Err("--name must not be empty".into());
    }
    let before = match before {
        Some(text) => chrono::DateTime::parse_from_rfc3339(text)
            .map_err(|e| format!("--before `{text}`: {e} (write e.g. 2026-11-26T18:00:00Z)"))?
            .with_timezone(&chrono::Utc),
        None => chrono::Utc::now(),
    };
    if !settings.state_dir.join(crate::auth::keyring::SECRETS_FILE).is_file() {
        return Err(format!("no secrets in {}; check --state-dir", settings.state_dir.display()));
    }
    crate::auth::revocations::revoke(&settings.state_dir, name, before.timestamp_millis())
        .map_err(|e| e.to_string())?;
    println!("admin tokens named {name} issued before {} are revoked", before.to_rfc3339());
    // The revocation already holds; a trail that cannot be written is reported, not fatal.
    if let Err(e) = audit_revocation(settings, name, &before.to_rfc3339()) {
        eprintln!("warning: the revocation is not in the audit trail: {e}");
    }
    Ok(())
}

/// Records a CLI revocation as a box-wide audit event: the operating-system user who ran it, from
/// this machine (`local`: the CLI needs the state directory, so it runs on the box).
fn audit_revocation(settings: &Settings, name: &str, before: &str) -> Result<(), String> {
    let database = settings.database_path();
    if !crate::store::is_initialised(&database).map_err(|e| e.to_string())? {
        return Err(format!("{} holds no database", settings.state_dir.display()));
    }
    let conn = crate::store::open_connection(&database, crate::store::Pragmas::from_settings(settings))
        .map_err(|e| e.to_string())?;
    let os_user = std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        // SAFETY: getuid has no preconditions and cannot fail.
        .unwrap_or_else(|_| format!("uid {}", unsafe { libc::getuid() }));
    let (principal, target) = (format!("cli:{os_user}"), format!("{name} before {before}"));
    let event = crate::store::audit::Event {
        org_id: None,
        event: crate::store::audit::ADMIN_TOKENS_REVOKED,
        principal: Some(&principal),
        client: Some("local"),
        target: Some(&target),
    };
    crate::store::audit::record(&conn, &event).map_err(|e| e.to_string())
}

/// `admin-secret`: prints the admin secret, or with `rotate` replaces it first.
pub fn admin_secret(settings: &Settings, rotate: bool) -> Result<(), String> {
    if rotate {
        if settings.admin_secret.is_some() {
            return Err("the admin secret comes from the admin_secret setting; change it there".into());
        }
        let secret = crate::auth::keyring::rotate_admin_secret(&settings.state_dir).map_err(|e| e.to_string())?;
        eprintln!("admin secret rotated: tokens signed with the old one are refused from now on");
        println!("{secret}");
        return Ok(());
    }
    match &settings.admin_secret {
        Some(secret) => println!("{}", secret.trim()),
        None => {
            let keyring = Keyring::load_or_create(&settings.state_dir, None, false).map_err(|e| e.to_string())?;
            println!("{}", keyring.admin_secret_base64());
        }
    }
    Ok(())
}

fn existing_database(settings: &Settings) -> Result<std::path::PathBuf, String> {
    let path = settings.database_path();
    if !path.is_file() {
        return Err(format!("no database at {}; check --state-dir", path.display()));
    }
    Ok(path)
}

/// A consistent, checked copy of the database while the server may run (see `backups`).
pub fn backup(settings: &Settings, out: &Path) -> Result<(), String> {
    let written = crate::backups::write_backup(settings, out)?;
    println!(
        "backup written to {} ({} bytes, schema version {})",
        written.path.display(),
        written.bytes,
        written.schema_version
    );
    Ok(())
}

/// Replaces the database with a backup; the server must be stopped.
pub fn restore(settings: &Settings, from: &Path) -> Result<(), String> {
    let restored = crate::backups::restore(settings, from)?;
    if let Some(aside) = &restored.replaced {
        println!("the replaced database is kept in {}", aside.display());
    }
    println!(
        "restored {} (schema version {}) into {}; start the server (it migrates an older schema)",
        from.display(),
        restored.schema_version,
        settings.database_path().display()
    );
    Ok(())
}

pub fn migrate(settings: &Settings, check: bool) -> Result<(), String> {
    let path = existing_database(settings)?;
    let pragmas = Pragmas::from_settings(settings);
    let mut conn = open_connection(&path, pragmas).map_err(|e| e.to_string())?;
    let plan = migrations::plan(&conn).map_err(|e| e.to_string())?;
    let pending: Vec<&str> = plan.pending().iter().map(|(name, _)| *name).collect();
    println!(
        "database schema version {}, this binary {}: {} pending {}",
        plan.current,
        plan.latest,
        pending.len(),
        pending.join(" ")
    );
    if check {
        return if pending.is_empty() { Ok(()) } else { Err("migrations are pending".into()) };
    }
    if pending.is_empty() {
        return Ok(());
    }
    let _lock = crate::server::lock_state_dir(&settings.state_dir)?;
    migrations::migrate(&mut conn, &path).map_err(|e| e.to_string())?;
    println!("migrated to schema version {}", plan.latest);
    Ok(())
}

/// A plain HTTP/1.1 GET, enough to ask our own server for `/readyz` without a client library.
pub fn healthcheck(settings: &Settings, url: Option<&str>) -> Result<(), String> {
    let default_url;
    let url = match url {
        Some(url) => url,
        None => {
            let mut addr = settings.listen;
            if addr.ip().is_unspecified() {
                addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
            }
            default_url = format!("http://{addr}/readyz");
            &default_url
        }
    };
    let rest = url.strip_prefix("http://").ok_or_else(|| format!("{url}: only http:// URLs are supported"))?;
    let (host, path) = rest.split_once('/').map_or((rest, "/".to_string()), |(h, p)| (h, format!("/{p}")));
    let addr = host
        .to_socket_addrs()
        .map_err(|e| format!("{host}: {e}"))?
        .next()
        .ok_or_else(|| format!("{host}: no address"))?;
    let timeout = Duration::from_secs(5);
    let mut stream = TcpStream::connect_timeout(&addr, timeout).map_err(|e| format!("{url}: {e}"))?;
    stream.set_read_timeout(Some(timeout)).map_err(|e| e.to_string())?;
    write!(stream, "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n")
        .map_err(|e| format!("{url}: {e}"))?;
    let mut head = [0u8; 64];
    let n = stream.read(&mut head).map_err(|e| format!("{url}: {e}"))?;
    let status_line = String::from_utf8_lossy(&head[..n]);
    let status = status_line.split_whitespace().nth(1).unwrap_or("");
    if status == "200" {
        println!("ready: {url}");
        Ok(())
    } else {
        Err(format!("{url} answered {}", if status.is_empty() { "nothing" } else { status }))
    }
}

pub fn version() -> Result<(), String> {
    println!("rockit-edge {}", env!("CARGO_PKG_VERSION"));
    println!("schema {}", migrations::latest_version());
    println!("api {}", crate::http::srv::API_REVISION);
    println!("engine {}", crate::tasks::hello::engine_id());
    println!("target {}-{}", std::env::consts::ARCH, std::env::consts::OS);
    Ok(())
}

/// Where to fetch from and what to build, for `rockit-edge fetch`.
#[derive(clap::Args)]
pub struct FetchArgs {
    /// Depot or origin directory, or an http:// base URL in front of one.
    #[arg(long, value_name = "DIR|URL")]
    pub from: String,
    /// Organization name.
    #[arg(long)]
    pub org: String,
    /// App name.
    #[arg(long)]
    pub app: String,
    /// The build to produce; without it, the app's current build (its `current.json`).
    #[arg(long)]
    pub build: Option<u32>,
    /// The image's dxfName; needed with an http:// origin and --build (a directory is listed).
    #[arg(long)]
    pub dxf_name: Option<String>,
    /// DEST holds build B: update it to BUILD with the patch B → BUILD only.
    #[arg(long, value_name = "B")]
    pub update_from: Option<u32>,
    /// The tree to write (empty or missing for a full rebuild).
    #[arg(long, value_name = "DIR")]
    pub dest: std::path::PathBuf,
    /// A start-up trace (JSON `{"reads":[{"path","offset","len"}…]}`, the body of
    /// POST /be/v1/traces): before the rebuild, replay a launcher's start-up (index, the
    /// image's preloadBytes, then packs in load order) and report the bytes fetched until every
    /// traced read is satisfied.
    #[arg(long, value_name = "FILE", conflicts_with = "update_from")]
    pub trace: Option<std::path::PathBuf>,
}

/// The part of a trace file `fetch --trace` reads.
#[derive(serde::Deserialize)]
struct TraceFile {
    reads: Vec<crate::engine::startup::Read>,
}

pub fn fetch(args: &FetchArgs) -> Result<(), String> {
    use crate::engine::client::{Client, DirOrigin, HttpOrigin, Origin};
    let origin: Box<dyn Origin> = if args.from.starts_with("http://") {
        Box::new(HttpOrigin::new(&args.from))
    } else {
        Box::new(DirOrigin { root: args.from.clone().into() })
    };
    let client = Client::new(origin.as_ref(), &args.org, &args.app);
    // No build named: follow the go-live pointer, as a launcher does.
    let (build, dxf_name) = match args.build {
        Some(build) => (build, args.dxf_name.clone()),
        None => {
            let current = client.current().map_err(|e| e.to_string())?;
            let build = u32::try_from(current.build_id).map_err(|_| "current.json names no valid build".to_string())?;
            (build, Some(current.dxf_name))
        }
    };
    if let Some(path) = &args.trace {
        let text = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let trace: TraceFile =
            serde_json::from_slice(&text).map_err(|e| format!("{} is not a trace: {e}", path.display()))?;
        let startup = client.startup(build, dxf_name.as_deref(), &trace.reads).map_err(|e| e.to_string())?;
        let preload = startup.preload_bytes.map_or("none".to_string(), |p| p.to_string());
        println!(
            "startup of build {}: {} bytes fetched before the traced reads were satisfied \
             (index {} bytes, preloadBytes {preload}, {} chunks read)",
            build, startup.bytes_fetched, startup.index_bytes, startup.chunks_needed
        );
    }
    let report = match args.update_from {
        Some(from) => client.update(from, build, &args.dest),
        None => client.rebuild(build, dxf_name.as_deref(), &args.dest),
    }
    .map_err(|e| e.to_string())?;
    println!(
        "build {} in {}: {} files written, {} kept, {} bytes fetched",
        build,
        args.dest.display(),
        report.files_written,
        report.files_kept,
        report.bytes_fetched
    );
    Ok(())
}
