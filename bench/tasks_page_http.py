#!/usr/bin/env python3
# A page of GET /be/v1/tasks as a client gets it from the real server, at 1 000 and at 1 000 000
# tasks (issue 9: a page at 10^6 within 2x of the same page at 10^3). bench/tasks_list_scale.py
# times the list's SQL alone; this times what a member or a CI pipeline waits for: the request
# through HTTP, authentication, the plan choice, the page, the total and the JSON.
#
# Two servers run side by side, one per history size (bench/task_history.py, filled into their
# databases while they are stopped). Every page is requested from both in alternation, so both
# sizes are measured in the same minutes of the same (noisy) box. Per page and size it reports
# the median wall time of a request over one keep-alive connection, and the server's own CPU time
# per request (its threads' schedstat, nanoseconds: the client's Python is not in it).
# A measurement, not a test:
#   python3 bench/tasks_page_http.py [--rockit target/release/rockit-edge] [--requests 300]
import argparse
import http.client
import json
import os
import re
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse

sys.dont_write_bytecode = True  # no __pycache__ left in the checkout
from task_history import ORDER_PARAM, fill, queries

parser = argparse.ArgumentParser()
parser.add_argument('--rockit', default='target/release/rockit-edge')
parser.add_argument('--requests', type=int, default=300, help='timed requests per page and size')
parser.add_argument('--sizes', type=int, nargs=2, default=(1000, 1000000), metavar=('SMALL', 'LARGE'))
args = parser.parse_args()
work = tempfile.mkdtemp(prefix='rockit-task-pages-')


def environment(state):
    # Retention off for the run: the history's tasks are a year old and would be cleaned up.
    return dict(os.environ, ROCKIT_EDGE_STATE_DIR=state, ROCKIT_EDGE_LISTEN='127.0.0.1:0',
                ROCKIT_EDGE_LOG_LEVEL='warn', ROCKIT_EDGE_TASK_RETENTION='3650d')


class Server:
    def __init__(self, n):
        self.n, self.state = n, os.path.join(work, f'state-{n}')
        self.proc = None

    def start(self):
        self.proc = subprocess.Popen([args.rockit, 'serve'], env=environment(self.state), stdout=subprocess.PIPE, text=True)
        self.base = re.search(r'listening on http://(\S+)', self.proc.stdout.readline()).group(1)
        self.conn = http.client.HTTPConnection(self.base)

    def stop(self):
        self.conn.close()
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=60)

    def call(self, method, path, body=None, headers=None):
        self.conn.request(method, path, body=None if body is None else json.dumps(body),
                          headers={'Content-Type': 'application/json', **(headers or {})})
        resp = self.conn.getresponse()
        data = resp.read()
        if resp.status != 200:
            raise SystemExit(f'{method} {path}: {resp.status} {data[:300]!r}')
        return json.loads(data)

    def cpu_ns(self):
        """CPU time of all the server's threads so far."""
        tasks = f'/proc/{self.proc.pid}/task'
        total = 0
        for tid in os.listdir(tasks):
            try:
                total += int(open(f'{tasks}/{tid}/schedstat').read().split()[0])
            except FileNotFoundError:
                pass  # a thread that ended in between
        return total


def set_up(server):
    """Two organizations through the API, then the history written into the stopped server's
    database, then a session of acme's administrator on the restarted server."""
    server.start()
    token = subprocess.check_output([args.rockit, 'admin-token', '--name', 'bench'], env=environment(server.state), text=True).strip()
    admin = {'x-rockit-admin-token': token}
    password = server.call('POST', '/adm/v1/orgs', {'name': 'acme'}, admin)['admin']['initialPassword']
    server.call('POST', '/adm/v1/orgs', {'name': 'other'}, admin)
    server.stop()
    db = sqlite3.connect(os.path.join(server.state, 'rockit-edge.db'))
    ids = dict(db.execute("SELECT name, id FROM orgs").fetchall())
    seconds = fill(db, server.n, (ids['acme'], ids['other']))
    print(f'n = {server.n:,}: filled in {seconds:.1f} s', flush=True)
    server.start()
    login = server.call('POST', '/be/v1/login', {'username': 'admin', 'password': password, 'orgName': 'acme'})
    server.auth = {'Authorization': 'Bearer ' + login['session']['access']['token']}
    server.db, server.org = db, ids['acme']


def path_of(app, kind, status, group, after, before, order):
    params = [(k, v) for k, v in (('appName', app), ('type', kind), ('status', status), ('group', group),
                                  ('createdAfter', after), ('createdBefore', before)) if v is not None]
    params += [('order[]', field) for field in ORDER_PARAM[order]]
    return '/be/v1/tasks?' + urllib.parse.urlencode(params + [('limit', 10)])


def expected(server, app, kind, status, group, after, before, order):
    """The page's names and total by the plainest SQL, to check the server's answer against."""
    cond = """FROM tasks t WHERE t.org_id = ?1 AND (?2 IS NULL OR instr(lower(t.app_name), lower(?2)) > 0)
        AND (?3 IS NULL OR t.type = ?3) AND (?4 IS NULL OR t.status = ?4) AND (?5 IS NULL OR t.grp = ?5)
        AND (?6 IS NULL OR t.created > ?6) AND (?7 IS NULL OR t.created < ?7)"""
    params = (server.org, app, kind, status, group, after, before)
    names = [r[0] for r in server.db.execute(f"SELECT t.name {cond} ORDER BY {order} LIMIT 10", params)]
    return names, server.db.execute(f"SELECT count(*) {cond}", params).fetchone()[0]


servers = [Server(n) for n in args.sizes]
try:
    for s in servers:
        set_up(s)
    for s in servers:  # the first server's connection sat idle through the second's fill
        s.conn.close()
        s.conn = http.client.HTTPConnection(s.base)
    small, large = servers
    print(f'\n| page | tasks matching at {small.n:,} / {large.n:,} | median request at {small.n:,} | at {large.n:,} | ratio | '
          f'server CPU per request at {small.n:,} | at {large.n:,} | ratio | within 2x |\n|---|---:|---:|---:|---:|---:|---:|---:|---|')
    worst = {}
    for label in queries(small.n):
        paths, walls, cpus, totals = {}, {s: [] for s in servers}, {}, {}
        for s in servers:
            q = queries(s.n)[label]
            paths[s] = path_of(*q)
            answer = s.call('GET', paths[s], headers=s.auth)
            want_names, want_total = expected(s, *q)
            got = [t['name'] for t in answer['tasks']]
            assert (got, answer['total']) == (want_names, want_total), (label, s.n, got, answer['total'], want_names, want_total)
            totals[s] = want_total
            for _ in range(30):  # warm-up: caches, the connection, the allocator
                s.call('GET', paths[s], headers=s.auth)
        start = {s: s.cpu_ns() for s in servers}
        for _ in range(args.requests):
            for s in servers:
                t = time.perf_counter()
                s.call('GET', paths[s], headers=s.auth)
                walls[s].append(time.perf_counter() - t)
        for s in servers:
            cpus[s] = (s.cpu_ns() - start[s]) / args.requests / 1e6
        wall = {s: statistics.median(walls[s]) * 1000 for s in servers}
        wall_ratio, cpu_ratio = wall[large] / wall[small], cpus[large] / max(cpus[small], 1e-9)
        worst[label] = (wall_ratio, cpu_ratio)
        print(f'| {label} | {totals[small]:,} / {totals[large]:,} | {wall[small]:.3f} ms | {wall[large]:.3f} ms | {wall_ratio:.2f}x | '
              f'{cpus[small]:.3f} ms | {cpus[large]:.3f} ms | {cpu_ratio:.2f}x | {"yes" if max(wall_ratio, cpu_ratio) <= 2 else "no"} |', flush=True)
    misses = [label for label, r in worst.items() if max(r) > 2]
    print(f'\nwithin 2x (median request and server CPU both): {len(worst) - len(misses)} of {len(worst)} pages'
          + (f'; not: {", ".join(misses)}' if misses else ''))
finally:
    for s in servers:
        if s.proc and s.proc.poll() is None:
            s.proc.kill()
    shutil.rmtree(work, ignore_errors=True)
