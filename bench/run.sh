#!/usr/bin/env bash
# One command for the whole benchmark: installs what is missing (idempotent, pinned), builds the
# worker and the bench tools, runs every target interleaved and writes bench/RESULTS.md.
#   bash bench/run.sh                      # full run (~10 min)
#   BENCH_SECONDS=2 BENCH_ROUNDS=1 bash bench/run.sh   # quick look
# Other knobs: see bench/bench.py. BENCH_SKIP_BUILD=1 reuses build/ as it is.
# Needs: `bash scripts/setup.sh` done once (run here too; it skips what is installed),
# python3 ≥ 3.9 with venv, node ≥ 20, cargo. Everything runs on 127.0.0.1.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
# shellcheck source=/dev/null
source scripts/env.sh

LITELLM_VERSION=1.106.2
log() { printf '[bench] %s\n' "$*" >&2; }

log "load before: $(cat /proc/loadavg)"

# 1. The worker (release wasm), as the tests and wrangler build it.
bash scripts/setup.sh
if [ "${BENCH_SKIP_BUILD:-0}" != 1 ]; then
  if ! bash scripts/build.sh >&2; then
    [ -f build/index_bg.wasm ] || { log "worker build failed and no build/ to fall back on"; exit 1; }
    log "WARNING: worker build failed; benchmarking the existing build/ ($(stat -c %y build/index_bg.wasm))"
  fi
fi

# 2. The native microbenchmarks and the two std-only bench tools (offline, seconds).
cargo build --release --quiet --example bench_core || log "WARNING: examples/bench_core did not build; skipped"
for tool in fake-upstream loadgen; do
  (cd "bench/$tool" && cargo build --release --quiet)
done

# 3. LiteLLM proxy, pinned, in bench/.venv.
venv=bench/.venv
if ! "$venv/bin/python" -c "import importlib.metadata as m, sys; sys.exit(m.version('litellm') != '$LITELLM_VERSION')" 2>/dev/null \
   || [ ! -x "$venv/bin/litellm" ]; then
  log "installing litellm[proxy]==$LITELLM_VERSION into $venv (first time ≈ 1–2 min)"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "litellm[proxy]==$LITELLM_VERSION"
fi

# 4. Portkey gateway, pinned by bench/package.json + package-lock.json.
stamp=bench/node_modules/.package-lock.sha
want=$(sha256sum bench/package-lock.json | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  log "npm ci in bench/"
  (cd bench && npm ci --no-audit --no-fund --loglevel=error)
  echo "$want" > "$stamp"
fi

# 5. Measure and write bench/RESULTS.md.
exec python3 bench/bench.py
