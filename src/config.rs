//! Settings, layered: built-in defaults → TOML file → `ROCKIT_EDGE_*` environment → flags.
//!
//! Every setting is declared once, in the `settings!` table below: its field, type, default, the
//! default as the README writes it, its one-line meaning and how its value is read. The struct,
//! its `Default`, the documented table [`SETTINGS`] and the deserialization all come from that
//! one line. The layers are merged by figment; each layer (the file, each environment variable,
//! the command line) is its own provider, so a bad value is reported with the place it came from.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::value::{Dict, Map, Value};
use figment::{Figment, Metadata, Profile, Provider};
use serde::{Deserialize, Deserializer};

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

impl<'de> Deserialize<'de> for Synchronous {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        match text.trim().to_ascii_lowercase().as_str() {
            "normal" => Ok(Synchronous::Normal),
            "full" => Ok(Synchronous::Full),
            "extra" => Ok(Synchronous::Extra),
            _ => Err(serde::de::Error::custom(format!("`{text}` is not one of normal, full, extra"))),
        }
    }
}

/// One row of the settings table: its key, default as written, and what it does.
pub struct SettingDoc {
    pub key: &'static str,
    pub default: &'static str,
    pub doc: &'static str,
}

/// Declares every setting once: `field: Type = default, "default as written", "meaning"` plus an
/// optional `serde(...)` attribute saying how the value is read.
macro_rules! settings {
    ($($field:ident: $ty:ty = $default:expr, $shown:literal, $doc:literal $(, serde($($serde:tt)*))?;)*) => {
        /// Every setting of the server. `Debug` never shows a secret.
        #[derive(Clone, Deserialize)]
        #[serde(default, deny_unknown_fields)]
        pub struct Settings {
            $(
                #[doc = $doc]
                $(#[serde($($serde)*)])?
                pub $field: $ty,
            )*
        }

        impl Default for Settings {
            fn default() -> Self {
                Settings { $($field: $default,)* }
            }
        }

        /// The documented settings, in the order of the README table.
        pub const SETTINGS: &[SettingDoc] = &[$(SettingDoc { key: stringify!($field), default: $shown, doc: $doc },)*];
    };
}

settings! {
    state_dir: PathBuf = PathBuf::from("./rockit-edge-data"), "./rockit-edge-data",
        "directory holding the database, secrets and depot";
    listen: SocketAddr = SocketAddr::from(([127, 0, 0, 1], 8080)), "127.0.0.1:8080",
        "address and port the HTTP server binds", serde(deserialize_with = "read::socket_addr");
    synchronous: Synchronous = Synchronous::Full, "full",
        "SQLite durability: normal, full or extra";
    busy_timeout: Duration = Duration::from_secs(5), "5s",
        "how long a database call waits for a lock", serde(deserialize_with = "read::duration");
    read_pool_size: u32 = 4, "4",
        "read connections to the database", serde(deserialize_with = "read::within::<1, 64, _, _>");
    http_workers: usize = available_cores(), "cores",
        "HTTP worker threads", serde(deserialize_with = "read::within::<1, 256, _, _>");
    task_workers: usize = 2, "2",
        "threads running background tasks", serde(deserialize_with = "read::within::<1, 64, _, _>");
    json_limit: usize = 64 * 1024, "65536",
        "largest accepted JSON body, bytes", serde(deserialize_with = "read::within::<1024, 16777216, _, _>");
    shutdown_timeout: Duration = Duration::from_secs(30), "30s",
        "how long SIGTERM waits for requests in flight", serde(deserialize_with = "read::duration");
    log_level: String = "info".into(), "info",
        "error, warn, info, debug or trace (RUST_LOG overrides)", serde(deserialize_with = "read::log_level");
    admin_secret: Option<String> = None, "generated",
        "base64 admin token secret instead of the generated one", serde(deserialize_with = "read::admin_secret");
    access_ttl: Duration = Duration::from_secs(15 * 60), "15m",
        "lifetime of access tokens", serde(deserialize_with = "read::duration");
    refresh_ttl: Duration = Duration::from_secs(24 * 3600), "24h",
        "lifetime of refresh tokens (and so of an idle session)", serde(deserialize_with = "read::duration");
    orgsel_ttl: Duration = Duration::from_secs(15 * 60), "15m",
        "lifetime of organization selection tokens", serde(deserialize_with = "read::duration");
    pbkdf2_iterations: u32 = 600_000, "600000",
        "PBKDF2 iterations for new password hashes", serde(deserialize_with = "read::within::<1000, 100000000, _, _>");
    trusted_proxies: Vec<IpAddr> = Vec::new(), "(none)",
        "comma-separated peer IPs whose X-Forwarded-For is believed", serde(deserialize_with = "read::ip_list");
    login_max_failures: u32 = 5, "5",
        "failed logins per account or address before slowing down",
        serde(deserialize_with = "read::within::<1, 1000000, _, _>");
    login_window: Duration = Duration::from_secs(60), "60s",
        "window in which failed logins are counted", serde(deserialize_with = "read::duration");
    hello_timeout: Duration = Duration::from_secs(10), "10s",
        "how long POST /srv/v1/hello waits for its task", serde(deserialize_with = "read::duration");
    request_head_timeout: Duration = Duration::from_secs(5), "5s",
        "time a client has to send the request line and headers", serde(deserialize_with = "read::short_timeout");
    body_timeout: Duration = Duration::from_secs(10), "10s",
        "time a client has to send a request body", serde(deserialize_with = "read::short_timeout");
    max_connections_per_peer: usize = 128, "128",
        "connections open at once from one address (trusted proxies exempt)",
        serde(deserialize_with = "read::within::<1, 1000000, _, _>");
    origin_roots: Vec<PathBuf> = Vec::new(), "(none)",
        "comma-separated directories fs origins must resolve into (none: anywhere outside the state directory)",
        serde(deserialize_with = "read::absolute_paths");
    tls_cert: Option<PathBuf> = None, "(none)",
        "PEM certificate chain: serve HTTPS (with tls_key; reloaded on SIGHUP)", serde(deserialize_with = "read::path");
    tls_key: Option<PathBuf> = None, "(none)",
        "PEM private key of tls_cert", serde(deserialize_with = "read::path");
    admin_token_ttl: Option<Duration> = Some(Duration::from_secs(30 * 86_400)), "30d",
        "lifetime of tokens printed by admin-token without --ttl (never: no expiry)",
        serde(deserialize_with = "read::duration_or_never");
    backup_interval: Option<Duration> = Some(Duration::from_secs(24 * 3600)), "24h",
        "how often the running server writes a backup into backups/ (off: never)",
        serde(deserialize_with = "read::duration_or_off");
    backup_keep: usize = 7, "7",
        "how many scheduled backups are kept (the newest)", serde(deserialize_with = "read::within::<1, 10000, _, _>");
    outbound_allow_loopback: bool = false, "false",
        "build URLs may point at this machine (127.0.0.0/8, ::1): for tests and local build servers",
        serde(deserialize_with = "read::flag");
    max_build_bytes: u64 = 64 << 30, "68719476736",
        "largest build tar accepted, bytes", serde(deserialize_with = "read::within::<1, 18446744073709551615, _, _>");
    download_timeout: Duration = Duration::from_secs(60), "60s",
        "connect and per-read timeout of a build download", serde(deserialize_with = "read::duration");
    upload_ttl: Duration = Duration::from_secs(24 * 3600), "24h",
        "how long the one-time upload URL of an import stays valid", serde(deserialize_with = "read::duration");
    prune_grace: Duration = Duration::from_secs(24 * 3600), "24h",
        "how long the published image and patches of an evicted build stay for clients still fetching them",
        serde(deserialize_with = "read::duration");
    audit_retention: Duration = Duration::from_secs(365 * 24 * 3600), "365d",
        "audit trail events are removed this long after they were recorded",
        serde(deserialize_with = "read::duration");
    metrics_token: Option<String> = None, "(none)",
        "bearer token a Prometheus scraper may use for GET /metrics instead of an admin token (at least 16 characters)",
        serde(deserialize_with = "read::metrics_token");
    task_retention: Duration = Duration::from_secs(30 * 24 * 3600), "30d",
        "finished tasks (done, failed, expired) are removed this long after they ended",
        serde(deserialize_with = "read::duration");
    export_kdf_iterations: u32 = 600_000, "600000",
        "PBKDF2 iterations deriving the keys of new organization bundles from their passphrase",
        serde(deserialize_with = "read::within::<1000, 10000000, _, _>");
    max_bundle_bytes: u64 = 256 << 30, "274877906944",
        "largest organization bundle an import accepts, bytes",
        serde(deserialize_with = "read::within::<1, 18446744073709551615, _, _>");
    s3_multipart_threshold: u64 = 64 << 20, "67108864",
        "objects of at least this many bytes go to S3 origins as multipart uploads",
        serde(deserialize_with = "read::within::<5242881, 5497558138880, _, _>");
    s3_part_size: u64 = 16 << 20, "16777216",
        "bytes per part of a multipart upload to an S3 origin (at least 5 MiB)",
        serde(deserialize_with = "read::within::<5242880, 5368709120, _, _>");
    s3_part_concurrency: u32 = 4, "4",
        "parts of one multipart upload to an S3 origin sent at once",
        serde(deserialize_with = "read::within::<1, 32, _, _>");
    s3_timeout: Duration = Duration::from_secs(60), "60s",
        "connect and per-read/write timeout of a request to an S3 origin", serde(deserialize_with = "read::duration");
    webhook_timeout: Duration = Duration::from_secs(10), "10s",
        "a webhook or Slack delivery counts only if the receiver answers 2xx within this time",
        serde(deserialize_with = "read::short_timeout");
    webhook_retry_delays: Vec<Duration> = default_webhook_retry_delays(), "5s,5m,30m,2h,5h,10h",
        "comma-separated waits before the 2nd, 3rd, … attempt of a failed delivery (the last one repeats)",
        serde(deserialize_with = "read::durations");
    webhook_give_up_after: Duration = Duration::from_secs(24 * 3600), "24h",
        "a delivery not accepted this long after its event is given up (status failed)",
        serde(deserialize_with = "read::duration");
    webhook_retention: Duration = Duration::from_secs(7 * 24 * 3600), "7d",
        "delivered and given-up deliveries are removed this long after they finished",
        serde(deserialize_with = "read::duration");
}

/// PIPELINE.md's schedule: retries within seconds for a blip, hours for an outage, 24 h in all.
fn default_webhook_retry_delays() -> Vec<Duration> {
    [5, 300, 1800, 7200, 18_000, 36_000].into_iter().map(Duration::from_secs).collect()
}

fn available_cores() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2)
}

impl fmt::Debug for Settings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Settings")
            .field("state_dir", &self.state_dir)
            .field("listen", &self.listen)
            .field("synchronous", &self.synchronous)
            .field("admin_secret", &self.admin_secret.as_ref().map(|_| "****"))
            .field("metrics_token", &self.metrics_token.as_ref().map(|_| "****"))
            .finish_non_exhaustive()
    }
}

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

/// One layer of settings from one place. Being its own figment provider gives every value the
/// metadata of its place, which the error message then names.
struct Layer {
    source: Source,
    values: Dict,
}

impl Layer {
    /// Refuses keys that are not settings, naming the layer (serde alone would not say where).
    fn known_keys_only(self) -> Result<Layer, ConfigError> {
        match self.values.keys().find(|key| !SETTINGS.iter().any(|s| s.key == key.as_str())) {
            Some(key) => Err(ConfigError(format!("unknown setting `{key}` {}", self.source))),
            None => Ok(self),
        }
    }

    fn single(source: Source, key: &str, text: &str) -> Layer {
        let mut values = Dict::new();
        values.insert(key.to_string(), Value::from(text.trim().to_string()));
        Layer { source, values }
    }

    fn file(path: &Path) -> Result<Layer, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError(format!("cannot read config file {}: {e}", path.display())))?;
        let values: Dict = toml::from_str(&text)
            .map_err(|e| ConfigError(format!("config file {} is not valid TOML: {e}", path.display())))?;
        Ok(Layer { source: Source::File(path.to_path_buf()), values })
    }
}

impl Provider for Layer {
    fn metadata(&self) -> Metadata {
        Metadata::named(self.source.to_string())
    }

    fn data(&self) -> Result<Map<Profile, Dict>, figment::Error> {
        Ok(Profile::Default.collect(self.values.clone()))
    }
}

impl Settings {
    /// Builds the settings from every layer, in order. `env` is passed in so tests need no globals.
    pub fn load(
        overrides: &Overrides,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Settings, ConfigError> {
        let env: Vec<(String, String)> = env.into_iter().filter(|(k, _)| k.starts_with(ENV_PREFIX)).collect();
        let env_config = env.iter().find(|(k, _)| k == "ROCKIT_EDGE_CONFIG").map(|(_, v)| PathBuf::from(v));
        let mut layers = Vec::new();
        if let Some(path) = overrides.config_file.clone().or(env_config) {
            layers.push(Layer::file(&path)?);
        }
        for (var, value) in &env {
            let key = var[ENV_PREFIX.len()..].to_ascii_lowercase();
            if key != "config" {
                layers.push(Layer::single(Source::Env(var.clone()), &key, value));
            }
        }
        if let Some(dir) = &overrides.state_dir {
            layers.push(Layer::single(Source::Flag, "state_dir", &dir.to_string_lossy()));
        }
        if let Some(listen) = &overrides.listen {
            layers.push(Layer::single(Source::Flag, "listen", listen));
        }
        let mut figment = Figment::new();
        for layer in layers {
            figment = figment.merge(layer.known_keys_only()?);
        }
        figment.extract().map_err(one_line)
    }

    pub fn database_path(&self) -> PathBuf {
        self.state_dir.join("rockit-edge.db")
    }
}

/// `setting `key` <where>: <why>` — the first error only: one line at start is what operators
/// read, and fixing one value at a time is quick.
fn one_line(err: figment::Error) -> ConfigError {
    let key = err.path.join(".");
    let place = err.metadata.as_ref().map(|m| format!(" {}", m.name)).unwrap_or_default();
    ConfigError(format!("setting `{key}`{place}: {}", err.kind))
}

/// Parses `500ms`, `2s`, `15m`, `24h`, `30d` (humantime's units). A bare number is refused: units
/// are never guessed.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text.trim())
        .map_err(|_| format!("`{}` is not a duration like 500ms, 2s, 15m, 24h or 30d", text.trim()))
}

/// How setting values are read. Environment variables and flags arrive as text, the file may give
/// native TOML numbers and lists; every reader takes both.
mod read {
    use std::fmt;
    use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
    use std::path::PathBuf;
    use std::time::Duration;

    use serde::de::{self, Deserializer, SeqAccess, Visitor};
    use serde::Deserialize;

    /// A whole number within `MIN..=MAX`, as a number or as text.
    pub fn within<'de, const MIN: u64, const MAX: u64, T, D>(d: D) -> Result<T, D::Error>
    where
        T: TryFrom<u64>,
        D: Deserializer<'de>,
    {
        struct Whole;
        impl Visitor<'_> for Whole {
            type Value = Option<u64>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a whole number")
            }
            fn visit_u64<E: de::Error>(self, n: u64) -> Result<Option<u64>, E> {
                Ok(Some(n))
            }
            fn visit_i64<E: de::Error>(self, n: i64) -> Result<Option<u64>, E> {
                Ok(u64::try_from(n).ok())
            }
            fn visit_str<E: de::Error>(self, text: &str) -> Result<Option<u64>, E> {
                text.trim().parse().map(Some).map_err(|_| E::custom(format!("`{text}` is not a whole number")))
            }
        }
        let n = d.deserialize_any(Whole)?.filter(|n| (MIN..=MAX).contains(n));
        n.and_then(|n| T::try_from(n).ok()).ok_or_else(|| de::Error::custom(format!("must be within {MIN}..={MAX}")))
    }

    /// `true`/`false`, as a TOML boolean or as text (environment variables).
    pub fn flag<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
        struct Flag;
        impl Visitor<'_> for Flag {
            type Value = bool;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("true or false")
            }
            fn visit_bool<E: de::Error>(self, b: bool) -> Result<bool, E> {
                Ok(b)
            }
            fn visit_str<E: de::Error>(self, text: &str) -> Result<bool, E> {
                match text.trim().to_ascii_lowercase().as_str() {
                    "true" | "1" | "yes" => Ok(true),
                    "false" | "0" | "no" => Ok(false),
                    _ => Err(E::custom(format!("`{text}` is not true or false"))),
                }
            }
        }
        d.deserialize_any(Flag)
    }

    pub fn duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        super::parse_duration(&String::deserialize(d)?).map_err(de::Error::custom)
    }

    /// `ADDRESS:PORT`, or `HOST:PORT` resolved now (`localhost:8081`), preferring IPv4.
    pub fn socket_addr<'de, D: Deserializer<'de>>(d: D) -> Result<SocketAddr, D::Error> {
        let text = String::deserialize(d)?;
        let text = text.trim();
        if let Ok(addr) = text.parse() {
            return Ok(addr);
        }
        let resolved: Vec<SocketAddr> = text
            .to_socket_addrs()
            .map_err(|e| de::Error::custom(format!("`{text}` is not an ADDRESS:PORT or HOST:PORT ({e})")))?
            .collect();
        resolved
            .iter()
            .find(|a| a.is_ipv4())
            .or(resolved.first())
            .copied()
            .ok_or_else(|| de::Error::custom(format!("`{text}` resolves to no address")))
    }

    /// A duration, or `off` (and `0s`) for none: a schedule that can be turned off.
    pub fn duration_or_off<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        let text = String::deserialize(d)?;
        match text.trim() {
            "off" => Ok(None),
            text => Ok(Some(super::parse_duration(text).map_err(de::Error::custom)?).filter(|d| !d.is_zero())),
        }
    }

    /// A duration, or `never` for none: a lifetime without expiry.
    pub fn duration_or_never<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        let text = String::deserialize(d)?;
        match text.trim() {
            "never" => Ok(None),
            text => super::parse_duration(text).map(Some).map_err(de::Error::custom),
        }
    }

    /// A non-empty list of durations: a TOML list, or comma-separated text.
    pub fn durations<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Duration>, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Given {
            Text(String),
            List(Vec<String>),
        }
        let items = match Given::deserialize(d)? {
            Given::Text(text) => text.split(',').map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect(),
            Given::List(items) => items,
        };
        if items.is_empty() {
            return Err(de::Error::custom("give at least one duration"));
        }
        items.iter().map(|item| super::parse_duration(item).map_err(de::Error::custom)).collect()
    }

    /// A network timeout: at least 100 ms, so a typo like `1ms` cannot cut every client off.
    pub fn short_timeout<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        Ok(duration(d)?.max(Duration::from_millis(100)))
    }

    /// An optional file path; empty text is none.
    pub fn path<'de, D: Deserializer<'de>>(d: D) -> Result<Option<PathBuf>, D::Error> {
        let text = String::deserialize(d)?;
        Ok(Some(PathBuf::from(text.trim())).filter(|p| !p.as_os_str().is_empty()))
    }

    /// A list of absolute directories: a TOML list, or comma-separated text.
    pub fn absolute_paths<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<PathBuf>, D::Error> {
        d.deserialize_any(TextList)?
            .into_iter()
            .map(|s| match s.starts_with('/') {
                true => Ok(PathBuf::from(s)),
                false => Err(de::Error::custom(format!("`{s}` is not an absolute path"))),
            })
            .collect()
    }

    /// A list of strings given as a TOML list or as comma-separated text; empty items dropped.
    struct TextList;
    impl<'de> Visitor<'de> for TextList {
        type Value = Vec<String>;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a list, or comma-separated text")
        }
        fn visit_str<E: de::Error>(self, text: &str) -> Result<Vec<String>, E> {
            Ok(text.split(',').map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect())
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<String>, A::Error> {
            let mut items = Vec::new();
            while let Some(item) = seq.next_element::<String>()? {
                items.push(item.trim().to_string());
            }
            Ok(items.into_iter().filter(|s| !s.is_empty()).collect())
        }
    }

    pub fn log_level<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
        let text = String::deserialize(d)?;
        let level = text.trim().to_ascii_lowercase();
        if !["error", "warn", "info", "debug", "trace", "off"].contains(&level.as_str()) {
            return Err(de::Error::custom(format!("`{text}` is not a log level")));
        }
        Ok(level)
    }

    pub fn admin_secret<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
        let text = String::deserialize(d)?.trim().to_string();
        let bytes = crate::auth::b64_decode_any(&text).ok_or_else(|| de::Error::custom("not valid base64"))?;
        if bytes.len() < 32 {
            return Err(de::Error::custom("must decode to at least 32 bytes"));
        }
        Ok(Some(text))
    }

    /// A scraper's shared secret: long enough that guessing it is hopeless.
    pub fn metrics_token<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
        let text = String::deserialize(d)?.trim().to_string();
        if text.chars().count() < 16 {
            return Err(de::Error::custom("must be at least 16 characters"));
        }
        Ok(Some(text))
    }

    /// A list of IP addresses: a TOML list, or comma-separated text.
    pub fn ip_list<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<IpAddr>, D::Error> {
        d.deserialize_any(TextList)?
            .iter()
            .map(|s| s.parse().map_err(|_| de::Error::custom(format!("`{s}` is not an IP address"))))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    fn with_file(text: &str) -> (tempfile::TempDir, Overrides) {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("edge.toml");
        std::fs::write(&file, text).unwrap();
        (dir, Overrides { config_file: Some(file), ..Default::default() })
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
        assert!(parse_duration("1 fortnight").is_err());
    }

    #[test]
    fn no_layer_gives_the_documented_defaults() {
        let settings = Settings::load(&Overrides::default(), env(&[])).unwrap();
        assert_eq!(settings.listen, SocketAddr::from(([127, 0, 0, 1], 8080)));
        assert_eq!(settings.access_ttl, Duration::from_secs(900));
        assert_eq!(settings.json_limit, 65536);
        assert_eq!(settings.synchronous, Synchronous::Full);
        assert!(settings.trusted_proxies.is_empty());
    }

    #[test]
    fn later_layers_override_earlier_ones() {
        let (_dir, mut overrides) =
            with_file("access_ttl = \"1h\"\nlisten = \"127.0.0.1:9000\"\ntask_workers = 3\nrefresh_ttl = \"2h\"\n");
        overrides.listen = Some("127.0.0.1:9001".into());
        let settings = Settings::load(&overrides, env(&[("ROCKIT_EDGE_ACCESS_TTL", "2s"), ("PATH", "/bin")])).unwrap();
        assert_eq!(settings.access_ttl, Duration::from_secs(2));
        assert_eq!(settings.refresh_ttl, Duration::from_secs(7200));
        assert_eq!(settings.task_workers, 3);
        assert_eq!(settings.listen.port(), 9001);
    }

    #[test]
    fn lists_and_numbers_read_the_same_from_file_and_environment() {
        let (_dir, overrides) = with_file("trusted_proxies = [\"10.0.0.1\", \"::1\"]\nread_pool_size = 8\n");
        let from_file = Settings::load(&overrides, env(&[])).unwrap();
        let from_env = Settings::load(
            &Overrides::default(),
            env(&[("ROCKIT_EDGE_TRUSTED_PROXIES", "10.0.0.1, ::1"), ("ROCKIT_EDGE_READ_POOL_SIZE", "8")]),
        )
        .unwrap();
        assert_eq!(from_file.trusted_proxies, from_env.trusted_proxies);
        assert_eq!(from_file.trusted_proxies.len(), 2);
        assert_eq!((from_file.read_pool_size, from_env.read_pool_size), (8, 8));
    }

    #[test]
    fn an_unknown_key_is_refused_in_every_layer() {
        let err = Settings::load(&Overrides::default(), env(&[("ROCKIT_EDGE_NO_SUCH", "1")])).unwrap_err();
        assert_eq!(err.0, "unknown setting `no_such` in environment variable ROCKIT_EDGE_NO_SUCH");
        let (_dir, overrides) = with_file("acces_ttl = \"1h\"\n");
        let err = Settings::load(&overrides, env(&[])).unwrap_err();
        assert!(err.0.starts_with("unknown setting `acces_ttl` in "), "{err}");
        assert!(err.0.ends_with("edge.toml"), "{err}");
    }

    #[test]
    fn a_bad_value_is_one_line_naming_its_key_and_source() {
        let err = Settings::load(&Overrides::default(), env(&[("ROCKIT_EDGE_READ_POOL_SIZE", "0")])).unwrap_err();
        assert_eq!(
            err.0,
            "setting `read_pool_size` in environment variable ROCKIT_EDGE_READ_POOL_SIZE: must be within 1..=64"
        );
        let (_dir, overrides) = with_file("login_window = \"15\"\n");
        let err = Settings::load(&overrides, env(&[])).unwrap_err();
        assert!(err.0.starts_with("setting `login_window` in "), "{err}");
        assert!(err.0.contains("edge.toml: `15` is not a duration"), "{err}");
        let flags = Overrides { listen: Some("localhost".into()), ..Default::default() };
        let err = Settings::load(&flags, env(&[])).unwrap_err();
        assert!(err.0.starts_with("setting `listen` on the command line: `localhost` is not an ADDRESS:PORT"), "{err}");
        assert!(!err.0.contains('\n'));
    }

    #[test]
    fn optional_settings_read_their_word_for_none() {
        let settings = Settings::load(
            &Overrides::default(),
            env(&[
                ("ROCKIT_EDGE_BACKUP_INTERVAL", "off"),
                ("ROCKIT_EDGE_ADMIN_TOKEN_TTL", "never"),
                ("ROCKIT_EDGE_TLS_CERT", ""),
                ("ROCKIT_EDGE_REQUEST_HEAD_TIMEOUT", "1ms"),
            ]),
        )
        .unwrap();
        assert_eq!((settings.backup_interval, settings.admin_token_ttl, settings.tls_cert), (None, None, None));
        assert_eq!(settings.request_head_timeout, Duration::from_millis(100));
        let defaults = Settings::load(&Overrides::default(), env(&[])).unwrap();
        assert_eq!(defaults.backup_interval, Some(Duration::from_secs(86_400)));
        assert_eq!(defaults.admin_token_ttl, Some(Duration::from_secs(30 * 86_400)));
    }

    #[test]
    fn origin_roots_must_be_absolute_in_file_and_environment() {
        let (_dir, overrides) = with_file("origin_roots = [\"/srv/a\", \"/srv/b\"]\n");
        let from_file = Settings::load(&overrides, env(&[])).unwrap();
        assert_eq!(from_file.origin_roots, [PathBuf::from("/srv/a"), PathBuf::from("/srv/b")]);
        let err =
            Settings::load(&Overrides::default(), env(&[("ROCKIT_EDGE_ORIGIN_ROOTS", "/srv/a, srv/b")])).unwrap_err();
        assert!(err.0.ends_with("`srv/b` is not an absolute path"), "{err}");
    }

    #[test]
    fn listen_takes_a_host_name() {
        let flags = Overrides { listen: Some("localhost:8081".into()), ..Default::default() };
        let settings = Settings::load(&flags, env(&[])).unwrap();
        assert_eq!(settings.listen.port(), 8081);
        assert!(settings.listen.ip().is_loopback());
    }

    #[test]
    fn every_documented_setting_is_a_field() {
        for doc in SETTINGS {
            // A value of the wrong shape gives a value error for a known key, never "unknown".
            let var = format!("{ENV_PREFIX}{}", doc.key.to_ascii_uppercase());
            match Settings::load(&Overrides::default(), env(&[(&var, "\u{1}")])) {
                Ok(_) => {}
                Err(err) => assert!(!err.0.contains("unknown"), "{} is documented but unknown: {err}", doc.key),
            }
        }
    }

    #[test]
    fn a_short_metrics_token_is_refused_and_a_long_one_is_never_shown() {
        let err = Settings::load(&Overrides::default(), env(&[("ROCKIT_EDGE_METRICS_TOKEN", "short")])).unwrap_err();
        assert!(err.0.ends_with("must be at least 16 characters"), "{err}");
        let token = "a-scraper-token-of-some-length";
        let settings = Settings::load(&Overrides::default(), env(&[("ROCKIT_EDGE_METRICS_TOKEN", token)])).unwrap();
        assert_eq!(settings.metrics_token.as_deref(), Some(token));
        assert!(!format!("{settings:?}").contains(token));
    }

    #[test]
    fn debug_output_hides_the_admin_secret() {
        let secret = "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LXNlY3JldC0xMjM0NQ==";
        let settings = Settings::load(&Overrides::default(), env(&[("ROCKIT_EDGE_ADMIN_SECRET", secret)])).unwrap();
        assert_eq!(settings.admin_secret.as_deref(), Some(secret));
        assert!(!format!("{settings:?}").contains(secret));
    }
}
