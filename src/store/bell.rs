//! A doorbell between the single writer and a background thread that waits for its rows: the
//! writer rings it after a commit that wrote such rows, the thread sleeps on it with a timeout
//! (the timeout still finds rows that become due later, such as retries at a set time).

use std::sync::{Condvar, Mutex, PoisonError};
use std::time::Duration;

#[derive(Default)]
pub struct Bell {
    /// Bumped on every ring, so a ring between two waits is not lost.
    rings: Mutex<u64>,
    rung: Condvar,
}

impl Bell {
    pub fn ring(&self) {
        *self.rings.lock().unwrap_or_else(PoisonError::into_inner) += 1;
        self.rung.notify_all();
    }

    /// How many times the bell has rung so far: pass it to [`Bell::wait_after`].
    pub fn rings(&self) -> u64 {
        *self.rings.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Waits until the bell rings after `seen` rings, or `timeout` passes; answers the count then.
    pub fn wait_after(&self, seen: u64, timeout: Duration) -> u64 {
        let rings = self.rings.lock().unwrap_or_else(PoisonError::into_inner);
        let (rings, _) = self
            .rung
            .wait_timeout_while(rings, timeout, |rings| *rings == seen)
            .unwrap_or_else(PoisonError::into_inner);
        *rings
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn a_ring_before_the_wait_is_not_lost() {
        let bell = Bell::default();
        let seen = bell.rings();
        bell.ring();
        // Would block for the whole hour if the earlier ring were lost.
        assert_eq!(bell.wait_after(seen, Duration::from_secs(3600)), seen + 1);
    }

    #[test]
    fn a_ring_wakes_a_waiting_thread() {
        let bell = Arc::new(Bell::default());
        let seen = bell.rings();
        let waiter = {
            let bell = bell.clone();
            std::thread::spawn(move || bell.wait_after(seen, Duration::from_secs(3600)))
        };
        bell.ring();
        assert_eq!(waiter.join().unwrap(), seen + 1);
    }

    #[test]
    fn a_wait_without_a_ring_ends_at_the_timeout() {
        let bell = Bell::default();
        assert_eq!(bell.wait_after(0, Duration::from_millis(1)), 0);
    }
}
