#!/usr/bin/env bash
# The whole test suite: formatting, lints, unit and integration tests, interop tests with
# real ffmpeg / srt-live-transmit / Node, fuzz smoke runs. Installs what it needs first.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --test

echo "== fmt"
cargo fmt --all --check
echo "== clippy"
cargo clippy --workspace --all-targets -q -- -D warnings
echo "== build"
cargo build --workspace --bins
echo "== tests"
test_log=$(mktemp)
trap 'rm -f "$test_log"' EXIT
cargo test --workspace --no-fail-fast 2>&1 | tee "$test_log"
echo "== fuzz smoke"
# About three minutes in all (each run also pays ~2-3 s of start-up), split evenly over the
# targets, at least 2 s of fuzzing each.
targets=$(ls fuzz/fuzz_targets/*.rs | wc -l)
per_target=$(( 150 / targets )); [ "$per_target" -ge 2 ] || per_target=2
bash scripts/fuzz.sh --all "$per_target"
echo "== schemathesis"
bash scripts/schemathesis.sh
echo "== summary"
# One closing line over every cargo test binary above (the fuzz and schemathesis stages
# would have stopped the script had they failed).
awk '/^test result:/ { p += $4; f += $6 } END { printf "tests: %d passed, %d failed\n", p, f }' "$test_log"
