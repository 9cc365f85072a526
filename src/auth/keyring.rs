//! The instance's secrets: generated on first start into `secrets.json` (mode 0600) in the state
//! directory, or taken from settings. One signing key per token kind, so a token of one kind is
//! never accepted as another.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::SystemTime;

use ring::hmac;
use serde::{Deserialize, Serialize};

use super::jws::{SigningKey, TokenError};
use super::revocations::{Revocations, REVOCATIONS_FILE};
use super::{b64_decode_any, b64_encode, random_bytes};

/// The kinds of token this server issues.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenKind {
    Admin,
    OrgSelection,
    Access,
    Refresh,
}

/// All keys of the instance. `Debug` is deliberately not derived.
pub struct Keyring {
    admin_secret: Vec<u8>,
    admin: SigningKey,
    org_selection: SigningKey,
    access: SigningKey,
    refresh: SigningKey,
    sealing: [u8; 32],
    /// What admin tokens are checked against while the server runs; follows the state
    /// directory's files, so `admin-secret --rotate` and revocations apply without a restart.
    live_admin: Option<LiveAdmin>,
}

/// The admin key and the revocations as last read, and the file versions they were read from.
struct LiveAdmin {
    state_dir: PathBuf,
    /// The `admin_secret` setting pins the key: the file's admin secret is then not used.
    pinned: bool,
    current: RwLock<LiveAdminState>,
}

struct LiveAdminState {
    key: Arc<SigningKey>,
    revocations: Arc<Revocations>,
    seen: (Option<FileVersion>, Option<FileVersion>),
}

/// Enough of a file's metadata to notice that it was replaced.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
struct FileVersion {
    modified: Option<SystemTime>,
    len: u64,
    inode: u64,
}

fn file_version(path: &Path) -> Option<FileVersion> {
    use std::os::unix::fs::MetadataExt;
    let meta = fs::metadata(path).ok()?;
    Some(FileVersion { modified: meta.modified().ok(), len: meta.len(), inode: meta.ino() })
}

#[derive(Serialize, Deserialize)]
struct SecretsFile {
    admin: String,
    tokens: String,
    sealing: String,
}

/// Name of the secrets file inside the state directory.
pub const SECRETS_FILE: &str = "secrets.json";

#[derive(Debug, thiserror::Error)]
pub enum KeyringError {
    #[error("cannot {action} {path}: {source}")]
    Io { action: &'static str, path: PathBuf, source: std::io::Error },
    #[error("no secrets at {path}: start the server once with this state directory, or check --state-dir")]
    Missing { path: PathBuf },
    #[error("{path} is damaged: {why}")]
    Damaged { path: PathBuf, why: String },
}

impl Keyring {
    /// Reads the secrets file, creating it with fresh random secrets when it does not exist and
    /// `create` is set. `admin_override` is the base64 `admin_secret` setting, which wins.
    pub fn load_or_create(
        state_dir: &Path,
        admin_override: Option<&str>,
        create: bool,
    ) -> Result<Keyring, KeyringError> {
        let path = state_dir.join(SECRETS_FILE);
        let file = match fs::read(&path) {
            Ok(bytes) => {
                tighten_permissions(&path)?;
                serde_json::from_slice::<SecretsFile>(&bytes)
                    .map_err(|e| KeyringError::Damaged { path: path.clone(), why: e.to_string() })?
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !create => {
                return Err(KeyringError::Missing { path })
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let fresh = SecretsFile {
                    admin: b64_encode(&random_bytes::<32>()),
                    tokens: b64_encode(&random_bytes::<32>()),
                    sealing: b64_encode(&random_bytes::<32>()),
                };
                write_private(&path, &serde_json::to_vec_pretty(&fresh).expect("serializable"))?;
                fresh
            }
            Err(source) => return Err(KeyringError::Io { action: "read", path, source }),
        };
        let decode = |name: &str, text: &str| {
            b64_decode_any(text).filter(|bytes| bytes.len() >= 32).ok_or_else(|| KeyringError::Damaged {
                path: path.clone(),
                why: format!("`{name}` is not 32+ bytes of base64"),
            })
        };
        let admin_secret = match admin_override {
            Some(text) => decode("admin_secret setting", text)?,
            None => decode("admin", &file.admin)?,
        };
        let tokens = decode("tokens", &file.tokens)?;
        let sealing: [u8; 32] = decode("sealing", &file.sealing)?[..32].try_into().expect("32 bytes");
        Ok(Keyring {
            live_admin: None,
            admin: SigningKey::new("adm", &admin_secret),
            org_selection: SigningKey::new("sel", &derive(&tokens, "org-selection")).without_leeway(),
            access: SigningKey::new("acc", &derive(&tokens, "access")).without_leeway(),
            refresh: SigningKey::new("ref", &derive(&tokens, "refresh")).without_leeway(),
            admin_secret,
            sealing,
        })
    }

    /// Makes [`Keyring::verify_admin`] follow the state directory's secrets and revocations.
    /// For the server; the CLI signs with the key as loaded.
    pub fn follow_state_dir(mut self, state_dir: &Path, pinned: bool) -> Result<Keyring, KeyringError> {
        let revocations_path = state_dir.join(REVOCATIONS_FILE);
        let seen = (file_version(&state_dir.join(SECRETS_FILE)), file_version(&revocations_path));
        let revocations = Revocations::load(&revocations_path)?;
        self.live_admin = Some(LiveAdmin {
            state_dir: state_dir.to_path_buf(),
            pinned,
            current: RwLock::new(LiveAdminState {
                key: Arc::new(SigningKey::new("adm", &self.admin_secret)),
                revocations: Arc::new(revocations),
                seen,
            }),
        });
        Ok(self)
    }

    /// Checks an admin token against the current admin secret and revocations. Two `stat`s per
    /// admin request notice a rotated secret or a new revocation; a file that cannot be read
    /// keeps the last good state (and is logged), so a half-done edit never opens the door.
    pub fn verify_admin(
        &self,
        token: &str,
        now: i64,
    ) -> Result<serde_json::Map<String, serde_json::Value>, TokenError> {
        let Some(live) = &self.live_admin else { return self.admin.verify(token, now) };
        let secrets_path = live.state_dir.join(SECRETS_FILE);
        let revocations_path = live.state_dir.join(REVOCATIONS_FILE);
        let seen = (file_version(&secrets_path), file_version(&revocations_path));
        let stale = live.current.read().unwrap_or_else(|p| p.into_inner()).seen != seen;
        if stale {
            live.reload(&secrets_path, &revocations_path, seen);
        }
        let (key, revocations) = {
            let current = live.current.read().unwrap_or_else(|p| p.into_inner());
            (current.key.clone(), current.revocations.clone())
        };
        let claims = key.verify(token, now)?;
        if revocations.revokes(&claims) {
            return Err(TokenError::Revoked);
        }
        Ok(claims)
    }

    pub fn key(&self, kind: TokenKind) -> &SigningKey {
        match kind {
            TokenKind::Admin => &self.admin,
            TokenKind::OrgSelection => &self.org_selection,
            TokenKind::Access => &self.access,
            TokenKind::Refresh => &self.refresh,
        }
    }

    /// The admin secret as base64, for existing HS256 tooling (`rockit-edge admin-secret`).
    pub fn admin_secret_base64(&self) -> String {
        b64_encode(&self.admin_secret)
    }

    /// Key for sealing secrets at rest (AES-256-GCM).
    pub fn sealing_key(&self) -> &[u8; 32] {
        &self.sealing
    }
}

impl LiveAdmin {
    fn reload(&self, secrets_path: &Path, revocations_path: &Path, seen: (Option<FileVersion>, Option<FileVersion>)) {
        let mut current = self.current.write().unwrap_or_else(|p| p.into_inner());
        if !self.pinned {
            match read_admin_secret(secrets_path) {
                Ok(secret) => {
                    let key = SigningKey::new("adm", &secret);
                    if key.kid() != current.key.kid() {
                        log::info!("admin secret changed: tokens signed with the previous one are refused from now on");
                    }
                    current.key = Arc::new(key);
                }
                Err(e) => log::error!("cannot reload the admin secret, keeping the previous one: {e}"),
            }
        }
        match Revocations::load(revocations_path) {
            Ok(revocations) => current.revocations = Arc::new(revocations),
            Err(e) => log::error!("cannot reload admin token revocations, keeping the previous ones: {e}"),
        }
        current.seen = seen;
    }
}

fn read_admin_secret(path: &Path) -> Result<Vec<u8>, KeyringError> {
    let bytes = fs::read(path).map_err(|source| KeyringError::Io { action: "read", path: path.into(), source })?;
    let file: SecretsFile =
        serde_json::from_slice(&bytes).map_err(|e| KeyringError::Damaged { path: path.into(), why: e.to_string() })?;
    b64_decode_any(&file.admin)
        .filter(|bytes| bytes.len() >= 32)
        .ok_or_else(|| KeyringError::Damaged { path: path.into(), why: "`admin` is not 32+ bytes of base64".into() })
}

/// Replaces the admin secret in the state directory's secrets file with a fresh random one
/// (the other secrets stay); answers it as base64. Every admin token signed with the old one
/// is refused from then on, by a running server too.
pub fn rotate_admin_secret(state_dir: &Path) -> Result<String, KeyringError> {
    let path = state_dir.join(SECRETS_FILE);
    let bytes = match fs::read(&path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(KeyringError::Missing { path }),
        Err(source) => return Err(KeyringError::Io { action: "read", path, source }),
    };
    let mut file: SecretsFile =
        serde_json::from_slice(&bytes).map_err(|e| KeyringError::Damaged { path: path.clone(), why: e.to_string() })?;
    file.admin = b64_encode(&random_bytes::<32>());
    write_private(&path, &serde_json::to_vec_pretty(&file).expect("serializable"))?;
    Ok(file.admin)
}

/// One independent key per purpose from the master token secret (HMAC as a PRF).
fn derive(master: &[u8], purpose: &str) -> Vec<u8> {
    let key = hmac::Key::new(hmac::HMAC_SHA256, master);
    hmac::sign(&key, format!("rockit-edge/token-key/v1/{purpose}").as_bytes()).as_ref().to_vec()
}

fn tighten_permissions(path: &Path) -> Result<(), KeyringError> {
    let meta =
        fs::metadata(path).map_err(|source| KeyringError::Io { action: "inspect", path: path.into(), source })?;
    if meta.permissions().mode() & 0o077 != 0 {
        log::warn!(
            "{} was readable by other users; its mode is now 0600 — consider rotating the secrets",
            path.display()
        );
        fs::set_permissions(path, fs::Permissions::from_mode(0o600)).map_err(|source| KeyringError::Io {
            action: "chmod",
            path: path.into(),
            source,
        })?;
    }
    Ok(())
}

/// Writes a file readable by the owner only, atomically: temp file, fsync, rename, fsync dir.
pub fn write_private(path: &Path, bytes: &[u8]) -> Result<(), KeyringError> {
    let tmp = path.with_extension("tmp");
    let io = |action, source| KeyringError::Io { action, path: path.into(), source };
    let _ = fs::remove_file(&tmp);
    let mut file =
        OpenOptions::new().write(true).create_new(true).mode(0o600).open(&tmp).map_err(|e| io("create", e))?;
    file.write_all(bytes).map_err(|e| io("write", e))?;
    file.sync_all().map_err(|e| io("sync", e))?;
    fs::rename(&tmp, path).map_err(|e| io("rename", e))?;
    if let Some(dir) = path.parent() {
        fs::File::open(dir).and_then(|d| d.sync_all()).map_err(|e| io("sync directory of", e))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn secrets_are_created_private_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let first = Keyring::load_or_create(dir.path(), None, true).unwrap();
        let mode = fs::metadata(dir.path().join(SECRETS_FILE)).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let second = Keyring::load_or_create(dir.path(), None, true).unwrap();
        assert_eq!(first.admin_secret_base64(), second.admin_secret_base64());
    }

    #[test]
    fn each_token_kind_has_its_own_key() {
        let dir = tempfile::tempdir().unwrap();
        let keys = Keyring::load_or_create(dir.path(), None, true).unwrap();
        let token = keys.key(TokenKind::Access).sign(&json!({"sub": 1}));
        assert!(keys.key(TokenKind::Access).verify(&token, 0).is_ok());
        for other in [TokenKind::Admin, TokenKind::OrgSelection, TokenKind::Refresh] {
            assert!(keys.key(other).verify(&token, 0).is_err());
        }
    }
}
