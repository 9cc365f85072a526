//! The engine's CPU work (chunk compression, deltas) runs here: a fixed set of threads at idle
//! scheduling priority, as password hashing does (`auth::hash_pool`), so an import on a 2-core
//! box takes only cycles the API does not want. The queue is bounded: a producer that runs ahead
//! blocks, which keeps memory bounded whatever the build size.

use std::sync::{mpsc, Arc, Condvar, Mutex};

use super::error::{EngineError, Result};

type Job = Box<dyn FnOnce() + Send>;

/// A bounded pool of low-priority worker threads. Cheap to clone.
#[derive(Clone)]
pub struct WorkPool {
    queue: mpsc::SyncSender<Job>,
    threads: usize,
}

impl WorkPool {
    /// Starts `threads` workers (at least one). The queue holds two jobs per worker.
    pub fn start(threads: usize) -> std::io::Result<WorkPool> {
        let threads = threads.max(1);
        let (queue, jobs) = mpsc::sync_channel::<Job>(threads * 2);
        let jobs = Arc::new(Mutex::new(jobs));
        for i in 0..threads {
            let jobs = jobs.clone();
            std::thread::Builder::new().name(format!("engine-{i}")).spawn(move || {
                crate::auth::hash_pool::lower_priority("build compression");
                loop {
                    let job = match jobs.lock() {
                        Ok(rx) => rx.recv(),
                        Err(_) => return,
                    };
                    match job {
                        Ok(job) => job(),
                        Err(_) => return,
                    }
                }
            })?;
        }
        Ok(WorkPool { queue, threads })
    }

    pub fn threads(&self) -> usize {
        self.threads
    }

    /// A group of jobs whose completion and first error the caller waits for.
    pub fn batch(&self) -> Batch {
        Batch { pool: self.clone(), state: Arc::new((Mutex::new(BatchState::default()), Condvar::new())) }
    }

    /// Runs one job on the pool and waits for its result.
    pub fn run<T: Send + 'static>(&self, work: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
        let (tx, rx) = mpsc::channel();
        self.queue.send(Box::new(move || drop(tx.send(work())))).map_err(|_| stopped())?;
        rx.recv().map_err(|_| stopped())?
    }
}

fn stopped() -> EngineError {
    EngineError::Invalid("the engine pool has stopped".into())
}

#[derive(Default)]
struct BatchState {
    pending: usize,
    error: Option<EngineError>,
}

pub struct Batch {
    pool: WorkPool,
    state: Arc<(Mutex<BatchState>, Condvar)>,
}

impl Batch {
    /// Queues a job; blocks while the pool's queue is full. Fails early with the first error a
    /// job of this batch returned, so a producer stops feeding work that is bound to be wasted.
    pub fn spawn(&self, work: impl FnOnce() -> Result<()> + Send + 'static) -> Result<()> {
        {
            let mut st = self.state.0.lock().map_err(|_| stopped())?;
            if let Some(e) = st.error.take() {
                return Err(e);
            }
            st.pending += 1;
        }
        let state = self.state.clone();
        let job: Job = Box::new(move || {
            let outcome = work();
            let (lock, cv) = &*state;
            if let Ok(mut st) = lock.lock() {
                st.pending -= 1;
                if let Err(e) = outcome {
                    st.error.get_or_insert(e);
                }
                cv.notify_all();
            }
        });
        self.pool.queue.send(job).map_err(|_| stopped())
    }

    /// Waits until every job of the batch finished; the first error, if any.
    pub fn wait(self) -> Result<()> {
        let (lock, cv) = &*self.state;
        let mut st = lock.lock().map_err(|_| stopped())?;
        while st.pending > 0 {
            st = cv.wait(st).map_err(|_| stopped())?;
        }
        match st.error.take() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}
