//! The durable task queue's rows. Claiming happens on the single writer, so it is atomic.

use rusqlite::{Connection, OptionalExtension, Row};
use serde::Serialize;
use serde_json::Value;

use super::{now_rfc3339, StoreError, StoreResult};
use crate::domain::kinds::TaskStatus;
use crate::domain::webhooks::TaskEvent;

/// Progress of a task, as the API shows it.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct Progress {
    pub done: i64,
    pub total: i64,
}

/// A task as stored and as the API shows it (API.md §9).
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Task {
    #[serde(skip)]
    pub id: i64,
    pub name: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub status: TaskStatus,
    pub group: Option<String>,
    pub app_name: Option<String>,
    pub build_id: Option<i64>,
    pub progress: Progress,
    pub warnings: Vec<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exception: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output: Option<Value>,
    pub attempts: i64,
    #[serde(skip)]
    pub max_attempts: i64,
    #[serde(skip)]
    pub input: Value,
    pub created: String,
    pub started: Option<String>,
    pub ended: Option<String>,
}

/// What a caller fills in to submit a task.
#[derive(Clone, Debug)]
pub struct NewTask {
    pub kind: String,
    pub group: Option<String>,
    pub app_name: Option<String>,
    pub build_id: Option<i64>,
    pub input: Value,
    pub max_attempts: i64,
    /// Whether the task may run while the instance is in maintenance mode.
    pub run_in_maintenance: bool,
}

const COLUMNS: &str = "id, name, type, status, grp, app_name, build_id, input, output, progress_done, \
     progress_total, warnings, exception, attempts, max_attempts, created, started, ended";

fn json_column(row: &Row, idx: usize) -> rusqlite::Result<Option<Value>> {
    let text: Option<String> = row.get(idx)?;
    text.map(|t| serde_json::from_str(&t))
        .transpose()
        .map_err(|e| rusqlite::Error::FromSqlConversionFailure(idx, rusqlite::types::Type::Text, Box::new(e)))
}

fn from_row(row: &Row) -> rusqlite::Result<Task> {
    Ok(Task {
        id: row.get(0)?,
        name: row.get(1)?,
        kind: row.get(2)?,
        status: row.get(3)?,
        group: row.get(4)?,
        app_name: row.get(5)?,
        build_id: row.get(6)?,
        input: json_column(row, 7)?.unwrap_or(Value::Null),
        output: json_column(row, 8)?,
        progress: Progress { done: row.get(9)?, total: row.get(10)? },
        warnings: match json_column(row, 11)? {
            Some(Value::Array(items)) => items,
            _ => Vec::new(),
        },
        exception: json_column(row, 12)?,
        attempts: row.get(13)?,
        max_attempts: row.get(14)?,
        created: row.get(15)?,
        started: row.get(16)?,
        ended: row.get(17)?,
    })
}

/// Inserts a new task in state `submitted` with a fresh unique name.
pub fn insert(conn: &Connection, task: &NewTask) -> StoreResult<Task> {
    let name = format!("{}-{}", task.kind, crate::auth::hex(&crate::auth::random_bytes::<6>()));
    let now = now_rfc3339();
    conn.execute(
        "INSERT INTO tasks (name, type, grp, app_name, build_id, input, max_attempts, run_in_maintenance, run_after, created)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?9)",
        rusqlite::params![
            name, task.kind, task.group, task.app_name, task.build_id, task.input.to_string(),
            task.max_attempts, task.run_in_maintenance, now
        ],
    )?;
    get_by_id(conn, conn.last_insert_rowid())?.ok_or_else(|| StoreError::Corrupt("inserted task vanished".into()))
}

pub fn get_by_id(conn: &Connection, id: i64) -> StoreResult<Option<Task>> {
    let sql = format!("SELECT {COLUMNS} FROM tasks WHERE id = ?1");
    Ok(conn.query_row(&sql, [id], from_row).optional()?)
}

pub fn get_by_name(conn: &Connection, name: &str) -> StoreResult<Option<Task>> {
    let sql = format!("SELECT {COLUMNS} FROM tasks WHERE name = ?1");
    Ok(conn.query_row(&sql, [name], from_row).optional()?)
}

/// Takes the oldest runnable task and marks it running (one more attempt). In maintenance mode
/// only tasks submitted with `run_in_maintenance` are taken.
pub fn claim_next(conn: &Connection, in_maintenance: bool) -> StoreResult<Option<Task>> {
    let now = now_rfc3339();
    let sql = format!(
        "UPDATE tasks SET status = 'running', attempts = attempts + 1, started = ?1, ended = NULL
         WHERE id = (SELECT id FROM tasks WHERE status = 'submitted' AND run_after <= ?1
                     AND (run_in_maintenance = 1 OR ?2 = 0) ORDER BY run_after, id LIMIT 1)
         RETURNING {COLUMNS}"
    );
    let claimed = conn.query_row(&sql, rusqlite::params![now, in_maintenance], from_row).optional()?;
    if let Some(task) = &claimed {
        super::webhooks::record(conn, task.id, TaskEvent::Begin)?;
    }
    Ok(claimed)
}

/// Records a successful end.
pub fn complete(conn: &Connection, id: i64, output: &Value) -> StoreResult<()> {
    let done = conn.execute(
        "UPDATE tasks SET status = 'done', output = ?2, exception = NULL, ended = ?3 WHERE id = ?1 AND status = 'running'",
        rusqlite::params![id, output.to_string(), now_rfc3339()],
    )?;
    if done > 0 {
        super::webhooks::record(conn, id, TaskEvent::End)?;
    }
    Ok(())
}

/// Records a failure: back to `submitted` after `retry_at` when given, else `failed` for good.
pub fn fail(conn: &Connection, id: i64, exception: &Value, retry_at: Option<&str>) -> StoreResult<()> {
    match retry_at {
        Some(at) => conn.execute(
            "UPDATE tasks SET status = 'submitted', exception = ?2, run_after = ?3 WHERE id = ?1 AND status = 'running'",
            rusqlite::params![id, exception.to_string(), at],
        )?,
        None => {
            let failed = conn.execute(
                "UPDATE tasks SET status = 'failed', exception = ?2, ended = ?3 WHERE id = ?1 AND status = 'running'",
                rusqlite::params![id, exception.to_string(), now_rfc3339()],
            )?;
            if failed > 0 {
                super::webhooks::record(conn, id, TaskEvent::Error)?;
            }
            failed
        }
    };
    Ok(())
}

/// Records progress of a running task.
pub fn set_progress(conn: &Connection, id: i64, progress: &Progress) -> StoreResult<()> {
    conn.execute(
        "UPDATE tasks SET progress_done = ?2, progress_total = ?3 WHERE id = ?1",
        rusqlite::params![id, progress.done, progress.total],
    )?;
    Ok(())
}

/// Appends a warning to a running task.
pub fn add_warning(conn: &Connection, id: i64, warning: &Value) -> StoreResult<()> {
    conn.execute(
        "UPDATE tasks SET warnings = json_insert(warnings, '$[#]', json(?2)) WHERE id = ?1",
        rusqlite::params![id, warning.to_string()],
    )?;
    Ok(())
}

/// At start: tasks a crash left `running` go back to `submitted` so a worker takes them up again.
pub fn requeue_interrupted(conn: &Connection) -> StoreResult<usize> {
    Ok(conn.execute("UPDATE tasks SET status = 'submitted', started = NULL WHERE status = 'running'", [])?)
}

/// Sort fields of `GET /be/v1/tasks`. Each has an index that walks an organization's tasks in
/// its order (`name`: `(org_id, name, …)`; `created`: `(org_id, created, …)`, also with the type
/// or the status first; `type`, `status`, `appName`: that column then the name, …), so no page
/// needs a sort step however many tasks there are, except a creation window too narrow to walk
/// for (see [`choose`]), which sorts its own few tasks; see [`condition`] for the filters. The
/// columns after the order's (schema.sql) let a walk check a creation window, and a type or
/// status walk the other of the two, on the index entry alone.
pub const SORT: super::SortColumns = &[
    ("name", "t.name"),
    ("created", "t.created"),
    ("type", "t.type"),
    ("status", "t.status"),
    ("appName", "t.app_name"),
];

/// The filters of `GET /be/v1/tasks` (API.md §9); `None` does not filter.
#[derive(Clone, Debug, Default)]
pub struct TaskFilter {
    /// Part of the app's name, any case.
    pub app_name: Option<String>,
    pub kind: Option<String>,
    pub status: Option<String>,
    pub group: Option<String>,
    /// RFC 3339 UTC with milliseconds, as stored.
    pub created_after: Option<String>,
    pub created_before: Option<String>,
}

impl TaskFilter {
    /// The arguments `?1`…`?7` of [`condition`]: the organization, then each filter.
    pub(super) fn params<'a>(&'a self, org_id: &'a i64) -> [&'a dyn rusqlite::ToSql; 7] {
        [org_id, &self.app_name, &self.kind, &self.status, &self.group, &self.created_after, &self.created_before]
    }
}

/// The list's WHERE clause with only the filters given, so SQLite plans each combination on its
/// own: a `?n IS NULL OR column = ?n` term cannot use an index, and the same statement for every
/// combination walked all of an organization's tasks in name order for a type or a group (0.6 s
/// and 1.2 s at 10^6 tasks). Every parameter stays referenced (`?n IS NULL` when absent), so the
/// arguments are the same for every combination. A creation window uses the `(org_id, created)`
/// index (`by_created`) for a page in creation order, and for another order only when [`choose`]
/// finds the window small: its range is then sorted whole, while the walk in that order stops
/// after a page of matches.
pub(super) fn condition(f: &TaskFilter, by_created: bool) -> String {
    let term = |given: bool, when: &str, n: usize| if given { when.to_owned() } else { format!("?{n} IS NULL") };
    let created = if by_created { "t.created" } else { "+t.created" };
    [
        "WHERE t.org_id = ?1".to_owned(),
        term(f.app_name.is_some(), "instr(lower(t.app_name), lower(?2)) > 0", 2),
        term(f.kind.is_some(), "t.type = ?3", 3),
        term(f.status.is_some(), "t.status = ?4", 4),
        term(f.group.is_some(), "t.grp = ?5", 5),
        term(f.created_after.is_some(), &format!("{created} > ?6"), 6),
        term(f.created_before.is_some(), &format!("{created} < ?7"), 7),
    ]
    .join(" AND ")
}

/// How a page finds its rows; all give the same rows in the same order, only the work differs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Plan {
    /// Walk the index of the page's order and keep the matches (SQLite's choice of index): stops
    /// after a page of matches, so it reads about page ÷ (matches' share of what it walks) rows.
    /// An order no single index walks is walked group by group (`task_groups`).
    Walk,
    /// Read the creation window along this `(org_id, [type | status,] created, …)` index and sort
    /// its matches: reads the window's index entries, however the page is ordered (the index
    /// holds every column a filter or an order needs), then the page's rows only.
    Window(&'static str),
    /// Walk each of the window's few days in the page's order and merge them (`task_days`).
    Days(super::task_days::DayWalk),
}

/// The plan of a page, and the page's total when choosing it needed the total. A creation window
/// in an order other than creation time can hold far fewer tasks than a walk of the order's
/// index visits to fill a page (the last day of a year's history in name order: 1 440 entries
/// against 3 500 visits at 10^6 tasks), or far more (the last quarter: the walk finds a page
/// within a few dozen rows); a window of a few days can also be walked day by day. The counters
/// tell the sizes before the page runs (`task_totals`, a bounded number of rows whatever the
/// history), so the cheapest plan is taken per request. A walk is estimated to visit
/// (offset + limit) × walked ÷ matches rows (matches spread along the order: names are random),
/// where `walked` counts the tasks of the page's type and status: what the walk's index range
/// holds at least, so an estimate errs towards the walk, the plan of every other page.
fn choose(conn: &Connection, org_id: i64, f: &TaskFilter, page: &super::Page) -> StoreResult<(Plan, Option<i64>)> {
    let windowed = f.created_after.is_some() || f.created_before.is_some();
    if f.group.is_some() || !windowed || page.order_by.starts_with("t.created") {
        // A group's three tasks, no window, or a window read in its own order: nothing to choose.
        return Ok((Plan::Walk, None));
    }
    let matches = super::task_totals::total(conn, org_id, f)?;
    let walked = super::task_totals::total(
        conn,
        org_id,
        &TaskFilter { kind: f.kind.clone(), status: f.status.clone(), ..TaskFilter::default() },
    )?;
    let wanted = i128::from(page.end());
    let visits = match matches {
        0 => i128::from(walked),
        m => (wanted * i128::from(walked) / i128::from(m)).min(i128::from(walked)),
    };
    let (mut plan, mut cost) = (Plan::Walk, visits);
    if let Some((days, visits)) = super::task_days::plan(conn, org_id, f, page, matches)? {
        if visits < cost {
            (plan, cost) = (Plan::Days(days), visits);
        }
    }
    // A window entry and a walk's visit cost about the same: both are checked on the index entry
    // alone (the window indexes hold every filtered column, migration 013; the walk indexes the
    // creation time, 014, so a row is read only inside the window), and the window's sort keeps
    // only a page. On the history of bench/tasks_list_scale.py at 10^6 tasks either took
    // 0.09–0.14 µs; near the crossover the plans cost about the same anyway.
    let cheaper = |in_range: i64| i128::from(in_range) < cost;
    // The window's range holds its matches at least: when they alone outweigh the best so far, stop.
    if !cheaper(matches) {
        return Ok((plan, Some(matches)));
    }
    let in_range = if f.app_name.is_none() && (f.kind.is_none() || f.status.is_none()) {
        // Every task of the window index's range is a match.
        matches
    } else {
        // The window's index leads with the type (else the status) when the page filters on
        // it, so its range holds the window's tasks of that type (status), matches or not.
        let (kind, status) = match (&f.kind, &f.status) {
            (Some(kind), _) => (Some(kind.clone()), None),
            (None, status) => (None, status.clone()),
        };
        let range = TaskFilter {
            kind,
            status,
            created_after: f.created_after.clone(),
            created_before: f.created_before.clone(),
            ..TaskFilter::default()
        };
        super::task_totals::total(conn, org_id, &range)?
    };
    if cheaper(in_range) {
        plan = Plan::Window(window_index(f));
    }
    Ok((plan, Some(matches)))
}

/// [`choose`], for the tests of the other plans' modules.
#[cfg(test)]
pub(super) fn choose_for_tests(
    conn: &Connection,
    org_id: i64,
    f: &TaskFilter,
    page: &super::Page,
) -> (Plan, Option<i64>) {
    choose(conn, org_id, f, page).unwrap()
}

/// The index a window read takes: with a type (else a status) filter, the one that leads with it.
fn window_index(f: &TaskFilter) -> &'static str {
    match (&f.kind, &f.status) {
        (Some(_), _) => "tasks_by_org_type_created",
        (None, Some(_)) => "tasks_by_org_status_created",
        (None, None) => "tasks_by_org",
    }
}

/// The table (with the index a group must use) and the condition of a walk's page.
fn statement(f: &TaskFilter, page: &super::Page) -> (String, String) {
    // Without statistics (the server never runs ANALYZE) SQLite prefers walking the index of the
    // page's order to finding a group's three tasks and sorting them: linear in the history.
    let from = if f.group.is_some() { "tasks t INDEXED BY tasks_by_org_group" } else { "tasks t" };
    (from.to_owned(), condition(f, page.order_by.starts_with("t.created")))
}

/// A window read's page: the ids of the page from the window's index entries alone (a covering
/// read: a day of a year's history in name order took 0.50 ms with a table row per entry, 0.21
/// ms without, bench/tasks_list_scale.py), then the page's rows. `?8`/`?9` are limit and offset.
fn window_sql(f: &TaskFilter, page: &super::Page, index: &str) -> String {
    let (cond, order) = (condition(f, true), &page.order_by);
    // Pinned: without statistics SQLite would walk the order's index instead.
    format!(
        "SELECT {COLUMNS} FROM tasks t WHERE t.id IN \
         (SELECT t.id FROM tasks t INDEXED BY {index} {cond} ORDER BY {order} LIMIT ?8 OFFSET ?9) ORDER BY {order}"
    )
}

/// One page of an organization's tasks (see [`SORT`], [`condition`] and [`choose`] for what keeps
/// it fast, `task_totals` for its total).
pub fn list(conn: &Connection, org_id: i64, f: &TaskFilter, page: &super::Page) -> StoreResult<super::Listed<Task>> {
    let (plan, total) = choose(conn, org_id, f, page)?;
    list_by(conn, org_id, f, page, plan, total)
}

/// One page read with `plan`; `known_total` when already counted.
pub(super) fn list_by(
    conn: &Connection,
    org_id: i64,
    f: &TaskFilter,
    page: &super::Page,
    plan: Plan,
    known_total: Option<i64>,
) -> StoreResult<super::Listed<Task>> {
    let ids = match plan {
        Plan::Window(index) => {
            let mut args = f.params(&org_id).to_vec();
            args.extend([&page.limit as &dyn rusqlite::ToSql, &page.offset]);
            let items = conn
                .prepare_cached(&window_sql(f, page, index))?
                .query_map(&args[..], from_row)?
                .collect::<Result<_, _>>()?;
            let total = match known_total {
                Some(total) => total,
                None => super::task_totals::total(conn, org_id, f)?,
            };
            return Ok(super::Listed { items, total });
        }
        Plan::Days(days) => Some(super::task_days::page_ids(conn, org_id, f, page, &days)?),
        Plan::Walk => match super::task_groups::grouping(&page.keys) {
            Some(grouping) if f.group.is_none() => {
                Some(super::task_groups::page_ids(conn, org_id, f, &grouping, page)?)
            }
            _ => None,
        },
    };
    if let Some(ids) = ids {
        let items = by_ids(conn, &ids)?;
        let total = super::page_total(page, items.len(), || match known_total {
            Some(total) => Ok(total),
            None => super::task_totals::total(conn, org_id, f),
        })?;
        return Ok(super::Listed { items, total });
    }
    let (from, cond) = statement(f, page);
    let select = format!("SELECT {COLUMNS} FROM {from}");
    let cond = cond.as_str();
    let args = f.params(&org_id);
    let count = || -> StoreResult<i64> {
        if let Some(total) = known_total {
            return Ok(total);
        }
        if f.group.is_some() {
            // A group holds three tasks, which its index finds.
            return Ok(conn
                .prepare_cached(&format!("SELECT count(*) FROM {from} {cond}"))?
                .query_row(&args[..], |r| r.get(0))?);
        }
        super::task_totals::total(conn, org_id, f)
    };
    super::list_page_counted(conn, &select, cond, &args, page, from_row, count)
}

/// The tasks of `ids`, in that order.
fn by_ids(conn: &Connection, ids: &[i64]) -> StoreResult<Vec<Task>> {
    let sql = format!("SELECT {COLUMNS} FROM tasks WHERE id IN (SELECT value FROM json_each(?1))");
    let listed = serde_json::to_string(ids).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    let mut found: std::collections::HashMap<i64, Task> = conn
        .prepare_cached(&sql)?
        .query_map([listed], from_row)?
        .map(|task| task.map(|t| (t.id, t)))
        .collect::<Result<_, _>>()?;
    Ok(ids.iter().filter_map(|id| found.remove(id)).collect())
}

/// Tasks waiting or running: per status, how many and the oldest one's creation time.
pub fn queue_depths(conn: &Connection) -> StoreResult<Vec<(String, i64, String)>> {
    let mut stmt = conn.prepare_cached(
        "SELECT status, count(*), min(created) FROM tasks WHERE status IN ('submitted', 'running') GROUP BY status",
    )?;
    let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?.collect::<Result<_, _>>()?;
    Ok(rows)
}

/// Removes every task that ended before `ended_before` (the retention setting); answers how
/// many went. Tasks still waiting or running stay whatever their age. The counters of
/// `task_totals` follow by trigger, in the same statement.
pub fn remove_ended_before(conn: &Connection, ended_before: &str) -> StoreResult<usize> {
    Ok(conn.execute(
        "DELETE FROM tasks WHERE status IN ('done', 'failed', 'expired') AND ended IS NOT NULL AND ended < ?1",
        [ended_before],
    )?)
}

/// Whether a task of one of `kinds` runs for the app right now (status `running`, so its
/// effects are not yet in the database). The `tasks_by_org_status` index keeps this to the
/// organization's running tasks, whatever the history.
pub fn running_for_app(conn: &Connection, org_id: i64, app: &str, kinds: &[&str]) -> StoreResult<bool> {
    let mut stmt =
        conn.prepare_cached("SELECT type FROM tasks WHERE org_id = ?1 AND status = 'running' AND app_name = ?2")?;
    let running = stmt.query_map(rusqlite::params![org_id, app], |r| r.get::<_, String>(0))?;
    for kind in running {
        if kinds.contains(&kind?.as_str()) {
            return Ok(true);
        }
    }
    Ok(false)
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// Every (type, status) combination's counter against a `count(*)` of the table itself.
    fn assert_counters_match(conn: &Connection) {
        for org in [1, 2] {
            for kind in [None, Some("dltar"), Some("mkraw")] {
                for status in [None, Some("submitted"), Some("running"), Some("done"), Some("expired")] {
                    let counted_rows: i64 = conn
                        .query_row(
                            "SELECT count(*) FROM tasks WHERE org_id = ?1 AND (?2 IS NULL OR type = ?2)
                             AND (?3 IS NULL OR status = ?3)",
                            rusqlite::params![org, kind, status],
                            |r| r.get(0),
                        )
                        .unwrap();
                    let filter = TaskFilter {
                        kind: kind.map(str::to_owned),
                        status: status.map(str::to_owned),
                        ..TaskFilter::default()
                    };
                    assert_eq!(
                        super::super::task_totals::total(conn, org, &filter).unwrap(),
                        counted_rows,
                        "org {org} {kind:?} {status:?}"
                    );
                }
            }
        }
    }

    /// The plan SQLite makes for a page (on the schema alone, without statistics, as the server
    /// runs): each filter and order walks an index in the page's order, or finds a group's three
    /// tasks, so a page never reads the history it skips (the walk; a narrow creation window's
    /// read is pinned by the tests below). Timings: bench/tasks_list_scale.py.
    #[test]
    fn every_filtered_or_sorted_task_page_walks_an_index_in_its_order() {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(super::super::migrations::SCHEMA).unwrap();
        let at = Some("2026-11-26T10:00:00.000Z".to_owned());
        let filter =
            |kind: Option<&str>, status: Option<&str>, group: Option<&str>, after: &Option<String>| TaskFilter {
                kind: kind.map(str::to_owned),
                status: status.map(str::to_owned),
                group: group.map(str::to_owned),
                created_after: after.clone(),
                ..TaskFilter::default()
            };
        let cases = [
            (filter(Some("mkraw"), None, None, &None), "name", "tasks_by_org_type (org_id=? AND type=?)"),
            (filter(Some("mkraw"), None, None, &None), "created", "tasks_by_org_type_created (org_id=? AND type=?)"),
            (
                filter(None, Some("done"), None, &None),
                "-created",
                "tasks_by_org_status_created (org_id=? AND status=?)",
            ),
            (filter(None, Some("done"), None, &None), "name", "tasks_by_org_status (org_id=? AND status=?)"),
            (filter(None, None, Some("g"), &None), "name", "tasks_by_org_group (org_id=? AND grp=?)"),
            (filter(None, None, Some("g"), &at), "created", "tasks_by_org_group (org_id=? AND grp=?)"),
            (filter(None, None, None, &at), "created", "tasks_by_org (org_id=? AND created>?)"),
            (filter(None, None, None, &at), "name", "tasks_by_org_name (org_id=?)"),
            (filter(None, None, None, &None), "appName", "tasks_by_org_app (org_id=?)"),
            (filter(None, None, None, &None), "-created", "tasks_by_org (org_id=?)"),
        ];
        for (f, order, index) in cases {
            let (field, descending) = order.strip_prefix('-').map_or((order, false), |o| (o, true));
            let page = super::super::Page::new(0, 10, SORT, &[(field, descending)]).unwrap();
            let (from, cond) = statement(&f, &page);
            let sql = format!("SELECT {COLUMNS} FROM {from} {cond} ORDER BY {} LIMIT 10", page.order_by);
            let plan = query_plan(&conn, &sql, &f.params(&1));
            assert!(plan.contains(&format!("USING INDEX {index}")), "{f:?} order {order}: {plan}");
            if f.group.is_none() {
                // At most the ties of one creation time are sorted, never the matches.
                assert!(!plan.contains("TEMP B-TREE FOR ORDER BY"), "{f:?} order {order}: {plan}");
            }
        }
    }

    /// What `EXPLAIN QUERY PLAN` says of `sql` with `args`, the steps joined by "; ".
    pub(in crate::store) fn query_plan(conn: &Connection, sql: &str, args: &[&dyn rusqlite::ToSql]) -> String {
        let steps: Vec<String> = conn
            .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
            .unwrap()
            .query_map(args, |r| r.get(3))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        steps.join("; ")
    }

    /// Stored time `secs` seconds after 2026-01-01T00:00:00Z.
    pub(in crate::store) fn stored_at(secs: i64) -> String {
        chrono::DateTime::from_timestamp(1_767_225_600 + secs, 7_000_000)
            .expect("a time in range")
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
    }

    /// Adds task `i` of a generated history: named from `i` in no time order (as the server names
    /// them), of type dltar, mkraw or deploy by `i % 3`, failed one time in seven, else done.
    pub(in crate::store) fn add_task(conn: &Connection, i: u64, app: Option<String>, org: i64, created: &str) {
        let kind = ["dltar", "mkraw", "deploy"][(i % 3) as usize];
        let name = format!("{kind}-{:012x}", i.wrapping_mul(0x9E37_79B9_7F4A_7C15) % (1 << 48));
        let status = if i.is_multiple_of(7) { "failed" } else { "done" };
        conn.prepare_cached(
            "INSERT INTO tasks (name, type, status, app_name, org_id, created, run_after)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6)",
        )
        .unwrap()
        .execute(rusqlite::params![name, kind, status, app, org, created])
        .unwrap();
    }

    /// Organization 1 with 2 000 tasks, one every 30 s (about 17 hours), names in no time order
    /// (as the server makes them), three types, two statuses, ten apps; organization 2 with a few.
    pub(in crate::store) fn history() -> Connection {
        let conn = super::super::migrations::test_database(super::super::migrations::TWO_ORGS);
        for i in 0..2_100u64 {
            let org = if i < 2_000 { 1 } else { 2 };
            add_task(&conn, i, Some(format!("app{}", i % 10)), org, &stored_at(30 * (i % 2_000) as i64));
        }
        conn
    }

    fn page_of(order: &str, offset: i64) -> super::super::Page {
        let (field, descending) = order.strip_prefix('-').map_or((order, false), |o| (o, true));
        super::super::Page::new(offset, 10, SORT, &[(field, descending)]).unwrap()
    }

    /// A window of the history's last `tasks` creation slots (30 s each), optionally with an end.
    fn last(tasks: i64, before: bool) -> TaskFilter {
        TaskFilter {
            created_after: Some(stored_at(30 * (2_000 - tasks) - 1)),
            created_before: before.then(|| stored_at(30 * 2_000)),
            ..TaskFilter::default()
        }
    }

    /// `f` narrowed to a type, a status and an app name part.
    fn with(f: TaskFilter, kind: Option<&str>, status: Option<&str>, app: Option<&str>) -> TaskFilter {
        TaskFilter {
            kind: kind.map(str::to_owned),
            status: status.map(str::to_owned),
            app_name: app.map(str::to_owned),
            ..f
        }
    }

    /// The plan SQLite makes for the statement `list` runs for this request, and which plan was chosen.
    fn chosen_plan(conn: &Connection, f: &TaskFilter, page: &super::super::Page) -> (Plan, String) {
        let (plan, _) = choose(conn, 1, f, page).unwrap();
        let sql = match plan {
            Plan::Window(index) => window_sql(f, page, index),
            Plan::Days(_) => panic!("{f:?}: a day walk on a history of one day"),
            Plan::Walk => {
                let (from, cond) = statement(f, page);
                format!("SELECT {COLUMNS} FROM {from} {cond} ORDER BY {} LIMIT ?8 OFFSET ?9", page.order_by)
            }
        };
        let mut args = f.params(&1).to_vec();
        args.extend([&10 as &dyn rusqlite::ToSql, &0]);
        let details = query_plan(conn, &sql, &args);
        (plan, details)
    }

    /// A window of 20 of 2 000 tasks in name order: a walk of the name index would visit about
    /// 1 000 tasks for a page, the window's index 20, sorted.
    #[test]
    fn a_narrow_creation_window_in_a_non_time_order_reads_the_window_by_its_creation_index() {
        let conn = history();
        let cases = [
            (last(20, false), "name", "tasks_by_org (org_id=? AND created>?)"),
            (last(20, true), "-name", "tasks_by_org (org_id=? AND created>? AND created<?)"),
            (last(20, false), "appName", "tasks_by_org (org_id=? AND created>?)"),
            (
                with(last(60, false), Some("mkraw"), None, None),
                "name",
                "tasks_by_org_type_created (org_id=? AND type=? AND created>?)",
            ),
            (
                with(last(60, false), None, Some("failed"), None),
                "type",
                "tasks_by_org_status_created (org_id=? AND status=? AND created>?)",
            ),
            (
                with(last(60, false), Some("mkraw"), Some("done"), None),
                "status",
                "tasks_by_org_type_created (org_id=? AND type=? AND created>?)",
            ),
            (with(last(60, false), None, None, Some("APP3")), "name", "tasks_by_org (org_id=? AND created>?)"),
        ];
        for (f, order, index) in cases {
            let (plan, details) = chosen_plan(&conn, &f, &page_of(order, 0));
            assert_eq!(plan, Plan::Window(window_index(&f)), "{f:?} order {order}: {details}");
            // Index entries only: no table row is read until the page's own.
            assert!(details.contains(&format!("USING COVERING INDEX {index}")), "{f:?} order {order}: {details}");
            // The window's matches are sorted (by the name alone when the filter fixes the order's
            // first column).
            assert!(details.contains("USE TEMP B-TREE FOR"), "{f:?} order {order}: {details}");
        }
    }

    /// A window of half the history in name order finds a page within about 20 tasks of the walk,
    /// where reading the window would sort 1 000 (and one app's tenth of it within 200); a window
    /// in creation order is read in its order whatever its size.
    #[test]
    fn a_wide_creation_window_in_a_non_time_order_walks_the_index_of_its_order() {
        let conn = history();
        let typed = |f: TaskFilter| TaskFilter { kind: Some("deploy".to_owned()), ..f };
        let cases = [
            (last(1_000, false), "name", "tasks_by_org_name (org_id=?)"),
            (last(1_000, true), "-name", "tasks_by_org_name (org_id=?)"),
            (last(1_000, false), "status", "tasks_by_org_status (org_id=?)"),
            (typed(last(1_000, false)), "name", "tasks_by_org_type (org_id=? AND type=?)"),
            // 100 matches, but the window's index range holds every app's 1 000 tasks.
            (
                TaskFilter { app_name: Some("app3".to_owned()), ..last(1_000, false) },
                "name",
                "tasks_by_org_name (org_id=?)",
            ),
            (last(20, false), "created", "tasks_by_org (org_id=? AND created>?)"),
            (last(20, true), "-created", "tasks_by_org (org_id=? AND created>? AND created<?)"),
        ];
        for (f, order, index) in cases {
            let (plan, details) = chosen_plan(&conn, &f, &page_of(order, 0));
            assert_eq!(plan, Plan::Walk, "{f:?} order {order}: {details}");
            assert!(details.contains(&format!("USING INDEX {index}")), "{f:?} order {order}: {details}");
            assert!(!details.contains("TEMP B-TREE FOR ORDER BY"), "{f:?} order {order}: {details}");
        }
    }

    /// The walk visits (offset + limit) ÷ (the window's share) tasks: a deep page of a wide window
    /// visits more than the window holds (300 of 2 000 tasks: about 70 visits for the first page,
    /// 1 700 for the 26th).
    #[test]
    fn a_deep_page_of_a_wide_creation_window_reads_the_window_instead_of_walking_past_it() {
        let conn = history();
        let f = last(300, false);
        assert_eq!(chosen_plan(&conn, &f, &page_of("name", 10)).0, Plan::Walk);
        let (plan, details) = chosen_plan(&conn, &f, &page_of("name", 250));
        assert_eq!(plan, Plan::Window("tasks_by_org"), "{details}");
    }

    /// A walk with a creation window (and a type or status filter) decides on each index entry
    /// whether it matches, and reads the table row of a match only: in the statement's bytecode
    /// every comparison of the filter comes before the first read of the table (migration 014;
    /// before it, the walk read every visited entry's row for its creation time).
    #[test]
    fn a_walk_checks_its_window_on_the_index_entry_and_reads_only_the_rows_of_matches() {
        let conn = history();
        let root = |name: &str| -> i64 {
            conn.query_row("SELECT rootpage FROM sqlite_master WHERE name = ?1", [name], |r| r.get(0)).unwrap()
        };
        let cases = [
            (last(1_000, false), "name", "tasks_by_org_name"),
            (last(1_000, true), "-name", "tasks_by_org_name"),
            (last(1_000, false), "appName", "tasks_by_org_app"),
            (with(last(1_000, false), Some("deploy"), None, None), "name", "tasks_by_org_type"),
            (with(last(1_000, true), None, Some("done"), None), "name", "tasks_by_org_status"),
            (with(last(1_000, false), None, Some("done"), None), "type", "tasks_by_org_type"),
            (with(last(1_000, false), Some("mkraw"), None, None), "status", "tasks_by_org_status"),
        ];
        for (f, order, index) in cases {
            let page = page_of(order, 0);
            let (from, cond) = statement(&f, &page);
            let sql = format!("EXPLAIN SELECT {COLUMNS} FROM {from} {cond} ORDER BY {} LIMIT 10", page.order_by);
            let args = f.params(&1);
            let program: Vec<(String, i64, i64)> = conn
                .prepare(&sql)
                .unwrap()
                .query_map(&args[..], |r| Ok((r.get(1)?, r.get(2)?, r.get(3)?)))
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap();
            let cursor_of = |rootpage: i64| {
                program.iter().find(|(op, _, p2)| op == "OpenRead" && *p2 == rootpage).map(|(_, p1, _)| *p1)
            };
            let (table, walked) = (cursor_of(root("tasks")).unwrap(), cursor_of(root(index)));
            assert!(walked.is_some(), "{f:?} order {order} does not walk {index}: {program:?}");
            let first_row_read =
                program.iter().position(|(op, p1, _)| op == "Column" && *p1 == table).expect("the page's columns");
            let comparisons: Vec<usize> = (0..program.len())
                .filter(|&i| ["Lt", "Le", "Gt", "Ge", "Eq", "Ne"].contains(&program[i].0.as_str()))
                .collect();
            assert!(!comparisons.is_empty(), "{f:?} order {order}: {program:?}");
            assert!(
                comparisons.iter().all(|&i| i < first_row_read),
                "{f:?} order {order}: the table is read before the filter decides: {program:?}"
            );
        }
    }

    /// Only the plan differs: every request answers the same rows in the same order and the same
    /// total by either plan, and `list` answers what both do.
    #[test]
    fn a_window_read_and_a_walk_answer_the_same_page_and_total() {
        let conn = history();
        let mut compared = 0;
        for (tasks, before) in [(20, false), (20, true), (300, false), (1_000, true), (0, false), (2_000, false)] {
            for (kind, status, app) in [
                (None, None, None),
                (Some("mkraw"), None, None),
                (None, Some("failed"), None),
                (Some("deploy"), Some("done"), None),
                (None, None, Some("App7")),
                (Some("dltar"), None, Some("app")),
            ] {
                for order in ["name", "-name", "type", "-status", "appName"] {
                    for offset in [0, 5, 15, 990, 5_000] {
                        let f = TaskFilter {
                            kind: kind.map(str::to_owned),
                            status: status.map(str::to_owned),
                            app_name: app.map(str::to_owned),
                            ..last(tasks, before)
                        };
                        let page = page_of(order, offset);
                        let names = |listed: super::super::Listed<Task>| {
                            (listed.items.into_iter().map(|t| t.name).collect::<Vec<_>>(), listed.total)
                        };
                        let walked = names(list_by(&conn, 1, &f, &page, Plan::Walk, None).unwrap());
                        let read = names(list_by(&conn, 1, &f, &page, Plan::Window(window_index(&f)), None).unwrap());
                        assert_eq!(walked, read, "{f:?} order {order} offset {offset}");
                        assert_eq!(
                            names(list(&conn, 1, &f, &page).unwrap()),
                            walked,
                            "{f:?} order {order} offset {offset}"
                        );
                        compared += usize::from(!walked.0.is_empty());
                    }
                }
            }
        }
        assert!(compared > 300, "most requests have rows to compare: {compared}");
    }

    #[test]
    fn task_counters_follow_inserts_status_changes_deletes_and_removed_organizations() {
        let conn = super::super::migrations::test_database(super::super::migrations::TWO_ORGS);
        for i in 0..12 {
            let (kind, org) = (if i % 3 == 0 { "mkraw" } else { "dltar" }, 1 + i % 2);
            conn.execute(
                "INSERT INTO tasks (name, type, org_id, created, run_after) VALUES (?1, ?2, ?3, 'x', 'x')",
                rusqlite::params![format!("t{i}"), kind, org],
            )
            .unwrap();
        }
        // An instance-wide task is never listed, so it counts nowhere.
        conn.execute("INSERT INTO tasks (name, type, created, run_after) VALUES ('hello', 'hello', 'x', 'x')", [])
            .unwrap();
        assert_counters_match(&conn);

        conn.execute("UPDATE tasks SET status = 'running' WHERE name IN ('t0', 't1', 't2')", []).unwrap();
        conn.execute("UPDATE tasks SET status = 'done', ended = '2026-01-01' WHERE name IN ('t0', 't1')", []).unwrap();
        conn.execute("UPDATE tasks SET status = 'expired', ended = '2026-01-01' WHERE name = 't4'", []).unwrap();
        conn.execute("UPDATE tasks SET progress_done = 5", []).unwrap();
        assert_counters_match(&conn);

        assert_eq!(remove_ended_before(&conn, "2027-01-01").unwrap(), 3);
        assert_counters_match(&conn);

        conn.execute("DELETE FROM orgs WHERE id = 2", []).unwrap();
        assert_counters_match(&conn);
        let left: i64 = conn.query_row("SELECT count(*) FROM task_counts WHERE org_id = 2", [], |r| r.get(0)).unwrap();
        assert_eq!(left, 0, "a removed organization's counters go with it");
    }

    #[test]
    fn only_a_running_task_of_the_given_types_for_that_app_counts_as_running() {
        let conn = super::super::migrations::test_database(
            "INSERT INTO orgs (id, name, created, updated) VALUES (1, 'a', 'x', 'x'), (2, 'b', 'x', 'x');
             INSERT INTO tasks (name, type, status, app_name, org_id, created, run_after) VALUES
               ('t1', 'commit', 'submitted', 'game', 1, 'x', 'x'),
               ('t2', 'mkraw', 'running', 'game', 1, 'x', 'x'),
               ('t3', 'commit', 'running', 'other', 1, 'x', 'x'),
               ('t4', 'commit', 'running', 'game', 2, 'x', 'x');",
        );
        let writers = ["commit", "deploy", "mkfast"];
        assert!(!running_for_app(&conn, 1, "game", &writers).unwrap());
        conn.execute("UPDATE tasks SET status = 'running' WHERE name = 't1'", []).unwrap();
        assert!(running_for_app(&conn, 1, "game", &writers).unwrap());
        assert!(!running_for_app(&conn, 1, "game", &["deploy"]).unwrap());
    }
}
