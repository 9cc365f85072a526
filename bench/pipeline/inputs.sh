#!/usr/bin/env bash
# Real build pairs for the pipeline benchmark, fetched from PyPI (nothing is committed):
# pygame 2.6.0 → 2.6.1 and panda3d 1.10.14 → 15 → 16, cp311 manylinux x86_64 wheels, unzipped and
# re-tarred deterministically (sorted names, mtime 0, numeric owner 0) the way a build pipeline
# would hand a native build to `POST /be/v1/builds`.
#   bash bench/pipeline/inputs.sh [OUT_DIR]   (default bench/work/inputs; prints the tar paths)
set -euo pipefail
cd "$(dirname "$0")/../.."
out=${1:-bench/work/inputs}
mkdir -p "$out"

wheel_tar() { # package version → $out/<package>-<version>.tar
  local pkg=$1 ver=$2 tar="$out/$1-$2.tar"
  if [ ! -s "$tar" ]; then
    local tmp
    tmp=$(mktemp -d)
    python3 -m pip download --quiet --disable-pip-version-check --no-deps --only-binary=:all: \
      --python-version 3.11 --implementation cp --abi cp311 \
      --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux_2_28_x86_64 \
      -d "$tmp/wheel" "$pkg==$ver" >&2
    mkdir -p "$tmp/tree"
    python3 -m zipfile -e "$tmp"/wheel/*.whl "$tmp/tree"
    tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -cf "$tar.tmp" -C "$tmp/tree" .
    mv "$tar.tmp" "$tar"
    rm -rf "$tmp"
  fi
  echo "$tar"
}

wheel_tar pygame 2.6.0
wheel_tar pygame 2.6.1
wheel_tar panda3d 1.10.14
wheel_tar panda3d 1.10.15
wheel_tar panda3d 1.10.16
