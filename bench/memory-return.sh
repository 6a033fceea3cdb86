#!/usr/bin/env bash
# Memory given back after a burst, and what that costs: sluice behind an
# nginx static origin (the bundled samples), a burst of 64 zips (24 photos
# each) and 64 clients of 4 image resizes, 32 at a time; then RSS sampled
# while idle. Runs RUNS pairs, alternating sluice's own jemalloc options
# with MALLOC_CONF=ALT_CONF (default: background threads off), and prints
# per run: idle baseline, peak RSS, burst seconds, RSS after 0/2/5/10/20/30 s.
#
#   bench/memory-return.sh                 # 3 pairs
#   RUNS=5 SAMPLES="0 2" bench/memory-return.sh
#   SLUICE_BIN=path/to/sluice bench/memory-return.sh
set -euo pipefail
source "$(dirname "$0")/lib.sh"

RUNS=${RUNS:-3}
SAMPLES=${SAMPLES:-0 2 5 10 20 30}
ALT_CONF=${ALT_CONF:-background_thread:false}
ORIGIN_PORT=18390 SLUICE_PORT=18391 SLUICE_ADMIN=18392
WORK=$OUT_DIR/memory-return
mkdir -p "$WORK"
if [[ -z ${SLUICE_BIN:-} ]]; then
  (cd "$REPO_DIR" && cargo build --release --quiet)
  SLUICE_BIN="$REPO_DIR/target/release/sluice"
fi

python3 - "$WORK/manifest.json" <<'PY'
import json, sys
photos = ["sunset", "dandelions", "dogs-portrait", "grace_hopper", "picos-de-europa", "rocket"]
entries = [{"source": p + ".jpg", "name": d + "/" + p + ".jpg"} for d in "abcd" for p in photos]
json.dump({"entries": entries}, open(sys.argv[1], "w"))
PY

kill_pids_on_exit
pids+=("$(start_static_origin memory-return-origin "$ORIGIN_PORT" "$REPO_DIR/samples" /sunset.jpg)")

# one_run CONF -> one line of results
one_run() {
  local conf=$1 pid base peak t0 t1 line prev=0 s
  MALLOC_CONF=$conf "$SLUICE_BIN" --origin "http://127.0.0.1:$ORIGIN_PORT" \
    --listen "127.0.0.1:$SLUICE_PORT" --admin-listen "127.0.0.1:$SLUICE_ADMIN" > "$WORK/sluice.log" 2>&1 &
  pid=$!
  wait_http "http://127.0.0.1:$SLUICE_PORT/sunset.jpg"
  curl -s -o /dev/null "http://127.0.0.1:$SLUICE_PORT/img/_/rs:fit:300:300/plain/sunset.jpg"
  curl -s -o /dev/null -X POST --data-binary "@$WORK/manifest.json" "http://127.0.0.1:$SLUICE_PORT/zip"
  sleep 2
  rss() { awk '/^VmRSS:/ {print int($2/1024)}' "/proc/$pid/status"; }
  base=$(rss)
  t0=$(date +%s.%N)
  for i in $(seq 1 64); do echo "img $i"; echo "zip $i"; done |
    xargs -P 32 -L 1 bash -c '
      if [ "$0" = img ]; then
        for f in sunset dandelions picos-de-europa grace_hopper; do
          curl -s -o /dev/null "http://127.0.0.1:'"$SLUICE_PORT"'/img/_/rs:fit:$((700 + $1)):0/plain/$f.jpg@webp"
        done
      else
        curl -s -o /dev/null -X POST --data-binary "@'"$WORK"'/manifest.json" "http://127.0.0.1:'"$SLUICE_PORT"'/zip"
      fi'
  t1=$(date +%s.%N)
  peak=$(awk '/^VmHWM:/ {print int($2/1024)}' "/proc/$pid/status")
  line=$(printf 'conf=[%s] baseline=%sMiB peak=%sMiB burst=%.2fs RSS after:' "${conf:-sluice default}" "$base" "$peak" "$(echo "$t1 - $t0" | bc -l)")
  for s in $SAMPLES; do sleep $((s - prev)); prev=$s; line+=" ${s}s=$(rss)"; done
  echo "$line"
  kill "$pid"; wait "$pid" 2>/dev/null || true
}

for r in $(seq 1 "$RUNS"); do
  one_run ""
  one_run "$ALT_CONF"
done
