#!/bin/sh
# Build llama.cpp's llama-bench (for `python -m agent.bench --vs-llamacpp`) and llama-server
# (for tests/server/test_llamacpp.py: GPT_OSS_AGENT_LLAMA_SERVER=DIR/build/bin/llama-server). Not CI.
# llama.cpp ships no binary in any registry; PyPI's llama-cpp-python sdist vendors its source.
# clang, because gcc 12 miscompiles the AMX path; GGML_NATIVE so it uses this CPU's extensions.
# Usage: build_llama_bench.sh [DIR]   (default /work/llama; prints the llama-bench path)
set -eu
dir=${1:-/work/llama}
mkdir -p "$dir" && cd "$dir"
if ! ls -d llama_cpp_python-*/vendor/llama.cpp >/dev/null 2>&1; then
    pip download --no-deps --no-binary :all: llama-cpp-python -d .
    tar xzf llama_cpp_python-*.tar.gz
fi
src=$(ls -d llama_cpp_python-*/vendor/llama.cpp | tail -1)
CC=clang CXX=clang++ cmake -S "$src" -B build -DGGML_NATIVE=ON -DLLAMA_CURL=OFF \
    -DCMAKE_BUILD_TYPE=Release -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF \
    -DLLAMA_BUILD_SERVER=ON >/dev/null
nice -n 15 cmake --build build --target llama-bench llama-server -j2 >/dev/null
echo "$dir/build/bin/llama-bench"
