#!/usr/bin/env bash
# Interleaved A/B of two edge-router builds (issue 14): copies each build dir into build/ in
# turn and runs a short ours-only bench cell, N rounds, printing process CPU per non-streaming
# request and per 60-chunk stream. Builds are made beforehand with scripts/build.sh and copied
# aside (cp -r build /tmp/buildA). The bench runs at nice -15 so other work on a shared
# machine disturbs it less. Leaves build/ holding the last build run and bench/RESULTS.md as
# committed.
#
# Usage: bash bench/ab.sh /tmp/buildA /tmp/buildB   (N=3 rounds, C=8 concurrency, S=4 s cells)
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -eq 2 ] || { echo "usage: bench/ab.sh BUILD_A BUILD_B" >&2; exit 2; }
renice -n -15 $$ >/dev/null 2>&1 || true
for i in $(seq "${N:-3}"); do
  for dir in "$1" "$2"; do
    rm -rf build && cp -r "$dir" build
    git checkout -q bench/RESULTS.md
    BENCH_SKIP_BUILD=1 BENCH_TARGETS=ours BENCH_SECONDS="${S:-4}" BENCH_ROUNDS=1 BENCH_PROFILE=0 \
      BENCH_STARTUP_REPS=1 BENCH_PACED_SECONDS=1 BENCH_CONCURRENCY="${C:-8}" BENCH_PACED_CONCURRENCY= \
      BENCH_PREWARM_SECONDS=1 BENCH_LONG_CONCURRENCY= python3 bench/bench.py > /dev/null 2>&1
    row() { grep -E "^\| ${C:-8} \| \*\*edge" bench/RESULTS.md | sed -n "$1p"; }
    json=$(row 1 | awk -F'|' '{print $12}')
    stream=$(row 2 | awk -F'|' '{print $13}')
    echo "round $i $dir: CPU ms per request$json, per stream$stream (load $(cut -d' ' -f1 /proc/loadavg))"
    git checkout -q bench/RESULTS.md
  done
done
