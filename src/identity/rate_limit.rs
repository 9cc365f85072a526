//! Slows down password guessing. Failed logins are counted in a window per (account, client
//! address), per client address, and per account. Past the limit, the first two refuse further
//! attempts with 429 until the window has passed; the account alone is only slowed down (each
//! attempt waits a little longer, up to a cap), because refusing it would hand anyone who knows a
//! username a way to lock its owner out (OWASP). Never a permanent lock-out. Counters live in
//! memory: a restart forgets them.

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

    /// How long an attempt on `key` waits first: nothing below the limit, then twice as long for
    /// every further failure in the window, from `SLOW_STEP` up to `SLOW_MOST`.
    pub fn slowdown(&self, key: &str) -> Duration {
        let failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        let Some((start, count)) = failures.get(key) else { return Duration::ZERO };
        if *count < self.max_failures || start.elapsed() >= self.window {
            return Duration::ZERO;
        }
        let doublings = (count - self.max_failures).min(16);
        SLOW_STEP.saturating_mul(1 << doublings).min(SLOW_MOST)
    }

    /// A success clears the given counters (the caller leaves out the address's: one good
    /// password must not reset an attacker's count for a whole address).
    pub fn record_success(&self, keys: &[&str]) {
        let mut failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        for key in keys {
            failures.remove(*key);
        }
    }
}

/// The first slow-down step and the longest wait for an account under attack.
const SLOW_STEP: Duration = Duration::from_millis(250);
const SLOW_MOST: Duration = Duration::from_secs(2);

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
        limiter.record_success(&["acct:a"]);
        assert!(limiter.check(&keys).is_ok());
    }

    #[test]
    fn an_account_past_the_limit_is_slowed_down_more_with_every_failure_up_to_a_cap() {
        let limiter = LoginLimiter::new(2, Duration::from_secs(60));
        let key = vec!["acct:a".to_string()];
        limiter.record_failure(&key);
        assert_eq!(limiter.slowdown("acct:a"), Duration::ZERO);
        limiter.record_failure(&key);
        assert_eq!(limiter.slowdown("acct:a"), SLOW_STEP);
        limiter.record_failure(&key);
        assert_eq!(limiter.slowdown("acct:a"), SLOW_STEP * 2);
        for _ in 0..40 {
            limiter.record_failure(&key);
        }
        assert_eq!(limiter.slowdown("acct:a"), SLOW_MOST);
        assert_eq!(limiter.slowdown("acct:b"), Duration::ZERO);
        limiter.record_success(&["acct:a"]);
        assert_eq!(limiter.slowdown("acct:a"), Duration::ZERO);
    }
}
