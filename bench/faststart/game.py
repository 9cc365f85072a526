#!/usr/bin/env python3
# A synthetic game for the FastStart benchmark (issue 11): a deterministic tar of about SIZE_MIB
# MiB, an executable and libraries plus asset files of 4 KiB to 16 MiB spread over a tree (half
# incompressible bytes, half text-like, as bench/pipeline/synthetic.py), and its start-up trace:
# the executable read whole, then 5 % of the asset files chosen at random across the tree, each
# read at its header and, for larger files, at one more place, in a random first-access order.
#   python3 bench/faststart/game.py SIZE_MIB OUT.tar TRACE.json [SEED]
import io
import json
import os
import random
import sys
import tarfile

size_mib, out, trace_out = int(sys.argv[1]), sys.argv[2], sys.argv[3]
rng = random.Random(int(sys.argv[4]) if len(sys.argv) > 4 else 1)
words = [bytes(rng.choice(b'abcdefghijklmnopqrstuvwxyz') for _ in range(rng.randint(2, 9))) for _ in range(2000)]


def content(n):
    half = n // 2
    text = bytearray()
    while len(text) < n - half:
        text += b' '.join(rng.choices(words, k=256)) + b'\n'
    return rng.randbytes(half) + bytes(text[: n - half])


def asset_size():
    # Mostly small files, some large ones: the large ones carry most of the bytes.
    r = rng.random()
    if r < 0.6:
        return rng.randint(4 << 10, 256 << 10)
    if r < 0.9:
        return rng.randint(256 << 10, 2 << 20)
    return rng.randint(2 << 20, 16 << 20)


files = [('bin/game', 0o755, 8 << 20), ('lib/libengine.so', 0o755, 4 << 20)]
left = (size_mib << 20) - sum(f[2] for f in files)
i = 0
while left > 0:
    n = min(left, asset_size())
    kind = rng.choice(['textures', 'models', 'sounds', 'levels', 'scripts'])
    files.append((f'assets/{kind}/{i % 40:02d}/asset{i:05d}.dat', 0o644, n))
    left -= n
    i += 1

tmp = out + '.tmp'
with tarfile.open(tmp, 'w', format=tarfile.GNU_FORMAT) as tar:
    for path, mode, n in files:
        info = tarfile.TarInfo(path)
        info.size, info.mtime, info.mode = n, 0, mode
        tar.addfile(info, io.BytesIO(content(n)))
os.replace(tmp, out)

assets = files[2:]
picked = rng.sample(assets, max(1, len(assets) * 5 // 100))
reads = [{'path': 'bin/game', 'offset': 0, 'len': files[0][2]}]
for path, _, n in picked:
    reads.append({'path': path, 'offset': 0, 'len': min(n, 4096)})
    if n > 64 << 10:
        at = rng.randrange(0, n - (64 << 10))
        reads.append({'path': path, 'offset': at, 'len': 64 << 10})
tail = reads[1:]
rng.shuffle(tail)
reads = reads[:1] + tail
with open(trace_out, 'w') as f:
    json.dump({'reads': reads, 'files': len(files), 'tracedFiles': len(picked) + 1}, f)
