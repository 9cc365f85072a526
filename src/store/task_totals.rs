//! The exact `total` of an organization's task list (API.md: a list's total counts every match)
//! without counting the task history: sums of the counters that triggers keep in the same
//! transaction as every change of a task (`task_counts`, migration 006; `task_time_counts` and
//! `task_app_counts`, migration 012). What a total reads is bounded by the number of apps whose
//! name matches, the bucket rows a window covers (at most 23 hours, 30 days and 11 months a side,
//! plus the years) and the tasks of the window's two boundary hours, never by the history.

use rusqlite::Connection;

use super::tasks::TaskFilter;
use super::StoreResult;

/// Prefix lengths of the stored creation time (RFC 3339 UTC, fixed width) that make the buckets
/// of `task_time_counts` and `task_app_counts`, coarsest first: year, month, day, hour.
const SPANS: [usize; 4] = [4, 7, 10, 13];
/// The day buckets, which the day walks (`task_days`, migration 016) cut the same way.
pub(super) const DAY: usize = SPANS[2];
/// The finest bucket: a window's boundary hours are counted task by task.
const HOUR: usize = SPANS[SPANS.len() - 1];
/// Sorts after every bucket and stored time (ASCII digits, `-`, `T`, `:`, `.`, `Z`), and the
/// empty string before them: the ends of an open window.
const END: &str = "~";

/// What the counters cannot answer is left to the caller: a `group` (three tasks, which its index
/// finds directly) is not considered here.
pub fn total(conn: &Connection, org_id: i64, f: &TaskFilter) -> StoreResult<i64> {
    let m = Match { app_part: f.app_name.as_deref(), kind: f.kind.as_deref(), status: f.status.as_deref() };
    match (f.created_after.as_deref(), f.created_before.as_deref(), m.app_part) {
        (None, None, None) => by_type_status(conn, org_id, &m),
        (None, None, Some(part)) => by_app(conn, org_id, part, &m),
        (after, before, _) => in_window(conn, org_id, &m, after, before),
    }
}

/// The filters a total applies besides the creation window.
struct Match<'a> {
    /// Part of the app's name, any case (as the list matches it).
    app_part: Option<&'a str>,
    kind: Option<&'a str>,
    status: Option<&'a str>,
}

/// The organization's tasks of this type and status (`None`: any): a few dozen rows at most.
fn by_type_status(conn: &Connection, org_id: i64, m: &Match) -> StoreResult<i64> {
    Ok(conn
        .prepare_cached(
            "SELECT coalesce(sum(n), 0) FROM task_counts
             WHERE org_id = ?1 AND (?2 IS NULL OR type = ?2) AND (?3 IS NULL OR status = ?3)",
        )?
        .query_row(rusqlite::params![org_id, m.kind, m.status], |r| r.get(0))?)
}

/// Tasks of the apps whose name holds `part`: the whole-history rows (span 0) of every app the
/// organization has tasks for, matched the way the list matches a task's app name.
fn by_app(conn: &Connection, org_id: i64, part: &str, m: &Match) -> StoreResult<i64> {
    Ok(conn
        .prepare_cached(
            "SELECT coalesce(sum(n), 0) FROM task_app_counts
             WHERE org_id = ?1 AND span = 0 AND instr(lower(app_name), lower(?2)) > 0
             AND (?3 IS NULL OR type = ?3) AND (?4 IS NULL OR status = ?4)",
        )?
        .query_row(rusqlite::params![org_id, part, m.kind, m.status], |r| r.get(0))?)
}

/// Tasks created after `after` and before `before` (both exclusive, `None`: open): the tasks of
/// the two boundary hours one by one, every whole bucket between them from the counters.
fn in_window(conn: &Connection, org_id: i64, m: &Match, after: Option<&str>, before: Option<&str>) -> StoreResult<i64> {
    let (above, below) = (after.unwrap_or(""), before.unwrap_or(END));
    let hour = |t: &str| t.get(..HOUR).filter(|h| h.is_ascii()).map(str::to_owned);
    let (lo, hi) = match (after.map(hour), before.map(hour)) {
        // Not the stored time form (the HTTP layer never passes one): no buckets to trust.
        (Some(None), _) | (_, Some(None)) => return tasks_between(conn, org_id, m, above, below),
        (lo, hi) => (lo.flatten(), hi.flatten()),
    };
    if let (Some(l), Some(h)) = (&lo, &hi) {
        if l >= h {
            // One hour's tasks at most (or an empty window): no whole bucket in between.
            return tasks_between(conn, org_id, m, above, below);
        }
    }
    let mut total = 0;
    if let Some(l) = &lo {
        total += tasks_between(conn, org_id, m, above, &format!("{l}{END}"))?;
    }
    if let Some(h) = &hi {
        total += tasks_between(conn, org_id, m, h, below)?;
    }
    let mut ranges = Vec::new();
    cover(lo.as_deref(), hi.as_deref(), SPANS.len() - 1, &mut ranges);
    for some in ranges.chunks(MAX_RANGES) {
        total += buckets_sum(conn, org_id, m, some)?;
    }
    Ok(total)
}

/// Buckets of one span strictly between `above` and `below`.
#[derive(Debug, PartialEq, Eq)]
struct Range {
    span: usize,
    above: String,
    below: String,
}

/// The fewest bucket ranges that hold exactly the buckets of span `SPANS[level]` strictly between
/// `lo` and `hi` (buckets of that span; `None`: open), coarser buckets where whole ones fit: the
/// rest of `lo`'s parent and the start of `hi`'s parent at this span, the parents in between one
/// span coarser, and so on up to the years.
fn cover(lo: Option<&str>, hi: Option<&str>, level: usize, out: &mut Vec<Range>) {
    let span = SPANS[level];
    let range = |above: &str, below: &str| Range { span, above: above.to_owned(), below: below.to_owned() };
    if level == 0 {
        out.push(range(lo.unwrap_or(""), hi.unwrap_or(END)));
        return;
    }
    // Buckets are ASCII (checked by the caller, built so here), so a prefix is a char boundary.
    let parent = |b: &str| b[..SPANS[level - 1]].to_owned();
    let (plo, phi) = (lo.map(parent), hi.map(parent));
    if let (Some(l), Some(h), Some(pl), Some(ph)) = (lo, hi, &plo, &phi) {
        if pl == ph {
            out.push(range(l, h));
            return;
        }
    }
    if let (Some(l), Some(pl)) = (lo, &plo) {
        out.push(range(l, &format!("{pl}{END}")));
    }
    if let (Some(h), Some(ph)) = (hi, &phi) {
        out.push(range(ph, h));
    }
    cover(plo.as_deref(), phi.as_deref(), level - 1, out);
}

/// What [`cover`] makes at most: two ranges a span below the year, one of years.
const MAX_RANGES: usize = 2 * (SPANS.len() - 1) + 1;

/// The statement that sums the counters of up to [`MAX_RANGES`] bucket ranges at once (one
/// statement whatever the window: each costs more than the few rows it reads): `?1` the
/// organization, `?2`/`?3` type and status, `?4` the name part (`task_app_counts` only), then
/// span, above and below of each range; unused slots are empty ranges.
fn ranges_sql(per_app: bool) -> String {
    let slots: Vec<String> =
        (0..MAX_RANGES).map(|i| format!("(?{}, ?{}, ?{})", 5 + 3 * i, 6 + 3 * i, 7 + 3 * i)).collect();
    let ranges = format!("WITH r (span, above, below) AS (VALUES {})", slots.join(", "));
    let pair = "(?2 IS NULL OR c.type = ?2) AND (?3 IS NULL OR c.status = ?3)";
    if per_app {
        // Ranges, then the matching apps, then each one's buckets (CROSS JOIN keeps that order).
        format!(
            "{ranges}, apps AS (SELECT DISTINCT app_name FROM task_app_counts
                                WHERE org_id = ?1 AND span = 0 AND instr(lower(app_name), lower(?4)) > 0)
             SELECT coalesce(sum(c.n), 0) FROM r CROSS JOIN apps CROSS JOIN task_app_counts c
             ON c.org_id = ?1 AND c.span = r.span AND c.app_name = apps.app_name
                AND c.bucket > r.above AND c.bucket < r.below
             WHERE {pair}"
        )
    } else {
        format!(
            "{ranges} SELECT coalesce(sum(c.n), 0) FROM r CROSS JOIN task_time_counts c
             ON c.org_id = ?1 AND c.span = r.span AND c.bucket > r.above AND c.bucket < r.below
             WHERE {pair} AND ?4 IS NULL"
        )
    }
}

/// The counters of up to [`MAX_RANGES`] bucket ranges; with a name part, only the apps whose name
/// holds it.
fn buckets_sum(conn: &Connection, org_id: i64, m: &Match, ranges: &[Range]) -> StoreResult<i64> {
    static PER_APP: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    static ALL: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let sql = match m.app_part {
        Some(_) => PER_APP.get_or_init(|| ranges_sql(true)),
        None => ALL.get_or_init(|| ranges_sql(false)),
    };
    // An empty slot: nothing is above END and below "".
    let empty = Range { span: 0, above: END.to_owned(), below: String::new() };
    let slots: Vec<&Range> = ranges.iter().chain(std::iter::repeat(&empty)).take(MAX_RANGES).collect();
    let spans: Vec<i64> = slots.iter().map(|r| r.span as i64).collect();
    let mut args: Vec<&dyn rusqlite::ToSql> = vec![&org_id, &m.kind, &m.status, &m.app_part];
    for (r, span) in slots.iter().zip(&spans) {
        args.extend([span as &dyn rusqlite::ToSql, &r.above, &r.below]);
    }
    Ok(conn.prepare_cached(sql)?.query_row(&args[..], |r| r.get(0))?)
}

/// The matching tasks created strictly between `above` and `below`, one by one along the
/// `(org_id, created)` index: used for a window's boundary hours only.
fn tasks_between(conn: &Connection, org_id: i64, m: &Match, above: &str, below: &str) -> StoreResult<i64> {
    Ok(conn
        .prepare_cached(
            "SELECT count(*) FROM tasks t WHERE t.org_id = ?1 AND t.created > ?2 AND t.created < ?3
             AND (?4 IS NULL OR instr(lower(t.app_name), lower(?4)) > 0)
             AND (?5 IS NULL OR t.type = ?5) AND (?6 IS NULL OR t.status = ?6)",
        )?
        .query_row(rusqlite::params![org_id, above, below, m.app_part, m.kind, m.status], |r| r.get(0))?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn covered(lo: Option<&str>, hi: Option<&str>) -> Vec<(usize, String, String)> {
        let mut out = Vec::new();
        cover(lo, hi, SPANS.len() - 1, &mut out);
        out.into_iter().map(|r| (r.span, r.above, r.below)).collect()
    }

    fn r(span: usize, above: &str, below: &str) -> (usize, String, String) {
        (span, above.to_owned(), below.to_owned())
    }

    #[test]
    fn hours_of_one_day_are_one_range_of_hours() {
        assert_eq!(covered(Some("2026-11-26T05"), Some("2026-11-26T09")), [r(13, "2026-11-26T05", "2026-11-26T09")]);
    }

    #[test]
    fn a_long_window_takes_whole_days_months_and_years_between_its_edge_hours() {
        assert_eq!(
            covered(Some("2024-03-30T22"), Some("2026-11-02T01")),
            [
                r(13, "2024-03-30T22", "2024-03-30~"),
                r(13, "2026-11-02", "2026-11-02T01"),
                r(10, "2024-03-30", "2024-03~"),
                r(10, "2026-11", "2026-11-02"),
                r(7, "2024-03", "2024~"),
                r(7, "2026", "2026-11"),
                r(4, "2024", "2026"),
            ]
        );
    }

    #[test]
    fn an_open_end_takes_everything_past_the_other_edge() {
        assert_eq!(
            covered(Some("2026-11-26T05"), None),
            [
                r(13, "2026-11-26T05", "2026-11-26~"),
                r(10, "2026-11-26", "2026-11~"),
                r(7, "2026-11", "2026~"),
                r(4, "2026", "~")
            ]
        );
        assert_eq!(
            covered(None, Some("2026-01-01T00")),
            [
                r(13, "2026-01-01", "2026-01-01T00"),
                r(10, "2026-01", "2026-01-01"),
                r(7, "2026", "2026-01"),
                r(4, "", "2026")
            ]
        );
    }

    /// Each range of the one statement is an index range, for all tasks and for each matching
    /// app (a scan of the counters would grow with the history they cover).
    #[test]
    fn the_ranges_of_a_window_are_summed_by_primary_key_ranges() {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(super::super::migrations::SCHEMA).unwrap();
        for (per_app, seek) in [
            (false, "SEARCH c USING PRIMARY KEY (org_id=? AND span=? AND bucket>? AND bucket<?)"),
            (true, "SEARCH c USING PRIMARY KEY (org_id=? AND span=? AND app_name=? AND bucket>? AND bucket<?)"),
        ] {
            let sql = format!("EXPLAIN QUERY PLAN {}", ranges_sql(per_app));
            let mut stmt = conn.prepare(&sql).unwrap();
            let nulls = rusqlite::params_from_iter(std::iter::repeat_n(rusqlite::types::Null, stmt.parameter_count()));
            let plan: Vec<String> = stmt.query_map(nulls, |r| r.get(3)).unwrap().collect::<Result<_, _>>().unwrap();
            assert!(plan.iter().any(|p| p.contains(seek)), "{plan:?}");
        }
    }

    /// Stored time `secs` seconds and `millis` after the Unix epoch.
    fn at(secs: i64, millis: u32) -> String {
        chrono::DateTime::from_timestamp(secs, millis * 1_000_000)
            .expect("a time in range")
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
    }

    /// A small deterministic generator (no test depends on chance).
    struct Lcg(u64);

    impl Lcg {
        fn below(&mut self, n: u64) -> u64 {
            self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (self.0 >> 33) % n
        }
    }

    /// Every total the list can ask for against a `count(*)` of the table itself.
    fn assert_totals_match(conn: &Connection, edges: &[Option<String>]) {
        let mut checked = 0;
        for org in [1, 2] {
            for part in [None, Some("alpha"), Some("ALP"), Some("bet"), Some(""), Some("nothing")] {
                for (kind, status) in
                    [(None, None), (Some("dltar"), None), (None, Some("done")), (Some("mkraw"), Some("failed"))]
                {
                    for after in edges {
                        for before in edges {
                            let f = TaskFilter {
                                app_name: part.map(str::to_owned),
                                kind: kind.map(str::to_owned),
                                status: status.map(str::to_owned),
                                group: None,
                                created_after: after.clone(),
                                created_before: before.clone(),
                            };
                            let want: i64 = conn
                                .query_row(
                                    "SELECT count(*) FROM tasks WHERE org_id = ?1
                                     AND (?2 IS NULL OR instr(lower(app_name), lower(?2)) > 0)
                                     AND (?3 IS NULL OR type = ?3) AND (?4 IS NULL OR status = ?4)
                                     AND (?5 IS NULL OR created > ?5) AND (?6 IS NULL OR created < ?6)",
                                    rusqlite::params![org, part, kind, status, after, before],
                                    |r| r.get(0),
                                )
                                .unwrap();
                            assert_eq!(total(conn, org, &f).unwrap(), want, "org {org} {f:?}");
                            checked += 1;
                        }
                    }
                }
            }
        }
        assert!(checked > 1000);
    }

    #[test]
    fn totals_of_names_and_windows_follow_inserts_changes_retention_and_removed_organizations() {
        let conn = super::super::migrations::test_database(super::super::migrations::TWO_ORGS);
        // Two years and a bit around New Year 2026, so windows cross hours, days, months, years.
        let (start, length) = (1_735_500_000_i64, 2 * 366 * 86_400_i64);
        let mut rng = Lcg(9);
        let apps = [Some("Alpha"), Some("alphabet"), Some("Beta"), None];
        let kinds = ["dltar", "mkraw", "deploy"];
        for i in 0..600 {
            // Some tasks on the very first millisecond of an hour, day or year: the bucket edges.
            let created = match i % 10 {
                0 => at(1_767_225_600, 0), // 2026-01-01T00:00:00.000Z
                1 => at(start + (rng.below(length as u64) as i64 / 3600) * 3600, 0),
                _ => at(start + rng.below(length as u64) as i64, rng.below(1000) as u32),
            };
            conn.execute(
                "INSERT INTO tasks (name, type, org_id, app_name, created, run_after) VALUES (?1, ?2, ?3, ?4, ?5, ?5)",
                rusqlite::params![
                    format!("t{i}"),
                    kinds[rng.below(3) as usize],
                    1 + rng.below(2) as i64,
                    apps[rng.below(4) as usize],
                    created
                ],
            )
            .unwrap();
        }
        conn.execute("INSERT INTO tasks (name, type, created, run_after) VALUES ('hello', 'hello', 'x', 'x')", [])
            .unwrap();
        let mut edges =
            vec![None, Some(at(1_767_225_600, 0)), Some(at(1_767_225_599, 999)), Some(at(1_767_225_600, 1))];
        for _ in 0..6 {
            edges.push(Some(at(start + rng.below(length as u64) as i64, rng.below(1000) as u32)));
        }
        // Two edges in one hour, and the stored time of a task itself.
        edges.push(Some(at(1_767_229_000, 0)));
        edges.push(Some(at(1_767_229_100, 0)));
        edges.push(conn.query_row("SELECT created FROM tasks WHERE name = 't5'", [], |r| r.get(0)).unwrap());
        assert_totals_match(&conn, &edges);

        conn.execute("UPDATE tasks SET status = 'running' WHERE id % 3 = 0", []).unwrap();
        conn.execute("UPDATE tasks SET status = 'done', ended = created WHERE id % 2 = 0", []).unwrap();
        conn.execute("UPDATE tasks SET status = 'failed', ended = created WHERE id % 7 = 0", []).unwrap();
        conn.execute("UPDATE tasks SET app_name = 'Beta' WHERE id % 11 = 0", []).unwrap();
        conn.execute("UPDATE tasks SET progress_done = 5", []).unwrap();
        assert_totals_match(&conn, &edges);

        let retention_cut = at(start + length / 2, 0);
        assert!(super::super::tasks::remove_ended_before(&conn, &retention_cut).unwrap() > 50);
        assert_totals_match(&conn, &edges);
        conn.execute("DELETE FROM orgs WHERE id = 2", []).unwrap();
        assert_totals_match(&conn, &edges);

        // Nothing outlives its tasks: no zero rows, nothing of the removed organization.
        for table in ["task_time_counts", "task_app_counts"] {
            let stale: i64 = conn
                .query_row(&format!("SELECT count(*) FROM {table} WHERE n <= 0 OR org_id = 2"), [], |r| r.get(0))
                .unwrap();
            assert_eq!(stale, 0, "{table}");
        }
        conn.execute("DELETE FROM tasks", []).unwrap();
        for table in ["task_time_counts", "task_app_counts"] {
            let left: i64 = conn.query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0)).unwrap();
            assert_eq!(left, 0, "{table} after the last task went");
        }
    }
}
