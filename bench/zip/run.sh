#!/usr/bin/env bash
# Bulk-zip benchmark: sluice vs a replica of the seed-style server (Go:
# every origin body read whole into a growing bytes.Buffer, then zipped;
# bench/zip/replica), same nginx static origin on loopback, same run,
# alternating, RUNS times each. CLIENTS concurrent clients each POST the
# same manifest of 16 real photos (~34 MB, bench/zip/photos.sh) and read
# the whole zip (bench/zip/loadgen). Then one ~6 GiB archive (the photos
# repeated) streamed from a fresh sluice, with its peak RSS.
# Prints zips/s and peak RSS (VmHWM) per run, and the medians.
#
#   bench/zip/run.sh                       # 3 runs x 192 zips at 32 clients
#   RUNS=5 ZIPS=256 CLIENTS=32 bench/zip/run.sh
#   SLUICE_BIN=path/to/sluice bench/zip/run.sh   # use a prebuilt release binary
set -euo pipefail
source "$(dirname "$0")/../lib.sh"

CLIENTS=${CLIENTS:-32}
ZIPS=${ZIPS:-192}
RUNS=${RUNS:-3}
BIG_GIB=${BIG_GIB:-6}
ORIGIN_PORT=18190 SLUICE_PORT=18191 SLUICE_ADMIN=18192 REPLICA_PORT=18193
WORK=$OUT_DIR/zip
mkdir -p "$WORK"

"$BENCH_DIR/zip/photos.sh" "$WORK/photos"
if [[ -z ${SLUICE_BIN:-} ]]; then
  (cd "$REPO_DIR" && cargo build --release --quiet)
  SLUICE_BIN="$REPO_DIR/target/release/sluice"
fi
(cd "$BENCH_DIR/zip" && go build -o "$WORK/replica" ./replica && go build -o "$WORK/loadgen" ./loadgen)

python3 - "$WORK" "$BIG_GIB" <<'PY'
import json, os, sys
work, big_gib = sys.argv[1], float(sys.argv[2])
photos = sorted(os.listdir(os.path.join(work, "photos")))
entries = [{"source": "photos/" + p, "name": "trip/" + p} for p in photos]
json.dump({"name": "trip.zip", "entries": entries}, open(os.path.join(work, "manifest.json"), "w"))
size = sum(os.path.getsize(os.path.join(work, "photos", p)) for p in photos)
reps = int(big_gib * (1 << 30) / size) + 1
big = [{"source": "photos/" + p, "name": "r%03d/%s" % (r, p)} for r in range(reps) for p in photos]
json.dump({"name": "big.zip", "entries": big}, open(os.path.join(work, "manifest-big.json"), "w"))
PY

kill_pids_on_exit
origin_pid=$(start_static_origin zip-origin "$ORIGIN_PORT" "$WORK" /photos/photo-01.jpg)
pids+=("$origin_pid")

start_sluice() {
  "$SLUICE_BIN" --origin "http://127.0.0.1:$ORIGIN_PORT" --listen "127.0.0.1:$SLUICE_PORT" \
    --admin-listen "127.0.0.1:$SLUICE_ADMIN" > "$WORK/sluice.log" 2>&1 &
  echo $!
}
start_replica() {
  "$WORK/replica" -listen "127.0.0.1:$REPLICA_PORT" -origin "http://127.0.0.1:$ORIGIN_PORT" > "$WORK/replica.log" 2>&1 &
  echo $!
}

# run_one NAME PORT PID -> "zips_per_s rss_kib"
run_one() {
  local name=$1 port=$2 pid=$3 url="http://127.0.0.1:$2/zip" size
  size=$(curl -fsS -o /dev/null -w '%{size_download}' -X POST --data-binary @"$WORK/manifest.json" "$url")
  "$WORK/loadgen" -url "$url" -manifest "$WORK/manifest.json" -c "$CLIENTS" -n "$ZIPS" -expect "$size" > "$WORK/load-$name.txt"
  local zps
  zps=$(sed -n 's/.*zips_per_s=\([0-9.]*\).*/\1/p' "$WORK/load-$name.txt")
  echo "$zps $(peak_rss_kib "$pid") $size"
}

results="$WORK/results.txt"
: > "$results"
for run in $(seq 1 "$RUNS"); do
  spid=$(start_sluice); pids+=("$spid")
  wait_http "http://127.0.0.1:$SLUICE_PORT/healthz"
  read -r zps rss size < <(run_one sluice "$SLUICE_PORT" "$spid")
  kill "$spid"; wait "$spid" 2>/dev/null || true
  echo "run $run sluice:  $zps zips/s, peak RSS $((rss / 1024)) MiB, zip $size bytes" | tee -a "$results"
  echo "sluice $zps $rss" >> "$results.raw"

  rpid=$(start_replica); pids+=("$rpid")
  sleep 0.3
  read -r zps rss size < <(run_one replica "$REPLICA_PORT" "$rpid")
  kill "$rpid"; wait "$rpid" 2>/dev/null || true
  echo "run $run replica: $zps zips/s, peak RSS $((rss / 1024)) MiB, zip $size bytes" | tee -a "$results"
  echo "replica $zps $rss" >> "$results.raw"
done

for who in sluice replica; do
  zps=$(awk -v w=$who '$1==w {print $2}' "$results.raw" | median)
  rss=$(awk -v w=$who '$1==w {print $3}' "$results.raw" | median)
  echo "median $who: $zps zips/s, peak RSS $((${rss%.*} / 1024)) MiB" | tee -a "$results"
done
rm -f "$results.raw"

# One big archive from a fresh sluice.
spid=$(start_sluice); pids+=("$spid")
wait_http "http://127.0.0.1:$SLUICE_PORT/healthz"
start=$(date +%s.%N)
bytes=$(curl -fsS -o /dev/null -w '%{size_download}' -X POST --data-binary @"$WORK/manifest-big.json" "http://127.0.0.1:$SLUICE_PORT/zip")
secs=$(echo "$(date +%s.%N) - $start" | bc)
rss=$(peak_rss_kib "$spid")
python3 -c "print('big archive: %.2f GiB in %.1f s (%.0f MB/s), sluice peak RSS %d MiB' % ($bytes/2**30, $secs, $bytes/$secs/1e6, $rss//1024))" | tee -a "$results"
kill "$spid"
