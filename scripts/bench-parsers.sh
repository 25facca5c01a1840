#!/usr/bin/env bash
# Wall-time throughput of the parser workloads, each beside a memcpy of the same buffers in
# the same run (criterion; inputs from dataplane/proto/benches/workloads). Five groups:
# ts_demux (1316-byte and 64 KiB pushes, with mpeg2ts-reader as a peer), rtmp_chunk (4096-
# and 128-byte chunks), annexb_1MiB, h264_packetize_1MiB, streamkey.
#   scripts/bench-parsers.sh                 # all groups
#   scripts/bench-parsers.sh --quick         # shorter measurement (noisier)
# Instruction counts, the noise-free figure, come from scripts/callgrind.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
extra=()
if [ "${1:-}" = --quick ]; then
    extra=(--warm-up-time 1 --measurement-time 2)
fi
log=$(mktemp)
trap 'rm -f "$log"' EXIT
for b in ts_demux rtmp_chunk annexb rtp_packetize streamkey; do
    cargo bench -q -p sluice-proto --bench "$b" -- --noplot "${extra[@]}" 2>&1 | tee -a "$log"
done
echo
echo "== summary (median time, median throughput)"
awk '/^[a-zA-Z0-9_\/.-]+$/ {name=$1}
     /^[a-zA-Z0-9_\/.-]+ +time:/ {name=$1}
     /time:/ {t=$(NF-3)" "$(NF-2)}
     /thrpt:/ {printf "%-44s %12s %s %s\n", name, t, $(NF-3), $(NF-2)}' "$log"
