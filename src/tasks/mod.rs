//! The durable task queue: tasks live in SQLite, worker threads claim them one at a time through
//! the single writer, every state change is committed before the next step, and tasks a crash
//! left `running` are taken up again at start.
//!
//! The queue is generic: a task type is a name plus a [`TaskHandler`]; it knows nothing of builds.

pub mod hello;
pub mod prune;

use std::collections::HashMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tokio::sync::oneshot;

use crate::instance::MaintenanceSwitch;
use crate::store::tasks::{self as task_rows, NewTask, Progress, Task};
use crate::store::{Store, StoreResult};

/// Why a task did not succeed; `exception` is what the API shows.
#[derive(Debug)]
pub struct TaskFailure {
    pub exception: Value,
    /// Worth another attempt (a network hiccup), as opposed to bad input.
    pub retryable: bool,
}

/// The work of one task type.
pub trait TaskHandler: Send + Sync {
    fn run(&self, ctx: &TaskContext) -> Result<Value, TaskFailure>;
}

/// What a handler may do while it runs: read its task, report progress and warnings.
pub struct TaskContext<'a> {
    pub task: &'a Task,
    pub store: &'a Store,
    /// Where published files live locally (`<state>/depot`).
    pub depot: &'a std::path::Path,
}

impl TaskContext<'_> {
    pub fn progress(&self, done: i64, total: i64) -> StoreResult<()> {
        let id = self.task.id;
        self.store.write_blocking(move |c| task_rows::set_progress(c, id, &Progress { done, total }))
    }

    pub fn warn(&self, warning: Value) -> StoreResult<()> {
        let id = self.task.id;
        self.store.write_blocking(move |c| task_rows::add_warning(c, id, &warning))
    }
}

type Waiters = HashMap<i64, Vec<oneshot::Sender<()>>>;

/// Shared handle to the queue: submit, wait, start and stop workers.
#[derive(Clone)]
pub struct Queue {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    depot: std::path::PathBuf,
    handlers: HashMap<&'static str, Arc<dyn TaskHandler>>,
    maintenance: Arc<MaintenanceSwitch>,
    /// Bumped on every submit; workers sleep on it instead of polling hard.
    wake: (Mutex<u64>, Condvar),
    waiters: Mutex<Waiters>,
    stopping: AtomicBool,
}

/// Idle workers look for due retries at least this often.
const IDLE_POLL: Duration = Duration::from_millis(500);

impl Queue {
    pub fn new(store: Store, depot: std::path::PathBuf, maintenance: Arc<MaintenanceSwitch>) -> Self {
        let mut handlers: HashMap<&'static str, Arc<dyn TaskHandler>> = HashMap::new();
        handlers.insert(hello::TYPE, Arc::new(hello::Hello));
        handlers.insert(prune::TYPE, Arc::new(prune::Prune));
        Queue {
            inner: Arc::new(Inner {
                store,
                depot,
                handlers,
                maintenance,
                wake: (Mutex::new(0), Condvar::new()),
                waiters: Mutex::new(HashMap::new()),
                stopping: AtomicBool::new(false),
            }),
        }
    }

    /// Stores a new task and wakes a worker for it.
    pub async fn submit(&self, task: NewTask) -> StoreResult<Task> {
        let task = self.inner.store.write(move |c| task_rows::insert(c, &task)).await?;
        self.wake_workers();
        Ok(task)
    }

    /// Waits until the task has ended (done, failed or expired) or `timeout` passes; answers its
    /// latest state either way.
    pub async fn wait(&self, task_id: i64, timeout: Duration) -> StoreResult<Option<Task>> {
        let (tx, rx) = oneshot::channel();
        self.lock_waiters().entry(task_id).or_default().push(tx);
        // The task may have ended before we registered: look once before sleeping.
        let current = self.inner.store.read(move |c| task_rows::get_by_id(c, task_id)).await?;
        if current.as_ref().is_some_and(|t| is_final(&t.status)) {
            return Ok(current);
        }
        let _ = tokio::time::timeout(timeout, rx).await;
        self.inner.store.read(move |c| task_rows::get_by_id(c, task_id)).await
    }

    /// Moves tasks a crash left running back to the queue. Run once at start, before workers.
    pub fn recover(&self) -> StoreResult<usize> {
        self.inner.store.write_blocking(task_rows::requeue_interrupted)
    }

    /// Starts `count` worker threads.
    pub fn start_workers(&self, count: usize) -> std::io::Result<Vec<JoinHandle<()>>> {
        (0..count)
            .map(|i| {
                let queue = self.clone();
                std::thread::Builder::new().name(format!("task-worker-{i}")).spawn(move || queue.work())
            })
            .collect()
    }

    /// Asks workers to stop after their current task and waits for them up to `grace`. A task
    /// still running then stays `running` in the database and is resumed at the next start.
    pub fn shutdown(&self, workers: Vec<JoinHandle<()>>, grace: Duration) {
        self.inner.stopping.store(true, Ordering::SeqCst);
        self.wake_workers();
        let deadline = Instant::now() + grace;
        for worker in workers {
            while !worker.is_finished() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            if worker.is_finished() {
                let _ = worker.join();
            }
        }
    }

    /// Wakes sleeping workers, e.g. after maintenance mode ends.
    pub fn wake_workers(&self) {
        let (lock, cvar) = &self.inner.wake;
        *lock.lock().unwrap_or_else(|p| p.into_inner()) += 1;
        cvar.notify_all();
    }

    fn lock_waiters(&self) -> std::sync::MutexGuard<'_, Waiters> {
        self.inner.waiters.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn work(&self) {
        let inner = &self.inner;
        while !inner.stopping.load(Ordering::SeqCst) {
            let seen = *inner.wake.0.lock().unwrap_or_else(|p| p.into_inner());
            let in_maintenance = inner.maintenance.is_on();
            match inner.store.write_blocking(move |c| task_rows::claim_next(c, in_maintenance)) {
                Ok(Some(task)) => self.run_one(task),
                Ok(None) => self.sleep_unless_woken(seen),
                Err(e) => {
                    log::error!("task queue: cannot claim a task: {e}");
                    self.sleep_unless_woken(seen);
                }
            }
        }
    }

    fn sleep_unless_woken(&self, seen: u64) {
        let (lock, cvar) = &self.inner.wake;
        let guard = lock.lock().unwrap_or_else(|p| p.into_inner());
        if *guard == seen {
            let _ = cvar.wait_timeout(guard, IDLE_POLL);
        }
    }

    fn run_one(&self, task: Task) {
        let inner = &self.inner;
        log::info!("task {} ({}) started, attempt {}", task.name, task.kind, task.attempts);
        let outcome = match inner.handlers.get(task.kind.as_str()) {
            None => Err(TaskFailure {
                exception: json!({"message": format!("unknown task type `{}`", task.kind)}),
                retryable: false,
            }),
            Some(handler) => {
                let ctx = TaskContext { task: &task, store: &inner.store, depot: &inner.depot };
                catch_unwind(AssertUnwindSafe(|| handler.run(&ctx))).unwrap_or_else(|_| {
                    Err(TaskFailure { exception: json!({"message": "the task handler crashed"}), retryable: false })
                })
            }
        };
        let id = task.id;
        let mut ended = true;
        let saved = match outcome {
            Ok(output) => {
                log::info!("task {} done", task.name);
                inner.store.write_blocking(move |c| task_rows::complete(c, id, &output))
            }
            Err(failure) => {
                let retry_at = (failure.retryable && task.attempts < task.max_attempts).then(|| {
                    let delay = chrono::Duration::seconds(2i64.pow(task.attempts.clamp(0, 8) as u32));
                    (chrono::Utc::now() + delay).to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
                });
                ended = retry_at.is_none();
                log::warn!("task {} failed (attempt {}), retry: {}", task.name, task.attempts, !ended);
                inner.store.write_blocking(move |c| task_rows::fail(c, id, &failure.exception, retry_at.as_deref()))
            }
        };
        if let Err(e) = saved {
            log::error!("task {}: cannot record its outcome: {e}", task.name);
        }
        if !ended {
            return;
        }
        for waiter in self.lock_waiters().remove(&id).unwrap_or_default() {
            let _ = waiter.send(());
        }
    }
}

/// Whether a status is an end state.
pub fn is_final(status: &str) -> bool {
    matches!(status, "done" | "failed" | "expired")
}
