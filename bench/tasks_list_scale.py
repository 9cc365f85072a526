#!/usr/bin/env python3
# How a page of GET /be/v1/tasks scales with task history (issue 9: a page at 1 000 000 tasks
# within 2x of the same page at 1 000). Builds schema.sql in a temp SQLite file, fills one
# organization with n tasks (plus another organization's), and times the exact statements the
# list runs: the page (ORDER BY ... LIMIT 10) and the total a full page adds: the sum of the
# task_counts counters (unfiltered, type, status) or a count(*) (group), and for comparison the
# count(*) the list ran before the counters.
# A measurement, not a test: python3 bench/tasks_list_scale.py
import os
import sqlite3
import tempfile
import time
schema = open(os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'schema.sql')).read()
def setup(n):
    path = os.path.join(tempfile.gettempdir(), f'rockit-tasks{n}.db')
    if os.path.exists(path): os.remove(path)
    c = sqlite3.connect(path)
    c.executescript(schema)
    c.execute("INSERT INTO orgs (id, name, created, updated) VALUES (1, 'acme', 'x', 'x')")
    c.execute("INSERT INTO orgs (id, name, created, updated) VALUES (2, 'other', 'x', 'x')")
    rows = ((f"{['dltar','mkraw','deploy'][i%3]}-{i:012x}", ['dltar','mkraw','deploy'][i%3], 'done', f"build-{i//3:x}", f"app{i%50}", 1 + (i % 2), f"2026-11-26T{(i//3600)%24:02d}:{(i//60)%60:02d}:{i%60:02d}.000Z") for i in range(n))
    c.executemany("INSERT INTO tasks (name, type, status, grp, app_name, org_id, created, run_after) VALUES (?,?,?,?,?,?,?,?)", ((a,b,s,g,ap,o,cr,cr) for a,b,s,g,ap,o,cr in rows))
    c.commit()
    c.execute("ANALYZE")
    return c
COLS = "id, name, type, status, grp, app_name, build_id, input, output, progress_done, progress_total, warnings, exception, attempts, max_attempts, created, started, ended"
COUNTERS = "SELECT coalesce(sum(n), 0) FROM task_counts WHERE org_id = ?1 AND (?2 IS NULL OR type = ?2) AND (?3 IS NULL OR status = ?3)"
# label: (condition, order, how the list counts a full page: counters (type, status) or None)
queries = {
  'default (name)': ("WHERE t.org_id = ?1", "t.name ASC", (None, None)),
  'order[]=created': ("WHERE t.org_id = ?1", "t.id ASC, t.name ASC", (None, None)),
  'type=mkraw': ("WHERE t.org_id = ?1 AND t.type = 'mkraw'", "t.name ASC", ('mkraw', None)),
  'status=done': ("WHERE t.org_id = ?1 AND t.status = 'done'", "t.name ASC", (None, 'done')),
  'group=…': ("WHERE t.org_id = ?1 AND t.grp = 'build-10'", "t.name ASC", None),
}
def best_of(f, k=20):
    best = 1e9
    for _ in range(k):
        t = time.perf_counter(); f(); best = min(best, time.perf_counter() - t)
    return best * 1000
for n in (1000, 1000000):
    c = setup(n)
    for label, (cond, order, counters) in queries.items():
        page = best_of(lambda: c.execute(f"SELECT {COLS} FROM tasks t {cond} ORDER BY {order} LIMIT 10 OFFSET 0", (1,)).fetchall())
        old = best_of(lambda: c.execute(f"SELECT count(*) FROM tasks t {cond}", (1,)).fetchone())
        if counters is None:
            total, how = old, 'count(*)'
        else:
            total, how = best_of(lambda: c.execute(COUNTERS, (1,) + counters).fetchone()), 'counters'
            want = c.execute(f"SELECT count(*) FROM tasks t {cond}", (1,)).fetchone()[0]
            assert c.execute(COUNTERS, (1,) + counters).fetchone()[0] == want, label
        plan = c.execute(f"EXPLAIN QUERY PLAN SELECT {COLS} FROM tasks t {cond} ORDER BY {order} LIMIT 10", (1,)).fetchall()
        print(f"| {n:>8} | {label:16} | {page:.3f} ms | {total:.3f} ms ({how}) | {page + total:.3f} ms | {old:.3f} ms | {[p[3] for p in plan]} |", flush=True)
