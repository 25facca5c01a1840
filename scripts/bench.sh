#!/usr/bin/env bash
# Side-by-side benchmarks: Sluice against nginx-rtmp (RTMP ingest, with and without one
# player per stream) and against srt-live-transmit (SRT ingest), in one run, on loopback,
# each server pinned to one core (BENCH_SERVER_CORE, default 1) and the load on the other.
#
#   scripts/bench.sh --quick        # ~3 minutes: 20 streams, 2 ABAB pairs of 10 s runs
#   scripts/bench.sh                # full: more streams, 3 pairs, capacity ramp, PSS slope
#   scripts/bench.sh --no-sluice    # peers only (until the gateway runs end to end)
#
# Results: target/bench/<UTC date>/ (one JSON + text + PNG per run) and summary.md there,
# whose tables go into docs/performance.md ("Load and side-by-side runs").
# Everything binds to 127.0.0.1; no traffic leaves the machine.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
. scripts/bench-lib.sh

QUICK=0; WITH_SLUICE=auto
for a in "$@"; do
  case "$a" in
    --quick) QUICK=1 ;;
    --no-sluice) WITH_SLUICE=0 ;;
    --sluice) WITH_SLUICE=1 ;;
    *) echo "usage: $0 [--quick] [--no-sluice|--sluice]" >&2; exit 2 ;;
  esac
done

SCORE="${BENCH_SERVER_CORE:-1}"   # core of the server under test
LCORE="${BENCH_LOAD_CORE:-0}"     # core of the load tool and the pushers
if [ "$QUICK" = 1 ]; then
  PAIRS=2; DUR=10; STREAMS="20"; SRT_STREAMS=4; CAPACITY=0
else
  PAIRS=3; DUR=30; STREAMS="20 100"; SRT_STREAMS=8; CAPACITY=1
fi
RTMP_PORT=19350; SRT_PORT=16001; REST_PORT=18080; HTTP_PORT=18081; RTP_BASE=40000
OUT="$ROOT/target/bench/$(date -u +%Y-%m-%dT%H%M%SZ)"
mkdir -p "$OUT"
log() { echo "[bench $(date +%T)] $*" | tee -a "$OUT/bench.log" >&2; }

ensure_peers
command -v jq >/dev/null || apt-get install -y -qq jq >/dev/null
command -v rsvg-convert >/dev/null || apt-get install -y -qq librsvg2-bin >/dev/null || true
gen_media 20
MEDIA600="$MEDIA_DIR/test-600k.flv"
TS600="$MEDIA_DIR/test-600k.ts"

log "building (release)"
cargo build --release -q -p sluice-perf
PERF="$ROOT/target/release/sluice-perf"

# ---- Sluice (per the gateway contract; skipped, and said so, when it cannot start) ----
SLUICE_PID=""; SLUICE_DIR=""
sluice_ok() {
  [ "$WITH_SLUICE" = 0 ] && return 1
  cargo build --release -q --bins 2>>"$OUT/bench.log" && [ -x target/release/sluice ] \
    && [ -x target/release/sluice-dataplane ]
}
REST="http://127.0.0.1:$REST_PORT/na/v1/projects/benchapp/rtls/ingress"
rest() { curl -sf -u bench:benchsecret -H 'content-type: application/json' "$@"; }
start_sluice() {
  SLUICE_DIR="$OUT/sluice-$1"; mkdir -p "$SLUICE_DIR"
  cat >"$SLUICE_DIR/sluice.toml" <<CONF
[control]
listen = "127.0.0.1:$REST_PORT"
data_dir = "$SLUICE_DIR/data"
region = "na"
[[control.credentials]]
id = "bench"
secret = "benchsecret"
[[apps]]
id = "benchapp"
certificate = "0123456789abcdef0123456789abcdef"
domains = ["127.0.0.1"]
[dataplane]
cores = 1
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
stop_sluice() {
  [ -n "$SLUICE_PID" ] && { kill "$SLUICE_PID" 2>/dev/null || true; wait "$SLUICE_PID" 2>/dev/null || true; }
  SLUICE_PID=""; rm -f /dev/shm/sluice-bench-$$-*
}
# sluice_keys N FILE: one stream key per stream, channel c<i>.
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
  local json="$OUT/rtmp-$server-n$n-v$viewers-$tag.json" pid args=()
  if [ "$server" = nginx ]; then
    pid=$(start_nginx "$OUT/nginx-$tag" "$RTMP_PORT" "$SCORE")
    args=(--players "$viewers")
  else
    start_sluice "$tag" || return 1
    pid=$SLUICE_PID
    sluice_keys "$n" "$SLUICE_DIR/keys"
    args=(--keys-file "$SLUICE_DIR/keys" --rtp-receivers "$viewers" --rtp-base-port "$RTP_BASE")
  fi
  taskset -c "$LCORE" "$PERF" load --rtmp "rtmp://127.0.0.1:$RTMP_PORT/live" -n "$n" \
    --input "$MEDIA600" --duration-s "$DUR" --ramp "${RAMP:-100}" --gateway-pid "$pid" \
    --label "$server n=$n viewers=$viewers #$tag" --out "$json" "${args[@]}" "${extra[@]}" \
    >>"$OUT/bench.log" 2>&1 &
  local lp=$!
  if [ "$server" = sluice ] && [ "$viewers" -gt 0 ]; then
    sleep "$(awk "BEGIN{print $n/100 + 1.5}")"; sluice_forwarders "$n" "$viewers"
  fi
  wait "$lp" || log "load run $json failed"
  if [ "$server" = nginx ]; then stop_nginx "$OUT/nginx-$tag"; else stop_sluice; fi
  log "$(head -1 "${json%.json}.txt" 2>/dev/null) -> $(jq -r '"\(.gw_cpu_s_per_gb|.*100|round/100) s/GB, rss \(.gw_peak_rss_kb) kB"' "$json" 2>/dev/null)"
}

# ---- one SRT run: N pushers (ffmpeg -re, one per stream; the load tool has no SRT caller
# yet) into srt-live-transmit listeners (one per stream, all pinned to the server core) or
# into Sluice's SRT listener ----
srt_run() {
  local server="$1" n="$2" tag="$3"
  local dir="$OUT/srt-$server-$tag" pids="" push=() i
  mkdir -p "$dir"
  if [ "$server" = slt ]; then
    for i in $(seq 0 $((n - 1))); do
      # taskset execs srt-live-transmit, so $! is the receiver's own pid.
      taskset -c "$SCORE" srt-live-transmit -q "srt://127.0.0.1:$((SRT_PORT + i))?mode=listener&latency=200" \
        file://con > >(wc -c >"$dir/bytes-$i") &
      pids="$pids,$!"
    done
    sleep 0.5
  else
    start_sluice "srt-$tag" || return 1
    sluice_keys "$n" "$dir/keys"; pids=$SLUICE_PID
  fi
  local t0; t0=$(date +%s.%N)
  for i in $(seq 0 $((n - 1))); do
    local url
    if [ "$server" = slt ]; then url="srt://127.0.0.1:$((SRT_PORT + i))?latency=200000&pkt_size=1316"
    else url="srt://127.0.0.1:$SRT_PORT?latency=200000&pkt_size=1316&streamid=$(sed -n "$((i + 1))p" "$dir/keys")"; fi
    taskset -c "$LCORE" ffmpeg -hide_banner -loglevel error -re -stream_loop -1 -i "$TS600" -c copy \
      -f mpegts "$url" >/dev/null 2>&1 &
    push+=($!)
  done
  # The sampler runs with no publishers of its own (-n 0): it only measures the server.
  "$PERF" load -n 0 --input "$MEDIA600" --duration-s "$DUR" \
    $(for p in ${pids//,/ }; do echo --gateway-pid "$p"; done) \
    --label "$server srt n=$n #$tag" --out "$dir/run.json" >>"$OUT/bench.log" 2>&1 || true
  local t1; t1=$(date +%s.%N)
  kill "${push[@]}" 2>/dev/null || true; wait "${push[@]}" 2>/dev/null || true
  if [ "$server" = slt ]; then
    for i in ${pids//,/ }; do kill "$i" 2>/dev/null || true; done
    sleep 0.5
  else stop_sluice; fi
  # Bytes ingested: the file's rate times the pushing time (the same estimate for both
  # servers); for srt-live-transmit the bytes it delivered are recorded as a check.
  local size dur rate
  size=$(stat -c %s "$TS600"); dur=20
  rate=$(awk "BEGIN{print $size/$dur}")
  jq --argjson n "$n" --argjson r "$rate" --arg t0 "$t0" --arg t1 "$t1" \
     --argjson got "$(cat "$dir"/bytes-* 2>/dev/null | awk '{s+=$1} END{print s+0}')" \
     '. + {srt_streams:$n, srt_bytes_est:($n*$r*(($t1|tonumber)-($t0|tonumber))), srt_bytes_delivered:$got}
      | . + {srt_cpu_s_per_gb: (if .srt_bytes_est>0 then .gw_cpu_s/(.srt_bytes_est/1e9) else 0 end)}' \
     "$dir/run.json" >"$OUT/srt-$server-n$n-$tag.json"
  log "srt $server n=$n: $(jq -r '.srt_cpu_s_per_gb|.*100|round/100' "$OUT/srt-$server-n$n-$tag.json") s/GB"
}

HAVE_SLUICE=0
if sluice_ok && start_sluice probe; then HAVE_SLUICE=1; stop_sluice; fi
[ "$HAVE_SLUICE" = 1 ] || log "Sluice not available: peers only (figures for Sluice are blank)"
A=sluice; [ "$HAVE_SLUICE" = 1 ] || A=""

# ---- ABAB pairs ----
for n in $STREAMS; do
  for v in 0 1; do
    for p in $(seq "$PAIRS"); do
      # Alternate which server goes first, so drift over the run hits both alike.
      if [ $((p % 2)) = 1 ]; then order="$A nginx"; else order="nginx $A"; fi
      for s in $order; do rtmp_run "$s" "$n" "$v" "$p"; done
    done
  done
done
for p in $(seq "$PAIRS"); do
  if [ $((p % 2)) = 1 ]; then order="$A slt"; else order="slt $A"; fi
  for s in $order; do srt_run "$s" "$SRT_STREAMS" "$p"; done
done

# ---- capacity: ramp until the server passes 80% of its core; PSS slope on a fresh process ----
if [ "$CAPACITY" = 1 ]; then
  for s in $A nginx; do
    RAMP=40 DUR=60 rtmp_run "$s" 2000 0 cap --pss --sample-ms 1000
  done
fi

# ---- summary ----
scripts/bench-report.sh "$OUT" | tee "$OUT/summary.md"
log "results in $OUT"
