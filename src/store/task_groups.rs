//! Pages of tasks in an order that no index walks whole: one that starts with the type, the
//! status or the app name and goes on in the other direction, or by another of those three
//! (`order[]=status&order[]=-created`, `order[]=-type&order[]=name`, `order[]=status&order[]=type`).
//! SQLite walked the first column's index and sorted all tasks of each of its values before the
//! first row came out: at 10^6 tasks `status, -created` took 480 ms and `status, type` 410 ms,
//! every page. Such a page is read group by group instead: the combinations of the leading
//! columns' values that occur, from the counters (a few dozen rows; with the app name, a few per
//! app: bounded by the organization's apps, never by the history), in the page's order, and in
//! each group a walk of an index whose order is the rest of the page's once the group's values
//! are fixed, stopping when the page is full. Groups are disjoint and come in page order, so
//! their rows are simply put one after the other. (`appName` then `created`, one direction, is
//! walked whole along `tasks_by_org_app_created`, migration 015.)

use std::cmp::Ordering;
use std::collections::{BTreeMap, HashMap};

use rusqlite::{Connection, ToSql};

use super::tasks::TaskFilter;
use super::StoreResult;

const TYPE: &str = "t.type";
const STATUS: &str = "t.status";
const APP: &str = "t.app_name";
const CREATED: &str = "t.created";

/// How a page in a grouped order is read.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Grouping {
    /// The leading columns whose values make the groups, each with whether it is descending.
    by: Vec<(&'static str, bool)>,
    /// The order inside a group: the page's order after the grouping columns.
    rest: String,
    /// Whether `rest` starts with the creation time (else with the name).
    by_created: bool,
}

/// The grouping of a page's order (`Page::keys`), or `None` when one index walks the whole
/// order: a name or creation time first, or one of type, status and app name followed by the
/// name or the creation time in the same direction.
pub(super) fn grouping(keys: &[(&'static str, bool)]) -> Option<Grouping> {
    // A name or creation time always follows: the list adds the name when the order lacks it.
    let split = keys.iter().position(|(column, _)| ![TYPE, STATUS, APP].contains(column))?;
    let (by, rest) = keys.split_at(split);
    let (&(_, first_descending), &(next, next_descending)) = (by.first()?, rest.first()?);
    if by.len() == 1 && first_descending == next_descending {
        return None;
    }
    Some(Grouping { by: by.to_vec(), rest: super::order_by(rest), by_created: next == CREATED })
}

/// The index that walks the tasks of one value of `column` in name (else creation) order. Each
/// holds the creation time, so a window is checked on the entry; the type and status indexes
/// hold each other's column too.
fn index_of(column: &str, by_created: bool) -> &'static str {
    match (column, by_created) {
        (TYPE, false) => "tasks_by_org_type",
        (STATUS, false) => "tasks_by_org_status",
        (TYPE, true) => "tasks_by_org_type_created",
        (STATUS, true) => "tasks_by_org_status_created",
        (_, false) => "tasks_by_org_app",
        (_, true) => "tasks_by_org_app_created",
    }
}

/// One group: a value for each grouping column, in `Grouping::by` order (`None`: a task
/// without an app), and the index its walk takes.
#[derive(Debug)]
struct Group {
    values: Vec<Option<String>>,
    index: &'static str,
}

/// The ids of the page (`offset`, `limit`) of `f`'s tasks in the grouped order: each group's
/// walk is asked for what the page still lacks, so the groups read offset + limit entries in all
/// (besides the filter's misses), as a walk of a single index would.
pub(super) fn page_ids(
    conn: &Connection,
    org_id: i64,
    f: &TaskFilter,
    g: &Grouping,
    page: &super::Page,
) -> StoreResult<Vec<i64>> {
    let wanted = page.end();
    let mut ids: Vec<i64> = Vec::new();
    for group in groups(conn, org_id, f, g)? {
        let lacking = wanted - ids.len() as i64;
        if lacking <= 0 {
            break;
        }
        let mut args = f.params(&org_id).to_vec();
        args.push(&lacking);
        args.extend(group.values.iter().map(|value| value as &dyn ToSql));
        let mut stmt = conn.prepare_cached(&group_sql(f, g, group.index))?;
        for id in stmt.query_map(&args[..], |r| r.get(0))? {
            ids.push(id?);
        }
    }
    Ok(page.of(ids))
}

/// One group's walk along `index`: the list's condition, the group's values (`?9`… in `by`
/// order; `IS`, as a task's app may be absent) and the rest of the order, at most `?8` ids.
fn group_sql(f: &TaskFilter, g: &Grouping, index: &str) -> String {
    let mut cond = super::tasks::condition(f, g.by_created);
    for (i, (column, _)) in g.by.iter().enumerate() {
        cond.push_str(&format!(" AND {column} IS ?{}", 9 + i));
    }
    format!("SELECT t.id FROM tasks t INDEXED BY {index} {cond} ORDER BY {} LIMIT ?8", g.rest)
}

/// Tasks per app (`None`: without one), type and status, over the whole history.
type Counts = BTreeMap<(Option<String>, String, String), i64>;

/// The organization's counters (`task_counts`; per app too, `task_app_counts`, when `per_app`):
/// a few dozen rows, and a few per app with `per_app`, whatever the history.
fn counts(conn: &Connection, org_id: i64, per_app: bool) -> StoreResult<Counts> {
    let mut counts = Counts::new();
    let mut stmt = conn.prepare_cached("SELECT type, status, n FROM task_counts WHERE org_id = ?1 AND n > 0")?;
    for row in stmt.query_map([org_id], |r| Ok(((None, r.get(0)?, r.get(1)?), r.get(2)?)))? {
        let (key, n) = row?;
        counts.insert(key, n);
    }
    if per_app {
        let mut stmt = conn.prepare_cached(
            "SELECT app_name, type, status, n FROM task_app_counts WHERE org_id = ?1 AND span = 0 AND n > 0",
        )?;
        let rows = stmt.query_map([org_id], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get::<_, String>(2)?, r.get::<_, i64>(3)?))
        })?;
        for row in rows {
            let (app, kind, status, n) = row?;
            // What is left under no app is the tasks without one.
            if let Some(all) = counts.get_mut(&(None, kind.clone(), status.clone())) {
                *all -= n;
            }
            counts.insert((Some(app), kind, status), n);
        }
        counts.retain(|_, n| *n > 0);
    }
    Ok(counts)
}

/// The groups of the tasks that match the type, status and app name filters, in the page's
/// order, each with the index of the cheapest walk: the one whose range (the tasks of the
/// group's value of that column, matches or not) is the smallest, so a group of a rare
/// combination is not looked for among a common value's tasks. A group may have no task in a
/// creation window: its walk then finds nothing, at the cost of a seek.
fn groups(conn: &Connection, org_id: i64, f: &TaskFilter, g: &Grouping) -> StoreResult<Vec<Group>> {
    let per_app = f.app_name.is_some() || g.by.iter().any(|(c, _)| *c == APP);
    let counts = counts(conn, org_id, per_app)?;
    let value = |key: &(Option<String>, String, String), column: &str| match column {
        TYPE => Some(key.1.clone()),
        STATUS => Some(key.2.clone()),
        _ => key.0.clone(),
    };
    // The list matches a name part with SQLite's lower(), which folds ASCII letters only.
    let part = f.app_name.as_deref().map(str::to_ascii_lowercase);
    let matches = |(app, kind, status): &(Option<String>, String, String)| {
        f.kind.as_ref().is_none_or(|k| k == kind)
            && f.status.as_ref().is_none_or(|s| s == status)
            && part.as_ref().is_none_or(|p| app.as_ref().is_some_and(|a| a.to_ascii_lowercase().contains(p.as_str())))
    };
    let mut values: Vec<Vec<Option<String>>> = counts
        .keys()
        .filter(|key| matches(key))
        .map(|key| g.by.iter().map(|(column, _)| value(key, column)).collect())
        .collect();
    values.sort_by(|a, b| in_page_order(a, b, &g.by));
    values.dedup();
    // Each grouping column's value → the tasks an index walk of that value ranges over.
    let mut ranges: HashMap<(&str, Option<String>), i64> = HashMap::new();
    for (key, n) in &counts {
        for (column, _) in &g.by {
            *ranges.entry((column, value(key, column))).or_default() += n;
        }
    }
    Ok(values
        .into_iter()
        .map(|values| {
            let column =
                g.by.iter()
                    .zip(&values)
                    .min_by_key(|((column, _), v)| ranges.get(&(*column, (*v).clone())).copied().unwrap_or(0))
                    .map_or(APP, |((column, _), _)| *column);
            Group { index: index_of(column, g.by_created), values }
        })
        .collect())
}

/// SQLite's order of the columns `by`: text byte by byte, a missing app before any name
/// (ascending), each column in its direction.
pub(super) fn in_page_order(a: &[Option<String>], b: &[Option<String>], by: &[(&'static str, bool)]) -> Ordering {
    for ((x, y), (_, descending)) in a.iter().zip(b).zip(by) {
        let order = x.as_deref().map(str::as_bytes).cmp(&y.as_deref().map(str::as_bytes));
        let order = if *descending { order.reverse() } else { order };
        if order != Ordering::Equal {
            return order;
        }
    }
    Ordering::Equal
}

#[cfg(test)]
mod tests {
    use super::super::tasks::tests::{history, query_plan, stored_at};
    use super::super::tasks::{list, list_by, Plan, TaskFilter, SORT};
    use super::super::Page;
    use super::*;
    use std::collections::BTreeSet;

    /// `order` as the API takes it: fields, `-` for descending.
    fn page(order: &[&str], offset: i64, limit: i64) -> Page {
        let fields: Vec<(&str, bool)> =
            order.iter().map(|o| o.strip_prefix('-').map_or((*o, false), |field| (field, true))).collect();
        Page::new(offset, limit, SORT, &fields).unwrap()
    }

    #[test]
    fn only_an_order_no_single_index_walks_is_read_group_by_group() {
        let grouped = |order: &[&str]| grouping(&page(order, 0, 10).keys).map(|g| (g.by.len(), g.rest));
        // One index walks these whole (ties of a creation time aside).
        for order in [
            &["name"][..],
            &["-created"],
            &["-type"],
            &["status"],
            &["-appName"],
            &["type", "created"],
            &["-status", "-created"],
            &["appName", "created"],
            &["created", "-status"],
            &["name", "-type"],
        ] {
            assert_eq!(grouped(order), None, "{order:?}");
        }
        let rest = |s: &str| s.to_owned();
        assert_eq!(grouped(&["-type", "name"]), Some((1, rest("t.name ASC"))));
        assert_eq!(grouped(&["status", "-created"]), Some((1, rest("t.created DESC, t.name DESC"))));
        assert_eq!(grouped(&["-appName", "name"]), Some((1, rest("t.name ASC"))));
        assert_eq!(grouped(&["status", "type"]), Some((2, rest("t.name ASC"))));
        assert_eq!(grouped(&["appName", "-status", "created"]), Some((2, rest("t.created ASC, t.name ASC"))));
    }

    /// Each group is walked along an index whose range holds only tasks of one of the group's
    /// values, in the rest of the order: nothing is sorted but the ties of one creation time, and
    /// a window is checked on the entry. Of two candidate columns the rarer value's index is
    /// taken.
    #[test]
    fn a_group_is_walked_along_its_index_in_the_rest_of_the_order() {
        let conn = history();
        let window = TaskFilter { created_after: Some(stored_at(30_000)), ..TaskFilter::default() };
        let typed = TaskFilter { kind: Some("mkraw".to_owned()), app_name: Some("app1".to_owned()), ..window.clone() };
        let mut walked = BTreeSet::new();
        for order in [
            &["-type", "name"][..],
            &["status", "-created"],
            &["-type", "created"],
            &["-appName", "created"],
            &["-appName", "name"],
            &["status", "type"],
            &["appName", "-status", "created"],
            &["type", "-appName", "-name"],
        ] {
            for f in [&TaskFilter::default(), &window, &typed] {
                let g = grouping(&page(order, 0, 10).keys).unwrap();
                for group in groups(&conn, 1, f, &g).unwrap() {
                    let mut args = f.params(&1).to_vec();
                    args.push(&10);
                    args.extend(group.values.iter().map(|v| v as &dyn ToSql));
                    let details = query_plan(&conn, &group_sql(f, &g, group.index), &args);
                    let seek = format!("INDEX {} (org_id=? AND ", group.index);
                    assert!(details.contains(&seek), "{order:?} {f:?} {group:?}: {details}");
                    assert!(!details.contains("TEMP B-TREE FOR ORDER BY"), "{order:?} {f:?}: {details}");
                    if !g.by_created {
                        assert!(!details.contains("TEMP B-TREE"), "{order:?} {f:?}: {details}");
                    }
                    walked.insert(group.index);
                }
            }
        }
        // The history's failed tasks (one in seven) are rarer than any type: a (status, type)
        // group of failed tasks walks the status index, one of done tasks the type index.
        assert_eq!(walked.len(), 6, "every group index is used: {walked:?}");
    }

    /// The names and total of a page by the plainest statement: every match sorted.
    fn sorted(conn: &Connection, f: &TaskFilter, page: &Page) -> (Vec<String>, i64) {
        let cond = "FROM tasks t WHERE t.org_id = 1 AND (?1 IS NULL OR instr(lower(t.app_name), lower(?1)) > 0)
            AND (?2 IS NULL OR t.type = ?2) AND (?3 IS NULL OR t.status = ?3)
            AND (?4 IS NULL OR t.created > ?4) AND (?5 IS NULL OR t.created < ?5)";
        let args = rusqlite::params![f.app_name, f.kind, f.status, f.created_after, f.created_before];
        let sql =
            format!("SELECT t.name {cond} ORDER BY {} LIMIT {} OFFSET {}", page.order_by, page.limit, page.offset);
        let names = conn.prepare(&sql).unwrap().query_map(args, |r| r.get(0)).unwrap().collect::<Result<_, _>>();
        let total = conn.query_row(&format!("SELECT count(*) {cond}"), args, |r| r.get(0)).unwrap();
        (names.unwrap(), total)
    }

    #[test]
    fn a_page_read_group_by_group_is_the_page_of_a_full_sort() {
        let conn = history();
        // Tasks without an app (a group of their own, first when ascending), a status the
        // history has only here, and app names that differ from the history's by case only or
        // by a letter beyond ASCII (which SQLite's lower() leaves alone).
        for i in 0..30 {
            let app = [None, Some("App1"), Some("Äpp1"), Some("aPP10")][i % 4];
            conn.execute(
                "INSERT INTO tasks (name, type, status, app_name, org_id, created, run_after)
                 VALUES (?1, 'prune', ?2, ?3, 1, ?4, ?4)",
                rusqlite::params![
                    format!("prune-{i:02}"),
                    if i % 2 == 0 { "done" } else { "expired" },
                    app,
                    stored_at(977 * i as i64)
                ],
            )
            .unwrap();
        }
        let window = |after: i64, before: Option<i64>| TaskFilter {
            created_after: Some(stored_at(after)),
            created_before: before.map(stored_at),
            ..TaskFilter::default()
        };
        let filters = [
            TaskFilter::default(),
            TaskFilter { kind: Some("mkraw".to_owned()), ..TaskFilter::default() },
            TaskFilter { status: Some("failed".to_owned()), ..TaskFilter::default() },
            TaskFilter { app_name: Some("APP1".to_owned()), ..TaskFilter::default() },
            TaskFilter { app_name: Some("ÄPP".to_owned()), ..TaskFilter::default() },
            window(20_000, None),
            window(10_000, Some(12_000)),
            TaskFilter { kind: Some("prune".to_owned()), ..window(0, Some(20_000)) },
            TaskFilter { app_name: Some("app".to_owned()), status: Some("done".to_owned()), ..window(50_000, None) },
        ];
        let orders = [
            &["-type", "name"][..],
            &["status", "-created"],
            &["-status", "created"],
            &["appName", "-created"],
            &["-appName", "created"],
            &["-appName", "name"],
            &["status", "type"],
            &["appName", "-status", "created"],
            &["type", "-appName", "-name"],
        ];
        let mut compared = 0;
        for f in &filters {
            for order in orders {
                for (offset, limit) in [(0, 10), (7, 3), (95, 20), (600, 50), (2_020, 10), (5_000, 10)] {
                    let page = page(order, offset, limit);
                    assert!(grouping(&page.keys).is_some(), "{order:?}");
                    let expected = sorted(&conn, f, &page);
                    // The group read itself, and what the list chooses (a narrow window or a
                    // deep page reads the window instead).
                    for listed in
                        [list_by(&conn, 1, f, &page, Plan::Walk, None).unwrap(), list(&conn, 1, f, &page).unwrap()]
                    {
                        let names: Vec<String> = listed.items.into_iter().map(|t| t.name).collect();
                        assert_eq!((names, listed.total), expected, "{f:?} {order:?} offset {offset} limit {limit}");
                    }
                    compared += usize::from(!expected.0.is_empty());
                }
            }
        }
        assert!(compared > 200, "most pages have rows to compare: {compared}");
    }
}
