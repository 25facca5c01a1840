#!/usr/bin/env bash
# bench-report.sh DIR: the Markdown summary of a scripts/bench.sh run (medians over the
# ABAB runs, ratio Sluice/peer), ready for docs/performance.md.
set -euo pipefail
DIR="$1"
med='sort | if length == 0 then null elif length % 2 == 1 then .[length/2|floor] else (.[length/2-1] + .[length/2]) / 2 end'
fmt='if . == null then "n/a" else (. * 100 | round / 100 | tostring) end'
ratio() { jq -nr --argjson a "${1:-null}" --argjson b "${2:-null}" \
  'if $a == null or $b == null or $b == 0 then "n/a" else ($a / $b * 100 | round / 100 | tostring) end'; }
# vals GLOB EXPR: the median of EXPR over the JSON files matching GLOB (null when none).
vals() {
  local files; files=$(ls $1 2>/dev/null || true)
  [ -z "$files" ] && { echo null; return; }
  jq -s "[.[] | $2] | $med" $files
}
echo "Run: $(basename "$DIR") on $(nproc) cores, $(uname -r), commit $(jq -r .commit "$DIR/meta.json" 2>/dev/null || echo unknown); $(ls "$DIR"/*-*.json 2>/dev/null | wc -l) result files."
echo "Load average (1/5/15 min) before each run: $(jq -r '.loadavg_before // empty' "$DIR"/rtmp-*.json "$DIR"/srt-*.json 2>/dev/null | cut -d' ' -f1 | sort -n | awk '{a[NR]=$1} END{if (NR) printf "min %s, median %s, max %s (1-min figure, %d runs)", a[1], a[int((NR+1)/2)], a[NR], NR; else printf "not recorded"}')."
echo
echo "| scenario | streams | Sluice | nginx-rtmp | ratio Sluice/nginx |"
echo "|---|---|---|---|---|"
for f in $(ls "$DIR"/rtmp-nginx-n*-v*-[0-9]*.json 2>/dev/null | sed -E 's/.*-n([0-9]+)-v([01])-.*/\1 \2/' | sort -u | tr ' ' ':'); do
  n=${f%:*}; v=${f#*:}
  what="RTMP ingest, no viewers"; [ "$v" = 1 ] && what="RTMP ingest, 1 viewer/stream (nginx: RTMP player; Sluice: RTP forwarder)"
  for m in "CPU s per GB ingested|.gw_cpu_s_per_gb" "peak RSS per stream, kB|(.gw_peak_rss_kb / .args.publishers)" "latency p99, ms|.latency.p99_ms"; do
    label=${m%%|*}; expr=${m#*|}
    # Without viewers nothing comes back to time.
    [ "$v" = 0 ] && [ "$label" = "latency p99, ms" ] && continue
    s=$(vals "$DIR/rtmp-sluice-n$n-v$v-[0-9]*.json" "$expr")
    g=$(vals "$DIR/rtmp-nginx-n$n-v$v-[0-9]*.json" "$expr")
    echo "| $what: $label | $n | $(jq -nr "$s | $fmt") | $(jq -nr "$g | $fmt") | $(ratio "$s" "$g") |"
  done
done
for n in $(ls "$DIR"/srt-slt-n*.json 2>/dev/null | sed -E 's/.*-n([0-9]+)-.*/\1/' | sort -u); do
  s=$(vals "$DIR/srt-sluice-n$n-*.json" .srt_cpu_s_per_gb)
  g=$(vals "$DIR/srt-slt-n$n-*.json" .srt_cpu_s_per_gb)
  echo "| SRT ingest (peer: srt-live-transmit to stdout; pushers: sluice-perf SRT callers): CPU s per GB | $n | $(jq -nr "$s | $fmt") | $(jq -nr "$g | $fmt") | $(ratio "$s" "$g") |"
  s=$(vals "$DIR/srt-sluice-n$n-*.json" '(.gw_peak_rss_kb / .args.publishers)')
  g=$(vals "$DIR/srt-slt-n$n-*.json" '(.gw_peak_rss_kb / .args.publishers)')
  echo "| SRT ingest: peak RSS per stream, kB | $n | $(jq -nr "$s | $fmt") | $(jq -nr "$g | $fmt") | $(ratio "$s" "$g") |"
done
[ -n "$(ls "$DIR"/srt-*.json 2>/dev/null)" ] && echo && echo "SRT callers: $(jq -s -r 'map(.totals) | "\(map(.srt_packets) | add) packets sent, \(map(.srt_retransmitted) | add) retransmitted, \(map(.publish_started) | add) connections / \(map(.publish_attempts) | add) attempts"' "$DIR"/srt-*-n*.json)."
echo
echo "Load tool's own CPU: median $(vals "$DIR/rtmp-*.json" '(.self_cpu_s / .wall_s * 100)' | jq -r "$fmt")% of a core."
for f in "$DIR"/rtmp-*-v0-cap*.json; do
  [ -f "$f" ] || continue
  jq -r '
    (.samples | (map(.gw_cpu_pct >= 80) | index(true)) as $i
      | (if $i == null then . else .[:$i] end) | map(.publishers_live) | max // 0) as $held
    | (.samples | map(select(.publishers_live > 0 and .gw_pss_kb > 0))) as $s
    | ($s | length) as $k
    | (if $k > 1 then
        ($s | map(.publishers_live) | add / $k) as $mx | ($s | map(.gw_pss_kb) | add / $k) as $my
        | ($s | map((.publishers_live - $mx) * (.gw_pss_kb - $my)) | add)
          / ($s | map((.publishers_live - $mx) * (.publishers_live - $mx)) | add | if . == 0 then 1 else . end)
      else null end) as $slope
    | "Capacity \(.args.label) (\(.commit // "")\(if (.args.label | test("capnogop")) then ", gop_cache_max_bytes = 0" else "" end); load \(.loadavg_before // "?")): \(.totals.publish_started) publishers started, load tool at \(.samples | map(.self_cpu_pct) | max | round)% of a core at most; \($held) streams held below 80% of one core; PSS slope \($slope // "n/a" | tostring | .[:6]) kB per publisher; per-stream CPU \((.samples | map(select(.publishers_live > 0)) | max_by(.publishers_live)) as $l | if $l == null then "n/a" else "\($l.gw_cpu_pct / $l.publishers_live * 1000 | round / 1000)% of a core at \($l.publishers_live) streams (server at \($l.gw_cpu_pct | round)%)" end)."' "$f"
done
for f in "$DIR"/rtmp-sluice-*-viewers.json; do
  [ -f "$f" ] || continue
  # Least-squares slopes over the samples with viewers live (the ramp and its plateau):
  # PSS and server CPU against live WHEP viewers.
  jq -r '
    def slope(f): (map(.whep_live) | add / length) as $mx | (map(f) | add / length) as $my
      | (map((.whep_live - $mx) * (f - $my)) | add)
        / (map((.whep_live - $mx) * (.whep_live - $mx)) | add | if . == 0 then 1 else . end);
    (.samples | map(select(.whep_live > 0 and .gw_pss_kb > 0))) as $s
    | ($s | slope(.gw_pss_kb)) as $pss | ($s | slope(.gw_cpu_pct)) as $cpu
    | "Viewer ramp \(.args.label) (\(.commit // ""); load \(.loadavg_before // "?")): \(.args.publishers) publishers, \(.totals.whep_connected) WHEP viewers connected (at most \($s | map(.whep_live) | max) at once), \(.totals.whep_video_frames) video frames; PSS slope \($pss | . * 10 | round / 10) kB per viewer; CPU slope \($cpu | . * 1000 | round / 1000)% of a core per viewer (\(if $cpu > 0 then (80 / $cpu | floor) else "n/a" end) viewers at 80% of a core); server at \($s | map(.gw_cpu_pct) | max | round)% of a core at most, load tool at \(.samples | map(.self_cpu_pct) | max | round)%."' "$f"
done
