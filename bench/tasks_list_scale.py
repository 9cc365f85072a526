#!/usr/bin/env python3
# How a page of GET /be/v1/tasks scales with task history (issue 9: a page at 1 000 000 tasks
# within 2x of the same page at 1 000). Builds schema.sql in a temp SQLite file, fills one
# organization with n tasks (plus another organization's), and times the exact statements the
# list runs (src/store/tasks.rs, src/store/task_totals.rs): the page (ORDER BY ... LIMIT 10) and
# the total a full page adds, from the counters of migrations 006 and 012 (a `count(*)` for a
# group, three tasks). A creation window in a non-time order is read one of two ways, chosen per
# request from the counters (`choose` in src/store/tasks.rs): the walk of the order's index, or
# the window read along its created index (covering: index entries only, then the page's rows,
# migration 013) and sorted; "before" times the walk alone (what the list ran before the choice),
# "after" the chosen plan plus the choice's own totals. Not mirrored here: pages in an order that
# starts with type, status or app name and goes on otherwise (read group by group, skipped) and
# windows of a few days walked day by day (src/store/task_days.rs, migration 016), whose "after"
# here is the window read or walk the server would take without the day walks.
# bench/tasks_page_http.py times what the server does for every page.
# Tasks arrive at a steady rate (one every 30 s, the box's rate does not grow with its history):
# 1 000 tasks span 8 hours, 1 000 000 almost a year. Windows are the same share of the history
# at both sizes (the middle half, the last quarter), so they match the same share of tasks;
# "last hour/day/week" windows are the same length at both sizes (a far smaller share at 10^6).
# Times are CPU time of this process (SQLite runs in it), less noisy than wall time on a shared box.
# A measurement, not a test: python3 bench/tasks_list_scale.py [n ...] (default 1000 1000000)
import os
import sqlite3
import sys
import tempfile
import time
sys.dont_write_bytecode = True  # no __pycache__ left in the checkout
from task_history import STEP, fill, grouped, queries, stamp
schema = open(os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'schema.sql')).read()
def setup(n):
    path = os.path.join(tempfile.gettempdir(), f'rockit-tasks{n}.db')
    if os.path.exists(path): os.remove(path)
    c = sqlite3.connect(path)
    c.executescript(schema)
    c.execute("INSERT INTO orgs (id, name, created, updated) VALUES (1, 'acme', 'x', 'x')")
    c.execute("INSERT INTO orgs (id, name, created, updated) VALUES (2, 'other', 'x', 'x')")
    # No ANALYZE: the server never runs it, so its planner has no statistics either.
    return c, fill(c, n, (1, 2))

# The list's condition and its page, as src/store/tasks.rs builds them: only the given filters
# as terms (an absent one is `?n IS NULL`); a creation window usable by an index only when the
# page is in creation order.
COLS = "id, name, type, status, grp, app_name, build_id, input, output, progress_done, progress_total, warnings, exception, attempts, max_attempts, created, started, ended"
def cond_of(app, kind, status, group, after, before, by_created):
    created = "t.created" if by_created else "+t.created"
    return "WHERE t.org_id = ?1 AND " + " AND ".join([
        "instr(lower(t.app_name), lower(?2)) > 0" if app is not None else "?2 IS NULL",
        "t.type = ?3" if kind is not None else "?3 IS NULL",
        "t.status = ?4" if status is not None else "?4 IS NULL",
        "t.grp = ?5" if group is not None else "?5 IS NULL",
        f"{created} > ?6" if after is not None else "?6 IS NULL",
        f"{created} < ?7" if before is not None else "?7 IS NULL"])
# What the list ran before (one statement for every combination), for the "before" columns.
OLD_COND = """WHERE t.org_id = ?1 AND (?2 IS NULL OR instr(lower(t.app_name), lower(?2)) > 0)
        AND (?3 IS NULL OR t.type = ?3) AND (?4 IS NULL OR t.status = ?4) AND (?5 IS NULL OR t.grp = ?5)
        AND (?6 IS NULL OR t.created > ?6) AND (?7 IS NULL OR t.created < ?7)"""

# The totals, as src/store/task_totals.rs computes them.
SPANS = [4, 7, 10, 13]
END = '~'
def cover(lo, hi, level, out):
    span = SPANS[level]
    if level == 0:
        out.append((span, lo or '', hi or END)); return
    p = SPANS[level - 1]
    plo, phi = (lo[:p] if lo else None), (hi[:p] if hi else None)
    if lo and hi and plo == phi:
        out.append((span, lo, hi)); return
    if lo: out.append((span, lo, plo + END))
    if hi: out.append((span, phi, hi))
    cover(plo, phi, level - 1, out)
def between(c, org, app, kind, status, above, below):
    return c.execute("""SELECT count(*) FROM tasks t WHERE t.org_id = ?1 AND t.created > ?2 AND t.created < ?3
             AND (?4 IS NULL OR instr(lower(t.app_name), lower(?4)) > 0)
             AND (?5 IS NULL OR t.type = ?5) AND (?6 IS NULL OR t.status = ?6)""", (org, above, below, app, kind, status)).fetchone()[0]
MAX_RANGES = 2 * (len(SPANS) - 1) + 1
SLOTS = ", ".join(f"(?{5 + 3 * i}, ?{6 + 3 * i}, ?{7 + 3 * i})" for i in range(MAX_RANGES))
PAIR = "(?2 IS NULL OR c.type = ?2) AND (?3 IS NULL OR c.status = ?3)"
RANGES_ALL = f"""WITH r (span, above, below) AS (VALUES {SLOTS}) SELECT coalesce(sum(c.n), 0) FROM r CROSS JOIN task_time_counts c
             ON c.org_id = ?1 AND c.span = r.span AND c.bucket > r.above AND c.bucket < r.below WHERE {PAIR} AND ?4 IS NULL"""
RANGES_APP = f"""WITH r (span, above, below) AS (VALUES {SLOTS}), apps AS (SELECT DISTINCT app_name FROM task_app_counts
                                WHERE org_id = ?1 AND span = 0 AND instr(lower(app_name), lower(?4)) > 0)
             SELECT coalesce(sum(c.n), 0) FROM r CROSS JOIN apps CROSS JOIN task_app_counts c
             ON c.org_id = ?1 AND c.span = r.span AND c.app_name = apps.app_name AND c.bucket > r.above AND c.bucket < r.below
             WHERE {PAIR}"""
def buckets_sum(c, org, app, kind, status, ranges):
    slots = (ranges + [(0, END, '')] * MAX_RANGES)[:MAX_RANGES]
    args = [org, kind, status, app] + [v for r in slots for v in r]
    return c.execute(RANGES_APP if app is not None else RANGES_ALL, args).fetchone()[0]
def total(c, org, app, kind, status, group, after, before):
    if group is not None:
        return c.execute(f"SELECT count(*) FROM tasks t {cond_of(app, kind, status, group, after, before, False)}", (org, app, kind, status, group, after, before)).fetchone()[0], 'count(*)'
    if after is None and before is None:
        if app is None:
            return c.execute("SELECT coalesce(sum(n), 0) FROM task_counts WHERE org_id = ?1 AND (?2 IS NULL OR type = ?2) AND (?3 IS NULL OR status = ?3)", (org, kind, status)).fetchone()[0], 'task_counts'
        return c.execute("""SELECT coalesce(sum(n), 0) FROM task_app_counts WHERE org_id = ?1 AND span = 0
             AND instr(lower(app_name), lower(?2)) > 0 AND (?3 IS NULL OR type = ?3) AND (?4 IS NULL OR status = ?4)""", (org, app, kind, status)).fetchone()[0], 'app counters'
    above, below = after or '', before or END
    lo, hi = (after[:13] if after else None), (before[:13] if before else None)
    if lo and hi and lo >= hi:
        return between(c, org, app, kind, status, above, below), 'one hour'
    n = 0
    if lo: n += between(c, org, app, kind, status, above, lo + END)
    if hi: n += between(c, org, app, kind, status, hi, below)
    ranges = []
    cover(lo, hi, len(SPANS) - 1, ranges)
    for i in range(0, len(ranges), MAX_RANGES): n += buckets_sum(c, org, app, kind, status, ranges[i:i + MAX_RANGES])
    return n, f"{len(ranges)} ranges + 2 hours"

# The plan choice, as src/store/tasks.rs `choose` makes it: None (walk the order's index) or the
# created index to read the window by, and the total when choosing needed it.
def window_index(kind, status):
    return 'tasks_by_org_type_created' if kind is not None else 'tasks_by_org_status_created' if status is not None else 'tasks_by_org'
def choose(c, org, app, kind, status, group, after, before, order, offset, limit=10):
    if group is not None or (after is None and before is None) or order.startswith('t.created'):
        return None, None
    matches = total(c, org, app, kind, status, None, after, before)[0]
    walked = total(c, org, None, kind, status, None, None, None)[0]
    visits = walked if matches == 0 else min((offset + limit) * walked // matches, walked)
    if matches >= visits:
        return None, matches
    if app is None and (kind is None or status is None):
        in_range = matches
    else:
        in_range = total(c, org, None, kind, None if kind is not None else status, None, after, before)[0]
    return (window_index(kind, status) if in_range < visits else None), matches

def best_of(f, k=20):
    best = 1e9
    for _ in range(k):
        t = time.process_time(); f(); best = min(best, time.process_time() - t)
    return best * 1000

SIZES = tuple(int(a) for a in sys.argv[1:]) or (1000, 1000000)
results = {}
for n in SIZES:
    c, filled = setup(n)
    print(f"n = {n}: filled in {filled:.1f} s (bulk insert, then indexes and counters)", flush=True)
    for label, (app, kind, status, group, after, before, order) in queries(n).items():
        if grouped(order):
            # Read group by group from the counters (src/store/task_groups.rs), not mirrored here.
            print(f"| {n:>9,} | {label} | read group by group: see bench/tasks_page_http.py |", flush=True)
            continue
        args = (1, app, kind, status, group, after, before)
        def page_sql(index):
            # The walk (index None) as before the choice; a window read pinned to its index.
            if index is not None:
                # Covering: the page's ids from the window's index entries, then its rows (window_sql).
                return f"SELECT {COLS} FROM tasks t WHERE t.id IN (SELECT t.id FROM tasks t INDEXED BY {index} {cond_of(app, kind, status, group, after, before, True)} ORDER BY {order} LIMIT 10 OFFSET 0) ORDER BY {order}"
            table = "tasks t INDEXED BY tasks_by_org_group" if group else "tasks t"
            return f"SELECT {COLS} FROM {table} {cond_of(app, kind, status, group, after, before, order.startswith('t.created'))} ORDER BY {order} LIMIT 10 OFFSET 0"
        index, chosen_total = choose(c, *args, order, 0)
        walk_sql, chosen_sql = page_sql(None), page_sql(index)
        assert group or len(c.execute(walk_sql, args).fetchall()) == 10, label
        # Both plans answer the page the one old statement (no plan tricks) answers.
        want_page = c.execute(f"SELECT {COLS} FROM tasks t {OLD_COND} ORDER BY {order} LIMIT 10", args).fetchall()
        assert c.execute(walk_sql, args).fetchall() == want_page == c.execute(chosen_sql, args).fetchall(), label
        want = c.execute(f"SELECT count(*) FROM tasks t {OLD_COND}", args).fetchone()[0]
        got, how = total(c, *args)
        assert got == want and chosen_total in (None, want), (label, got, chosen_total, want)
        walk = best_of(lambda: c.execute(walk_sql, args).fetchall())
        tot = best_of(lambda: total(c, *args))
        chosen = walk if index is None else best_of(lambda: c.execute(chosen_sql, args).fetchall())
        # The list's cost after: the choice (with its totals) replaces the total where it ran.
        choice = best_of(lambda: choose(c, *args, order, 0)) if chosen_total is not None else 0.0
        before_ms, after_ms = walk + tot, chosen + (choice if chosen_total is not None else tot)
        results[(n, label)] = (before_ms, after_ms)
        plan = c.execute(f"EXPLAIN QUERY PLAN {chosen_sql}", args).fetchall()
        print(f"| {n:>9,} | {label} | {want:,} | {walk:.3f} + {tot:.3f} ms = **{before_ms:.3f} ms** | {'window read' if index else 'walk'} | {chosen:.3f} + {(choice if chosen_total is not None else tot):.3f} ms{' (choice)' if chosen_total is not None else ''} = **{after_ms:.3f} ms** | {how} | {', '.join(p[3].replace('SEARCH t USING ', '') for p in plan)} |", flush=True)
    if n == 1000000:
        # What the counters cost a write: one task's insert, two status changes and its removal.
        def one_task(i):
            cr = stamp(n * STEP + i)
            c.execute("INSERT INTO tasks (name, type, app_name, org_id, created, run_after) VALUES (?, 'mkraw', 'app3', 1, ?, ?)", (f"w-{i}", cr, cr))
            c.execute("UPDATE tasks SET status = 'running' WHERE name = ?", (f"w-{i}",))
            c.execute("UPDATE tasks SET status = 'done', ended = ? WHERE name = ?", (cr, f"w-{i}"))
            c.execute("DELETE FROM tasks WHERE name = ?", (f"w-{i}",))
        k = 2000
        t = time.process_time()
        for i in range(k): one_task(i)
        with_012 = (time.process_time() - t) / k * 1e6
        c.rollback()
        for trig in ('task_window_counts_added', 'task_window_counts_removed', 'task_window_counts_changed'):
            c.execute(f"DROP TRIGGER {trig}")
        t = time.process_time()
        for i in range(k): one_task(i)
        without = (time.process_time() - t) / k * 1e6
        c.rollback()
        print(f"a task's life (insert, running, done, delete; no commit): {with_012:.0f} µs CPU with the 012 triggers, {without:.0f} µs without", flush=True)
        rows = {t: c.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in ('task_counts', 'task_time_counts', 'task_app_counts')}
        print(f"counter rows at n = {n}: {rows}", flush=True)
small, large = SIZES[0], SIZES[-1]
print(f"\n| query | before: {large:,} / {small:,} | after: {large:,} / {small:,} | within 2x after |\n|---|---:|---:|---|")
for label in (label for label, q in queries(small).items() if not grouped(q[-1])):
    (b3, a3), (b6, a6) = results[(small, label)], results[(large, label)]
    print(f"| {label} | {b6 / b3:.1f}x ({b3:.3f} -> {b6:.3f} ms) | {a6 / a3:.1f}x ({a3:.3f} -> {a6:.3f} ms) | {'yes' if a6 <= 2 * a3 else 'no'} |")
