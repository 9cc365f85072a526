#!/usr/bin/env python3
# FastStart benchmark (issue 11): bytes a launcher needs before a game's start-up reads are
# satisfied, before and after processTraces, on the real release server.
#
# A synthetic game (bench/faststart/game.py: 5 % of its asset files read at start-up, scattered
# through the tree) is imported through POST /be/v1/builds (upload mode) with an fs deployment;
# its start-up trace goes to POST /be/v1/traces; POST /be/v1/trigger processTraces builds the
# reordered image. `rockit-edge fetch --trace` then replays the start-up against the deployment,
# once on the original image and once on the new one, as a launcher that streams the image in
# load order (after fetching preloadBytes at once, where the index has them) would; both trees
# are rebuilt and compared to the input tar. The Markdown table goes to bench/results/.
#   python3 bench/faststart/run.py ROCKIT_BIN [SIZE_MIB] [OUT_DIR]
import datetime
import hashlib
import json
import os
import platform
import re
import shutil
import socket
import subprocess
import sys
import tarfile
import tempfile
import time
import urllib.request

rockit = os.path.abspath(sys.argv[1])
size_mib = int(sys.argv[2]) if len(sys.argv) > 2 else 256
out_dir = sys.argv[3] if len(sys.argv) > 3 else 'bench/results'
here = os.path.dirname(os.path.abspath(__file__))


def call(base, method, path, token=None, body=None, admin=None):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(base + path, data=data, method=method)
    if data is not None:
        req.add_header('content-type', 'application/json')
    if token:
        req.add_header('authorization', 'Bearer ' + token)
    if admin:
        req.add_header('x-rockit-admin-token', admin)
    with urllib.request.urlopen(req, timeout=600) as r:
        return json.loads(r.read())


def wait_settled(base, token, app, what, limit=3600):
    t0 = time.time()
    while time.time() - t0 < limit:
        a = call(base, 'GET', f'/be/v1/apps/{app}', token)['app']
        if not a['processing'] and not a['exporting']:
            if a.get('error'):
                sys.exit(f'{what} failed: {a["error"]}')
            return a, time.time() - t0
        time.sleep(0.2)
    sys.exit(f'{what} took more than {limit} s')


def fetch(depot, dxf, dest, trace):
    out = subprocess.run([rockit, 'fetch', '--from', depot, '--org', 'bench', '--app', 'game', '--build', '1',
                          '--dxf-name', dxf, '--dest', dest, '--trace', trace], capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit(f'fetch failed: {out.stderr}')
    m = re.search(r'startup of build 1: (\d+) bytes fetched .*\(index (\d+) bytes, preloadBytes (\S+), (\d+) chunks',
                  out.stdout)
    total = re.search(r'files written, \d+ kept, (\d+) bytes fetched', out.stdout)
    return int(m.group(1)), int(m.group(2)), m.group(3), int(m.group(4)), int(total.group(1))


def tar_digests(path):
    with tarfile.open(path) as t:
        return {m.name: hashlib.sha256(t.extractfile(m).read()).hexdigest() for m in t if m.isfile()}


def tree_digests(root):
    found = {}
    for d, _, names in os.walk(root):
        for n in names:
            p = os.path.join(d, n)
            with open(p, 'rb') as f:
                found[os.path.relpath(p, root)] = hashlib.sha256(f.read()).hexdigest()
    return found


work = tempfile.mkdtemp(prefix='rockit-faststart-')
try:
    game, trace = os.path.join(work, 'game.tar'), os.path.join(work, 'trace.json')
    subprocess.run([sys.executable, os.path.join(here, 'game.py'), str(size_mib), game, trace, '1'], check=True)
    trace_doc = json.load(open(trace))
    state, cdn = os.path.join(work, 'state'), os.path.join(work, 'cdn')
    s = socket.socket()
    s.bind(('127.0.0.1', 0))
    port = s.getsockname()[1]
    s.close()
    base = f'http://127.0.0.1:{port}'
    server = subprocess.Popen([rockit, 'serve', '--state-dir', state, '--listen', f'127.0.0.1:{port}'],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(300):
            try:
                call(base, 'GET', '/healthz')
                break
            except OSError:
                time.sleep(0.1)
        admin = subprocess.run([rockit, 'admin-token', '--name', 'bench', '--state-dir', state],
                               capture_output=True, text=True, check=True).stdout.strip()
        org = call(base, 'POST', '/adm/v1/orgs', None, {'name': 'bench'}, admin=admin)
        login = call(base, 'POST', '/be/v1/login', None,
                     {'username': 'admin', 'password': org['admin']['initialPassword'], 'orgName': 'bench'})
        token = login['session']['access']['token']
        call(base, 'POST', '/be/v1/deployments', token, {'name': 'cdn', 'origin': {'type': 'fs', 'path': cdn}})
        call(base, 'POST', '/be/v1/apps', token, {'name': 'game', 'label': 'Synthetic game'})
        size = os.path.getsize(game)
        started = call(base, 'POST', '/be/v1/builds', token, {'appName': 'game', 'size': size})
        subprocess.run(['curl', '-sS', '-f', '-o', '/dev/null', '-H', 'content-type: application/x-tar',
                        '-T', game, started['upload']['url']], check=True)
        app, import_s = wait_settled(base, token, 'game', 'the import')
        before_dxf = app['dxfName']
        call(base, 'POST', '/be/v1/traces', token, {'appName': 'game', 'buildId': 1, 'reads': trace_doc['reads']})
        call(base, 'POST', '/be/v1/trigger', token, {'action': 'processTraces', 'appName': 'game'})
        app, process_s = wait_settled(base, token, 'game', 'processTraces')
        after_dxf = app['dxfName']
        if after_dxf == before_dxf:
            sys.exit('processTraces did not switch the image')
    finally:
        server.terminate()
        server.wait(timeout=60)

    expected = tar_digests(game)
    rows = []
    for label, dxf in (('before (tar order)', before_dxf), ('after processTraces', after_dxf)):
        dest = os.path.join(work, 'tree-' + dxf)
        needed, index, preload, chunks, whole = fetch(cdn, dxf, dest, trace)
        if tree_digests(dest) != expected:
            sys.exit(f'the tree rebuilt from {dxf} differs from the input')
        shutil.rmtree(dest)
        rows.append((label, dxf, needed, index, preload, chunks, whole))
    ratio = rows[0][2] / rows[1][2]

    stamp = datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%dT%H%M')
    cpu = next((l.split(':', 1)[1].strip() for l in open('/proc/cpuinfo') if l.startswith('model name')), '?')
    lines = [
        f'# FastStart benchmark, {stamp} UTC',
        '',
        f'Machine: {cpu}, {os.cpu_count()} cores, {platform.system()} {platform.release()}; server '
        f'`{os.path.relpath(rockit)}`, one run;',
        '`python3 bench/faststart/run.py target/release/rockit-edge` (or `bash bench/run --faststart`).',
        '',
        f'Synthetic game: {size / 2**20:.0f} MiB tar, {trace_doc["files"]} files; start-up trace of '
        f'{len(trace_doc["reads"])} reads in {trace_doc["tracedFiles"]} files (the executable and 5 % of the '
        'asset files, chosen at random across the tree).',
        f'Import (upload → deploy): {import_s:.1f} s; processTraces (mkfast, image + publish): {process_s:.1f} s.',
        '',
        'Bytes a launcher streaming the image in load order fetches before every start-up read is satisfied '
        '(index, then preloadBytes at once where the index has them, then packs in load order up to the last '
        'chunk a read needs); both images rebuilt byte for byte from the fs deployment and compared to the tar.',
        '',
        '| image | dxfName | bytes before start-up | index bytes | preloadBytes | chunks read | whole image fetched |',
        '|---|---|---:|---:|---:|---:|---:|',
    ]
    for label, dxf, needed, index, preload, chunks, whole in rows:
        lines.append(f'| {label} | `{dxf[:12]}…` | {needed:,} | {index:,} | {preload} | {chunks} | {whole:,} |')
    lines += ['', f'**{ratio:.1f}× fewer bytes before start-up** (target ≥ 5×).', '']
    report = '\n'.join(lines)
    print(report)
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, f'{stamp}-faststart.md'), 'w') as f:
        f.write(report)
finally:
    shutil.rmtree(work, ignore_errors=True)
