#!/usr/bin/env python3
# A synthetic native build for the pipeline benchmark: a deterministic tar of SIZE_MIB MiB in
# files of 1-8 MiB, each half incompressible (seeded random bytes) and half text-like (repeated
# words), so neither the chunker nor zstd sees a trivial input. Same seed, same bytes.
#   python3 bench/pipeline/synthetic.py SIZE_MIB OUT.tar [SEED]
import io
import os
import random
import sys
import tarfile

size_mib, out = int(sys.argv[1]), sys.argv[2]
rng = random.Random(int(sys.argv[3]) if len(sys.argv) > 3 else 1)
words = [bytes(rng.choice(b'abcdefghijklmnopqrstuvwxyz') for _ in range(rng.randint(2, 9))) for _ in range(2000)]
left = size_mib << 20
tmp = out + '.tmp'
with tarfile.open(tmp, 'w', format=tarfile.GNU_FORMAT) as tar:
    i = 0
    while left > 0:
        n = min(left, rng.randint(1 << 20, 8 << 20))
        half = n // 2
        text = bytearray()
        while len(text) < n - half:
            text += b' '.join(rng.choices(words, k=256)) + b'\n'
        data = rng.randbytes(half) + bytes(text[: n - half])
        info = tarfile.TarInfo(f'data/{i // 64:03d}/file{i:05d}.bin')
        info.size, info.mtime, info.mode = len(data), 0, 0o644
        tar.addfile(info, io.BytesIO(data))
        left -= n
        i += 1
os.replace(tmp, out)
