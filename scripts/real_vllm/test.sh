#!/usr/bin/env bash
# `make test-real`: start a real vLLM (CPU) on loopback and run the course against it:
# the real-server tests (openai client, the proxy's exactness), `inferlab doctor`,
# `inferlab bench` (direct and through the proxy) and every notebook; then, on a second vLLM,
# the engine's scheduling decisions against vLLM's (tests/test_real_decisions.py, #16).
#
#   make test-real                 # first run ~6 min (installs vLLM, 3.4 GB), later ~2 min+notebooks
#   NOTEBOOKS=0 make test-real     # skip the notebooks
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
CACHE="${INFERLAB_CACHE:-$HOME/.cache/inferlab}"
PORT="${VLLM_PORT:-8765}"
cd "$ROOT"
bash "$HERE/serve.sh" "$PORT"
stop() { kill "$(cat "$CACHE/vllm-$PORT.pid")" 2>/dev/null || true; }
trap stop EXIT
URL="http://127.0.0.1:$PORT/v1"
export INFERLAB_REAL_BASE_URL="$URL"
.venv/bin/python -m pytest tests/test_real_server.py -q -p no:randomly
.venv/bin/inferlab doctor --base-url "$URL"
.venv/bin/inferlab bench --base-url "$URL" --mode async --num-prompts 16 --output-len 8 --no-progress
.venv/bin/inferlab bench --base-url "$URL" --mode proxy --num-prompts 16 --output-len 8 --no-progress
if [[ "${NOTEBOOKS:-1}" != 0 ]]; then
    bash scripts/notebooks_against.sh "$URL"
fi
stop
# #16's decisions: a second vLLM with the settings the engine is compared under (its stats on,
# a 64-token budget, prefix caching, 20 blocks of 32), the flags read from the test itself.
DECISIONS_PORT=$((PORT + 1))
read -r -a FLAGS <<<"$(.venv/bin/python -c 'import sys; sys.path.insert(0, "tests")
import test_real_decisions as t; print(t.DECISION_FLAGS)')"
bash "$HERE/serve.sh" "$DECISIONS_PORT" "${FLAGS[@]}"
stop() { kill "$(cat "$CACHE/vllm-$DECISIONS_PORT.pid")" 2>/dev/null || true; }
INFERLAB_REAL_DECISIONS_URL="http://127.0.0.1:$DECISIONS_PORT/v1" \
    .venv/bin/python -m pytest tests/test_real_decisions.py -q -s -p no:randomly
