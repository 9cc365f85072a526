#!/usr/bin/env python3
# End-to-end import latency as a webhook receiver sees it (issue 11 "Benchmark"): from
# `POST /be/v1/builds` (URL mode) to the `deploy` `end` webhook arriving, on a real server with a
# build server and a receiver on loopback. Baseline in the same run: a plain download of the same
# tar plus `zstd -3 -T0` of it (what any import must at least do: fetch and compress once).
# Also reported: the outbox lag, from the event's `time` (the commit of the task change) to the
# receiver getting it. A measurement, not a test:
#   python3 bench/webhook_latency.py [--rockit target/debug/rockit-edge] [--mib 32] [--runs 3]
import argparse
import datetime
import hashlib
import http.server
import io
import json
import os
import random
import re
import shutil
import subprocess
import tarfile
import tempfile
import threading
import time
import urllib.request

parser = argparse.ArgumentParser()
parser.add_argument('--rockit', default='target/debug/rockit-edge')
parser.add_argument('--mib', type=int, default=32, help='size of the synthetic build')
parser.add_argument('--runs', type=int, default=3)
args = parser.parse_args()

work = tempfile.mkdtemp(prefix='rockit-webhook-bench-')


def build_tar(path, mib, seed):
    """A synthetic game: half incompressible 'textures', half repetitive 'scripts'; every build
    changes a few bytes of each file, as a rebuild does."""
    rng = random.Random(1)
    with tarfile.open(path, 'w', format=tarfile.USTAR_FORMAT) as tar:
        for i in range(mib):
            if i % 2:
                data = bytearray(rng.randbytes(1 << 20))
            else:
                data = bytearray((b'function level_%d() { return spawn(%d); }\n' % (i, i)) * 24000)[: 1 << 20]
            data[i * 97 % len(data)] = seed & 0xFF
            info = tarfile.TarInfo(f'data/file{i:03}.bin')
            info.size, info.mtime = len(data), 0
            tar.addfile(info, io.BytesIO(bytes(data)))


class Files(http.server.SimpleHTTPRequestHandler):
    def __init__(self, *a, **k):
        super().__init__(*a, directory=work, **k)

    def log_message(self, *a):
        pass


events = []
events_lock = threading.Condition()


class Receiver(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get('Content-Length', 0)))
        got = time.time()
        self.send_response(200)
        self.send_header('Content-Length', '0')
        self.end_headers()
        with events_lock:
            events.append((got, json.loads(body)))
            events_lock.notify_all()

    def log_message(self, *a):
        pass


def serve(handler):
    server = http.server.ThreadingHTTPServer(('127.0.0.1', 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return f'http://127.0.0.1:{server.server_address[1]}'


def call(base, method, path, body=None, headers=None):
    req = urllib.request.Request(base + path, method=method, data=None if body is None else json.dumps(body).encode())
    req.add_header('Content-Type', 'application/json')
    for k, v in (headers or {}).items():
        req.add_header(k, v)
    with urllib.request.urlopen(req) as resp:
        return json.loads(resp.read())


files, receiver = serve(Files), serve(Receiver)
state = os.path.join(work, 'state')
env = dict(os.environ, ROCKIT_EDGE_STATE_DIR=state, ROCKIT_EDGE_OUTBOUND_ALLOW_LOOPBACK='true',
           ROCKIT_EDGE_LISTEN='127.0.0.1:0', ROCKIT_EDGE_LOG_LEVEL='warn')
proc = subprocess.Popen([args.rockit, 'serve'], env=env, stdout=subprocess.PIPE, text=True)
try:
    line = proc.stdout.readline()
    base = re.search(r'listening on (http://\S+)', line).group(1)
    token = subprocess.check_output([args.rockit, 'admin-token', '--name', 'bench'], env=env, text=True).strip()
    org = call(base, 'POST', '/adm/v1/orgs', {'name': 'acme'}, {'x-rockit-admin-token': token})
    login = call(base, 'POST', '/be/v1/login',
                 {'username': 'admin', 'password': org['admin']['initialPassword'], 'orgName': 'acme'})
    auth = {'Authorization': 'Bearer ' + login['session']['access']['token']}
    call(base, 'POST', '/be/v1/apps', {'name': 'game', 'label': 'Bench game'}, auth)
    call(base, 'POST', '/be/v1/subscriptions', {'name': 'bench', 'type': 'webhook', 'url': receiver + '/hook',
                                               'events': [{'type': 'deploy', 'event': 'end'}]}, auth)
    rows = []
    for run in range(1, args.runs + 1):
        tar = os.path.join(work, f'build{run}.tar')
        build_tar(tar, args.mib, run)
        size = os.path.getsize(tar)
        # Baseline: fetch the same tar over the same loopback HTTP and compress it once.
        t = time.perf_counter()
        copy = os.path.join(work, 'copy.tar')
        with urllib.request.urlopen(f'{files}/build{run}.tar') as resp, open(copy, 'wb') as out:
            shutil.copyfileobj(resp, out, 1 << 20)
        subprocess.run(['zstd', '-q', '-f', '-3', '-T0', copy, '-o', copy + '.zst'], check=True)
        baseline = time.perf_counter() - t
        # The import, until the receiver has the deploy end of this build.
        t = time.perf_counter()
        started = time.time()
        task = call(base, 'POST', '/be/v1/builds', {'appName': 'game', 'url': f'{files}/build{run}.tar', 'size': size}, auth)
        build_id = task['task']['buildId']
        with events_lock:
            while not any(e['buildId'] == build_id for _, e in events):
                if not events_lock.wait(timeout=600):
                    raise SystemExit(f'no deploy end webhook for build {build_id} within 600 s')
            got, event = next((g, e) for g, e in events if e['buildId'] == build_id)
        end_to_end = time.perf_counter() - t
        committed = datetime.datetime.fromisoformat(event['time'].replace('Z', '+00:00')).timestamp()
        lag = got - committed
        rows.append((run, size, end_to_end, baseline, lag))
        print(f'| {run} | {size / 2**20:.1f} MiB | {end_to_end:.2f} s | {baseline:.2f} s | {end_to_end / baseline:.1f}x | {lag * 1000:.0f} ms |', flush=True)
        assert event['dxfName'] and event['type'] == 'deploy' and event['event'] == 'end', event
        assert started <= got
finally:
    proc.terminate()
    proc.wait(timeout=30)
    shutil.rmtree(work, ignore_errors=True)
