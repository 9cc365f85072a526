//! Settings, layered: built-in defaults → TOML file → `ROCKIT_EDGE_*` environment → flags.
//!
//! Every layer goes through the same `apply(key, text)` so a value means the same thing wherever it
//! is written, and an unknown key is refused wherever it appears.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Prefix of the environment variables that carry settings.
pub const ENV_PREFIX: &str = "ROCKIT_EDGE_";

/// How hard SQLite syncs to disk on commit (`PRAGMA synchronous`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Synchronous {
    Normal,
    Full,
    Extra,
}

impl Synchronous {
    pub fn as_pragma(self) -> &'static str {
        match self {
            Synchronous::Normal => "NORMAL",
            Synchronous::Full => "FULL",
            Synchronous::Extra => "EXTRA",
        }
    }
}

/// Every setting of the server. `Debug` never shows a secret.
#[derive(Clone)]
pub struct Settings {
    pub state_dir: PathBuf,
    pub listen: SocketAddr,
    pub synchronous: Synchronous,
    pub busy_timeout: Duration,
    pub read_pool_size: u32,
    pub http_workers: usize,
    pub task_workers: usize,
    pub json_limit: usize,
    pub shutdown_timeout: Duration,
    pub log_level: String,
    /// Base64 admin secret given by configuration instead of the generated one.
    pub admin_secret: Option<String>,
    pub access_ttl: Duration,
    pub refresh_ttl: Duration,
    pub orgsel_ttl: Duration,
    pub pbkdf2_iterations: u32,
    pub trusted_proxies: Vec<IpAddr>,
    /// Failed logins allowed per account and per client address within `login_window`.
    pub login_max_failures: u32,
    pub login_window: Duration,
    pub hello_timeout: Duration,
    /// How often a scheduled backup is written to `backups/`; `None` turns them off.
    pub backup_interval: Option<Duration>,
    /// How many scheduled backups are kept (the newest).
    pub backup_keep: usize,
    /// Time a client has to send the request line and headers.
    pub request_head_timeout: Duration,
    /// Time a client has to send a request body once its headers arrived.
    pub body_timeout: Duration,
    /// Connections open at once from one peer address (trusted proxies are exempt).
    pub max_connections_per_peer: usize,
    /// Lifetime of tokens printed by `admin-token` without `--ttl`; `None` is `never`.
    pub admin_token_ttl: Option<Duration>,
    /// PEM certificate chain for built-in TLS (with `tls_key`); plain HTTP without.
    pub tls_cert: Option<PathBuf>,
    /// PEM private key for built-in TLS.
    pub tls_key: Option<PathBuf>,
    /// Directories `fs` origins must resolve into; empty: anywhere outside the state directory.
    pub origin_roots: Vec<PathBuf>,
}

impl Default for Settings {
    fn default() -> Self {
        let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2);
        Settings {
            state_dir: PathBuf::from("./rockit-edge-data"),
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            synchronous: Synchronous::Full,
            busy_timeout: Duration::from_secs(5),
            read_pool_size: 4,
            http_workers: cores,
            task_workers: 2,
            json_limit: 64 * 1024,
            shutdown_timeout: Duration::from_secs(30),
            log_level: "info".into(),
            admin_secret: None,
            access_ttl: Duration::from_secs(15 * 60),
            refresh_ttl: Duration::from_secs(24 * 3600),
            orgsel_ttl: Duration::from_secs(15 * 60),
            pbkdf2_iterations: 600_000,
            trusted_proxies: Vec::new(),
            login_max_failures: 5,
            login_window: Duration::from_secs(60),
            hello_timeout: Duration::from_secs(10),
            backup_interval: Some(Duration::from_secs(24 * 3600)),
            backup_keep: 7,
            request_head_timeout: Duration::from_secs(5),
            body_timeout: Duration::from_secs(10),
            max_connections_per_peer: 128,
            admin_token_ttl: Some(Duration::from_secs(30 * 86_400)),
            tls_cert: None,
            tls_key: None,
            origin_roots: Vec::new(),
        }
    }
}

impl fmt::Debug for Settings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Settings")
            .field("state_dir", &self.state_dir)
            .field("listen", &self.listen)
            .field("synchronous", &self.synchronous)
            .field("admin_secret", &self.admin_secret.as_ref().map(|_| "****"))
            .finish_non_exhaustive()
    }
}

/// One row of the settings table: its key, default as written, and what it does.
pub struct SettingDoc {
    pub key: &'static str,
    pub default: &'static str,
    pub doc: &'static str,
}

/// The documented settings; `apply` accepts exactly these keys (a unit test keeps them in step).
pub const SETTINGS: &[SettingDoc] = &[
    SettingDoc {
        key: "state_dir",
        default: "./rockit-edge-data",
        doc: "directory holding the database, secrets and depot",
    },
    SettingDoc { key: "listen", default: "127.0.0.1:8080", doc: "address and port the HTTP server binds" },
    SettingDoc { key: "synchronous", default: "full", doc: "SQLite durability: normal, full or extra" },
    SettingDoc { key: "busy_timeout", default: "5s", doc: "how long a database call waits for a lock" },
    SettingDoc { key: "read_pool_size", default: "4", doc: "read connections to the database" },
    SettingDoc { key: "http_workers", default: "cores", doc: "HTTP worker threads" },
    SettingDoc { key: "task_workers", default: "2", doc: "threads running background tasks" },
    SettingDoc { key: "json_limit", default: "65536", doc: "largest accepted JSON body, bytes" },
    SettingDoc { key: "shutdown_timeout", default: "30s", doc: "how long SIGTERM waits for requests in flight" },
    SettingDoc { key: "log_level", default: "info", doc: "error, warn, info, debug or trace (RUST_LOG overrides)" },
    SettingDoc {
        key: "admin_secret",
        default: "generated",
        doc: "base64 admin token secret instead of the generated one",
    },
    SettingDoc { key: "access_ttl", default: "15m", doc: "lifetime of access tokens" },
    SettingDoc { key: "refresh_ttl", default: "24h", doc: "lifetime of refresh tokens (and so of an idle session)" },
    SettingDoc { key: "orgsel_ttl", default: "15m", doc: "lifetime of organization selection tokens" },
    SettingDoc { key: "pbkdf2_iterations", default: "600000", doc: "PBKDF2 iterations for new password hashes" },
    SettingDoc {
        key: "trusted_proxies",
        default: "(none)",
        doc: "comma-separated peer IPs whose X-Forwarded-For is believed",
    },
    SettingDoc {
        key: "login_max_failures",
        default: "5",
        doc: "failed logins per account or address before slowing down",
    },
    SettingDoc { key: "login_window", default: "60s", doc: "window in which failed logins are counted" },
    SettingDoc { key: "hello_timeout", default: "10s", doc: "how long POST /srv/v1/hello waits for its task" },
    SettingDoc {
        key: "backup_interval",
        default: "24h",
        doc: "how often the running server writes a backup into backups/ (off: never)",
    },
    SettingDoc {
        key: "origin_roots",
        default: "(none)",
        doc: "comma-separated directories fs origins must resolve into (none: anywhere outside the state directory)",
    },
    SettingDoc {
        key: "tls_cert",
        default: "(none)",
        doc: "PEM certificate chain: serve HTTPS (with tls_key; reloaded on SIGHUP)",
    },
    SettingDoc { key: "tls_key", default: "(none)", doc: "PEM private key of tls_cert" },
    SettingDoc {
        key: "admin_token_ttl",
        default: "30d",
        doc: "lifetime of tokens printed by admin-token without --ttl (never: no expiry)",
    },
    SettingDoc { key: "backup_keep", default: "7", doc: "how many scheduled backups are kept (the newest)" },
    SettingDoc {
        key: "request_head_timeout",
        default: "5s",
        doc: "time a client has to send the request line and headers",
    },
    SettingDoc { key: "body_timeout", default: "10s", doc: "time a client has to send a request body" },
    SettingDoc {
        key: "max_connections_per_peer",
        default: "128",
        doc: "connections open at once from one address (trusted proxies exempt)",
    },
];

/// Where a setting came from, for error messages that point at the right place.
#[derive(Clone, Debug)]
pub enum Source {
    File(PathBuf),
    Env(String),
    Flag,
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::File(path) => write!(f, "in {}", path.display()),
            Source::Env(var) => write!(f, "in environment variable {var}"),
            Source::Flag => write!(f, "on the command line"),
        }
    }
}

/// A setting that could not be applied; the message is the one line printed at start.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

/// What the command line contributes on top of file and environment.
#[derive(Default, Debug, Clone)]
pub struct Overrides {
    pub config_file: Option<PathBuf>,
    pub state_dir: Option<PathBuf>,
    pub listen: Option<String>,
}

impl Settings {
    /// Builds the settings from every layer, in order. `env` is passed in so tests need no globals.
    pub fn load(
        overrides: &Overrides,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Settings, ConfigError> {
        let env: Vec<(String, String)> = env.into_iter().filter(|(k, _)| k.starts_with(ENV_PREFIX)).collect();
        let mut settings = Settings::default();
        let env_config = env.iter().find(|(k, _)| k == "ROCKIT_EDGE_CONFIG").map(|(_, v)| PathBuf::from(v));
        if let Some(path) = overrides.config_file.clone().or(env_config) {
            settings.apply_file(&path)?;
        }
        for (var, value) in &env {
            let key = var[ENV_PREFIX.len()..].to_ascii_lowercase();
            if key == "config" {
                continue;
            }
            settings.apply(&key, value, &Source::Env(var.clone()))?;
        }
        if let Some(dir) = &overrides.state_dir {
            settings.apply("state_dir", &dir.to_string_lossy(), &Source::Flag)?;
        }
        if let Some(listen) = &overrides.listen {
            settings.apply("listen", listen, &Source::Flag)?;
        }
        Ok(settings)
    }

    fn apply_file(&mut self, path: &Path) -> Result<(), ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError(format!("cannot read config file {}: {e}", path.display())))?;
        let table: toml::Table =
            text.parse().map_err(|e| ConfigError(format!("config file {} is not valid TOML: {e}", path.display())))?;
        let source = Source::File(path.to_path_buf());
        for (key, value) in table {
            let text = match value {
                toml::Value::String(s) => s,
                toml::Value::Integer(i) => i.to_string(),
                toml::Value::Boolean(b) => b.to_string(),
                toml::Value::Array(items) => items
                    .iter()
                    .map(|item| match item {
                        toml::Value::String(s) => s.clone(),
                        other => other.to_string(),
                    })
                    .collect::<Vec<_>>()
                    .join(","),
                other => return Err(ConfigError(format!("setting `{key}` {source} has an unsupported value {other}"))),
            };
            self.apply(&key, &text, &source)?;
        }
        Ok(())
    }

    /// Sets one key from its text form.
    pub fn apply(&mut self, key: &str, text: &str, source: &Source) -> Result<(), ConfigError> {
        let bad = |why: String| ConfigError(format!("setting `{key}` {source}: {why}"));
        let text = text.trim();
        match key {
            "state_dir" => self.state_dir = PathBuf::from(text),
            "listen" => self.listen = parse_listen(text).map_err(bad)?,
            "synchronous" => {
                self.synchronous = match text.to_ascii_lowercase().as_str() {
                    "normal" => Synchronous::Normal,
                    "full" => Synchronous::Full,
                    "extra" => Synchronous::Extra,
                    _ => return Err(bad(format!("`{text}` is not one of normal, full, extra"))),
                }
            }
            "busy_timeout" => self.busy_timeout = parse_duration(text).map_err(bad)?,
            "read_pool_size" => self.read_pool_size = parse_number(text, 1, 64).map_err(bad)? as u32,
            "http_workers" => self.http_workers = parse_number(text, 1, 256).map_err(bad)? as usize,
            "task_workers" => self.task_workers = parse_number(text, 1, 64).map_err(bad)? as usize,
            "json_limit" => self.json_limit = parse_number(text, 1024, 16 << 20).map_err(bad)? as usize,
            "shutdown_timeout" => self.shutdown_timeout = parse_duration(text).map_err(bad)?,
            "log_level" => {
                let level = text.to_ascii_lowercase();
                if !["error", "warn", "info", "debug", "trace", "off"].contains(&level.as_str()) {
                    return Err(bad(format!("`{text}` is not a log level")));
                }
                self.log_level = level;
            }
            "admin_secret" => {
                let bytes = crate::auth::b64_decode_any(text).ok_or_else(|| bad("not valid base64".into()))?;
                if bytes.len() < 32 {
                    return Err(bad("must decode to at least 32 bytes".into()));
                }
                self.admin_secret = Some(text.to_string());
            }
            "access_ttl" => self.access_ttl = parse_duration(text).map_err(bad)?,
            "refresh_ttl" => self.refresh_ttl = parse_duration(text).map_err(bad)?,
            "orgsel_ttl" => self.orgsel_ttl = parse_duration(text).map_err(bad)?,
            "pbkdf2_iterations" => self.pbkdf2_iterations = parse_number(text, 1_000, 100_000_000).map_err(bad)? as u32,
            "trusted_proxies" => {
                self.trusted_proxies = text
                    .split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(|s| s.parse().map_err(|_| bad(format!("`{s}` is not an IP address"))))
                    .collect::<Result<_, _>>()?
            }
            "login_max_failures" => self.login_max_failures = parse_number(text, 1, 1_000_000).map_err(bad)? as u32,
            "login_window" => self.login_window = parse_duration(text).map_err(bad)?,
            "hello_timeout" => self.hello_timeout = parse_duration(text).map_err(bad)?,
            "backup_interval" => {
                self.backup_interval = match text {
                    "off" => None,
                    _ => Some(parse_duration(text).map_err(bad)?).filter(|d| !d.is_zero()),
                }
            }
            "request_head_timeout" => {
                self.request_head_timeout = parse_duration(text).map_err(bad)?.max(Duration::from_millis(100))
            }
            "body_timeout" => self.body_timeout = parse_duration(text).map_err(bad)?.max(Duration::from_millis(100)),
            "max_connections_per_peer" => {
                self.max_connections_per_peer = parse_number(text, 1, 1_000_000).map_err(bad)? as usize
            }
            "origin_roots" => {
                self.origin_roots = text
                    .split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(|s| match s.starts_with('/') {
                        true => Ok(PathBuf::from(s)),
                        false => Err(bad(format!("`{s}` is not an absolute path"))),
                    })
                    .collect::<Result<_, _>>()?
            }
            "tls_cert" => self.tls_cert = Some(PathBuf::from(text)).filter(|p| !p.as_os_str().is_empty()),
            "tls_key" => self.tls_key = Some(PathBuf::from(text)).filter(|p| !p.as_os_str().is_empty()),
            "admin_token_ttl" => {
                self.admin_token_ttl = match text {
                    "never" => None,
                    _ => Some(parse_duration(text).map_err(bad)?),
                }
            }
            "backup_keep" => self.backup_keep = parse_number(text, 1, 10_000).map_err(bad)? as usize,
            _ => return Err(ConfigError(format!("unknown setting `{key}` {source}"))),
        }
        Ok(())
    }

    pub fn database_path(&self) -> PathBuf {
        self.state_dir.join("rockit-edge.db")
    }
}

/// `ADDRESS:PORT`, or `HOST:PORT` resolved now (`localhost:8081`), preferring IPv4.
fn parse_listen(text: &str) -> Result<SocketAddr, String> {
    if let Ok(addr) = text.parse() {
        return Ok(addr);
    }
    use std::net::ToSocketAddrs;
    let resolved: Vec<SocketAddr> =
        text.to_socket_addrs().map_err(|e| format!("`{text}` is not an ADDRESS:PORT or HOST:PORT ({e})"))?.collect();
    resolved
        .iter()
        .find(|a| a.is_ipv4())
        .or(resolved.first())
        .copied()
        .ok_or_else(|| format!("`{text}` resolves to no address"))
}

fn parse_number(text: &str, min: u64, max: u64) -> Result<u64, String> {
    let n: u64 = text.parse().map_err(|_| format!("`{text}` is not a whole number"))?;
    if n < min || n > max {
        return Err(format!("{n} is outside {min}..={max}"));
    }
    Ok(n)
}

/// Parses `500ms`, `2s`, `15m`, `24h`, `30d`. A bare number is refused: units are never guessed.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (digits, unit) = text.split_at(split);
    let n: u64 = digits.parse().map_err(|_| format!("`{text}` is not a duration like 500ms, 2s, 15m, 24h or 30d"))?;
    let millis = match unit {
        "ms" => Some(n),
        "s" => n.checked_mul(1_000),
        "m" => n.checked_mul(60_000),
        "h" => n.checked_mul(3_600_000),
        "d" => n.checked_mul(86_400_000),
        _ => return Err(format!("`{text}` is not a duration like 500ms, 2s, 15m, 24h or 30d")),
    }
    .ok_or_else(|| format!("`{text}` is too long a duration"))?;
    Ok(Duration::from_millis(millis))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn durations_take_the_documented_units() {
        assert_eq!(parse_duration("2s").unwrap(), Duration::from_secs(2));
        assert_eq!(parse_duration("15m").unwrap(), Duration::from_secs(900));
        assert_eq!(parse_duration("24h").unwrap(), Duration::from_secs(86_400));
        assert_eq!(parse_duration("30d").unwrap(), Duration::from_secs(30 * 86_400));
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert!(parse_duration("15").is_err());
        assert!(parse_duration("m").is_err());
        assert!(parse_duration("1w").is_err());
    }

    #[test]
    fn later_layers_override_earlier_ones() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("edge.toml");
        std::fs::write(&file, "access_ttl = \"1h\"\nlisten = \"127.0.0.1:9000\"\ntask_workers = 3\n").unwrap();
        let overrides =
            Overrides { config_file: Some(file), listen: Some("127.0.0.1:9001".into()), ..Default::default() };
        let settings = Settings::load(&overrides, env(&[("ROCKIT_EDGE_ACCESS_TTL", "2s"), ("PATH", "/bin")])).unwrap();
        assert_eq!(settings.access_ttl, Duration::from_secs(2));
        assert_eq!(settings.task_workers, 3);
        assert_eq!(settings.listen.port(), 9001);
    }

    #[test]
    fn an_unknown_key_is_refused_in_every_layer() {
        let err = Settings::load(&Overrides::default(), env(&[("ROCKIT_EDGE_NO_SUCH", "1")])).unwrap_err();
        assert!(err.0.contains("unknown setting `no_such`"), "{err}");
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("edge.toml");
        std::fs::write(&file, "acces_ttl = \"1h\"\n").unwrap();
        let overrides = Overrides { config_file: Some(file), ..Default::default() };
        let err = Settings::load(&overrides, env(&[])).unwrap_err();
        assert!(err.0.contains("unknown setting `acces_ttl`"), "{err}");
    }

    #[test]
    fn every_documented_setting_is_accepted() {
        let mut settings = Settings::default();
        for doc in SETTINGS {
            // Each key must be known to `apply`; a bad value gives a value error, not "unknown".
            let err = settings.apply(doc.key, "\u{1}", &Source::Flag).err();
            if let Some(err) = err {
                assert!(!err.0.contains("unknown setting"), "{} is documented but unknown", doc.key);
            }
        }
    }

    #[test]
    fn debug_output_hides_the_admin_secret() {
        let mut settings = Settings::default();
        let secret = "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LXNlY3JldC0xMjM0NQ==";
        settings.apply("admin_secret", secret, &Source::Flag).unwrap();
        assert!(!format!("{settings:?}").contains(secret));
    }
}
