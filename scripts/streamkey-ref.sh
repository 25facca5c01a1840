#!/usr/bin/env bash
# Runs the reference stream-key tool (../shared/tools/streamkey: Node crypto + msgpack-lite),
# installing its locked dependencies once into a cache directory. Use it to cross-check keys
# made by `sluice keygen` or decoded by the gateway.
#   scripts/streamkey-ref.sh encode --cert HEX --channel C --uid U [--expires-at UNIX] [--template T] [--iv HEX32]
#   scripts/streamkey-ref.sh decode --cert HEX --key KEY
# SLUICE_STREAMKEY_TOOL overrides the tool's folder.
set -euo pipefail
src=${SLUICE_STREAMKEY_TOOL:-"$(cd "$(dirname "$0")/.." && pwd)/../shared/tools/streamkey"}
[ -f "$src/streamkey.js" ] || { echo "streamkey-ref: no reference tool at $src" >&2; exit 1; }
command -v node >/dev/null && command -v npm >/dev/null || {
    echo "streamkey-ref: needs node and npm (scripts/setup.sh --test)" >&2; exit 1; }
cache=${XDG_CACHE_HOME:-$HOME/.cache}/sluice/streamkey-ref
mkdir -p "$cache"
if ! cmp -s "$src/package-lock.json" "$cache/package-lock.json" || [ ! -d "$cache/node_modules" ]; then
    cp "$src/package.json" "$src/package-lock.json" "$cache/"
    (cd "$cache" && npm ci --no-audit --no-fund --loglevel=error >&2)
fi
cp "$src/streamkey.js" "$cache/"
exec node "$cache/streamkey.js" "$@"
