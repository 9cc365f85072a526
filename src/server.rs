//! `rockit-edge serve`: prepare the state directory, open the database (migrating it before the
//! socket opens), start the task workers, serve HTTP until SIGTERM, then drain and exit 0.

use std::fs::{self, File};
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::io::AsRawFd;
use std::path::Path;
use std::sync::Arc;

use actix_web::http::header;
use actix_web::middleware::{from_fn, Condition, DefaultHeaders};
use actix_web::{web, App};

use crate::auth::keyring::Keyring;
use crate::auth::sealing::Sealer;
use crate::config::Settings;
use crate::connections;
use crate::engine::{Engine, EngineOptions};
use crate::http::access_log::AccessLog;
use crate::http::{self, middleware};
use crate::identity::Identity;
use crate::instance::MaintenanceSwitch;
use crate::limits::{self, BodyTimeout, PeerConnections};
use crate::outbound::policy::OutboundPolicy;
use crate::publish::{PublishEnv, S3Settings};
use crate::resources::Resources;
use crate::shutdown::{self, Drain};
use crate::state::AppState;
use crate::store::{Pragmas, Store};
use crate::tasks::builds::BuildEnv;
use crate::tasks::{self, Queue};
use crate::tls::CertificateFiles;

/// Creates the state directory (mode 0700) if needed; answers whether it was new.
pub fn prepare_state_dir(dir: &Path) -> Result<bool, String> {
    if dir.is_dir() {
        return Ok(false);
    }
    fs::create_dir_all(dir).map_err(|e| format!("cannot create state directory {}: {e}", dir.display()))?;
    fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
        .map_err(|e| format!("cannot restrict state directory {}: {e}", dir.display()))?;
    Ok(true)
}

/// Secrets without a database mean the database was lost or copied without its log: making a
/// fresh empty one beside the old secrets would look like a working server with no data.
fn refuse_secrets_without_database(settings: &Settings) -> Result<(), String> {
    let secrets = settings.state_dir.join(crate::auth::keyring::SECRETS_FILE);
    let database = settings.database_path();
    if !secrets.exists() {
        return Ok(());
    }
    let initialised = crate::store::is_initialised(&database)
        .map_err(|e| format!("cannot read the database {}: {e}", database.display()))?;
    if initialised {
        return Ok(());
    }
    Err(format!(
        "{} holds {} but no initialised database ({} is missing or empty); refusing to create an \
         empty one beside existing secrets. Restore the database with `rockit-edge restore --from FILE`, \
         or move {} away to start from scratch",
        settings.state_dir.display(),
        crate::auth::keyring::SECRETS_FILE,
        database.display(),
        crate::auth::keyring::SECRETS_FILE,
    ))
}

/// Binds the listening socket as actix's own `bind` would (address reuse, a backlog of 1024
/// rather than std's smaller default), so bursts of new connections are not refused.
fn listen(addr: std::net::SocketAddr) -> std::io::Result<std::net::TcpListener> {
    use socket2::{Domain, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    socket.set_reuse_address(true)?;
    socket.bind(&addr.into())?;
    socket.listen(1024)?;
    Ok(socket.into())
}

/// An exclusive lock on the state directory, held while a server (or a migration) runs, so two
/// processes never share one database as writers.
pub struct StateLock(#[allow(dead_code)] File);

pub fn lock_state_dir(dir: &Path) -> Result<StateLock, String> {
    let path = dir.join("rockit-edge.lock");
    let file = File::create(&path).map_err(|e| format!("cannot create {}: {e}", path.display()))?;
    // SAFETY: flock on a descriptor we own; no memory is shared with the call.
    let locked = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0;
    if !locked {
        return Err(format!("another rockit-edge process is using {}; stop it first", dir.display()));
    }
    Ok(StateLock(file))
}

pub fn serve(settings: Settings) -> Result<(), String> {
    // The port first: a start that cannot listen must not leave a new state directory behind.
    let certificate = match (&settings.tls_cert, &settings.tls_key) {
        (Some(cert), Some(key)) => Some(CertificateFiles::load(cert, key)?),
        (None, None) => None,
        _ => return Err("TLS needs both tls_cert and tls_key".into()),
    };
    let listener = listen(settings.listen).map_err(|e| format!("cannot listen on {}: {e}", settings.listen))?;
    let fresh = prepare_state_dir(&settings.state_dir)?;
    let _lock = lock_state_dir(&settings.state_dir)?;
    refuse_secrets_without_database(&settings)?;
    // The database before the secrets: a first start cut short between the two leaves a database
    // without secrets (fresh ones are made next time), never secrets without a database.
    let store = Store::open(&settings.database_path(), Pragmas::from_settings(&settings), settings.read_pool_size)
        .map_err(|e| e.to_string())?;
    let keyring = Keyring::load_or_create(&settings.state_dir, settings.admin_secret.as_deref(), true)
        .and_then(|keyring| keyring.follow_state_dir(&settings.state_dir, settings.admin_secret.is_some()))
        .map_err(|e| e.to_string())?;
    let maintenance = Arc::new(MaintenanceSwitch::load(&store).map_err(|e| e.to_string())?);
    let sealer = Arc::new(Sealer::new(keyring.sealing_key()));
    let engine = Engine::start(EngineOptions::default()).map_err(|e| format!("cannot start the build engine: {e}"))?;
    let policy = OutboundPolicy { allow_loopback: settings.outbound_allow_loopback, allow_link_local: false };
    let publish = Arc::new(PublishEnv {
        sealer: sealer.clone(),
        s3: S3Settings {
            multipart_threshold: settings.s3_multipart_threshold,
            part_size: settings.s3_part_size,
            part_concurrency: settings.s3_part_concurrency,
            timeout: settings.s3_timeout,
            policy,
            ..S3Settings::default()
        },
        store: store.clone(),
    });
    let builds = Arc::new(BuildEnv {
        engine,
        work_root: settings.state_dir.join("builds"),
        policy,
        max_build_bytes: settings.max_build_bytes,
        reserve_bytes: 256 << 20,
        download_timeout: settings.download_timeout,
        prune_grace: settings.prune_grace,
        sealer: sealer.clone(),
        publish: publish.clone(),
    });
    let mut handlers = tasks::standard_handlers();
    handlers.push(tasks::faststart::handler(builds.clone()));
    handlers.extend(tasks::publishing_handlers(publish));
    handlers.extend(tasks::builds::handlers(builds));
    handlers.push((
        tasks::export::TYPE,
        Arc::new(tasks::export::Export(Arc::new(tasks::export::ExportEnv {
            sealer: sealer.clone(),
            work_root: settings.state_dir.join("builds"),
            exports_dir: settings.state_dir.join("exports"),
            iterations: settings.export_kdf_iterations,
        }))),
    ));
    let queue = Queue::with_handlers(store.clone(), settings.state_dir.join("depot"), maintenance.clone(), handlers);
    let resumed = queue.recover().map_err(|e| e.to_string())?;
    if resumed > 0 {
        log::warn!("resuming {resumed} task(s) interrupted by the last stop");
    }
    let workers = queue.start_workers(settings.task_workers).map_err(|e| format!("cannot start task workers: {e}"))?;
    let deliveries = tasks::webhooks::DeliveryPolicy {
        outbound: OutboundPolicy { allow_loopback: settings.outbound_allow_loopback, allow_link_local: false },
        timeout: settings.webhook_timeout,
        retry_delays: settings.webhook_retry_delays.clone(),
        give_up_after: settings.webhook_give_up_after,
        retention: settings.webhook_retention,
    };
    tasks::webhooks::start(store.clone(), sealer.clone(), deliveries)
        .map_err(|e| format!("cannot start the webhook delivery worker: {e}"))?;

    let settings_arc = Arc::new(settings.clone());
    let keyring = Arc::new(keyring);
    let identity = Arc::new(
        Identity::new(store.clone(), keyring.clone(), settings_arc.clone(), queue.clone())
            .map_err(|e| format!("cannot start password hashing threads: {e}"))?,
    );
    start_housekeeping(identity.clone(), store.clone(), settings.task_retention, settings.audit_retention);
    let resources = Arc::new(Resources {
        store: store.clone(),
        sealer,
        state_dir: settings.state_dir.clone(),
        queue: queue.clone(),
        origin_roots: settings.origin_roots.clone(),
    });
    let (access_log, access_log_writer) =
        AccessLog::start().map_err(|e| format!("cannot start the access log: {e}"))?;
    let state = web::Data::new(AppState {
        settings: settings_arc,
        store,
        keyring,
        queue: queue.clone(),
        maintenance,
        identity,
        resources,
        access_log,
        requests: Arc::new(crate::metrics::RequestMetrics::new(http::route_templates())),
    });
    let json_limit = settings.json_limit;
    let (database, pragmas) = (settings.database_path(), Pragmas::from_settings(&settings));
    let drain = Drain::new();
    let drain_data = web::Data::from(drain.clone());
    let peers = PeerConnections::new(settings.max_connections_per_peer, settings.trusted_proxies.clone());
    let body_timeout = web::Data::new(BodyTimeout(settings.body_timeout));
    let outcome = actix_web::rt::System::new().block_on(async move {
        let stop_signal = drain.stop_signal().map_err(|e| format!("cannot listen for SIGTERM: {e}"))?;
        let tls = certificate.is_some();
        let app = move || {
            App::new()
                .app_data(state.clone())
                .app_data(drain_data.clone())
                .app_data(body_timeout.clone())
                .app_data(web::PayloadConfig::new(json_limit))
                .configure(http::configure)
                .wrap(from_fn(middleware::maintenance_gate))
                .wrap(from_fn(limits::limit_peers_and_bodies))
                .wrap(from_fn(middleware::envelope))
                .wrap(from_fn(middleware::access_log))
                .wrap(from_fn(shutdown::mark_connections))
                // Once a browser has seen the box over HTTPS it must never fall back to plain HTTP.
                .wrap(Condition::new(tls, DefaultHeaders::new().add((header::STRICT_TRANSPORT_SECURITY, HSTS))))
        };
        crate::tls::reload_on_sighup(certificate.clone()).map_err(|e| format!("cannot listen for SIGHUP: {e}"))?;
        let options = connections::Options {
            tls: certificate.as_ref().map(|files| files.server_config()).transpose()?,
            workers: settings.http_workers,
            client_request_timeout: settings.request_head_timeout,
            shutdown_timeout: settings.shutdown_timeout,
            on_connect: Arc::new(move |connection, data| peers.on_connect(connection, data)),
        };
        let addr = listener.local_addr().ok();
        let server = connections::server(listener, options, app, stop_signal)
            .map_err(|e| format!("cannot listen on {}: {e}", settings.listen))?;
        announce(&settings, addr, fresh, if tls { "https" } else { "http" });
        if let Some(interval) = settings.backup_interval {
            crate::backups::start_schedule(settings.clone(), interval, settings.backup_keep);
        }
        crate::systemd::notify("READY=1");
        server.await.map_err(|e| format!("server failed: {e}"))
    });
    crate::systemd::notify("STOPPING=1");
    log::info!("HTTP server stopped; stopping task workers");
    queue.shutdown(workers, std::time::Duration::from_secs(5));
    access_log_writer.finish();
    match crate::store::checkpoint(&database, pragmas) {
        Ok(()) => log::info!("database checkpointed: {} holds all data", database.display()),
        Err(e) => log::warn!("cannot checkpoint the database at stop ({e}); the next start replays the log"),
    }
    log::info!("stopped");
    outcome
}

/// HSTS when TLS is on: a year, the usual value once HTTPS is known to work.
pub(crate) const HSTS: &str = "max-age=31536000";

/// How often expired sessions are removed (also once at start).
const HOUSEKEEPING_EVERY: std::time::Duration = std::time::Duration::from_secs(3600);

/// Periodic clean-up that needs no request: expired sessions.
fn start_housekeeping(
    identity: Arc<Identity>,
    store: Store,
    task_retention: std::time::Duration,
    audit_retention: std::time::Duration,
) {
    // A short retention is checked as often as it needs (tests use seconds), a long one hourly.
    let shortest = task_retention.min(audit_retention);
    let every = HOUSEKEEPING_EVERY.min(shortest / 2).max(std::time::Duration::from_secs(1));
    let spawned = std::thread::Builder::new().name("housekeeping".into()).spawn(move || loop {
        match identity.remove_expired_sessions() {
            Ok(0) => {}
            Ok(n) => log::info!("removed {n} expired session(s)"),
            Err(e) => log::warn!("cannot remove expired sessions: {e}"),
        }
        match remove_old_tasks(&store, task_retention) {
            Ok(0) => {}
            Ok(n) => log::info!(
                "removed {n} task(s) that ended more than {} ago",
                humantime::format_duration(task_retention)
            ),
            Err(e) => log::warn!("cannot remove old tasks: {e}"),
        }
        match identity.remove_old_audit(cutoff_of(audit_retention)) {
            Ok(0) => {}
            Ok(n) => log::info!("removed {n} audit event(s) past audit_retention"),
            Err(e) => log::warn!("cannot remove old audit events: {e}"),
        }
        std::thread::sleep(every);
    });
    if let Err(e) = spawned {
        log::error!("cannot start housekeeping: {e}");
    }
}

/// `retention` before now, in the stored time format (RFC 3339, UTC, milliseconds).
fn cutoff_of(retention: std::time::Duration) -> String {
    let retention = chrono::Duration::from_std(retention).unwrap_or(chrono::Duration::MAX);
    let cutoff = chrono::Utc::now().checked_sub_signed(retention).unwrap_or(chrono::DateTime::<chrono::Utc>::MIN_UTC);
    cutoff.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// Task history grows with every build: finished tasks older than the retention go.
fn remove_old_tasks(store: &Store, retention: std::time::Duration) -> crate::store::StoreResult<usize> {
    let cutoff = cutoff_of(retention);
    store.write_blocking(move |c| crate::store::tasks::remove_ended_before(c, &cutoff))
}

/// The first lines an operator sees: where it listens and, on a fresh state directory, what to do.
fn announce(settings: &Settings, addr: Option<std::net::SocketAddr>, fresh: bool, scheme: &str) {
    let addr = addr.unwrap_or(settings.listen);
    let dir = settings.state_dir.display();
    // The commands as they can be run from here: after `cargo run` the binary is not on the PATH.
    let exe = std::env::current_exe().map_or_else(|_| "rockit-edge".to_string(), |p| p.display().to_string());
    let exe = if exe.contains(char::is_whitespace) { format!("'{exe}'") } else { exe };
    let mut out = std::io::stdout().lock();
    let _ = writeln!(
        out,
        "rockit-edge {} listening on {scheme}://{addr} (state directory {dir})",
        env!("CARGO_PKG_VERSION")
    );
    if fresh {
        let _ = writeln!(
            out,
            "\nNew state directory {dir}: database and secrets created.\nFirst steps:\n  \
             1. Get an admin token:  TOKEN=$({exe} admin-token --name admin --state-dir {dir})\n  \
             2. Ping the server:     curl -X POST -H \"x-rockit-admin-token: $TOKEN\" {scheme}://{addr}/srv/v1/ping\n  \
             3. Run a test task:     curl -X POST -H \"x-rockit-admin-token: $TOKEN\" -H 'Content-Type: application/json' \\\n                            \
             -d '{{\"message\":\"hi\",\"maintenance\":false}}' {scheme}://{addr}/srv/v1/hello\n  \
             4. The API:             {scheme}://{addr}/openapi.json\n"
        );
    }
    let _ = out.flush();
}
