#!/usr/bin/env bash
# Installs what is missing, seeds the local KV with the default routing table (first run
# only), and runs the gateway locally with `wrangler dev` on http://127.0.0.1:${PORT:-8787}.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
SETUP_BROWSER=0 bash scripts/setup.sh # no Chromium: only the browser tests need it
PORT=${PORT:-8787}
current=$(wrangler kv key get --binding ROUTER_CONFIG routing-table --local 2>/dev/null || true)
if [ -z "$current" ] || [ "$current" = "Value not found" ]; then
  echo "[dev] seeding local KV key routing-table from config/default-routing-table.json"
  wrangler kv key put --binding ROUTER_CONFIG routing-table --path config/default-routing-table.json --local
fi
# The dashboard and admin API need an admin token; locally a fixed one unless you set your own.
ADMIN_TOKEN=${ADMIN_TOKEN:-local-dev-admin-token}
echo "[dev] dashboard: http://127.0.0.1:$PORT/admin (admin token: $ADMIN_TOKEN)"
# Open mode: no gateway key needed locally (deployments default to AUTH_MODE = "keys").
exec wrangler dev --port "$PORT" --inspector-port "${INSPECTOR_PORT:-9229}" \
  --var AUTH_MODE:open --var "ADMIN_TOKEN:$ADMIN_TOKEN" "$@"
