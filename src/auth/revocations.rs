//! Revoked admin tokens: per token name (`username` claim), the moment before which every token
//! of that name was issued is refused. Kept in the state directory (`admin-revocations.json`,
//! mode 0600) next to the secrets they refer to, so the CLI can add one while the server runs.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::keyring::{write_private, KeyringError};

/// Name of the revocations file inside the state directory.
pub const REVOCATIONS_FILE: &str = "admin-revocations.json";

#[derive(Default, Debug, Serialize, Deserialize, PartialEq)]
pub struct Revocations {
    /// Token name → Unix time in milliseconds; tokens of that name issued earlier are refused.
    revoked_before_ms: BTreeMap<String, i64>,
}

impl Revocations {
    /// Reads the file; a missing file means no revocations.
    pub fn load(path: &Path) -> Result<Revocations, KeyringError> {
        match fs::read(path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map_err(|e| KeyringError::Damaged { path: path.into(), why: e.to_string() }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Revocations::default()),
            Err(source) => Err(KeyringError::Io { action: "read", path: path.into(), source }),
        }
    }

    /// Whether these (signature-checked) claims belong to a revoked token. A token without a
    /// readable `iat` cannot prove it came after the revocation, so it counts as revoked.
    pub fn revokes(&self, claims: &Map<String, Value>) -> bool {
        let Some(name) = claims.get("username").and_then(Value::as_str) else { return false };
        let Some(before) = self.revoked_before_ms.get(name) else { return false };
        let issued_ms = claims.get("iat").and_then(Value::as_f64).map(|secs| (secs * 1000.0) as i64);
        issued_ms.is_none_or(|issued| issued < *before)
    }
}

/// Records that tokens named `name` issued before `before_ms` are refused (a later revocation
/// of the same name replaces an earlier one).
pub fn revoke(state_dir: &Path, name: &str, before_ms: i64) -> Result<(), KeyringError> {
    let path = state_dir.join(REVOCATIONS_FILE);
    let mut revocations = Revocations::load(&path)?;
    revocations.revoked_before_ms.insert(name.to_string(), before_ms);
    write_private(&path, &serde_json::to_vec_pretty(&revocations).expect("serializable"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn claims(value: Value) -> Map<String, Value> {
        value.as_object().cloned().unwrap()
    }

    #[test]
    fn tokens_of_a_revoked_name_issued_before_the_time_are_revoked() {
        let dir = tempfile::tempdir().unwrap();
        revoke(dir.path(), "ops", 1_770_000_000_500).unwrap();
        let revocations = Revocations::load(&dir.path().join(REVOCATIONS_FILE)).unwrap();
        assert!(revocations.revokes(&claims(json!({"username": "ops", "iat": 1_770_000_000}))));
        assert!(revocations.revokes(&claims(json!({"username": "ops", "iat": 1_770_000_000.499}))));
        assert!(revocations.revokes(&claims(json!({"username": "ops"}))), "no iat: cannot be newer");
        assert!(!revocations.revokes(&claims(json!({"username": "ops", "iat": 1_770_000_000.5}))));
        assert!(!revocations.revokes(&claims(json!({"username": "ci", "iat": 1}))));
    }

    #[test]
    fn no_file_means_nothing_is_revoked() {
        let dir = tempfile::tempdir().unwrap();
        let revocations = Revocations::load(&dir.path().join(REVOCATIONS_FILE)).unwrap();
        assert!(!revocations.revokes(&claims(json!({"username": "ops"}))));
    }
}
