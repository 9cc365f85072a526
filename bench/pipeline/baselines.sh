#!/usr/bin/env bash
# Baselines for the pipeline benchmark, each on the same tars rockit-edge imports:
#   import:  `zstd -3 -T0` of the whole tar (throughput to beat: ≥ 0.6× of it)
#   patches: `bsdiff` (whole tar; needs ~17× the old size in memory), `zstd -19 --long
#            --patch-from`, `xdelta3 -9`
# Prints tab-separated rows: figure, input, bytes, seconds. Installs zstd, bsdiff and xdelta3 from
# Debian's packages when they are missing.
#   bash bench/pipeline/baselines.sh OLD.tar NEW.tar [OLD2.tar NEW2.tar …]
set -euo pipefail
need=()
for tool in zstd bsdiff xdelta3; do command -v "$tool" >/dev/null || need+=("$tool"); done
if [ ${#need[@]} -gt 0 ]; then
  apt-get update -qq >/dev/null && apt-get install -y -qq "${need[@]}" >/dev/null
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# seconds COMMAND… → runs it, prints its wall time in seconds
seconds() { local t0 t1; t0=$(date +%s.%N); "$@" >/dev/null 2>&1; t1=$(date +%s.%N); echo "$t1 - $t0" | bc -l; }
row() { printf '%s\t%s\t%s\t%.3f\n' "$1" "$2" "$3" "$4"; }

while [ $# -ge 2 ]; do
  old=$1 new=$2; shift 2
  pair="$(basename "$old" .tar)→$(basename "$new" .tar)"
  s=$(seconds zstd -q -3 -T0 -f "$new" -o "$work/new.zst")
  row "zstd -3 -T0" "$(basename "$new")" "$(stat -c %s "$work/new.zst")" "$s"
  s=$(seconds zstd -q -19 --long=31 -f --patch-from="$old" "$new" -o "$work/p.zst")
  row "zstd -19 --long --patch-from" "$pair" "$(stat -c %s "$work/p.zst")" "$s"
  s=$(seconds xdelta3 -9 -f -e -s "$old" "$new" "$work/p.xd3")
  row "xdelta3 -9" "$pair" "$(stat -c %s "$work/p.xd3")" "$s"
  # bsdiff needs about 17× the old file in memory: only where that fits comfortably.
  avail_kb=$(awk '/MemAvailable/ {print $2}' /proc/meminfo)
  if [ $(( $(stat -c %s "$old") * 17 / 1024 )) -lt $(( avail_kb / 2 )) ]; then
    s=$(seconds bsdiff "$old" "$new" "$work/p.bsdiff")
    row "bsdiff" "$pair" "$(stat -c %s "$work/p.bsdiff")" "$s"
  else
    row "bsdiff (skipped: needs too much memory)" "$pair" 0 0
  fi
done
