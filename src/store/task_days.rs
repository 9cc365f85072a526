//! Pages of a creation window of a few days in another order (name, type, status or app name).
//! Such a window is too narrow to walk the order's index for (the last day of a year's history in
//! name order: one task in 350 matches, a walk visits 3 500 entries for a page) and still holds
//! too many tasks to read whole cheaply (1 440 index entries, sorted: twice what the same page
//! costs on a history shorter than a day). The day indexes (migration 016) hold an
//! organization's tasks by their creation day (UTC), each day in one of those orders: each of the
//! window's days is walked in the page's order, checking the window and the filters on the
//! entry, until it has the page; the days' heads are merged. A page then reads about a page of
//! entries per day, whatever the history and however many tasks a day holds.

use chrono::NaiveDate;
use rusqlite::{Connection, ToSql};

use super::task_totals::DAY;
use super::tasks::TaskFilter;
use super::StoreResult;

/// The most days a window may span for its days to be walked: each costs a seek and a page.
const MAX_DAYS: usize = 8;
/// What walking one more day costs besides its entries, in index entries: its statement's run
/// and the merge of its rows. Roughly measured: a week of a year's history (eight days, about 11
/// entries each) took 0.21 ms walked day by day, where the 500-entry walk of the name index took
/// 0.17 ms in another run (bench/results/2026-11-27T1330-task-pages-http.md): 5–10 µs a day,
/// 50–100 entries at the 0.1 µs an entry costs. The weight only moves the crossover between
/// plans that cost about the same there.
const DAY_COST: i128 = 80;

/// A window's days, walked along one day index.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct DayWalk {
    pub index: &'static str,
    /// The window's days (`YYYY-MM-DD`), oldest first.
    pub days: Vec<String>,
}

/// The day index that walks a day's tasks in the page's order (the name, or a type, status or
/// app name then the name, both in one direction), with the columns of its range that the
/// filter fixes: a page in name order of one type walks that type's tasks of the day.
fn index_for(keys: &[(&'static str, bool)], f: &TaskFilter) -> Option<(&'static str, Option<String>, Option<String>)> {
    let (kind, status) = (f.kind.clone(), f.status.clone());
    match keys {
        [("t.name", _)] => Some(match (&kind, &status) {
            (Some(_), _) => ("tasks_by_org_day_type", kind, None),
            (None, Some(_)) => ("tasks_by_org_day_status", None, status),
            (None, None) => ("tasks_by_org_day_name", None, None),
        }),
        [(column, first), ("t.name", then)] if first == then => match *column {
            "t.type" => Some(("tasks_by_org_day_type", kind, None)),
            "t.status" => Some(("tasks_by_org_day_status", None, status)),
            "t.app_name" => Some(("tasks_by_org_day_app", None, None)),
            _ => None,
        },
        _ => None,
    }
}

/// The day walk of a page and the entries it is expected to visit, when the page's order has a
/// day index and its window spans at most [`MAX_DAYS`] days; `matches` is the window's exact
/// count (`task_totals`). Each day's walk visits about (offset + limit) × (the day's tasks ÷ its
/// matches) entries, at most the day's tasks; the window's matches are taken to spread over its
/// days as its days' tasks do, counted from `task_time_counts` (one row per day, type and
/// status). Each day adds [`DAY_COST`].
pub(super) fn plan(
    conn: &Connection,
    org_id: i64,
    f: &TaskFilter,
    page: &super::Page,
    matches: i64,
) -> StoreResult<Option<(DayWalk, i128)>> {
    let (Some((index, kind, status)), Some(after)) = (index_for(&page.keys, f), f.created_after.as_deref()) else {
        return Ok(None);
    };
    let before = match f.created_before.clone() {
        Some(before) => before,
        // An open end: up to the organization's newest day.
        None => match newest_day(conn, org_id)? {
            Some(day) => day,
            None => return Ok(None),
        },
    };
    let Some(days) = days_between(after, &before) else { return Ok(None) };
    let per_day = tasks_per_day(conn, org_id, &days, kind.as_deref(), status.as_deref())?;
    let in_days: i64 = per_day.iter().sum();
    let wanted = i128::from(page.end());
    let visits: i128 = per_day
        .iter()
        .map(|&tasks| {
            let (tasks, share) = (i128::from(tasks), i128::from(matches.max(1)));
            // wanted × tasks ÷ (matches × tasks ÷ in_days) = wanted × in_days ÷ matches
            (wanted * i128::from(in_days) / share).min(tasks) + DAY_COST
        })
        .sum();
    Ok(Some((DayWalk { index, days }, visits)))
}

/// The days from `after`'s to `before`'s, both included, when they are stored times (or days) at
/// most [`MAX_DAYS`] apart.
fn days_between(after: &str, before: &str) -> Option<Vec<String>> {
    // Only a day the prefix spells exactly: chrono also reads "2026-03- 9", which sorts before
    // "2026-03-01" as text, so the window would hold days the walk never visits.
    let day = |t: &str| {
        let prefix = t.get(..DAY)?;
        NaiveDate::parse_from_str(prefix, "%Y-%m-%d").ok().filter(|d| d.format("%Y-%m-%d").to_string() == prefix)
    };
    let (first, last) = (day(after)?, day(before)?);
    let span = usize::try_from((last - first).num_days()).ok()?;
    if span >= MAX_DAYS {
        return None;
    }
    Some(first.iter_days().take(span + 1).map(|d| d.format("%Y-%m-%d").to_string()).collect())
}

/// The organization's newest creation day (a primary-key seek into `task_time_counts`).
fn newest_day(conn: &Connection, org_id: i64) -> StoreResult<Option<String>> {
    Ok(conn
        .prepare_cached("SELECT max(bucket) FROM task_time_counts WHERE org_id = ?1 AND span = ?2")?
        .query_row(rusqlite::params![org_id, DAY as i64], |r| r.get(0))?)
}

/// Each day's tasks of this type and status (`None`: any): what its walk's range holds.
fn tasks_per_day(
    conn: &Connection,
    org_id: i64,
    days: &[String],
    kind: Option<&str>,
    status: Option<&str>,
) -> StoreResult<Vec<i64>> {
    let mut stmt = conn.prepare_cached(
        "SELECT coalesce(sum(n), 0) FROM task_time_counts WHERE org_id = ?1 AND span = ?2 AND bucket = ?3
         AND (?4 IS NULL OR type = ?4) AND (?5 IS NULL OR status = ?5)",
    )?;
    days.iter()
        .map(|day| Ok(stmt.query_row(rusqlite::params![org_id, DAY as i64, day, kind, status], |r| r.get(0))?))
        .collect()
}

/// One day's walk: the list's condition (the window checked on the entry), the day (`?9`) and
/// the page's order, at most `?8` entries, each with its order's columns for the merge.
fn day_sql(f: &TaskFilter, page: &super::Page, index: &str) -> String {
    let cond = super::tasks::condition(f, false);
    let columns: Vec<&str> = page.keys.iter().map(|(column, _)| *column).collect();
    format!(
        "SELECT t.id, {} FROM tasks t INDEXED BY {index} {cond} AND substr(t.created, 1, {DAY}) = ?9
         ORDER BY {} LIMIT ?8",
        columns.join(", "),
        page.order_by
    )
}

/// The ids of the page: each day's first offset + limit matches in the page's order, merged.
pub(super) fn page_ids(
    conn: &Connection,
    org_id: i64,
    f: &TaskFilter,
    page: &super::Page,
    walk: &DayWalk,
) -> StoreResult<Vec<i64>> {
    let wanted = page.end();
    let mut stmt = conn.prepare_cached(&day_sql(f, page, walk.index))?;
    let mut heads: Vec<(Vec<Option<String>>, i64)> = Vec::new();
    for day in &walk.days {
        let mut args = f.params(&org_id).to_vec();
        args.extend([&wanted as &dyn ToSql, day]);
        let rows = stmt.query_map(&args[..], |r| {
            let keys = (1..=page.keys.len()).map(|i| r.get(i)).collect::<Result<Vec<Option<String>>, _>>()?;
            Ok((keys, r.get(0)?))
        })?;
        for row in rows {
            heads.push(row?);
        }
    }
    heads.sort_by(|(a, _), (b, _)| super::task_groups::in_page_order(a, b, &page.keys));
    Ok(page.of(heads.into_iter().map(|(_, id)| id)))
}

#[cfg(test)]
mod tests {
    use super::super::migrations::{test_database, TWO_ORGS};
    use super::super::tasks::tests::{add_task, query_plan, stored_at};
    use super::super::tasks::{list, list_by, Plan, TaskFilter, SORT};
    use super::super::Page;
    use super::*;

    /// Organization 1's tasks, one every `every` seconds from 2026-01-01 for `days` days (names
    /// in no time order, three types, two statuses, ten apps and some tasks without one), and a
    /// few of organization 2's.
    fn history(days: i64, every: i64) -> Connection {
        let conn = test_database(TWO_ORGS);
        let n = days * 86_400 / every;
        for i in 0..n + 50 {
            let app = (i % 11 != 0).then(|| format!("app{}", i % 10));
            let (org, at) = if i < n { (1, i * every) } else { (2, (i - n) * 3_600) };
            add_task(&conn, i as u64, app, org, &stored_at(at));
        }
        conn
    }

    fn page_of(order: &str, offset: i64, limit: i64) -> Page {
        let fields: Vec<(&str, bool)> =
            order.split('&').map(|o| o.strip_prefix('-').map_or((o, false), |field| (field, true))).collect();
        Page::new(offset, limit, SORT, &fields).unwrap()
    }

    #[test]
    fn a_window_spans_the_days_from_its_start_to_its_end_and_no_more_than_eight() {
        let days = |a: &str, b: &str| days_between(a, b);
        assert_eq!(
            days("2026-02-27T23:59:59.999Z", "2026-03-01T00:00:00.000Z").unwrap(),
            ["2026-02-27", "2026-02-28", "2026-03-01"]
        );
        assert_eq!(days("2026-03-01T10:00:00.000Z", "2026-03-01").unwrap(), ["2026-03-01"]);
        assert_eq!(days("2026-03-01T10:00:00.000Z", "2026-03-08T10:00:00.000Z").unwrap().len(), 8);
        assert_eq!(days("2026-03-01T10:00:00.000Z", "2026-03-09T10:00:00.000Z"), None);
        assert_eq!(days("2026-03-02T10:00:00.000Z", "2026-03-01T10:00:00.000Z"), None);
        assert_eq!(days("yesterday", "2026-03-01"), None);
        assert_eq!(days("2026-03- 9T10:00:00.000Z", "2026-03-09"), None, "a day as text orders it");
    }

    /// The last 34 hours of 60 days' history (one task in 42 matches) in each order a day index
    /// walks: each of the two days is walked along it, the window checked on the entry, and
    /// nothing sorted.
    #[test]
    fn a_window_of_a_day_in_a_long_history_is_walked_day_by_day_without_sorting() {
        let conn = history(60, 120);
        let last_day = TaskFilter { created_after: Some(stored_at(58 * 86_400 + 50_000)), ..TaskFilter::default() };
        let typed = TaskFilter { kind: Some("mkraw".to_owned()), ..last_day.clone() };
        let app = TaskFilter { app_name: Some("APP3".to_owned()), ..last_day.clone() };
        for (f, order, index) in [
            (&last_day, "name", "tasks_by_org_day_name"),
            (&last_day, "-name", "tasks_by_org_day_name"),
            (&typed, "type", "tasks_by_org_day_type"),
            (&typed, "-name", "tasks_by_org_day_type"),
            (&TaskFilter { status: Some("done".to_owned()), ..last_day.clone() }, "name", "tasks_by_org_day_status"),
            (&last_day, "-status", "tasks_by_org_day_status"),
            (&app, "appName", "tasks_by_org_day_app"),
        ] {
            let page = page_of(order, 0, 10);
            let (plan, _) = super::super::tasks::choose_for_tests(&conn, 1, f, &page);
            let Plan::Days(walk) = plan else { panic!("{f:?} {order}: {plan:?}") };
            assert_eq!((walk.index, walk.days.len()), (index, 2), "{f:?} {order}");
            let mut args = f.params(&1).to_vec();
            args.extend([&10 as &dyn ToSql, &walk.days[0]]);
            let details = query_plan(&conn, &day_sql(f, &page, walk.index), &args);
            assert!(details.contains(&format!("COVERING INDEX {index} (org_id=? AND <expr>=?")), "{order}: {details}");
            assert!(!details.contains("TEMP B-TREE"), "{order}: {details}");
        }
        // A window of a quarter of the history is walked along the order's index, one of a few
        // minutes read whole, and so is one of a week: eight days' statements outweigh the walk.
        let wide = TaskFilter { created_after: Some(stored_at(45 * 86_400)), ..TaskFilter::default() };
        assert_eq!(super::super::tasks::choose_for_tests(&conn, 1, &wide, &page_of("name", 0, 10)).0, Plan::Walk);
        let week = TaskFilter { created_after: Some(stored_at(53 * 86_400 + 13)), ..TaskFilter::default() };
        assert_eq!(super::super::tasks::choose_for_tests(&conn, 1, &week, &page_of("name", 0, 10)).0, Plan::Walk);
        let minutes = TaskFilter { created_after: Some(stored_at(60 * 86_400 - 1_200)), ..TaskFilter::default() };
        let (plan, _) = super::super::tasks::choose_for_tests(&conn, 1, &minutes, &page_of("name", 0, 10));
        assert!(matches!(plan, Plan::Window(_)), "{plan:?}");
    }

    /// Only the work differs: a day walk answers every page and total a walk of the order's index
    /// answers, across day boundaries, at the edges of the window and past the end.
    #[test]
    fn a_page_walked_day_by_day_is_the_page_of_a_walk() {
        let conn = history(5, 300);
        let day = 86_400;
        let windows = [
            (day + 600, None),
            (2 * day - 1, Some(3 * day + 1)),
            (3 * day + 43_000, Some(3 * day + 44_000)),
            (0, Some(day / 2)),
            (4 * day + 86_000, None),
        ];
        let mut compared = 0;
        for (after, before) in windows {
            for (kind, status, app) in [
                (None, None, None),
                (Some("mkraw"), None, None),
                (None, Some("failed"), Some("app")),
                (None, None, Some("App7")),
            ] {
                let f = TaskFilter {
                    kind: kind.map(str::to_owned),
                    status: status.map(str::to_owned),
                    app_name: app.map(str::to_owned),
                    created_after: Some(stored_at(after)),
                    created_before: before.map(stored_at),
                    ..TaskFilter::default()
                };
                for order in ["name", "-name", "type", "-status", "appName", "-appName"] {
                    for (offset, limit) in [(0, 10), (7, 3), (95, 20), (400, 50), (5_000, 10)] {
                        let page = page_of(order, offset, limit);
                        let names = |listed: super::super::Listed<super::super::tasks::Task>| {
                            (listed.items.into_iter().map(|t| t.name).collect::<Vec<_>>(), listed.total)
                        };
                        let walked = names(list_by(&conn, 1, &f, &page, Plan::Walk, None).unwrap());
                        let (walk, _) = plan(&conn, 1, &f, &page, 1).unwrap().expect("a day index and a short window");
                        let by_days = names(list_by(&conn, 1, &f, &page, Plan::Days(walk), None).unwrap());
                        assert_eq!(by_days, walked, "{f:?} {order} offset {offset} limit {limit}");
                        assert_eq!(names(list(&conn, 1, &f, &page).unwrap()), walked, "{f:?} {order} {offset}");
                        compared += usize::from(!walked.0.is_empty());
                    }
                }
            }
        }
        assert!(compared > 150, "most pages have rows to compare: {compared}");
    }
}
