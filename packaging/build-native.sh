#!/usr/bin/env sh
# Build native llama.cpp tools (llama-server, llama-bench) from the llama.cpp that llama-cpp-python vendors, so
# `ember bench api --llama-server` and `ember bench decode --native` compare Ember with llama.cpp itself on the
# same commit, CPU flags and threads. Usage: sh packaging/build-native.sh VENV  (make bench-native)
# The binaries land in ~/.cache/ember/native/<version>/bin (printed at the end); a second run reuses them.
set -eu
VENV="$1"
version="$("$VENV/bin/python" -c 'import llama_cpp; print(llama_cpp.__version__)')"
ROOT="${EMBER_NATIVE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/ember/native}/$version"
BIN="$ROOT/bin"
if [ -x "$BIN/llama-server" ] && [ -x "$BIN/llama-bench" ]; then
    echo "$BIN"
    exit 0
fi
CPUFLAGS=""
case "$(uname -m)" in
    x86_64|amd64) CPUFLAGS="-mno-amx-tile -mno-amx-int8 -mno-amx-bf16" ;;  # as packaging/install-llama.sh
esac
mkdir -p "$ROOT/src"
sdist="$(ls "$ROOT"/src/llama_cpp_python-*.tar.gz 2>/dev/null | head -1 || true)"
if [ -z "$sdist" ]; then
    "$VENV/bin/python" -m pip download -q --no-deps --no-binary :all: -d "$ROOT/src" "llama-cpp-python==$version"
    sdist="$(ls "$ROOT"/src/llama_cpp_python-*.tar.gz | head -1)"
fi
tar -xzf "$sdist" -C "$ROOT/src"
src="$ROOT/src/llama_cpp_python-$version/vendor/llama.cpp"
CFLAGS="$CPUFLAGS" CXXFLAGS="$CPUFLAGS" cmake -S "$src" -B "$ROOT/build" -DCMAKE_BUILD_TYPE=Release \
    -DLLAMA_CURL=OFF -DLLAMA_OPENSSL=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF ${CMAKE_ARGS:-} >/dev/null
cmake --build "$ROOT/build" --config Release -j "$(nproc)" --target llama-server llama-bench >/dev/null
mkdir -p "$BIN"
cp "$ROOT/build/bin/llama-server" "$ROOT/build/bin/llama-bench" "$BIN/"
cp "$ROOT"/build/bin/*.so* "$BIN/" 2>/dev/null || true
echo "$BIN"
