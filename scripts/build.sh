#!/usr/bin/env bash
# Builds the worker (release wasm) into build/ with worker-build, using the repo-local tools
# so nothing is downloaded from GitHub. Safe to run repeatedly; called by wrangler too.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
export PATH="$ROOT/tools/bin:$PATH"
export WASM_BINDGEN_BIN="$ROOT/tools/bin/wasm-bindgen"
export WASM_OPT_BIN="$ROOT/node_modules/.bin/wasm-opt"
export ESBUILD_BIN="$ROOT/node_modules/.bin/esbuild"
for bin in "$WASM_BINDGEN_BIN" "$WASM_OPT_BIN" "$ESBUILD_BIN" tools/bin/worker-build; do
  [ -x "$bin" ] || { echo "build: $bin missing; run scripts/setup.sh first" >&2; exit 1; }
done
exec tools/bin/worker-build --release
