#!/usr/bin/env bash
# Run every lesson notebook top to bottom against a real server; fail on the first cell error.
#
#   bash scripts/notebooks_against.sh http://127.0.0.1:8765/v1
#   NOTEBOOKS_OUT=/tmp/on-vllm bash scripts/notebooks_against.sh URL   # keep the executed ones
#
# The executed notebooks go to a temporary folder, removed at the end, unless NOTEBOOKS_OUT
# names one to keep them in: read their outputs beside their prose (never commit them).
#
# Not nbval: its stored outputs are the embedded server's (made-up text, its token counts), so
# a real server's answers differ by design; what must hold is that every cell runs, skipping
# itself where it says it does not apply. (nbval under pytest never reached the real server at
# all: conftest.py keeps the suite hermetic by removing INFERLAB_BASE_URL.)
set -euo pipefail
URL="$1"
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
OUT="${NOTEBOOKS_OUT:-}"
if [[ -z "$OUT" ]]; then
    OUT="$(mktemp -d)"
    trap 'rm -rf "$OUT"' EXIT
fi
mkdir -p "$OUT"
OUT="$(cd "$OUT" && pwd)"
export INFERLAB_BASE_URL="$URL"
unset INFERLAB_TIME_SCALE
cd "$ROOT/notebooks"
for notebook in [0-9][0-9]_*.ipynb; do
    started=$SECONDS
    "$ROOT/.venv/bin/jupyter" nbconvert --to notebook --execute --log-level=WARN \
        --ExecutePreprocessor.timeout=300 --output-dir "$OUT" "$notebook"
    echo "ran $notebook against $URL in $((SECONDS - started)) s"
done
