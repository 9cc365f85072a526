//! The per-request authentication cache, invalidated exactly.
//!
//! Resolving a caller needs its session (or API key), account and the union of its roles. The
//! answer is cached, stamped with the auth epoch it was read under. Every write that can change
//! an answer (logout, revocation, deletion, role or password change) bumps the epoch after it
//! commits and before it answers, so no request that starts after such a change can see an entry
//! from before it. A fill that raced with a bump carries the old stamp and is never used.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use super::principal::Principal;

/// Past this many entries the cache starts over instead of growing without bound.
const MAX_ENTRIES: usize = 50_000;

/// A cached answer: the epoch it was read under, the caller, and the second it stops being valid
/// (an access token's `exp`).
type Entry = (u64, Arc<Principal>, i64);

#[derive(Default)]
pub struct AuthCache {
    epoch: AtomicU64,
    entries: RwLock<HashMap<String, Entry>>,
}

impl AuthCache {
    /// The epoch to stamp a fill with; read it before reading the database.
    pub fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::Acquire)
    }

    /// The cached caller for `key`, if it was read under the current epoch and is valid at `now`.
    pub fn get(&self, key: &str, now: i64) -> Option<Arc<Principal>> {
        let entries = self.entries.read().unwrap_or_else(|p| p.into_inner());
        let (stamp, principal, valid_until) = entries.get(key)?;
        (*stamp == self.epoch() && now < *valid_until).then(|| principal.clone())
    }

    pub fn put(&self, key: String, stamp: u64, principal: Arc<Principal>, valid_until: i64) {
        if stamp != self.epoch() {
            return;
        }
        let mut entries = self.entries.write().unwrap_or_else(|p| p.into_inner());
        if entries.len() >= MAX_ENTRIES {
            entries.clear();
        }
        entries.insert(key, (stamp, principal, valid_until));
    }

    /// Makes every cached answer stale. Call after the change has committed.
    pub fn invalidate_all(&self) {
        self.epoch.fetch_add(1, Ordering::AcqRel);
        self.entries.write().unwrap_or_else(|p| p.into_inner()).clear();
    }
}
