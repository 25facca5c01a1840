#!/usr/bin/env bash
# Runs one cargo-fuzz target for a number of seconds, or every target briefly.
#   scripts/fuzz.sh TARGET SECONDS     # one target
#   scripts/fuzz.sh --all SECONDS      # every target (CI smoke run)
# Uses stable Rust with `-s none`; set FUZZ_ASAN=1 for AddressSanitizer (RUSTC_BOOTSTRAP=1).
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
if ! command -v cargo-fuzz >/dev/null; then
    cargo install cargo-fuzz --locked
fi
san=(-s none)
if [ "${FUZZ_ASAN:-0}" = 1 ]; then
    export RUSTC_BOOTSTRAP=1
    san=(-s address)
fi
target=${1:?usage: fuzz.sh TARGET|--all SECONDS}
secs=${2:-30}
run_one() {
    local t=$1
    mkdir -p "corpus/$t"
    # New inputs go to a scratch directory (first argument); the committed seeds stay as they are.
    local scratch
    scratch=$(mktemp -d)
    echo "== fuzz $t for ${secs}s"
    cargo fuzz run "${san[@]}" "$t" "$scratch" "corpus/$t" -- -max_total_time="$secs" -rss_limit_mb=2048 -max_len=65536
    rm -rf "$scratch"
}
if [ "$target" = --all ]; then
    cargo fuzz build "${san[@]}"
    for t in $(cargo fuzz list); do run_one "$t"; done
else
    run_one "$target"
fi
