# Sourced by the scripts: keeps wrangler and workerd off the network (no telemetry, no
# cf.json fetch) and their config inside the repo.
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export WRANGLER_SEND_METRICS=false
export WRANGLER_SEND_ERROR_REPORTS=false
export WRANGLER_HIDE_BANNER=true
export CLOUDFLARE_CF_FETCH_ENABLED=false
export XDG_CONFIG_HOME="$ROOT/.xdg"
export PATH="$ROOT/tools/bin:$ROOT/node_modules/.bin:$PATH"
