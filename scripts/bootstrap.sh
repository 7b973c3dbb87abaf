#!/usr/bin/env bash
# Creates .venv and installs Kataribe into it (idempotent; fast when nothing changed).
# Usage: scripts/bootstrap.sh [extras]   e.g. scripts/bootstrap.sh test
set -euo pipefail
cd "$(dirname "$0")/.."

EXTRAS="${1:-}"
PY="${PYTHON:-python3}"
LLAMA_VERSION="0.3.36"
# A portable CPU build of llama.cpp. "Native" builds pick up every instruction set of the
# build machine; on some virtual machines that advertise AMX, llama.cpp's AMX kernels crash,
# and a wheel built natively on one machine can fail on another that shares the pip cache.
LLAMA_CMAKE_ARGS="${KATARIBE_LLAMA_CMAKE_ARGS:--DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON -DGGML_AVX512=OFF -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF}"
WHEELS="${KATARIBE_WHEEL_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/kataribe/wheels}"

if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
  .venv/bin/python -m pip install -q --upgrade pip
fi

mkdir -p "$WHEELS"
if ! ls "$WHEELS"/llama_cpp_python-"$LLAMA_VERSION"-*.whl >/dev/null 2>&1; then
  echo "Building llama-cpp-python $LLAMA_VERSION from source (about 8 minutes on 2 cores, once)..."
  CMAKE_ARGS="$LLAMA_CMAKE_ARGS" CMAKE_BUILD_PARALLEL_LEVEL="$(nproc 2>/dev/null || echo 2)" \
    .venv/bin/python -m pip wheel -q --no-cache-dir --no-deps -w "$WHEELS" "llama-cpp-python==$LLAMA_VERSION"
fi

SPEC="."
[ -n "$EXTRAS" ] && SPEC=".[$EXTRAS]"
STAMP=".venv/.kataribe-installed-$(cat pyproject.toml | sha256sum | cut -c1-16)-${EXTRAS:-base}"
if [ ! -f "$STAMP" ]; then
  # The portable wheel goes in first, so the project's pin is already satisfied by it and
  # pip never builds (or takes from its cache) a native one.
  .venv/bin/python -m pip install -q "$WHEELS"/llama_cpp_python-"$LLAMA_VERSION"-*.whl
  .venv/bin/python -m pip install -q -e "$SPEC"
  touch "$STAMP"
fi
