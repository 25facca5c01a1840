#!/usr/bin/env bash
# Helpers shared by scripts/bench.sh and the perf integration test: install the peers,
# generate the test media once, start nginx-rtmp on loopback pinned to one core.
# Source it (`. scripts/bench-lib.sh`) or call `scripts/bench-lib.sh <function> [args]`.
set -euo pipefail

BENCH_ROOT="${BENCH_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}"
MEDIA_DIR="${MEDIA_DIR:-$BENCH_ROOT/target/bench-media}"

# Installs nginx with the RTMP module and srt-tools (Debian packages) when missing.
ensure_peers() {
  if [ -f /usr/lib/nginx/modules/ngx_rtmp_module.so ] && command -v nginx >/dev/null \
     && command -v srt-live-transmit >/dev/null; then
    return 0
  fi
  if [ "$(id -u)" != 0 ]; then
    echo "bench: nginx, libnginx-mod-rtmp and srt-tools are missing and we are not root" >&2
    return 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq nginx libnginx-mod-rtmp srt-tools >/dev/null
  # The Debian package starts a system nginx on port 80; the benchmark runs its own.
  systemctl stop nginx 2>/dev/null || service nginx stop 2>/dev/null || true
}

# gen_media: FLV and TS at 600 kbps and 2.5 Mbps (H.264 + AAC, GOP 2 s, no B-frames), made
# once by ffmpeg; every publisher replays these bytes.
gen_media() {
  local secs="${1:-20}"
  mkdir -p "$MEDIA_DIR"
  local name size vb
  for spec in "600k 640x360 500k" "2500k 1280x720 2350k"; do
    read -r name size vb <<<"$spec"
    for ext in flv ts; do
      local out="$MEDIA_DIR/test-$name.$ext"
      [ -s "$out" ] && continue
      local fmt=flv; [ "$ext" = ts ] && fmt=mpegts
      ffmpeg -hide_banner -loglevel error -y \
        -f lavfi -i "testsrc2=size=$size:rate=30" -f lavfi -i "sine=frequency=440:sample_rate=48000" \
        -t "$secs" -c:v libx264 -preset veryfast -tune zerolatency -b:v "$vb" -maxrate "$vb" \
        -bufsize "$vb" -g 60 -keyint_min 60 -sc_threshold 0 -bf 0 -pix_fmt yuv420p \
        -c:a aac -b:a 96k -ac 2 -f "$fmt" "$out.tmp" && mv "$out.tmp" "$out"
    done
  done
}

# gen_ts_long SECS: a 600 kbps MPEG-TS of SECS seconds (same encoding as gen_media) for the
# SRT callers, which replay it without rewriting timestamps; prints its path.
gen_ts_long() {
  local secs="${1:-120}" out="$MEDIA_DIR/test-600k-${1:-120}s.ts"
  mkdir -p "$MEDIA_DIR"
  if [ ! -s "$out" ]; then
    ffmpeg -hide_banner -loglevel error -y \
      -f lavfi -i "testsrc2=size=640x360:rate=30" -f lavfi -i "sine=frequency=440:sample_rate=48000" \
      -t "$secs" -c:v libx264 -preset veryfast -tune zerolatency -b:v 500k -maxrate 500k \
      -bufsize 500k -g 60 -keyint_min 60 -sc_threshold 0 -bf 0 -pix_fmt yuv420p \
      -c:a aac -b:a 96k -ac 2 -f mpegts "$out.tmp" && mv "$out.tmp" "$out"
  fi
  echo "$out"
}

# start_nginx DIR PORT CORE [ACK_WINDOW]: nginx-rtmp on 127.0.0.1:PORT, one worker pinned to
# CORE (taskset), prefix DIR. Prints the master pid.
start_nginx() {
  local dir="$1" port="$2" core="$3" ack="${4:-5000000}"
  mkdir -p "$dir/logs"
  cat >"$dir/nginx.conf" <<CONF
load_module /usr/lib/nginx/modules/ngx_rtmp_module.so;
user root;
worker_processes 1;
daemon on;
pid $dir/nginx.pid;
error_log $dir/logs/error.log warn;
events { worker_connections 16384; }
rtmp {
  server {
    listen 127.0.0.1:$port;
    chunk_size 4096;
    ack_window $ack;
    application live { live on; record off; wait_key on; }
  }
}
CONF
  taskset -c "$core" nginx -p "$dir" -c "$dir/nginx.conf" -e "$dir/logs/error.log"
  local i
  for i in $(seq 50); do
    [ -s "$dir/nginx.pid" ] && break
    sleep 0.1
  done
  cat "$dir/nginx.pid"
}

# stop_nginx DIR
stop_nginx() {
  local dir="$1"
  if [ -s "$dir/nginx.pid" ]; then
    kill "$(cat "$dir/nginx.pid")" 2>/dev/null || true
    sleep 0.3
  fi
}

if [ "${BASH_SOURCE[0]}" = "$0" ] && [ $# -gt 0 ]; then
  "$@"
fi
