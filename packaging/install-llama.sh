#!/usr/bin/env sh
# Build llama-cpp-python once per machine and build flags, then install it into the venv given as $1.
#
# Why not plain `pip install`: llama-cpp-python compiles llama.cpp for this CPU (-march=native) and pip caches
# the wheel under the sdist's name alone, so a wheel built with other flags (or on another CPU) would be reused.
# Wheels are kept in ~/.cache/ember/llama-wheels/<key>, where the key covers the CPU's feature flags and the
# build flags, and the build runs only when that folder holds no wheel.
#
# Flags: CMAKE_ARGS as given by the user (CUDA, Metal, Vulkan: see README), plus
#   - LLAVA_BUILD=OFF: Ember uses no multimodal projector; leaving mtmd out saves minutes of build.
#   - on x86-64, no AMX (-mno-amx-*): llama.cpp's AMX kernels crash in decode on the starter's Q4_1 weights on
#     a Xeon with AMX tiles (seen on a Sapphire Rapids-class VM: SIGSEGV in the first llama_decode); without
#     them llama.cpp uses its AVX-512 kernels on the same CPU.
set -eu
VENV="$1"
SPEC="${LLAMA_SPEC:-llama-cpp-python>=0.3.36,<0.4}"
ARGS="-DLLAVA_BUILD=OFF ${CMAKE_ARGS:-}"
CPUFLAGS=""
case "$(uname -m)" in
    x86_64|amd64)
        CPUFLAGS="-mno-amx-tile -mno-amx-int8 -mno-amx-bf16" ;;
esac
features="$(grep -m1 -E '^(flags|Features)' /proc/cpuinfo 2>/dev/null || uname -m)"
key="$(printf '%s\n%s\n%s\n%s\n' "$SPEC" "$ARGS" "$CPUFLAGS" "$features" | sha256sum | cut -c1-16)"
WHEELS="${EMBER_WHEEL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/ember/llama-wheels}/$key"
if ! ls "$WHEELS"/llama_cpp_python-*.whl >/dev/null 2>&1; then
    echo "install-llama: building llama-cpp-python for this machine (several minutes; kept in $WHEELS)"
    tmp="$WHEELS.tmp.$$"
    rm -rf "$tmp"
    mkdir -p "$tmp"
    CMAKE_ARGS="$ARGS" CFLAGS="${CFLAGS:-} $CPUFLAGS" CXXFLAGS="${CXXFLAGS:-} $CPUFLAGS" \
        "$VENV/bin/python" -m pip wheel -q --no-deps --no-cache-dir -w "$tmp" "$SPEC"
    rm -rf "$WHEELS"
    mv "$tmp" "$WHEELS"
fi
"$VENV/bin/python" -m pip install -q --no-deps --force-reinstall "$WHEELS"/llama_cpp_python-*.whl
