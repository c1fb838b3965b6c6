#!/usr/bin/env sh
# Install the system libraries Ember needs on Debian/Ubuntu: a C++ toolchain for llama-cpp-python's source build,
# and the libraries Qt loads (offscreen in CI, xcb on a desktop). Installs only what is missing; on other systems
# it prints what to install and carries on.
set -eu

PKGS="build-essential cmake libgl1 libegl1 libglib2.0-0 libfontconfig1 libdbus-1-3 libxkbcommon0 \
libxkbcommon-x11-0 libxcb-cursor0 libxcb-icccm4 libxcb-keysyms1 libxcb-shape0 libxcb-randr0 \
libxcb-render-util0 libxcb-image0 libxcb-xinerama0"

if ! command -v dpkg-query >/dev/null 2>&1 || ! command -v apt-get >/dev/null 2>&1; then
    echo "system-deps: not a Debian-style system; make sure a C++ compiler, CMake and Qt's libraries are installed."
    exit 0
fi

missing=""
for p in $PKGS; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0

if [ "$(id -u)" = 0 ]; then SUDO=""; elif command -v sudo >/dev/null 2>&1; then SUDO="sudo"; else
    echo "system-deps: missing packages:$missing"
    echo "system-deps: run as root: apt-get install -y$missing"
    exit 0
fi
echo "system-deps: installing$missing"
$SUDO apt-get update -q || true
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends $missing
