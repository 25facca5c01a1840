#!/usr/bin/env bash
# Builds Sluice in release mode and starts the gateway on its embedded default configuration.
# Extra arguments go to `sluice up` (for example --data-dir DIR or --config FILE).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cargo build --release --bins
export PATH="$PWD/target/release:$PATH"
exec sluice up "$@"
