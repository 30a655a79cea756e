#!/usr/bin/env bash
# Build llama.cpp's `llama-server` from the source inside the `llama-cpp-python` sdist (the
# package index is the one place this room can fetch source from), cached under
# ~/.cache/inferlab so a later run on the same machine reuses it (a second run takes seconds).
#
#   bash scripts/real_llamacpp/build.sh      # prints the source tree on its last line
#
# The build takes 15 to 40 minutes on two cores. It runs at the lowest priority and one
# compiler at a time (JOBS=1) so a shared machine stays usable; JOBS=4 on a machine of your own.
set -euo pipefail
VERSION="${LLAMA_CPP_PYTHON_VERSION:-0.3.36}"
CACHE="${INFERLAB_CACHE:-$HOME/.cache/inferlab}"
HOME_DIR="$CACHE/llama-cpp-$VERSION"
SRC="$HOME_DIR/llama_cpp_python-$VERSION/vendor/llama.cpp"
BIN="$HOME_DIR/build/bin/llama-server"
if [[ ! -x "$BIN" ]]; then
    mkdir -p "$HOME_DIR"
    if [[ ! -d "$SRC" ]]; then
        # --no-binary: the sdist, whose vendor/ holds the whole llama.cpp tree at the commit
        # that release of the bindings was made against. --no-deps: only the source is wanted.
        PIP_CONFIG_FILE=/dev/null python3 -m pip download --quiet --no-binary :all: --no-deps \
            "llama-cpp-python==$VERSION" -d "$HOME_DIR"
        tar xzf "$HOME_DIR/llama_cpp_python-$VERSION.tar.gz" -C "$HOME_DIR"
    fi
    # No libcurl (nothing may be downloaded at run time), no tests or examples (only the
    # server is wanted), a static build (the binary runs from the cache without an rpath).
    nice -n 19 cmake -S "$SRC" -B "$HOME_DIR/build" -DCMAKE_BUILD_TYPE=Release \
        -DLLAMA_CURL=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF \
        -DLLAMA_BUILD_SERVER=ON -DBUILD_SHARED_LIBS=OFF -DGGML_NATIVE=ON >/dev/null
    nice -n 19 cmake --build "$HOME_DIR/build" --target llama-server -j "${JOBS:-1}"
fi
echo "$SRC"
