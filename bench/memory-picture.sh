#!/usr/bin/env bash
# The picture of issue 14: sluice's RSS, jemalloc's allocated bytes and the
# memory budget in use over a mixed run of PHASE seconds each (5 minutes in
# all by default): pass-through (16 clients), thumbnails (8 clients), zips
# (32 clients posting the 16-photo manifest, bench/zip/loadgen), then idle;
# then the seed-style Go replica (bench/zip/replica) under the same zip
# load, its RSS drawn at the zip phase. One nginx static origin serves the
# bench photos (bench/zip/photos.sh). Writes docs/img/memory-picture.png
# and the samples under bench/out/picture/.
#
#   bench/memory-picture.sh                 # 75 s per phase
#   PHASE=20 bench/memory-picture.sh        # a quick look
#   SLUICE_BIN=target/release/sluice bench/memory-picture.sh
#
# Needs nginx, Go, python3 with matplotlib.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

PHASE=${PHASE:-75}
ORIGIN_PORT=18290 SLUICE_PORT=18291 SLUICE_ADMIN=18292 REPLICA_PORT=18293
WORK=$OUT_DIR/picture
PLOT=${PLOT:-$REPO_DIR/docs/img/memory-picture.png}
mkdir -p "$WORK" "$(dirname "$PLOT")"

"$BENCH_DIR/zip/photos.sh" "$WORK/photos"
if [[ -z ${SLUICE_BIN:-} ]]; then
  (cd "$REPO_DIR" && cargo build --release --quiet)
  SLUICE_BIN="$REPO_DIR/target/release/sluice"
fi
(cd "$BENCH_DIR/zip" && go build -o "$WORK/replica" ./replica && go build -o "$WORK/loadgen" ./loadgen)
python3 - "$WORK" <<'PY'
import json, os, sys
work = sys.argv[1]
photos = sorted(os.listdir(os.path.join(work, "photos")))
json.dump({"entries": [{"source": "photos/" + p, "name": "trip/" + p} for p in photos]},
          open(os.path.join(work, "manifest.json"), "w"))
PY

kill_pids_on_exit
pids+=("$(start_static_origin picture-origin "$ORIGIN_PORT" "$WORK" /photos/photo-01.jpg)")
load="python3 $BENCH_DIR/memory_picture_load.py"

# zips_for SECONDS URL: rounds of 32 clients x 64 zips until the time is up.
zips_for() {
  local until=$(( $(date +%s) + $1 )) url=$2 size
  size=$(curl -fsS -o /dev/null -w '%{size_download}' -X POST --data-binary @"$WORK/manifest.json" "$url")
  while (( $(date +%s) < until )); do
    "$WORK/loadgen" -url "$url" -manifest "$WORK/manifest.json" -c 32 -n 64 -expect "$size" | tail -1
  done
}

"$SLUICE_BIN" --origin "http://127.0.0.1:$ORIGIN_PORT" --listen "127.0.0.1:$SLUICE_PORT" \
  --admin-listen "127.0.0.1:$SLUICE_ADMIN" > "$WORK/sluice.log" 2>&1 &
spid=$!; pids+=("$spid")
wait_http "http://127.0.0.1:$SLUICE_ADMIN/readyz"
$load sample "$WORK/sluice.csv" "$spid" "http://127.0.0.1:$SLUICE_ADMIN" &
pids+=("$!"); sampler=$!
base="http://127.0.0.1:$SLUICE_PORT"
$load passthrough "$base" "$PHASE" 16 | tee "$WORK/summary.txt"
$load images "$base" "$PHASE" 8 | tee -a "$WORK/summary.txt"
zips_for "$PHASE" "$base/zip" | tee -a "$WORK/summary.txt"
sleep "$PHASE"
kill "$sampler"; kill "$spid"; wait "$spid" 2>/dev/null || true

"$WORK/replica" -listen "127.0.0.1:$REPLICA_PORT" -origin "http://127.0.0.1:$ORIGIN_PORT" > "$WORK/replica.log" 2>&1 &
rpid=$!; pids+=("$rpid")
sleep 0.5
$load sample "$WORK/replica.csv" "$rpid" &
pids+=("$!"); sampler=$!
echo "replica:" | tee -a "$WORK/summary.txt"
zips_for "$PHASE" "http://127.0.0.1:$REPLICA_PORT/zip" | tee -a "$WORK/summary.txt"
kill "$sampler"; kill "$rpid"

p=$PHASE
python3 "$BENCH_DIR/memory_picture_plot.py" "$WORK/sluice.csv" "$WORK/replica.csv" $((2 * p)) \
  "pass-through:0:$p,thumbnails:$p:$((2 * p)),zips:$((2 * p)):$((3 * p)),idle:$((3 * p)):$((4 * p))" "$PLOT"
python3 - "$WORK" "$p" <<'PY' | tee -a "$WORK/summary.txt"
import csv, statistics, sys
work, p = sys.argv[1], float(sys.argv[2])
s = list(csv.DictReader(open(work + "/sluice.csv")))
r = list(csv.DictReader(open(work + "/replica.csv")))
for name, a in (("pass-through", 0), ("thumbnails", p), ("zips", 2 * p), ("idle", 3 * p)):
    rows = [x for x in s if a <= float(x["second"]) < a + p]
    rss = [float(x["rss_mib"]) for x in rows]
    al = [float(x["allocated_mib"]) for x in rows if x["allocated_mib"]]
    bu = [float(x["budget_in_use_mib"]) for x in rows if x["budget_in_use_mib"]]
    print(f"sluice {name}: RSS median {statistics.median(rss):.1f} max {max(rss):.1f} MiB; "
          f"allocated median {statistics.median(al):.1f} max {max(al):.1f}; budget in use max {max(bu):.1f}")
rr = [float(x["rss_mib"]) for x in r]
print(f"replica zips: RSS median {statistics.median(rr):.1f} max {max(rr):.1f} MiB")
PY
