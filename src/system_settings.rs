//! The machine-wide settings files in `/etc/rockit-edge/`, read by `serve` and by every other
//! command alike, so that `rockit-edge admin-token` run by an operator signs with the same admin
//! secret and looks at the same state directory as the service:
//!
//! * `env`: `ROCKIT_EDGE_*=value` lines (the systemd unit's `EnvironmentFile=`), below the
//!   process environment;
//! * `rockit-edge.toml`: the settings file used when neither `--config` nor `ROCKIT_EDGE_CONFIG`
//!   names another.
//!
//! They only add `ROCKIT_EDGE_*` variables to what [`crate::config::Settings::load`] reads.

use std::collections::BTreeMap;
use std::io::ErrorKind;
use std::path::Path;

/// Where the machine-wide settings live.
pub const SYSTEM_DIR: &str = "/etc/rockit-edge";

const PREFIX: &str = "ROCKIT_EDGE_";

/// The process environment with the machine-wide settings added beneath it. `explicit_config`
/// tells whether `--config` was given (then no default settings file is added).
pub fn environment(
    system_dir: &Path,
    process: impl IntoIterator<Item = (String, String)>,
    explicit_config: bool,
) -> Result<Vec<(String, String)>, String> {
    let process: Vec<(String, String)> = process.into_iter().collect();
    // systemd sets INVOCATION_ID for a service; it also read the `EnvironmentFile=` for us, as
    // root, so a file the service user may not read is no loss there.
    let as_service = process.iter().any(|(k, _)| k == "INVOCATION_ID");
    let mut merged: BTreeMap<String, String> = BTreeMap::new();
    let env_file = system_dir.join("env");
    if let Some(text) = read_optional(&env_file, as_service)? {
        for (key, value) in parse_env_file(&text) {
            merged.insert(key, value);
        }
    }
    for (key, value) in process {
        if key.starts_with(PREFIX) {
            merged.insert(key, value);
        }
    }
    let config_var = format!("{PREFIX}CONFIG");
    let default_config = system_dir.join("rockit-edge.toml");
    if !explicit_config && !merged.contains_key(&config_var) && default_config.exists() {
        // Only systemd reads the env file for the service; this file nobody else reads.
        read_optional(&default_config, false)?;
        merged.insert(config_var, default_config.to_string_lossy().into_owned());
    }
    Ok(merged.into_iter().collect())
}

/// The file's text; `None` if it does not exist (or cannot be read by a service, see above).
fn read_optional(path: &Path, as_service: bool) -> Result<Option<String>, String> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(Some(text)),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
        Err(e) if e.kind() == ErrorKind::PermissionDenied && as_service => Ok(None),
        Err(e) => Err(format!(
            "cannot read {} ({e}): it holds this machine's rockit-edge settings; run as a user who can read it",
            path.display()
        )),
    }
}

/// `KEY=value` lines as systemd's `EnvironmentFile=` reads them: blank lines and `#`/`;`
/// comments skipped, an optional `export `, values optionally in matching quotes. Only
/// `ROCKIT_EDGE_*` keys are taken.
fn parse_env_file(text: &str) -> Vec<(String, String)> {
    text.lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#') && !line.starts_with(';'))
        .filter_map(|line| line.split_once('='))
        .map(|(key, value)| {
            let key = key.trim().trim_start_matches("export ").trim();
            let value = value.trim();
            let unquoted = ['"', '\'']
                .iter()
                .find_map(|q| value.strip_prefix(*q).and_then(|v| v.strip_suffix(*q)))
                .unwrap_or(value);
            (key.to_string(), unquoted.to_string())
        })
        .filter(|(key, _)| key.starts_with(PREFIX))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Overrides, Settings};
    use std::time::Duration;

    fn vars(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn every_command_reads_the_machine_wide_env_file_and_settings_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("env"),
            "# settings\nROCKIT_EDGE_ACCESS_TTL=1h\nexport ROCKIT_EDGE_STATE_DIR=\"/var/lib/rockit-edge\"\nPATH=/x\n",
        )
        .unwrap();
        std::fs::write(dir.path().join("rockit-edge.toml"), "task_workers = 3\nrefresh_ttl = \"2h\"\n").unwrap();
        let env =
            environment(dir.path(), vars(&[("ROCKIT_EDGE_REFRESH_TTL", "3h"), ("HOME", "/root")]), false).unwrap();
        let settings = Settings::load(&Overrides::default(), env).unwrap();
        assert_eq!(settings.access_ttl, Duration::from_secs(3600), "from the env file");
        assert_eq!(settings.state_dir, Path::new("/var/lib/rockit-edge"));
        assert_eq!(settings.task_workers, 3, "from the default settings file");
        assert_eq!(settings.refresh_ttl, Duration::from_secs(3 * 3600), "the process environment wins");
    }

    #[test]
    fn the_process_environment_overrides_the_env_file_and_an_explicit_config_replaces_the_default() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("env"), "ROCKIT_EDGE_ACCESS_TTL=1h\n").unwrap();
        std::fs::write(dir.path().join("rockit-edge.toml"), "task_workers = 3\n").unwrap();
        let env = environment(dir.path(), vars(&[("ROCKIT_EDGE_ACCESS_TTL", "5m")]), true).unwrap();
        assert_eq!(env, vars(&[("ROCKIT_EDGE_ACCESS_TTL", "5m")]));
    }

    #[test]
    fn a_missing_system_directory_adds_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let env = environment(&dir.path().join("none"), vars(&[("ROCKIT_EDGE_LISTEN", "127.0.0.1:1")]), false);
        assert_eq!(env.unwrap(), vars(&[("ROCKIT_EDGE_LISTEN", "127.0.0.1:1")]));
    }

    #[test]
    fn an_unknown_key_in_the_env_file_is_refused_like_any_other() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("env"), "ROCKIT_EDGE_ACESS_TTL=1h\n").unwrap();
        let env = environment(dir.path(), Vec::new(), false).unwrap();
        let err = Settings::load(&Overrides::default(), env).unwrap_err();
        assert!(err.0.contains("unknown setting `acess_ttl`"), "{err}");
    }
}
