#!/usr/bin/env bash
# Installs what is missing, then runs every test: formatting and lints, native Rust tests of
# the core, then the built worker in workerd (Miniflare) against fake providers on 127.0.0.1.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
bash scripts/setup.sh

echo "== cargo fmt / clippy"
cargo fmt --check
cargo clippy --quiet --all-targets -- -D warnings
cargo clippy --quiet --target wasm32-unknown-unknown -- -D warnings

echo "== native tests (cargo test)"
cargo test --quiet

echo "== build the worker"
bash scripts/build.sh > /dev/null

echo "== workerd tests (node --test)"
# Every worker's logs and responses go here; zz-secret-scan.test.mjs (last) scans them for secrets.
SECRET_SCAN_DIR=$(mktemp -d)
export SECRET_SCAN_DIR
trap 'rm -rf "$SECRET_SCAN_DIR"' EXIT
node --test --test-concurrency=1 miniflare-tests/*.test.mjs
