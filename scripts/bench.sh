#!/usr/bin/env bash
# Side-by-side benchmarks: Sluice against nginx-rtmp (RTMP ingest, with and without one
# player per stream) and against srt-live-transmit (SRT ingest), in one run, on loopback,
# each server pinned to one core (BENCH_SERVER_CORE, default 1) and the load on the other.
#
#   scripts/bench.sh --quick        # ~3 minutes: 20 streams, 2 ABAB pairs of 10 s runs
#   scripts/bench.sh                # full: more streams, 3 pairs, capacity ramp, PSS slope
#   scripts/bench.sh --no-sluice    # peers only (until the gateway runs end to end)
#   scripts/bench.sh --latency      # Sluice only: RTP forwarding latency at 1, 20 and 100
#                                   # streams, and 20 streams with one WHEP viewer each
#   scripts/bench.sh --capacity     # only the capacity ramps and PSS slopes (full run's end)
#   scripts/bench.sh --srt          # only the SRT rows (Sluice against srt-live-transmit)
#   BENCH_STREAMS=100 BENCH_SRT_STREAMS= BENCH_PAIRS=2 BENCH_CAPACITY=0 scripts/bench.sh
#                                   # a partial full run: only the RTMP rows at 100 streams
#   scripts/bench.sh --viewers      # Sluice only: a WHEP viewer ramp (BENCH_VIEW_STREAMS
#                                   # publishers, BENCH_VIEWERS viewers each, one every
#                                   # BENCH_VIEW_STAGGER s per stream): PSS and CPU per viewer
#
# Results: target/bench/<UTC date>-<commit>/ (one JSON + text + PNG per run) and summary.md
# there, whose tables go into docs/performance.md ("Load and side-by-side runs"). Every result
# records the commit measured and /proc/loadavg before and after it, so a rerun after a
# change (say, UDP GSO on the egress) is this one command and its figures name their commit.
# Everything binds to 127.0.0.1; no traffic leaves the machine.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
. scripts/bench-lib.sh

QUICK=0; WITH_SLUICE=auto; LAT_ONLY=0; CAP_ONLY=0; VIEW_ONLY=0; SRT_ONLY=0
for a in "$@"; do
  case "$a" in
    --quick) QUICK=1 ;;
    --no-sluice) WITH_SLUICE=0 ;;
    --sluice) WITH_SLUICE=1 ;;
    --latency) LAT_ONLY=1 ;;
    --capacity) CAP_ONLY=1 ;;
    --viewers) VIEW_ONLY=1 ;;
    --srt) SRT_ONLY=1 ;;
    *) echo "usage: $0 [--quick] [--no-sluice|--sluice] [--latency|--capacity|--viewers|--srt]" >&2; exit 2 ;;
  esac
done

SCORE="${BENCH_SERVER_CORE:-1}"   # core of the server under test
LCORE="${BENCH_LOAD_CORE:-0}"     # core of the load tool and the pushers
if [ "$QUICK" = 1 ]; then
  PAIRS=2; DUR=10; STREAMS="20"; SRT_STREAMS=4; CAPACITY=0
else
  # SRT at 8 streams (fixed costs weigh most) and 40 (one srt-live-transmit process each).
  PAIRS=3; DUR=20; STREAMS="20 100"; SRT_STREAMS="8 40"; CAPACITY=1
fi
# Overrides for a partial rerun: BENCH_STREAMS="100" BENCH_SRT_STREAMS="" BENCH_PAIRS=2.
STREAMS="${BENCH_STREAMS-$STREAMS}"; SRT_STREAMS="${BENCH_SRT_STREAMS-$SRT_STREAMS}"
PAIRS="${BENCH_PAIRS:-$PAIRS}"; DUR="${BENCH_DUR:-$DUR}"; CAPACITY="${BENCH_CAPACITY:-$CAPACITY}"
# Every server start gets fresh ports (next_ports): sockets the previous server accepted
# linger in TIME_WAIT and can keep its port from binding again for a minute.
PORT_SEQ=0; RTP_BASE=40000
next_ports() {
  PORT_SEQ=$((PORT_SEQ + 1))
  RTMP_PORT=$((19300 + PORT_SEQ)); REST_PORT=$((18000 + PORT_SEQ)); HTTP_PORT=$((18500 + PORT_SEQ))
  SRT_PORT=$((20000 + 20 * PORT_SEQ))
  REST="http://127.0.0.1:$REST_PORT/na/v1/projects/benchapp/rtls/ingress"
}
next_ports
COMMIT=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
git diff --quiet HEAD 2>/dev/null || COMMIT="$COMMIT-dirty"
OUT="$ROOT/target/bench/$(date -u +%Y-%m-%dT%H%M%SZ)-$COMMIT"
mkdir -p "$OUT"
log() { echo "[bench $(date +%T)] $*" | tee -a "$OUT/bench.log" >&2; }
echo "{\"commit\":\"$COMMIT\",\"quick\":$QUICK,\"nproc\":$(nproc),\"kernel\":\"$(uname -r)\"}" >"$OUT/meta.json"
# annotate JSON LOAD_BEFORE: records the commit and the machine's load around one run.
annotate() {
  [ -f "$1" ] || return 0
  jq --arg c "$COMMIT" --arg b "$2" --arg a "$(cut -d' ' -f1-3 /proc/loadavg)" \
    '. + {commit:$c, loadavg_before:$b, loadavg_after:$a}' "$1" >"$1.tmp" && mv "$1.tmp" "$1"
}

ensure_peers
command -v jq >/dev/null || apt-get install -y -qq jq >/dev/null
command -v rsvg-convert >/dev/null || apt-get install -y -qq librsvg2-bin >/dev/null || true
gen_media 20
# BENCH_MEDIA=PATH: publish another FLV (e.g. target/bench-media/test-2500k.flv).
MEDIA600="${BENCH_MEDIA:-$MEDIA_DIR/test-600k.flv}"
# The SRT callers replay the TS as it is (a new pass jumps back in time): a file longer than
# every run keeps them to one pass.
TS_LONG=$(gen_ts_long 120)

log "building (release)"
# One build of every binary: building -p sluice-perf alone unifies features differently and
# would relink it on every run.
cargo build --release -q --workspace --bins
PERF="$ROOT/target/release/sluice-perf"

# ---- Sluice (per the gateway contract; skipped, and said so, when it cannot start) ----
SLUICE_PID=""; SLUICE_DIR=""
sluice_ok() {
  [ "$WITH_SLUICE" = 0 ] && return 1
  [ -x target/release/sluice ] \
    && [ -x target/release/sluice-dataplane ]
}
rest() { curl -sf -u bench:benchsecret -H 'content-type: application/json' "$@"; }
start_sluice() {
  next_ports
  SLUICE_DIR="$OUT/sluice-$1"; mkdir -p "$SLUICE_DIR"
  cat >"$SLUICE_DIR/sluice.toml" <<CONF
[control]
listen = "127.0.0.1:$REST_PORT"
data_dir = "$SLUICE_DIR/data"
region = "na"
[control.rate_limits]
# The capacity ramp creates 2,000 keys as fast as curl goes: lift the create quota (50/s).
create = 0
[[control.credentials]]
id = "bench"
secret = "benchsecret"
[[apps]]
id = "benchapp"
certificate = "0123456789abcdef0123456789abcdef"
domains = ["127.0.0.1"]
[dataplane]
cores = 1
# Every load connection comes from 127.0.0.1: lift the per-address cap (default 256).
max_connections_per_ip = 100000
${SLUICE_EXTRA:-}
rtmp_listen = "127.0.0.1:$RTMP_PORT"
srt_listen = "127.0.0.1:$SRT_PORT"
http_listen = "127.0.0.1:$HTTP_PORT"
[table]
path = "/dev/shm/sluice-bench-$$-$1"
CONF
  taskset -c "$SCORE" target/release/sluice up --config "$SLUICE_DIR/sluice.toml" \
    >"$SLUICE_DIR/sluice.log" 2>&1 &
  SLUICE_PID=$!
  local i; for i in $(seq 100); do
    curl -sf "http://127.0.0.1:$REST_PORT/healthz" >/dev/null 2>&1 && return 0; sleep 0.1
  done
  log "sluice did not answer /healthz; see $SLUICE_DIR/sluice.log"; return 1
}
# descendants PID: PID's children, grandchildren, ...
descendants() { local c; for c in $(pgrep -P "$1" 2>/dev/null); do echo "$c"; descendants "$c"; done; }
# stop_sluice: ends the control process and its dataplane, and waits until their ports are
# free, so the next server can bind them.
stop_sluice() {
  if [ -n "$SLUICE_PID" ]; then
    local all i; all="$SLUICE_PID $(descendants "$SLUICE_PID")"
    kill $all 2>/dev/null || true
    for i in $(seq 50); do
      kill -0 $all 2>/dev/null || break; sleep 0.1
    done
    kill -9 $all 2>/dev/null || true
    wait "$SLUICE_PID" 2>/dev/null || true
  fi
  SLUICE_PID=""; rm -f /dev/shm/sluice-bench-$$-*
  wait_port_free
}
# wait_port_free: until nothing listens on the benchmark's RTMP, REST or SRT ports (5 s).
wait_port_free() {
  local i
  for i in $(seq 50); do
    ss -Hlntu 2>/dev/null | grep -qE "127\.0\.0\.1:($RTMP_PORT|$REST_PORT|$SRT_PORT|$HTTP_PORT)\b" || return 0
    sleep 0.1
  done
  log "ports still busy after 5 s: $(ss -Hlntup 2>/dev/null | grep -E ":($RTMP_PORT|$REST_PORT|$SRT_PORT|$HTTP_PORT)\b" | tr -s ' ' | head -3)"
}
# sluice_keys N FILE: one stream key per stream, channel c<i>. Sluice runs as it ships: it
# transcodes AAC to Opus only while a stream has WebRTC viewers (none in these runs), so the
# RTMP and SRT rows compare like for like with nginx-rtmp and srt-live-transmit.
sluice_keys() {
  : >"$2"; local i
  for i in $(seq 0 $(($1 - 1))); do
    rest -X POST "$REST/streamkeys" -d "{\"settings\":{\"channel\":\"c$i\",\"uid\":\"1\",\"expiresAfter\":0}}" \
      | jq -r .data.streamKey >>"$2"
  done
}
# sluice_forwarders N M: after the streams are live, one RTP forwarder per receiver, on the
# ports `sluice-perf load --rtp-receivers M` listens on.
sluice_forwarders() {
  local i j sid port
  for i in $(seq 0 $(($1 - 1))); do
    sid=$(rest "$REST/online-streams?channel=c$i" | jq -r '.data[0].sid // empty')
    [ -z "$sid" ] && { log "stream c$i not online"; continue; }
    for j in $(seq 0 $(($2 - 1))); do
      port=$((RTP_BASE + 4 * (i * $2 + j)))
      rest -X POST "$REST/online-streams/$sid/forwarders" \
        -d "{\"host\":\"127.0.0.1\",\"videoPort\":$port,\"audioPort\":$((port + 2))}" >/dev/null \
        || log "forwarder for c$i failed"
    done
  done
}

# ---- one RTMP run: server (sluice|nginx), streams, viewers (0|1), tag ----
rtmp_run() {
  local server="$1" n="$2" viewers="$3" tag="$4" extra=("${@:5}")
  local json="$OUT/rtmp-$server-n$n-v$viewers-$tag.json" pid args=() la
  la=$(cut -d' ' -f1-3 /proc/loadavg)
  if [ "$server" = nginx ]; then
    next_ports
    pid=$(start_nginx "$OUT/nginx-$tag" "$RTMP_PORT" "$SCORE" 2>>"$OUT/bench.log") \
      || { log "nginx did not start: $(ss -Hlntup | grep -E ":$RTMP_PORT\b")"; return 1; }
    args=(--players "$viewers")
  else
    start_sluice "$tag" || return 1
    pid=$SLUICE_PID
    sluice_keys "$n" "$SLUICE_DIR/keys"
    args=(--keys-file "$SLUICE_DIR/keys" --rtp-receivers "$viewers" --rtp-base-port "$RTP_BASE")
    # WHEP=M: M WHEP viewers per stream on this server's viewer port.
    [ -n "${WHEP:-}" ] && args+=(--whep-viewers "$WHEP" --whep-url "http://127.0.0.1:$HTTP_PORT/whep/benchapp")
  fi
  taskset -c "$LCORE" "$PERF" load --rtmp "rtmp://127.0.0.1:$RTMP_PORT/live" -n "$n" \
    --input "$MEDIA600" --duration-s "$DUR" --ramp "${RAMP:-100}" --gateway-pid "$pid" \
    --label "$server n=$n viewers=$viewers #$tag" --out "$json" "${args[@]}" "${extra[@]}" \
    >>"$OUT/bench.log" 2>&1 &
  local lp=$!
  if [ "$server" != nginx ] && [ "$viewers" -gt 0 ]; then
    sleep "$(awk "BEGIN{print $n/100 + 1.5}")"; sluice_forwarders "$n" "$viewers"
  fi
  # The gateway's own ingest-to-egress latency (kernel receive timestamp to egress send):
  # emptied once the streams and receivers are up, read at the end of the run.
  local gwlat="${json%.json}.gw-latency"
  if [ "$server" != nginx ]; then
    sleep "${BENCH_LAT_RESET_S:-1}"; curl -sf -X DELETE "http://127.0.0.1:$HTTP_PORT/api/latency" >/dev/null || true
  fi
  wait "$lp" || log "load run $json failed"
  if [ "$server" != nginx ]; then
    curl -sf "http://127.0.0.1:$HTTP_PORT/api/latency" >"$gwlat" || echo '{}' >"$gwlat"
  fi
  if [ "$server" = nginx ]; then stop_nginx "$OUT/nginx-$tag"; else stop_sluice; fi
  if [ -s "$gwlat" ] && [ -f "$json" ]; then
    jq --slurpfile g "$gwlat" '. + {gw_latency: $g[0]}' "$json" >"$json.tmp" && mv "$json.tmp" "$json"
  fi
  annotate "$json" "$la"
  log "$(head -1 "${json%.json}.txt" 2>/dev/null) -> $(jq -r '"\(.gw_cpu_s_per_gb|.*100|round/100) s/GB, rss \(.gw_peak_rss_kb) kB"' "$json" 2>/dev/null)"
}

# ---- one SRT run: N SRT callers inside sluice-perf (sans-IO caller, one UDP socket each,
# replaying the TS paced by its PCR) into srt-live-transmit listeners (one per stream, all
# pinned to the server core, writing to stdout) or into Sluice's SRT listener ----
srt_run() {
  local server="$1" n="$2" tag="$3"
  local dir="$OUT/srt-$server-$tag" pids="" i la json="$OUT/srt-$server-n$n-$tag.json" args=()
  la=$(cut -d' ' -f1-3 /proc/loadavg)
  mkdir -p "$dir"
  if [ "$server" = slt ]; then
    next_ports
    for i in $(seq 0 $((n - 1))); do
      # taskset execs srt-live-transmit, so $! is the receiver's own pid.
      taskset -c "$SCORE" srt-live-transmit -q "srt://127.0.0.1:$((SRT_PORT + i))?mode=listener&latency=200" \
        file://con > >(wc -c >"$dir/bytes-$i") &
      pids="$pids,$!"
    done
    sleep 0.5
    args=(--srt-port-step 1)
  else
    start_sluice "srt-$tag" || return 1
    sluice_keys "$n" "$dir/keys"; pids=$SLUICE_PID
    args=(--keys-file "$dir/keys")
  fi
  taskset -c "$LCORE" "$PERF" load --srt "127.0.0.1:$SRT_PORT" --srt-latency-ms 200 -n "$n" \
    --input "$TS_LONG" --duration-s "$DUR" --ramp "${RAMP:-100}" \
    $(for p in ${pids//,/ }; do echo --gateway-pid "$p"; done) \
    --label "$server srt n=$n #$tag" --out "$json" "${args[@]}" >>"$OUT/bench.log" 2>&1 \
    || log "srt load run $json failed"
  if [ "$server" = slt ]; then
    for i in ${pids//,/ }; do kill "$i" 2>/dev/null || true; done
    sleep 0.5
  else stop_sluice; fi
  # CPU per GB over the bytes the callers sent (the same count for both servers); the bytes
  # srt-live-transmit delivered are recorded beside it as a check.
  [ -f "$json" ] && jq --argjson n "$n" \
     --argjson got "$(cat "$dir"/bytes-* 2>/dev/null | awk '{s+=$1} END{print s+0}')" \
     '. + {srt_streams:$n, srt_bytes_sent:.totals.bytes_sent, srt_bytes_delivered:$got, srt_cpu_s_per_gb:.gw_cpu_s_per_gb}' \
     "$json" >"$json.tmp" && mv "$json.tmp" "$json"
  annotate "$json" "$la"
  log "srt $server n=$n: $(jq -r '"\(.srt_cpu_s_per_gb|.*100|round/100) s/GB, sent \(.totals.bytes_sent), delivered \(.srt_bytes_delivered), retransmitted \(.totals.srt_retransmitted)"' "$json" 2>/dev/null)"
}

HAVE_SLUICE=0
if sluice_ok && start_sluice probe; then HAVE_SLUICE=1; stop_sluice; fi
[ "$HAVE_SLUICE" = 1 ] || log "Sluice not available: peers only (figures for Sluice are blank)"
A=sluice; [ "$HAVE_SLUICE" = 1 ] || A=""

# ---- latency only: Sluice's forwarding and WHEP latency at a few stream counts ----
if [ "$LAT_ONLY" = 1 ]; then
  [ "$HAVE_SLUICE" = 1 ] || { log "--latency needs Sluice"; exit 1; }
  DUR=${BENCH_LAT_DUR:-20}
  # BENCH_LAT_STREAMS, BENCH_WHEP_STREAMS and BENCH_WHEP_VIEWERS (per stream) reshape it;
  # BENCH_LAT_RESET_S: seconds after the start at which the gateway histograms are emptied.
  for n in ${BENCH_LAT_STREAMS-1 20 100}; do rtmp_run sluice "$n" 1 lat; done
  WHEP=${BENCH_WHEP_VIEWERS:-1} rtmp_run sluice "${BENCH_WHEP_STREAMS:-20}" 0 whep
  for f in "$OUT"/rtmp-sluice-*-lat.json "$OUT"/rtmp-sluice-*-whep.json; do
    [ -f "$f" ] && jq -r '"\(.args.label) (\(.commit), load \(.loadavg_before)): latency n=\(.latency.count) p50 \(.latency.p50_ms) ms, p99 \(.latency.p99_ms) ms, max \(.latency.max_ms) ms; rtp \(.totals.rtp_packets) packets, \(.totals.rtp_lost) lost, \(.totals.rtp_cached_frames // 0) cached frames; whep \(.totals.whep_connected) connected, \(.totals.whep_video_frames) video frames; server \(.gw_cpu_s_per_gb | . * 100 | round / 100) s/GB; gateway ingest->RTP \(.gw_latency.rtmpToRtp // {} | "n=\(.count) p50 \(.p50Us) us p99 \(.p99Us) us max \(.maxUs) us"), ingest->WebRTC \(.gw_latency.rtmpToWebrtc // {} | "n=\(.count) p50 \(.p50Us) us p99 \(.p99Us) us max \(.maxUs) us")"' "$f"
  done | tee "$OUT/summary.md"
  log "results in $OUT"
  exit 0
fi

# ---- viewers only: a WHEP viewer ramp on a few streams; PSS and CPU slopes per viewer ----
if [ "$VIEW_ONLY" = 1 ]; then
  [ "$HAVE_SLUICE" = 1 ] || { log "--viewers needs Sluice"; exit 1; }
  VN=${BENCH_VIEW_STREAMS:-5}; VM=${BENCH_VIEWERS:-80}; VS=${BENCH_VIEW_STAGGER:-0.25}
  # Publishers first (2 s), then the ramp, then 10 s with every viewer connected.
  DUR=$(awk -v m="$VM" -v s="$VS" 'BEGIN { printf "%d", 2 + m * s + 10 }')
  WHEP=$VM rtmp_run sluice "$VN" 0 viewers --whep-stagger-s "$VS" --pss --sample-ms 1000
  scripts/bench-report.sh "$OUT" | grep '^Viewer ramp' | tee "$OUT/summary.md"
  log "results in $OUT"
  exit 0
fi

# ---- ABAB pairs ----
if [ "$CAP_ONLY" = 1 ]; then STREAMS=""; PAIRS=0; CAPACITY=1; fi
if [ "$SRT_ONLY" = 1 ]; then STREAMS=""; CAPACITY=0; fi
for n in $STREAMS; do
  for v in ${BENCH_VIEWER_ROWS:-0 1}; do
    for p in $(seq "$PAIRS"); do
      # Alternate which server goes first, so drift over the run hits both alike.
      if [ $((p % 2)) = 1 ]; then order="$A nginx"; else order="nginx $A"; fi
      for s in $order; do rtmp_run "$s" "$n" "$v" "$p"; done
    done
  done
done
for n in $SRT_STREAMS; do
  for p in $(seq "$PAIRS"); do
    if [ $((p % 2)) = 1 ]; then order="$A slt"; else order="slt $A"; fi
    for s in $order; do srt_run "$s" "$n" "$p"; done
  done
done

# ---- capacity: ramp until the server passes 80% of its core; PSS slope on a fresh process.
# Sluice runs twice: as configured by default, and with gop_cache_max_bytes = 0, whose PSS
# slope is the memory per publisher without its GOP cache (the cache holds up to one GOP of
# each stream: about 2 s x 600 kbps = 150 kB here). ----
if [ "$CAPACITY" = 1 ]; then
  CAP_N=${BENCH_CAP_STREAMS:-2000}
  for s in $A nginx; do
    RAMP=40 DUR=$((CAP_N / 40 + 10)) rtmp_run "$s" "$CAP_N" 0 cap --pss --sample-ms 1000
  done
  if [ -n "$A" ]; then
    SLUICE_EXTRA="gop_cache_max_bytes = 0" RAMP=40 DUR=$((CAP_N / 40 + 10)) \
      rtmp_run sluice "$CAP_N" 0 capnogop --pss --sample-ms 1000
  fi
fi

# ---- summary ----
scripts/bench-report.sh "$OUT" | tee "$OUT/summary.md"
log "results in $OUT"
