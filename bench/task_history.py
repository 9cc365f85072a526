# A task history for the task-page benchmarks (bench/tasks_list_scale.py times the list's SQL,
# bench/tasks_page_http.py the real server's pages): n tasks arriving at a steady rate in two
# organizations, and the pages timed on it (issue 9: a page at 1 000 000 tasks within 2x of the
# same page at 1 000).
# Tasks arrive one every 30 s (the box's rate does not grow with its history): 1 000 tasks span
# 8 hours, 1 000 000 almost a year. Windows are the same share of the history at both sizes (the
# middle half, the last quarter), so they match the same share of tasks; "last hour/day/week"
# windows are the same length at both sizes (a far smaller share at 10^6).
import datetime
import os
import re
import time

EPOCH = datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc)
STEP = 30  # seconds between two tasks
here = os.path.dirname(os.path.abspath(__file__))


def stamp(seconds):
    t = EPOCH + datetime.timedelta(seconds=seconds)
    return t.strftime('%Y-%m-%dT%H:%M:%S.') + f"{t.microsecond // 1000:03d}Z"


# The counters' backfills of the migrations that keep them, as a migrated database gets them.
BACKFILLS = [b for f in ('006_task_counts.sql', '012_task_window_counts.sql')
             for b in re.findall(r"^INSERT INTO task_\w+ .*?;", open(os.path.join(here, '..', 'migrations', f)).read(), re.S | re.M)]


def fill(c, n, orgs):
    """Adds n finished tasks, alternating between the two organization ids `orgs`, to the database
    of connection `c`, and returns the CPU seconds it took. The tasks' indexes and counting
    triggers are dropped for the bulk insert and made again after it with the migrations' own
    backfills: the same database, filled in a minute instead of an hour."""
    creates = c.execute("SELECT type, name, sql FROM sqlite_master WHERE tbl_name = 'tasks' AND type IN ('index', 'trigger') AND sql IS NOT NULL").fetchall()
    for kind, name, _ in creates:
        c.execute(f"DROP {kind.upper()} {name}")
    kinds = ['dltar', 'mkraw', 'deploy']
    rows = ((f"{kinds[i % 3]}-{(i * 0x9E3779B97F4A7C15) % 2**48:012x}", kinds[i % 3], 'done', f"build-{i // 3:x}",
             f"app{(i // 6) % 50}", orgs[i % 2], stamp(i * STEP + 7)) for i in range(n))
    t = time.process_time()
    c.executemany("INSERT INTO tasks (name, type, status, grp, app_name, org_id, created, run_after) VALUES (?,?,?,?,?,?,?,?)",
                  ((a, b, s, g, ap, o, cr, cr) for a, b, s, g, ap, o, cr in rows))
    for b in BACKFILLS:
        c.execute(b)
    for _, _, sql in creates:
        c.execute(sql)
    c.commit()
    return time.process_time() - t


NAME, CREATED, OLDEST = "t.name ASC", "t.created ASC, t.name ASC", "t.created DESC, t.name DESC"
# The order[] values a page sends for each order the list runs (src/store/tasks.rs SORT; ties by
# name, in the direction of the last field).
ORDER_PARAM = {NAME: [], "t.name DESC": ["-name"], CREATED: ["created"], OLDEST: ["-created"],
               "t.app_name ASC, t.name ASC": ["appName"], "t.app_name DESC, t.name DESC": ["-appName"],
               "t.status ASC, t.name ASC": ["status"], "t.status DESC, t.name DESC": ["-status"],
               "t.type ASC, t.name ASC": ["type"], "t.type DESC, t.name DESC": ["-type"],
               "t.status ASC, t.created DESC, t.name DESC": ["status", "-created"],
               "t.app_name DESC, t.created ASC, t.name ASC": ["-appName", "created"]}


def grouped(order):
    """Whether the server reads a page in this order group by group (src/store/task_groups.rs
    `grouping`): it starts with type, status or app name, and one index does not walk it whole."""
    keys = [(c.split()[0], c.split()[1] == 'DESC') for c in order.split(', ')]
    by = keys[:next(i for i, (c, _) in enumerate(keys) if c not in ('t.type', 't.status', 't.app_name'))]
    return bool(by) and not (len(by) == 1 and by[0][1] == keys[len(by)][1])


def queries(n):
    """label: (appName, type, status, group, createdAfter, createdBefore, order as SQL)."""
    span = n * STEP
    q1, q3 = stamp(span // 4 + 3), stamp(3 * span // 4 + 11)
    last, last_day = stamp(3 * span // 4 + 11), stamp(span - 86400 + 13)
    last_hour, last_week = stamp(span - 3600 + 13), stamp(span - 7 * 86400 + 13)
    mid_day = (stamp(span // 2 + 17), stamp(span // 2 + 86400 + 17))
    return {
        'default (name)': (None, None, None, None, None, None, NAME),
        'order[]=created': (None, None, None, None, None, None, CREATED),
        'order[]=-created': (None, None, None, None, None, None, OLDEST),
        'order[]=appName': (None, None, None, None, None, None, "t.app_name ASC, t.name ASC"),
        'order[]=status': (None, None, None, None, None, None, "t.status ASC, t.name ASC"),
        'order[]=-status': (None, None, None, None, None, None, "t.status DESC, t.name DESC"),
        'order[]=-type': (None, None, None, None, None, None, "t.type DESC, t.name DESC"),
        'order[]=-appName': (None, None, None, None, None, None, "t.app_name DESC, t.name DESC"),
        'order[]=status&order[]=-created': (None, None, None, None, None, None, "t.status ASC, t.created DESC, t.name DESC"),
        'order[]=-appName&order[]=created': (None, None, None, None, None, None, "t.app_name DESC, t.created ASC, t.name ASC"),
        'appName=app1, order[]=status&order[]=-created': ('app1', None, None, None, None, None, "t.status ASC, t.created DESC, t.name DESC"),
        'type=mkraw': (None, 'mkraw', None, None, None, None, NAME),
        'type=mkraw, order[]=created': (None, 'mkraw', None, None, None, None, CREATED),
        'status=done': (None, None, 'done', None, None, None, NAME),
        'status=done, order[]=-created': (None, None, 'done', None, None, None, OLDEST),
        'group=…': (None, None, None, 'build-10', None, None, NAME),
        'group=…, order[]=created': (None, None, None, 'build-10', None, None, CREATED),
        'appName=app1 (11 of 50 apps)': ('app1', None, None, None, None, None, NAME),
        'appName=APP1&type=mkraw': ('APP1', 'mkraw', None, None, None, None, NAME),
        'appName=app1, order[]=-created': ('app1', None, None, None, None, None, OLDEST),
        'createdAfter=last quarter': (None, None, None, None, last, None, NAME),
        'createdAfter=last quarter, order[]=created': (None, None, None, None, last, None, CREATED),
        'createdAfter=last day': (None, None, None, None, last_day, None, NAME),
        'createdAfter=last day, order[]=created': (None, None, None, None, last_day, None, CREATED),
        'createdAfter=last day, order[]=-name': (None, None, None, None, last_day, None, "t.name DESC"),
        'createdAfter=last day, order[]=appName': (None, None, None, None, last_day, None, "t.app_name ASC, t.name ASC"),
        'createdAfter=last day, order[]=-status': (None, None, None, None, last_day, None, "t.status DESC, t.name DESC"),
        'last day&type=mkraw': (None, 'mkraw', None, None, last_day, None, NAME),
        'last day&status=done, order[]=type': (None, None, 'done', None, last_day, None, "t.type ASC, t.name ASC"),
        'last day&type=deploy&status=done': (None, 'deploy', 'done', None, last_day, None, NAME),
        'last day&appName=app1': ('app1', None, None, None, last_day, None, NAME),
        'createdAfter=last hour': (None, None, None, None, last_hour, None, NAME),
        'createdAfter=last week': (None, None, None, None, last_week, None, NAME),
        'createdAfter…Before=a day in the middle': (None, None, None, None, *mid_day, NAME),
        'createdAfter…Before=middle half': (None, None, None, None, q1, q3, NAME),
        'middle half, order[]=-created': (None, None, None, None, q1, q3, OLDEST),
        'middle half&type=deploy&status=done': (None, 'deploy', 'done', None, q1, q3, NAME),
        'middle half&type=deploy, order[]=created': (None, 'deploy', None, None, q1, q3, CREATED),
        'middle half&appName=app1': ('app1', None, None, None, q1, q3, NAME),
        'createdBefore=middle&appName=app4': ('app4', None, None, None, None, stamp(span // 2 + 5), NAME),
    }
