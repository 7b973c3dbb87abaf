#!/usr/bin/env bash
# Runs on the GPU machine from the repository root, with .gpu/ carried (see prepare.sh):
# builds llama-cpp-python with CUDA for Hopper (sm_90; about 4.5 minutes on 16 cores), then check_gpu.py.
set -x
export PYTHONUNBUFFERED=1 OUT="${OUT:-/tmp/out}"
mkdir -p "$OUT"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .gpu/wheels/*.whl || exit 3
mkdir -p /tmp/b && tar xzf .gpu/llama_cpp_python-0.3.36.tar.gz -C /tmp/b || exit 4
start=$(date +%s)
CMAKE_ARGS="-DGGML_CUDA=on -DCMAKE_CUDA_ARCHITECTURES=90 -DLLAVA_BUILD=OFF -DGGML_NATIVE=OFF" \
  CMAKE_BUILD_PARALLEL_LEVEL="$(nproc)" PYTHONPATH=/tmp/site \
  timeout 420 python3 -m pip wheel --no-build-isolation --no-deps -w /tmp/w /tmp/b/llama_cpp_python-0.3.36 \
  > "$OUT/build.log" 2>&1 || { tail -30 "$OUT/build.log"; exit 5; }
echo "build took $(( $(date +%s) - start )) s"
python3 -m pip install -q --no-deps --no-compile --target /tmp/site /tmp/w/*.whl || exit 6
PYTHONPATH=/tmp/site:src timeout 180 python3 benchmarks/gpu/check_gpu.py .gpu/smol4.gguf "$OUT/gpu_check.json"
