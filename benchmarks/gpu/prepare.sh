#!/usr/bin/env bash
# Fills .gpu/ (git-ignored via .git/info/exclude) with what a GPU machine without internet needs:
# the llama-cpp-python sdist with llama.cpp's models, docs, other backends and git history removed
# (76 MB -> 7 MB), wheels for Kataribe's engine imports (Python 3.12), the small model and the scripts.
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=.venv/bin/python
grep -qx "/.gpu/" .git/info/exclude 2>/dev/null || echo "/.gpu/" >> .git/info/exclude
rm -rf .gpu && mkdir -p .gpu/wheels
tmp=$(mktemp -d)
"$PY" -m pip download -q --no-deps --no-binary :all: llama-cpp-python==0.3.36 -d "$tmp"
tar xzf "$tmp"/llama_cpp_python-0.3.36.tar.gz -C "$tmp"
src="$tmp/llama_cpp_python-0.3.36"
rm -rf "$src"/{.git,.github,examples,docker} "$src"/vendor/llama.cpp/{.git,.github,models,docs,benches,scripts,conversion}
rm -rf "$src"/vendor/llama.cpp/tools/ui "$src"/vendor/llama.cpp/examples/*/
for backend in openvino webgpu et metal hexagon sycl vulkan opencl cann kompute zdnn; do
  rm -rf "$src/vendor/llama.cpp/ggml/src/ggml-$backend"
done
tar czf .gpu/llama_cpp_python-0.3.36.tar.gz -C "$tmp" llama_cpp_python-0.3.36
rm -rf "$tmp"
version() { "$PY" -m pip show "$1" | awk '/^Version/{print $2}'; }
"$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d .gpu/wheels \
  "pydantic==$(version pydantic)" "pydantic-core==$(version pydantic-core)" pydantic-settings python-dotenv \
  platformdirs diskcache gguf annotated-types typing-inspection
"$PY" benchmarks/gpu/make_small_model.py .gpu/smol4.gguf 4
du -sh .gpu
