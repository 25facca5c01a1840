#!/usr/bin/env bash
# Runs one cargo-fuzz target for a number of seconds, or every target briefly.
#   scripts/fuzz.sh TARGET SECONDS     # one target
#   scripts/fuzz.sh --all SECONDS      # every target for SECONDS each (CI smoke run)
# `--all` builds every target once (one `cargo fuzz build`), checks that each has a committed,
# non-empty seed corpus in fuzz/corpus/TARGET, then runs them one after another; the first
# crash fails the script (the crashing input lands in fuzz/artifacts/TARGET).
# Uses stable Rust with `-s none`; set FUZZ_ASAN=1 for AddressSanitizer (RUSTC_BOOTSTRAP=1).
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
if ! command -v cargo-fuzz >/dev/null && [ ! -x "$HOME/.cargo/bin/cargo-fuzz" ]; then
    cargo install cargo-fuzz --locked
fi
san=(-s none)
if [ "${FUZZ_ASAN:-0}" = 1 ]; then
    export RUSTC_BOOTSTRAP=1
    san=(-s address)
fi
target=${1:?usage: fuzz.sh TARGET|--all SECONDS}
secs=${2:-30}
# A fixed seed makes a run repeatable: CI explores the same inputs each time, so a red CI run
# means a change broke something, not that the dice fell differently. FUZZ_SEED=0 lets
# libFuzzer pick a fresh seed for exploratory runs.
seed=${FUZZ_SEED:-1}
seed_arg=()
[ "$seed" != 0 ] && seed_arg=(-seed="$seed")
run_one() {
    local t=$1
    mkdir -p "corpus/$t"
    # New inputs go to a scratch directory (first argument); the committed seeds stay as they are.
    local scratch
    scratch=$(mktemp -d)
    echo "== fuzz $t for ${secs}s"
    local rc=0
    cargo fuzz run "${san[@]}" "$t" "$scratch" "corpus/$t" -- -max_total_time="$secs" \
        "${seed_arg[@]}" -rss_limit_mb=2048 -max_len=65536 -print_final_stats=1 >"$scratch.log" 2>&1 || rc=$?
    if [ "$rc" != 0 ]; then
        tail -n 60 "$scratch.log" >&2
    else
        grep -E '^stat::number_of_executed_units' "$scratch.log" || true
    fi
    rm -rf "$scratch" "$scratch.log"
    if [ "$rc" != 0 ]; then
        echo "fuzz target $t failed (exit $rc); rerun: FUZZ_SEED=$seed scripts/fuzz.sh $t $secs" >&2
        return "$rc"
    fi
}
if [ "$target" = --all ]; then
    cargo fuzz build "${san[@]}"
    targets=$(cargo fuzz list)
    for t in $targets; do
        if [ -z "$(ls -A "corpus/$t" 2>/dev/null)" ]; then
            echo "fuzz target $t has no committed seed corpus in fuzz/corpus/$t" >&2
            exit 1
        fi
    done
    start=$SECONDS
    for t in $targets; do run_one "$t"; done
    echo "fuzz smoke: $(wc -w <<<"$targets") targets in $((SECONDS - start))s"
else
    run_one "$target"
fi
