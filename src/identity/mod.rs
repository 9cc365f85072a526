//! Identity and access: organizations, accounts, roles, sessions and API keys, and the check
//! every `/be/v1` request goes through. Handlers call these functions; these call the store.

pub mod accounts;
pub mod audit;
pub mod cache;
pub mod orgs;
pub mod principal;
pub mod rate_limit;
pub mod roles;
pub mod sessions;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::auth::hash_pool::HashPool;
use crate::auth::keyring::Keyring;
use crate::auth::passwords;
use crate::config::Settings;
use crate::error::{ApiError, ApiResult};
use crate::store::{api_keys, Store};
use crate::tasks::Queue;

use self::cache::AuthCache;
use self::principal::Principal;
use self::rate_limit::LoginLimiter;

/// `lastUsed` of an API key is written at most this often per key (not on every request).
const KEY_USE_RESOLUTION: Duration = Duration::from_secs(60);

pub struct Identity {
    pub store: Store,
    pub keyring: Arc<Keyring>,
    pub settings: Arc<Settings>,
    /// Woken after an organization's delete commits together with its prune task.
    pub queue: Queue,
    pub hashing: HashPool,
    pub cache: AuthCache,
    pub limiter: LoginLimiter,
    /// Verified against when a username is unknown, so that costs what a wrong password costs.
    /// Computed in the background at start (it takes as long as a login), not on the start path.
    dummy_hash: Arc<std::sync::OnceLock<String>>,
    key_uses: Mutex<HashMap<String, Instant>>,
    /// Logins refused for wrong credentials since start, for `/metrics`.
    pub login_failures: std::sync::atomic::AtomicU64,
}

pub fn unix_now() -> i64 {
    chrono::Utc::now().timestamp()
}

impl Identity {
    pub fn new(
        store: Store,
        keyring: Arc<Keyring>,
        settings: Arc<Settings>,
        queue: Queue,
    ) -> std::io::Result<Identity> {
        let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2);
        let dummy_hash = Arc::new(std::sync::OnceLock::new());
        let (fill, iterations) = (dummy_hash.clone(), settings.pbkdf2_iterations);
        std::thread::Builder::new().name("dummy-hash".into()).spawn(move || {
            let _ = fill.set(passwords::hash(&passwords::generate(), iterations));
        })?;
        Ok(Identity {
            hashing: HashPool::start(cores)?,
            limiter: LoginLimiter::new(settings.login_max_failures, settings.login_window),
            dummy_hash,
            cache: AuthCache::default(),
            key_uses: Mutex::new(HashMap::new()),
            login_failures: std::sync::atomic::AtomicU64::new(0),
            store,
            keyring,
            settings,
            queue,
        })
    }

    /// Hashes a new password on the hashing pool.
    pub async fn hash_password(&self, password: String) -> ApiResult<String> {
        let iterations = self.settings.pbkdf2_iterations;
        self.hashing.run(move || passwords::hash(&password, iterations)).await.map_err(|_| overloaded())
    }

    /// Checks a password on the hashing pool; with no stored hash it spends the same work anyway.
    pub async fn verify_password(&self, stored: Option<String>, password: String) -> ApiResult<bool> {
        let iterations = self.settings.pbkdf2_iterations;
        let (stored, real) = match stored {
            Some(hash) => (hash, true),
            None => (self.dummy_hash(iterations).await?, false),
        };
        let matched =
            self.hashing.run(move || passwords::verify(&stored, &password)).await.map_err(|_| overloaded())?;
        Ok(real && matched)
    }

    /// The hash an unknown username is checked against. Normally ready (computed at start); if a
    /// login comes first, it is computed on the hashing pool, never on the async worker — a
    /// 600 000-iteration PBKDF2 there would stall every request that worker serves.
    async fn dummy_hash(&self, iterations: u32) -> ApiResult<String> {
        if let Some(hash) = self.dummy_hash.get() {
            return Ok(hash.clone());
        }
        let cell = self.dummy_hash.clone();
        self.hashing
            .run(move || cell.get_or_init(|| passwords::hash(&passwords::generate(), iterations)).clone())
            .await
            .map_err(|_| overloaded())
    }

    /// Records that an API key was used, at most once a minute per key, off the request path.
    fn note_key_use(&self, principal: &Principal) {
        let Some(key_id) = principal.api_key_id.clone() else { return };
        {
            let mut uses = self.key_uses.lock().unwrap_or_else(|p| p.into_inner());
            let now = Instant::now();
            if uses.get(&key_id).is_some_and(|last| now.duration_since(*last) < KEY_USE_RESOLUTION) {
                return;
            }
            if uses.len() > 10_000 {
                uses.clear();
            }
            uses.insert(key_id.clone(), now);
        }
        let store = self.store.clone();
        tokio::spawn(async move {
            if let Err(e) = store.write(move |c| api_keys::touch(c, &key_id)).await {
                log::warn!("cannot record API key use: {e}");
            }
        });
    }
}

fn overloaded() -> ApiError {
    ApiError::Unavailable { message: "too many password checks are queued; try again shortly".into(), retry_after: 2 }
}
