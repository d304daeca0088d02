#!/usr/bin/env bash
# `make run`: start Tether on the embedded store with the dev conversations loaded.
# Data lives in $TETHER_HOME (default .tether/ in the checkout, git-ignored); the dev data is
# imported on the first start only (a marker file records it).
set -euo pipefail
cd "$(dirname "$0")/.."
export TETHER_HOME="${TETHER_HOME:-$PWD/.tether}"
PORT="${PORT:-7117}"
URL="http://127.0.0.1:${PORT}"
DATA="examples/data/locomo-dev.json"
MARKER="$TETHER_HOME/.imported-locomo-dev"
mkdir -p "$TETHER_HOME"

.venv/bin/tether serve --port "$PORT" &
server=$!
trap 'kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true' EXIT INT TERM

.venv/bin/python - "$URL" <<'PY'
import sys, time, httpx
url = sys.argv[1]
deadline = time.monotonic() + 60
while time.monotonic() < deadline:
    try:
        if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
            sys.exit(0)
    except httpx.TransportError:
        time.sleep(0.1)
sys.exit(f"tether did not start on {url}")
PY

if [ ! -f "$MARKER" ]; then
  echo "first start: importing the LoCoMo dev conversations (CC BY-NC 4.0, see examples/data/README.md)"
  .venv/bin/tether import conversations "$DATA" --format locomo --url "$URL"
  touch "$MARKER"
fi

cat <<EOT

Tether is running on $URL  (data: $TETHER_HOME)
  sessions       curl -s '$URL/v1/sessions?limit=5'
  one session    curl -s $URL/v1/sessions/locomo-conv-26-s1/events?limit=5
  recall         curl -s -X POST $URL/v1/memories/search -H 'content-type: application/json' \\
                   -d '{"namespace":"locomo/conv-26","query":"What did Caroline research?"}'
  stats          curl -s $URL/v1/stats
  follow live    curl -sN $URL/v1/sessions/locomo-conv-26-s1/stream   (SSE; docs/live.md)
  API docs       $URL/docs
  a live agent   .venv/bin/python examples/agent_replay.py
Press Ctrl-C to stop.
EOT
wait "$server"
