#!/usr/bin/env bash
# `make test-llamacpp` (opt-in): start a real llama.cpp llama-server on loopback and run the
# course against it: the real-server tests (the openai client, the proxy's exactness and
# per-caller errors), `inferlab doctor`, `inferlab bench` (direct and through the proxy) and,
# unless NOTEBOOKS=0, every notebook.
#
#   make test-llamacpp                  # first run builds llama-server: 15 to 40 minutes
#   NOTEBOOKS=0 make test-llamacpp      # skip the notebooks
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
CACHE="${INFERLAB_CACHE:-$HOME/.cache/inferlab}"
PORT="${LLAMA_PORT:-8780}"
cd "$ROOT"
bash "$HERE/serve.sh" "$PORT"
stop() { kill "$(cat "$CACHE/llama-$PORT.pid")" 2>/dev/null || true; }
trap stop EXIT
URL="http://127.0.0.1:$PORT/v1"
export INFERLAB_REAL_BASE_URL="$URL" INFERLAB_REAL_SERVER=llama.cpp
.venv/bin/python -m pytest tests/test_real_server.py -q -p no:randomly
.venv/bin/inferlab doctor --base-url "$URL"
.venv/bin/inferlab bench --base-url "$URL" --mode async --num-prompts 16 --output-len 8 --no-progress
.venv/bin/inferlab bench --base-url "$URL" --mode proxy --num-prompts 16 --output-len 8 --no-progress
if [[ "${NOTEBOOKS:-1}" != 0 ]]; then
    bash scripts/notebooks_against.sh "$URL"
fi
