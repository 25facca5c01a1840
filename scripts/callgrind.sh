#!/usr/bin/env bash
# Instruction counts per byte for the parser workloads: the noise-free companion to the
# criterion benches (scripts/bench-parsers.sh). Builds examples/parse_bench in release mode,
# runs each workload once under callgrind with collection switched on only inside the
# workload function (input generation is not counted), and prints a table.
#   scripts/callgrind.sh                 # every workload
#   scripts/callgrind.sh ts_demux_1316   # some workloads
# Valgrind counts are deterministic for a given binary: note the commit beside the figures.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v valgrind >/dev/null; then
    apt-get install -y valgrind >/dev/null
fi
cargo build -q --release -p sluice-proto --example parse_bench
bin=target/release/examples/parse_bench
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
if [ $# -gt 0 ]; then workloads=("$@"); else mapfile -t workloads < <("$bin" --list); fi
echo "commit $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- dataplane/proto || echo '+dirty')"
printf '%-26s %12s %14s %10s %14s\n' workload bytes instructions instr/byte instr/run
for w in "${workloads[@]}"; do
    line=$(valgrind --tool=callgrind --toggle-collect='*parse_bench::measured*' \
        --callgrind-out-file="$out/$w.cg" "$bin" "$w" 2>"$out/$w.log") || {
        cat "$out/$w.log" >&2
        exit 1
    }
    read -r _ bytes units _ <<<"$line"
    ir=$(awk '/^(summary|totals):/ {print $2; exit}' "$out/$w.cg")
    awk -v w="$w" -v b="$bytes" -v u="$units" -v ir="$ir" 'BEGIN {
        printf "%-26s %12d %14d %10.3f %14.0f\n", w, b, ir, ir / b, ir / u }'
done
