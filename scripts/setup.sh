#!/usr/bin/env bash
# Installs what building, running and testing Sluice needs on a Debian machine.
# Idempotent: packages already present are not fetched again.
#   scripts/setup.sh          # build and run needs (Rust toolchain assumed present)
#   scripts/setup.sh --test   # plus the real clients the test suite drives
set -euo pipefail

want_test=0
[ "${1:-}" = "--test" ] && want_test=1

need_pkgs=(pkg-config ca-certificates libopus-dev cmake)
if [ "$want_test" = 1 ]; then
    need_pkgs+=(ffmpeg srt-tools gstreamer1.0-tools gstreamer1.0-plugins-base
        gstreamer1.0-plugins-good gstreamer1.0-plugins-bad gstreamer1.0-plugins-ugly gstreamer1.0-libav
        nodejs npm python3 python3-venv valgrind chromium)
fi

missing=()
for p in "${need_pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# Node and npm may come from outside Debian's packages (a machine image's own build).
if [ "$want_test" = 1 ] && command -v node >/dev/null && command -v npm >/dev/null; then
    missing=("${missing[@]/nodejs/}"); missing=("${missing[@]/npm/}")
fi
pruned=()
for p in "${missing[@]}"; do [ -n "$p" ] && pruned+=("$p"); done
if [ "${#pruned[@]}" -gt 0 ]; then
    echo "setup: installing ${pruned[*]}" >&2
    SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${pruned[@]}" >/dev/null
fi

if ! command -v cargo >/dev/null; then
    echo "setup: cargo not found; install a Rust toolchain (rustup) first" >&2
    exit 1
fi

if [ "$want_test" = 1 ]; then
    # playwright-core drives the Debian chromium (never a downloaded browser build).
    browser_dir="$(dirname "$0")/../control/server/tests/browser"
    if [ ! -d "$browser_dir/node_modules/playwright-core" ]; then
        echo "setup: npm ci in control/server/tests/browser" >&2
        (cd "$browser_dir" && npm ci --no-audit --no-fund --silent)
    fi
fi

if [ "$want_test" = 1 ]; then
    # aiortc: a second WebRTC stack for the WHEP interop test (control/server/tests).
    venv="$(dirname "$0")/../target/aiortc-venv"
    if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c "import aiortc" 2>/dev/null; then
        echo "setup: aiortc venv in target/aiortc-venv" >&2
        python3 -m venv "$venv"
        "$venv/bin/pip" install -q -r "$(dirname "$0")/../control/server/tests/whep_client/requirements.txt"
    fi
fi
