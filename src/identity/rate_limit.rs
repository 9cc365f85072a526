//! Slows down password guessing: failed logins are counted per account and per client address
//! in a sliding window. Past the limit, attempts are refused with 429 until the window has
//! passed — never a permanent lock-out. Counters live in memory: a restart forgets them.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub struct LoginLimiter {
    max_failures: u32,
    window: Duration,
    failures: Mutex<HashMap<String, (Instant, u32)>>,
}

/// Entries kept before stale ones are swept out.
const SWEEP_AT: usize = 10_000;

impl LoginLimiter {
    pub fn new(max_failures: u32, window: Duration) -> Self {
        LoginLimiter { max_failures, window, failures: Mutex::new(HashMap::new()) }
    }

    /// `Err(seconds)` while any of `keys` is over the limit.
    pub fn check(&self, keys: &[String]) -> Result<(), u64> {
        let failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        let wait = keys
            .iter()
            .filter_map(|k| failures.get(k))
            .filter(|(start, count)| *count >= self.max_failures && now.duration_since(*start) < self.window)
            .map(|(start, _)| (self.window - now.duration_since(*start)).as_secs().max(1))
            .max();
        wait.map_or(Ok(()), Err)
    }

    pub fn record_failure(&self, keys: &[String]) {
        let mut failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        if failures.len() >= SWEEP_AT {
            failures.retain(|_, (start, _)| now.duration_since(*start) < self.window);
        }
        for key in keys {
            let entry = failures.entry(key.clone()).or_insert((now, 0));
            if now.duration_since(entry.0) >= self.window {
                *entry = (now, 0);
            }
            entry.1 += 1;
        }
    }

    /// A success clears the account's counter (not the address's: one good password must not
    /// reset an attacker's count for a whole address).
    pub fn record_success(&self, account_key: &str) {
        self.failures.lock().unwrap_or_else(|p| p.into_inner()).remove(account_key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_limit_applies_within_the_window_only() {
        let limiter = LoginLimiter::new(2, Duration::from_millis(200));
        let keys = vec!["acct:a".to_string()];
        assert!(limiter.check(&keys).is_ok());
        limiter.record_failure(&keys);
        limiter.record_failure(&keys);
        assert!(limiter.check(&keys).is_err());
        std::thread::sleep(Duration::from_millis(250));
        assert!(limiter.check(&keys).is_ok());
        limiter.record_failure(&keys);
        limiter.record_failure(&keys);
        limiter.record_success("acct:a");
        assert!(limiter.check(&keys).is_ok());
    }
}
