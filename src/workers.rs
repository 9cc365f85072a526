//! The one worker-pool type: a fixed set of threads, each owning one context for its whole life
//! (a read-only database connection, or nothing), taking jobs from one bounded queue. Async
//! callers await the answer without blocking their worker; when the queue is full a job is
//! refused at once ([`PoolError::Overloaded`], answered as 503) instead of piling up.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::mpsc::{self, TrySendError};
use std::sync::{Arc, Mutex};

use tokio::sync::oneshot;

type Job<C> = Box<dyn FnOnce(&C) + Send>;

/// Why a job did not give its answer.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum PoolError {
    #[error("the queue is full")]
    Overloaded,
    #[error("the worker threads have stopped")]
    Stopped,
    #[error("the job panicked")]
    Panicked,
}

pub struct Pool<C> {
    queue: mpsc::SyncSender<Job<C>>,
}

impl<C> Clone for Pool<C> {
    fn clone(&self) -> Self {
        Pool { queue: self.queue.clone() }
    }
}

impl<C: Send + 'static> Pool<C> {
    /// Starts one thread per context, named `<name>-<i>`; each first runs `on_start` (e.g. to
    /// lower its priority). At most `max_queued` jobs wait.
    pub fn start(name: &str, contexts: Vec<C>, max_queued: usize, on_start: fn()) -> std::io::Result<Pool<C>> {
        let (queue, jobs) = mpsc::sync_channel::<Job<C>>(max_queued);
        let jobs = Arc::new(Mutex::new(jobs));
        for (i, context) in contexts.into_iter().enumerate() {
            let jobs = jobs.clone();
            std::thread::Builder::new().name(format!("{name}-{i}")).spawn(move || {
                on_start();
                loop {
                    // The lock is held only while waiting for the next job, never while one runs.
                    let job = match jobs.lock() {
                        Ok(rx) => rx.recv(),
                        Err(_) => return,
                    };
                    match job {
                        Ok(job) => job(&context),
                        Err(_) => return,
                    }
                }
            })?;
        }
        Ok(Pool { queue })
    }

    /// Runs `work` on one of the threads with its context.
    pub async fn run<T: Send + 'static>(&self, work: impl FnOnce(&C) -> T + Send + 'static) -> Result<T, PoolError> {
        let (reply, answer) = oneshot::channel();
        let job: Job<C> = Box::new(move |context| {
            let outcome = catch_unwind(AssertUnwindSafe(|| work(context))).map_err(|_| PoolError::Panicked);
            let _ = reply.send(outcome);
        });
        match self.queue.try_send(job) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => return Err(PoolError::Overloaded),
            Err(TrySendError::Disconnected(_)) => return Err(PoolError::Stopped),
        }
        answer.await.map_err(|_| PoolError::Stopped)?
    }
}

/// For pools whose threads need no set-up.
pub fn no_setup() {}

#[cfg(test)]
mod tests {
    use super::*;

    #[actix_web::test]
    async fn jobs_run_on_their_threads_context() {
        let pool = Pool::start("t", vec![10, 10], 8, no_setup).unwrap();
        let results = futures_util::future::join_all((0..8).map(|i| pool.run(move |base: &i32| base + i))).await;
        let values: Vec<i32> = results.into_iter().map(Result::unwrap).collect();
        assert_eq!(values, (10..18).collect::<Vec<_>>());
    }

    #[actix_web::test]
    async fn a_full_queue_refuses_at_once() {
        use futures_util::FutureExt;
        let pool = Pool::start("t", vec![()], 1, no_setup).unwrap();
        let (release, hold) = std::sync::mpsc::channel::<()>();
        let (started_tx, started) = std::sync::mpsc::channel::<()>();
        // The one thread is busy until released (a job is queued on the future's first poll) …
        let mut busy = Box::pin(pool.run(move |_| {
            started_tx.send(()).unwrap();
            hold.recv().unwrap();
        }));
        assert!((&mut busy).now_or_never().is_none());
        started.recv_timeout(std::time::Duration::from_secs(60)).expect("the job started");
        // … one job may wait, the next is refused.
        let mut waiting = Box::pin(pool.run(|_| 1));
        assert!((&mut waiting).now_or_never().is_none());
        assert_eq!(pool.run(|_| 2).await, Err(PoolError::Overloaded));
        release.send(()).unwrap();
        busy.await.unwrap();
        assert_eq!(waiting.await, Ok(1));
    }

    #[actix_web::test]
    async fn a_panicking_job_is_an_error_and_the_thread_lives_on() {
        let pool = Pool::start("t", vec![()], 4, no_setup).unwrap();
        assert_eq!(pool.run(|_| -> i32 { panic!("bug") }).await, Err(PoolError::Panicked));
        assert_eq!(pool.run(|_| 3).await, Ok(3));
    }
}
