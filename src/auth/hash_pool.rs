//! Password hashing is CPU-heavy on purpose. It runs here, on a fixed set of threads (one per
//! core) at idle scheduling priority, behind a bounded queue, so a flood of logins cannot
//! stall the rest of the API: other requests keep their CPU share and the flood gets 503s once
//! the queue is full.

use crate::workers::{Pool, PoolError};

/// How many hashing jobs may wait before new ones are refused.
const MAX_QUEUED: usize = 512;

#[derive(Clone)]
pub struct HashPool(Pool<()>);

/// The pool's queue is full (or it has stopped).
#[derive(Debug)]
pub struct Overloaded;

impl HashPool {
    pub fn start(threads: usize) -> std::io::Result<HashPool> {
        Ok(HashPool(Pool::start("pw-hash", vec![(); threads.max(1)], MAX_QUEUED, || {
            lower_priority("password hashing")
        })?))
    }

    /// Runs `work` on the pool and waits for it without blocking the async worker.
    pub async fn run<T: Send + 'static>(&self, work: impl FnOnce() -> T + Send + 'static) -> Result<T, Overloaded> {
        self.0.run(move |_| work()).await.map_err(|e: PoolError| {
            if e != PoolError::Overloaded {
                log::error!("password hashing: {e}");
            }
            Overloaded
        })
    }
}

/// Puts the calling thread (Linux schedules threads individually) into `SCHED_IDLE`: it runs on
/// any cycle nobody else wants, and any request-handling thread that wakes up takes the CPU from
/// it at once. Plain nice values were measured not to be enough: a woken thread waited out the
/// hashing thread's time slice, which quadrupled the list p99 under a login flood. Where the
/// policy cannot be set, the lowest nice value is the fallback. `what` names the work in the
/// warning; the build engine's pool uses it too.
pub(crate) fn lower_priority(what: &str) {
    // SAFETY: plain syscalls on the calling thread with a valid, zeroed parameter block.
    unsafe {
        let param: libc::sched_param = std::mem::zeroed();
        if libc::sched_setscheduler(0, libc::SCHED_IDLE, &param) != 0 {
            let tid = libc::syscall(libc::SYS_gettid) as libc::id_t;
            if libc::setpriority(libc::PRIO_PROCESS, tid, 19) != 0 {
                log::warn!(
                    "{what} runs at normal priority (a system-call filter denies changing it): \
                     a burst of it will slow other requests"
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[actix_web::test]
    async fn jobs_run_and_return_their_result() {
        let pool = HashPool::start(2).unwrap();
        let results = futures_util::future::join_all((0..8).map(|i| pool.run(move || i * 2))).await;
        let values: Vec<i32> = results.into_iter().map(Result::unwrap).collect();
        assert_eq!(values, vec![0, 2, 4, 6, 8, 10, 12, 14]);
    }
}
