#!/usr/bin/env bash
# Idempotent install of everything the build and tests need, into repo-local folders.
# Skips each tool that is already present at its pinned version.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

WORKER_BUILD_VERSION=0.8.7
# Must equal the wasm-bindgen version in Cargo.lock (pinned with "=" in Cargo.toml).
WASM_BINDGEN_VERSION=$(awk '/^name = "wasm-bindgen"$/{getline; gsub(/version = |"/,""); print; exit}' Cargo.lock)

log() { printf '[setup] %s\n' "$*" >&2; }

if ! rustup target list --installed 2>/dev/null | grep -qx wasm32-unknown-unknown; then
  log "adding rustup target wasm32-unknown-unknown"
  rustup target add wasm32-unknown-unknown
fi

install_tool() { # crate version binary
  local crate=$1 version=$2 bin=$3
  # cargo records what it installed in tools/.crates.toml: skip when this exact version is there.
  if [ -x "tools/bin/$bin" ] && grep -qF "\"$crate $version (" tools/.crates.toml 2>/dev/null; then
    return 0
  fi
  log "installing $crate $version into tools/ (first time takes minutes)"
  # No --locked: a locked dependency of wasm-bindgen-cli is missing from the registry.
  cargo install --quiet --root "$ROOT/tools" --version "=$version" --force "$crate"
}
install_tool worker-build "$WORKER_BUILD_VERSION" worker-build
install_tool wasm-bindgen-cli "$WASM_BINDGEN_VERSION" wasm-bindgen

# npm ci only when package-lock.json changed since the last install.
stamp=node_modules/.package-lock.sha
want=$(sha256sum package-lock.json | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  log "npm ci"
  npm ci --no-audit --no-fund --loglevel=error
  echo "$want" > "$stamp"
fi

# Debian's Chromium for the dashboard's browser tests (miniflare-tests/dashboard.browser.test.mjs,
# driven by playwright-core, which downloads no browser of its own). `dev.sh` skips it.
if [ "${SETUP_BROWSER:-1}" = 1 ] && [ ! -x /usr/bin/chromium ]; then
  log "installing Debian's chromium (browser tests)"
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
  $SUDO apt-get update -qq
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium
fi
