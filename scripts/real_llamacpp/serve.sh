#!/usr/bin/env bash
# Start a real llama.cpp `llama-server` on loopback over the tiny GGUF, and wait until it
# answers. Builds it first if it is not cached (build.sh: 15 to 40 minutes on two cores).
#
#   bash scripts/real_llamacpp/serve.sh 8780                # its pid: $CACHE/llama-8780.pid
#   bash scripts/real_llamacpp/serve.sh 8780 --metrics      # llama-server flags of your own
#
# By default 8 slots (`--parallel 8`, so a list of 8 prompts runs at once) over a 4,096-token
# context (512 a slot), one thread (CI shares two cores), and no --metrics: the course must
# cope with a server that has no /metrics, as Ollama has none.
set -euo pipefail
PORT="${1:-8780}"
shift || true
FLAGS=("$@")
if [[ ${#FLAGS[@]} -eq 0 ]]; then FLAGS=(--parallel 8 --ctx-size 4096); fi
CACHE="${INFERLAB_CACHE:-$HOME/.cache/inferlab}"
HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
SRC="$(bash "$HERE/build.sh" | tail -1)"
BIN="$(dirname "$SRC")/../../build/bin/llama-server"
MODEL="$CACHE/tiny-llama.gguf"
PYTHONPATH="$SRC/gguf-py" "$ROOT/.venv/bin/python" "$HERE/make_model.py" "$SRC" "$MODEL"
LOG="$CACHE/llama-$PORT.log"
"$BIN" --model "$MODEL" --alias tiny-llama --host 127.0.0.1 --port "$PORT" --threads 1 \
    "${FLAGS[@]}" >"$LOG" 2>&1 &
echo $! >"$CACHE/llama-$PORT.pid"
# Wait for /health (200 once the model is loaded), giving up after 2 minutes or on a death.
for _ in $(seq 120); do
    if curl -sf "http://127.0.0.1:$PORT/health" >/dev/null; then exit 0; fi
    if ! kill -0 "$(cat "$CACHE/llama-$PORT.pid")" 2>/dev/null; then
        tail -40 "$LOG"; echo "llama-server died; log: $LOG" >&2; exit 1
    fi
    sleep 1
done
tail -40 "$LOG"; echo "llama-server did not answer /health in 120 s; log: $LOG" >&2; exit 1
