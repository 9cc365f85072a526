//! The engine's CPU work (chunk hashing and compression, deltas) runs here: a fixed set of
//! threads at idle scheduling priority, as password hashing does (`auth::hash_pool`), so an
//! import on a 2-core box takes only cycles the API does not want. The queue is bounded, which
//! keeps memory bounded whatever the build size; when it is full, the producer runs the job
//! itself instead of waiting (measured on a busy 2-core box: blocking on a full queue left the
//! producer idle more than half of the import). For the same reason a thread waiting for queued
//! jobs runs those no worker has started yet itself: a patch waiting for workers stalled.
//! The producer is a task's engine thread, itself at idle priority ([`at_idle_priority`]): at
//! normal priority it took a core's fair share from the API (list p99 3.4× idle during an
//! import on a quiet 2-core box; 1.2–2.6× with the producer at idle priority).

use std::sync::{mpsc, Arc, Condvar, Mutex};

use super::error::{EngineError, Result};

type Job = Box<dyn FnOnce() + Send>;
/// A queued job: run by a worker or by the thread waiting for it, whichever takes it first.
type Ticket = Arc<Mutex<Option<Job>>>;

/// Takes the job out of its ticket unless someone else did.
fn take(ticket: &Ticket) -> Option<Job> {
    ticket.lock().ok().and_then(|mut job| job.take())
}

/// The result of a job started by [`WorkPool::submit`].
pub struct Pending<T> {
    ticket: Ticket,
    result: mpsc::Receiver<Result<T>>,
}

impl<T> Pending<T> {
    /// Runs the job on this thread if no worker has started it yet; whether it did.
    pub fn run_if_waiting(&self) -> bool {
        take(&self.ticket).map(|job| job()).is_some()
    }

    /// The job's result, running it here first if no worker has started it.
    pub fn wait(self) -> Result<T> {
        self.run_if_waiting();
        self.result.recv().map_err(|_| EngineError::Invalid("an engine job panicked or the pool stopped".into()))?
    }
}

impl<T> Drop for Pending<T> {
    /// A result nobody will collect (the caller failed or was cancelled): a job not started yet
    /// is dropped instead of costing a worker its time.
    fn drop(&mut self) {
        drop(take(&self.ticket));
    }
}

/// A bounded pool of low-priority worker threads. Cheap to clone.
#[derive(Clone)]
pub struct WorkPool {
    queue: mpsc::SyncSender<Ticket>,
    threads: usize,
}

impl WorkPool {
    /// Starts `threads` workers (at least one). The queue holds two jobs per worker.
    pub fn start(threads: usize) -> std::io::Result<WorkPool> {
        let threads = threads.max(1);
        let (queue, jobs) = mpsc::sync_channel::<Ticket>(threads * 2);
        let jobs = Arc::new(Mutex::new(jobs));
        for i in 0..threads {
            let jobs = jobs.clone();
            std::thread::Builder::new().name(format!("engine-{i}")).spawn(move || {
                crate::auth::hash_pool::lower_priority();
                loop {
                    let job = match jobs.lock() {
                        Ok(rx) => rx.recv(),
                        Err(_) => return,
                    };
                    match job {
                        // A panicking job must not take the worker with it.
                        Ok(ticket) => {
                            if let Some(job) = take(&ticket) {
                                drop(std::panic::catch_unwind(std::panic::AssertUnwindSafe(job)))
                            }
                        }
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
        Batch {
            pool: self.clone(),
            state: Arc::new((Mutex::new(BatchState::default()), Condvar::new())),
            queued: Mutex::new(Vec::new()),
        }
    }

    /// Starts one job whose result the caller collects later: on the pool, or on the calling
    /// thread at once when the pool's queue is full (see the module comment).
    pub fn submit<T: Send + 'static>(&self, work: impl FnOnce() -> Result<T> + Send + 'static) -> Result<Pending<T>> {
        let (tx, result) = mpsc::sync_channel(1);
        // Caught here, not only by the worker: the job may run on the caller's thread.
        let job = move || {
            let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(work))
                .unwrap_or_else(|_| Err(EngineError::Invalid("an engine job panicked".into())));
            drop(tx.send(outcome));
        };
        let ticket: Ticket = Arc::new(Mutex::new(Some(Box::new(job))));
        self.enqueue(ticket.clone())?;
        Ok(Pending { ticket, result })
    }

    /// Runs one job on the pool (on the caller only when the queue is full) and waits for its
    /// result without taking it over: for work that must run at the pool's priority.
    pub fn run<T: Send + 'static>(&self, work: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
        let pending = self.submit(work)?;
        pending.result.recv().map_err(|_| EngineError::Invalid("an engine job panicked or the pool stopped".into()))?
    }

    /// Queues a ticket, or runs its job here when the queue is full.
    fn enqueue(&self, ticket: Ticket) -> Result<()> {
        match self.queue.try_send(ticket) {
            Ok(()) => Ok(()),
            Err(mpsc::TrySendError::Full(ticket)) => {
                if let Some(job) = take(&ticket) {
                    job();
                }
                Ok(())
            }
            Err(mpsc::TrySendError::Disconnected(_)) => Err(stopped()),
        }
    }
}

/// Runs `work` on a thread of its own at idle scheduling priority and returns its result: for a
/// task's whole engine run (chunking, image, patches), so the thread that feeds the pool, and
/// runs its jobs itself when the queue is full, yields the CPU to any request-handling thread
/// the moment one wakes up, as the pool's workers do. A thread of its own, because an
/// unprivileged thread can lower its priority but never raise it again; the task worker that
/// waits here keeps its normal priority for the next task. The cost is the guarantee the
/// normal-priority producer used to give: on a box whose API keeps every core busy, an import
/// now waits for cycles the API leaves (the contract: compression never starves the API).
pub fn at_idle_priority<T: Send>(work: impl FnOnce() -> T + Send) -> T {
    let work = Mutex::new(Some(work));
    let take_work = || work.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).take();
    std::thread::scope(|scope| {
        let spawned = std::thread::Builder::new().name("engine-task".into()).spawn_scoped(scope, || {
            crate::auth::hash_pool::lower_priority();
            take_work().map(|work| work())
        });
        let ran = match spawned {
            Ok(handle) => handle.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic)),
            Err(_) => None,
        };
        // No thread to be had (a process limit): the work still runs, at this thread's priority.
        ran.unwrap_or_else(|| take_work().map(|work| work()).expect("the work ran on neither thread"))
    })
}

fn stopped() -> EngineError {
    EngineError::Invalid("the engine pool has stopped".into())
}

#[derive(Default)]
struct BatchState {
    pending: usize,
    error: Option<EngineError>,
    /// The error was already handed out by `spawn`; `wait` must still fail.
    error_taken: bool,
}

pub struct Batch {
    pool: WorkPool,
    state: Arc<(Mutex<BatchState>, Condvar)>,
    /// Tickets of queued jobs, for `wait` to run those no worker has started.
    queued: Mutex<Vec<Ticket>>,
}

impl Batch {
    /// Queues a job, or runs it on the calling thread when the pool's queue is full. Fails early
    /// with the first error a job of this batch returned, so a producer stops feeding work that
    /// is bound to be wasted.
    pub fn spawn(&self, work: impl FnOnce() -> Result<()> + Send + 'static) -> Result<()> {
        {
            let mut st = self.state.0.lock().map_err(|_| stopped())?;
            if let Some(e) = st.error.take() {
                st.error_taken = true;
                return Err(e);
            }
            st.pending += 1;
        }
        let state = self.state.clone();
        let job: Job = Box::new(move || {
            // A panic still counts the job as done, so `wait` cannot hang on it.
            let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(work))
                .unwrap_or_else(|_| Err(EngineError::Invalid("an engine job panicked".into())));
            let (lock, cv) = &*state;
            if let Ok(mut st) = lock.lock() {
                st.pending -= 1;
                if let Err(e) = outcome {
                    st.error.get_or_insert(e);
                }
                cv.notify_all();
            }
        });
        let ticket: Ticket = Arc::new(Mutex::new(Some(job)));
        if let Err(e) = self.pool.enqueue(ticket.clone()) {
            if let Ok(mut st) = self.state.0.lock() {
                st.pending -= 1;
            }
            return Err(e);
        }
        let mut queued = self.queued.lock().map_err(|_| stopped())?;
        // Forget the tickets already taken, so the list stays as short as the queue.
        if queued.len() >= 64 {
            queued.retain(|t| t.lock().map(|job| job.is_some()).unwrap_or(false));
        }
        queued.push(ticket);
        Ok(())
    }

    /// Waits until every job of the batch finished; the first error, if any.
    pub fn wait(self) -> Result<()> {
        let queued = std::mem::take(&mut *self.queued.lock().map_err(|_| stopped())?);
        for ticket in &queued {
            if let Some(job) = take(ticket) {
                job();
            }
        }
        let (lock, cv) = &*self.state;
        let mut st = lock.lock().map_err(|_| stopped())?;
        while st.pending > 0 {
            st = cv.wait(st).map_err(|_| stopped())?;
        }
        match st.error.take() {
            Some(e) => Err(e),
            None if st.error_taken => Err(EngineError::Invalid("a job of this batch failed (reported earlier)".into())),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn work_at_idle_priority_runs_on_an_idle_thread_and_leaves_the_caller_as_it_was() {
        // SAFETY: reads the calling thread's scheduling policy.
        let policy = || unsafe { libc::sched_getscheduler(0) };
        let before = policy();
        let caller = std::thread::current().id();
        // SAFETY: reads the calling thread's nice value.
        let nice = || unsafe { libc::getpriority(libc::PRIO_PROCESS, 0) };
        let (policy_inside, nice_inside, thread_inside) =
            at_idle_priority(|| (policy(), nice(), std::thread::current().id()));
        assert!(policy_inside == libc::SCHED_IDLE || nice_inside == 19, "policy {policy_inside}, nice {nice_inside}");
        assert_ne!(thread_inside, caller, "a thread of its own: the caller could never raise its priority again");
        assert_eq!(policy(), before);
    }

    #[test]
    fn a_panic_at_idle_priority_reaches_the_caller() {
        let caught = std::panic::catch_unwind(|| at_idle_priority(|| panic!("engine bug")));
        assert!(caught.is_err());
    }

    #[test]
    fn jobs_run_at_idle_priority_and_a_batch_reports_the_first_error() {
        let pool = WorkPool::start(2).unwrap();
        // SAFETY: plain queries about the calling (worker) thread.
        let (policy, nice) = pool
            .run(|| Ok(unsafe { (libc::sched_getscheduler(0), libc::getpriority(libc::PRIO_PROCESS, 0)) }))
            .unwrap();
        assert!(policy == libc::SCHED_IDLE || nice == 19, "policy {policy}, nice {nice}");

        let batch = pool.batch();
        let mut refused = None;
        for i in 0..64 {
            let job = move || if i == 5 { Err(EngineError::Invalid("job 5".into())) } else { Ok(()) };
            if let Err(e) = batch.spawn(job) {
                refused = Some(e.to_string());
                break;
            }
        }
        let waited = batch.wait().unwrap_err().to_string();
        // The real error comes out once, from whichever call saw it first; both calls fail.
        match refused {
            Some(first) => assert_eq!(
                (first.as_str(), waited.as_str()),
                ("job 5", "a job of this batch failed (reported earlier)")
            ),
            None => assert_eq!(waited, "job 5"),
        }
    }

    #[test]
    fn a_batch_still_progresses_on_the_callers_thread_when_the_workers_are_held_up() {
        let pool = WorkPool::start(1).unwrap();
        // Hold the only worker until the batch is queued: a full queue must not block the caller.
        let (release, held) = mpsc::channel::<()>();
        let (started, worker_busy) = mpsc::channel::<()>();
        let blocker = pool.submit(move || {
            started.send(()).ok();
            held.recv().ok();
            Ok(())
        });
        worker_busy.recv().unwrap();
        let caller = std::thread::current().id();
        let ran_here = Arc::new(Mutex::new(0usize));
        let batch = pool.batch();
        for _ in 0..8 {
            let ran_here = ran_here.clone();
            batch
                .spawn(move || {
                    if std::thread::current().id() == caller {
                        *ran_here.lock().unwrap() += 1;
                    }
                    Ok(())
                })
                .unwrap();
        }
        // The queue holds two jobs: the other six ran on this thread while the worker was held.
        assert_eq!(*ran_here.lock().unwrap(), 6);
        // Waiting runs the two queued jobs here too: the held worker never gets to them.
        batch.wait().unwrap();
        assert_eq!(*ran_here.lock().unwrap(), 8);
        release.send(()).unwrap();
        blocker.unwrap().wait().unwrap();
    }

    #[test]
    fn a_panicking_job_run_by_its_waiter_fails_its_result_not_the_waiting_thread() {
        let pool = WorkPool::start(1).unwrap();
        let (release, held) = mpsc::channel::<()>();
        let (started, worker_busy) = mpsc::channel::<()>();
        let blocker = pool
            .submit(move || {
                started.send(()).ok();
                held.recv().ok();
                Ok(())
            })
            .unwrap();
        worker_busy.recv().unwrap();
        // The worker is held, so this job runs on the waiting thread.
        let pending = pool.submit(|| -> Result<()> { panic!("bug") }).unwrap();
        assert_eq!(pending.wait().unwrap_err().to_string(), "an engine job panicked");
        release.send(()).unwrap();
        blocker.wait().unwrap();
    }

    #[test]
    fn a_panicking_job_fails_its_batch_and_the_pool_keeps_working() {
        let pool = WorkPool::start(1).unwrap();
        let batch = pool.batch();
        batch.spawn(|| panic!("boom")).unwrap();
        assert_eq!(batch.wait().unwrap_err().to_string(), "an engine job panicked");
        assert_eq!(pool.run(|| Ok(7)).unwrap(), 7);
    }
}
