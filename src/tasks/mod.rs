//! The durable task queue: tasks live in SQLite, worker threads claim them one at a time through
//! the single writer, every state change is committed before the next step, and tasks a crash
//! left `running` are taken up again at start.
//!
//! The queue is generic: a task type is a name plus a [`TaskHandler`]; it knows nothing of builds.

pub mod builds;
pub mod commit;
pub mod export;
pub mod faststart;
pub mod hello;
pub mod prune;
pub mod redact;
pub mod sync;
pub mod webhooks;

use std::collections::HashMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tokio::sync::oneshot;

use crate::domain::kinds::TaskStatus;
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

/// A failure with only a human `message`.
pub(crate) fn failure(message: impl Into<String>, retryable: bool) -> TaskFailure {
    TaskFailure { exception: json!({"message": message.into()}), retryable }
}

/// The database failed under the task: worth another attempt.
pub(crate) fn store_failure(e: crate::store::StoreError) -> TaskFailure {
    failure(format!("database: {e}"), true)
}

/// A local file operation failed: only the error kind, the OS message may name a path.
pub(crate) fn io_failure(what: &str, e: std::io::Error) -> TaskFailure {
    failure(format!("{what} failed ({})", e.kind()), true)
}

/// The work of one task type.
pub trait TaskHandler: Send + Sync {
    fn run(&self, ctx: &TaskContext) -> Result<Value, TaskFailure>;

    /// Runs in the transaction that records the task as done, so what follows from it (the next
    /// task of a chain, a committed build) exists exactly when the task is done. An error rolls
    /// both back and the task is retried.
    fn on_done(&self, _conn: &rusqlite::Connection, _task: &Task, _output: &Value) -> StoreResult<()> {
        Ok(())
    }

    /// Runs in the transaction that records the task's final failure (no retry follows).
    fn on_failed(&self, _conn: &rusqlite::Connection, _task: &Task, _exception: &Value) -> StoreResult<()> {
        Ok(())
    }
}

/// What a handler may do while it runs: read its task, report progress and warnings.
pub struct TaskContext<'a> {
    pub task: &'a Task,
    pub store: &'a Store,
    /// Where published files live locally (`<state>/depot`).
    pub depot: &'a std::path::Path,
    paths: &'a redact::StatePaths,
}

impl TaskContext<'_> {
    pub fn progress(&self, done: i64, total: i64) -> StoreResult<()> {
        let id = self.task.id;
        self.store.write_blocking(move |c| task_rows::set_progress(c, id, &Progress { done, total }))
    }

    pub fn warn(&self, warning: Value) -> StoreResult<()> {
        let id = self.task.id;
        let warning = self.paths.relative_message(warning);
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
    /// Shows state paths in exceptions and warnings relative to the state directory.
    paths: redact::StatePaths,
    handlers: HashMap<&'static str, Arc<dyn TaskHandler>>,
    maintenance: Arc<MaintenanceSwitch>,
    /// Bumped on every submit; workers sleep on it instead of polling hard.
    wake: (Mutex<u64>, Condvar),
    waiters: Mutex<Waiters>,
    stopping: AtomicBool,
}

/// Idle workers look for due retries at least this often.
const IDLE_POLL: Duration = Duration::from_millis(500);

/// The task types every server runs that need nothing but the store and the depot.
pub fn standard_handlers() -> Vec<(&'static str, Arc<dyn TaskHandler>)> {
    vec![(hello::TYPE, Arc::new(hello::Hello))]
}

/// The task types that write to or remove from publish targets.
pub fn publishing_handlers(env: Arc<crate::publish::PublishEnv>) -> Vec<(&'static str, Arc<dyn TaskHandler>)> {
    vec![
        (prune::TYPE, Arc::new(prune::Prune(env.clone()))),
        (sync::TYPE, Arc::new(sync::Sync(env.clone()))),
        (commit::TYPE, Arc::new(commit::Commit(env))),
    ]
}

impl Queue {
    pub fn new(store: Store, depot: std::path::PathBuf, maintenance: Arc<MaintenanceSwitch>) -> Self {
        Queue::with_handlers(store, depot, maintenance, standard_handlers())
    }

    /// A queue that knows exactly these task types.
    pub fn with_handlers(
        store: Store,
        depot: std::path::PathBuf,
        maintenance: Arc<MaintenanceSwitch>,
        handlers: Vec<(&'static str, Arc<dyn TaskHandler>)>,
    ) -> Self {
        let handlers: HashMap<&'static str, Arc<dyn TaskHandler>> = handlers.into_iter().collect();
        Queue {
            inner: Arc::new(Inner {
                store,
                paths: redact::StatePaths::new(depot.parent().unwrap_or(&depot)),
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
        if current.as_ref().is_some_and(|t| t.status.is_final()) {
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
            match self.claim() {
                Ok(Some(task)) => self.run_one(task),
                Ok(None) => self.sleep_unless_woken(seen),
                Err(e) => {
                    log::error!("task queue: cannot claim a task: {e}");
                    self.sleep_unless_woken(seen);
                }
            }
        }
    }

    /// Takes the next runnable task (only maintenance tasks while in maintenance mode).
    fn claim(&self) -> StoreResult<Option<Task>> {
        let in_maintenance = self.inner.maintenance.is_on();
        self.inner.store.write_blocking(move |c| task_rows::claim_next(c, in_maintenance))
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
                let ctx = TaskContext { task: &task, store: &inner.store, depot: &inner.depot, paths: &inner.paths };
                catch_unwind(AssertUnwindSafe(|| handler.run(&ctx))).unwrap_or_else(|_| {
                    Err(TaskFailure { exception: json!({"message": "the task handler crashed"}), retryable: false })
                })
            }
        };
        let id = task.id;
        let mut ended = true;
        let handler = inner.handlers.get(task.kind.as_str()).cloned();
        let row = task.clone();
        let saved = match outcome {
            Ok(output) => {
                log::info!("task {} done", task.name);
                inner.store.write_blocking(move |c| {
                    task_rows::complete(c, id, &output)?;
                    handler.map_or(Ok(()), |h| h.on_done(c, &row, &output))
                })
            }
            Err(mut failure) => {
                let retry_at = (failure.retryable && task.attempts < task.max_attempts).then(|| {
                    let delay = chrono::Duration::seconds(2i64.pow(task.attempts.clamp(0, 8) as u32));
                    (chrono::Utc::now() + delay).to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
                });
                ended = retry_at.is_none();
                // The whole reason for the operator; the task shows it with state paths relative.
                let reason = failure.exception.get("message").and_then(Value::as_str).unwrap_or("(no message)");
                log::warn!("task {} failed (attempt {}), retry: {}: {reason}", task.name, task.attempts, !ended);
                failure.exception = inner.paths.relative_message(failure.exception);
                inner.store.write_blocking(move |c| {
                    task_rows::fail(c, id, &failure.exception, retry_at.as_deref())?;
                    match (&retry_at, handler) {
                        (None, Some(h)) => h.on_failed(c, &row, &failure.exception),
                        _ => Ok(()),
                    }
                })
            }
        };
        if let Err(e) = saved {
            log::error!("task {}: cannot record its outcome: {e}", task.name);
        }
        // A chain's next task may have been inserted with this outcome.
        self.wake_workers();
        if !ended {
            return;
        }
        for waiter in self.lock_waiters().remove(&id).unwrap_or_default() {
            let _ = waiter.send(());
        }
    }
}

/// Whether a status (the enum, or its name) is an end state.
pub fn is_final(status: impl AsRef<str>) -> bool {
    TaskStatus::parse(status.as_ref()).is_some_and(TaskStatus::is_final)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Synchronous;
    use crate::instance::Maintenance;
    use crate::store::Pragmas;

    /// Fails the first `failures` runs (retryably), then succeeds; or panics when told to.
    struct Flaky {
        failures: i64,
        panics: bool,
    }

    impl TaskHandler for Flaky {
        fn run(&self, ctx: &TaskContext) -> Result<Value, TaskFailure> {
            if self.panics {
                panic!("handler bug");
            }
            if ctx.task.attempts <= self.failures {
                return Err(TaskFailure { exception: json!({"message": "try again"}), retryable: true });
            }
            Ok(json!({"attempt": ctx.task.attempts}))
        }
    }

    /// Fails (and first warns) naming a file below the state directory, as an I/O error does.
    struct NamesAStateFile;

    impl TaskHandler for NamesAStateFile {
        fn run(&self, ctx: &TaskContext) -> Result<Value, TaskFailure> {
            let file = ctx.depot.parent().unwrap().join("builds/1/manifests/0003.json");
            ctx.warn(json!({"code": "w", "message": format!("skipped {}", file.display())})).unwrap();
            Err(TaskFailure {
                exception: json!({"message": format!("open {}: gone", file.display())}),
                retryable: false,
            })
        }
    }

    fn queue(handlers: Vec<(&'static str, Arc<dyn TaskHandler>)>) -> (tempfile::TempDir, Queue) {
        let dir = tempfile::tempdir().unwrap();
        let pragmas = Pragmas { busy_timeout: Duration::from_secs(30), synchronous: Synchronous::Normal };
        let store = Store::open(&dir.path().join("q.db"), pragmas, 1).unwrap();
        let maintenance = Arc::new(MaintenanceSwitch::load(&store).unwrap());
        let queue = Queue::with_handlers(store, dir.path().join("depot"), maintenance, handlers);
        (dir, queue)
    }

    fn submit(queue: &Queue, kind: &str, max_attempts: i64, run_in_maintenance: bool) -> Task {
        let new = NewTask {
            kind: kind.into(),
            group: None,
            app_name: None,
            build_id: None,
            input: json!({}),
            max_attempts,
            run_in_maintenance,
        };
        queue.inner.store.write_blocking(move |c| task_rows::insert(c, &new)).unwrap()
    }

    fn current(queue: &Queue, id: i64) -> Task {
        queue.inner.store.read_blocking(|c| task_rows::get_by_id(c, id)).unwrap().unwrap()
    }

    fn run_next(queue: &Queue) -> Option<i64> {
        let task = queue.claim().unwrap()?;
        let id = task.id;
        queue.run_one(task);
        Some(id)
    }

    #[test]
    fn a_retryable_failure_backs_off_before_the_next_attempt() {
        let (_dir, queue) = queue(vec![("flaky", Arc::new(Flaky { failures: 1, panics: false }))]);
        let task = submit(&queue, "flaky", 3, false);
        assert_eq!(run_next(&queue), Some(task.id));
        let after = current(&queue, task.id);
        assert_eq!((after.status.as_str(), after.attempts), ("submitted", 1), "back in the queue");
        assert_eq!(after.exception, Some(json!({"message": "try again"})));
        assert_eq!(run_next(&queue), None, "not before its backoff has passed");
    }

    #[test]
    fn a_task_fails_for_good_after_its_last_attempt() {
        let (_dir, queue) = queue(vec![("flaky", Arc::new(Flaky { failures: 5, panics: false }))]);
        let task = submit(&queue, "flaky", 1, false);
        run_next(&queue);
        let after = current(&queue, task.id);
        assert_eq!((after.status.as_str(), after.attempts), ("failed", 1));
        assert!(after.ended.is_some());
    }

    #[test]
    fn exceptions_and_warnings_show_state_paths_relative_to_the_state_directory() {
        let (dir, queue) = queue(vec![("leaky", Arc::new(NamesAStateFile))]);
        let task = submit(&queue, "leaky", 1, false);
        run_next(&queue);
        let after = current(&queue, task.id);
        assert_eq!(after.exception, Some(json!({"message": "open builds/1/manifests/0003.json: gone"})));
        assert_eq!(after.warnings, vec![json!({"code": "w", "message": "skipped builds/1/manifests/0003.json"})]);
        assert!(!format!("{:?}", after.warnings).contains(&*dir.path().to_string_lossy()));
    }

    #[test]
    fn a_panicking_handler_fails_its_task_without_retry() {
        let (_dir, queue) = queue(vec![("boom", Arc::new(Flaky { failures: 0, panics: true }))]);
        let task = submit(&queue, "boom", 5, false);
        run_next(&queue);
        let after = current(&queue, task.id);
        assert_eq!(after.status, "failed");
        assert_eq!(after.exception, Some(json!({"message": "the task handler crashed"})));
    }

    #[test]
    fn an_unknown_task_type_fails_without_retry() {
        let (_dir, queue) = queue(Vec::new());
        let task = submit(&queue, "nosuch", 5, false);
        run_next(&queue);
        let after = current(&queue, task.id);
        assert_eq!((after.status.as_str(), after.attempts), ("failed", 1));
        assert_eq!(after.exception, Some(json!({"message": "unknown task type `nosuch`"})));
    }

    #[test]
    fn in_maintenance_only_maintenance_tasks_run() {
        let (_dir, queue) = queue(vec![("flaky", Arc::new(Flaky { failures: 0, panics: false }))]);
        let on = Maintenance { enabled: true, message: "m".into(), retry_after: 60 };
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let actor = crate::store::audit::Actor { principal: "test".into(), client: "local".into() };
        runtime.block_on(queue.inner.maintenance.set(&queue.inner.store, on, &actor)).unwrap();
        let ordinary = submit(&queue, "flaky", 1, false);
        let allowed = submit(&queue, "flaky", 1, true);
        assert_eq!(run_next(&queue), Some(allowed.id));
        assert_eq!(run_next(&queue), None, "the ordinary task waits for maintenance to end");
        assert_eq!(current(&queue, allowed.id).status, "done");
        assert_eq!(current(&queue, ordinary.id).status, "submitted");
    }
}
