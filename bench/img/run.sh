#!/usr/bin/env bash
# Thumbnail benchmark (issue 4): 800-px-wide JPEG thumbnails (q80) of real
# photos (bench/out/corpus, 1-18 MP, baseline and progressive), same machine,
# same run, one server at a time:
#   sluice (release build)   /img/_/rs:fit:800:0/q:80/cb:{n}/plain/NAME@jpg
#                            ({n}: unique per request, so nothing is coalesced)
#   thumbor (PyPI, venv)     /unsafe/800x0/NAME   (QUALITY=80, file loader)
#   nginx image_filter       image_filter resize 800 -; jpeg quality 80
#   vipsthumbnail            the same files, 4 in parallel (xargs -P4)
# Load: wrk, 4 connections, DURATION seconds, rotating over the files.
# Then sluice alone at 32 connections with --memory-budget BUDGET: peak RSS
# and every status (must be 200/429/503, no socket errors).
# PSNR: sluice's output (PNG, same options) vs vipsthumbnail (PNG) per file.
#
#   bench/img/run.sh            (DURATION=20 REPEATS=1 BUDGET=256MiB)
# Needs: see docs/benchmarks.md (wrk, nginx + image_filter module, libvips-tools,
# imagemagick's compare, bench/.venv with thumbor, bench/corpus.sh run once).
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"

DURATION=${DURATION:-20}
REPEATS=${REPEATS:-1}
BUDGET=${BUDGET:-256MiB}
CORPUS=$OUT_DIR/corpus
RUN=$OUT_DIR/img
mkdir -p "$RUN"
SLUICE=${SLUICE:-$REPO_DIR/target/release/sluice}
[[ -x $SLUICE ]] || { echo "build first: cargo build --release" >&2; exit 1; }
[[ -d $CORPUS ]] || "$BENCH_DIR/corpus.sh"

# Files of 1 to 18 MP (the 20 MP original is left out).
mapfile -t FILES < <(cd "$CORPUS" && for f in *.jpg; do
  px=$(vipsheader -f width "$f")*$(vipsheader -f height "$f")
  (( $px <= 18600000 )) && echo "$f"; done)
echo "files: ${#FILES[@]}"

PORT=$((20000 + RANDOM % 20000))
results=$RUN/results.txt
: > "$results"

load() { # load NAME PATHSFILE CONNS PID -> one line of results
  local name=$1 paths=$2 conns=$3 pid=$4 out=$RUN/wrk-$1-$3.txt
  wrk -t "$(( conns < 4 ? conns : 4 ))" -c "$conns" -d "${DURATION}s" --timeout 30s \
      -s "$BENCH_DIR/img/status.lua" "http://127.0.0.1:$PORT" -- "$paths" > "$out"
  local rps rss
  rps=$(awk '/Requests\/sec/ {print $2}' "$out")
  rss=$(peak_rss_kib "$pid")
  echo "$name conns=$conns req/s=$rps peak_rss_mib=$((rss / 1024)) $(grep -E '^(status|errors)' "$out" | tr '\n' ' ')" | tee -a "$results"
}

stop() { pkill -P "$1" 2>/dev/null || true; kill "$1" 2>/dev/null || true; wait "$1" 2>/dev/null || true; }

for rep in $(seq 1 "$REPEATS"); do
  # --- sluice
  printf '/img/_/rs:fit:800:0/q:80/cb:{n}/plain/%s@jpg\n' "${FILES[@]}" > "$RUN/paths-sluice.txt"
  "$SLUICE" --origin "$CORPUS" --listen "127.0.0.1:$PORT" --admin-listen "127.0.0.1:$((PORT + 1))" \
     --memory-budget "$BUDGET" > "$RUN/sluice.log" 2>&1 &
  pid=$!
  wait_http "http://127.0.0.1:$PORT/healthz"
  load sluice "$RUN/paths-sluice.txt" 4 "$pid"
  stop "$pid"

  # --- thumbor
  cat > "$RUN/thumbor.conf" <<CONF
LOADER = 'thumbor.loaders.file_loader'
FILE_LOADER_ROOT_PATH = '$CORPUS'
QUALITY = 80
RESULT_STORAGE = None
STORAGE = 'thumbor.storages.no_storage'
ALLOW_UNSAFE_URL = True
CONF
  printf '/unsafe/800x0/%s\n' "${FILES[@]}" > "$RUN/paths-thumbor.txt"
  "$BENCH_DIR/.venv/bin/thumbor" -p "$PORT" -c "$RUN/thumbor.conf" --processes 2 > "$RUN/thumbor.log" 2>&1 &
  pid=$!
  wait_http "http://127.0.0.1:$PORT/healthcheck"
  load thumbor "$RUN/paths-thumbor.txt" 4 "$pid"
  stop "$pid"

  # --- nginx image_filter (worker_processes auto = 2 here)
  NGINX_MODULES="load_module /usr/lib/nginx/modules/ngx_http_image_filter_module.so;" \
  pid=$(start_nginx imgfilter "server { listen 127.0.0.1:$PORT; root $CORPUS;
      location = /healthz { return 200; }
      location / { image_filter resize 800 -; image_filter_jpeg_quality 80; image_filter_buffer 32M; } }")
  wait_http "http://127.0.0.1:$PORT/healthz"
  printf '/%s\n' "${FILES[@]}" > "$RUN/paths-nginx.txt"
  load nginx-image_filter "$RUN/paths-nginx.txt" 4 "$pid"
  stop "$pid"

  # --- vipsthumbnail: the corpus, repeated, 4 at a time
  rm -rf "$RUN/vips" && mkdir -p "$RUN/vips"
  start=$(date +%s.%N)
  n=0
  for k in 1 2 3; do for f in "${FILES[@]}"; do echo "$k-$f"; n=$((n + 1)); done; done |
    xargs -P4 -I{} sh -c 'f=$(echo "{}" | cut -d- -f2-); /usr/bin/time -f "%M" -a -o "$0/vips/rss.txt" vipsthumbnail "$1/$f" --size 800x -o "$0/vips/{}[Q=80]"' "$RUN" "$CORPUS"
  end=$(date +%s.%N)
  total=$((${#FILES[@]} * 3))
  echo "vipsthumbnail procs=4 files/s=$(echo "$total / ($end - $start)" | bc -l | cut -c1-6) peak_rss_mib_per_process=$(( $(sort -n "$RUN/vips/rss.txt" | tail -1) / 1024 ))" | tee -a "$results"
done

# --- sluice at 32 connections under the memory budget
"$SLUICE" --origin "$CORPUS" --listen "127.0.0.1:$PORT" --admin-listen "127.0.0.1:$((PORT + 1))" \
   --memory-budget "$BUDGET" > "$RUN/sluice32.log" 2>&1 &
pid=$!
wait_http "http://127.0.0.1:$PORT/healthz"
load sluice-budget-$BUDGET "$RUN/paths-sluice.txt" 32 "$pid"
stop "$pid"

# --- PSNR: sluice (PNG out) vs vipsthumbnail (PNG), same width
"$SLUICE" --origin "$CORPUS" --listen "127.0.0.1:$PORT" --admin-listen "127.0.0.1:$((PORT + 1))" > /dev/null 2>&1 &
pid=$!
wait_http "http://127.0.0.1:$PORT/healthz"
: > "$RUN/psnr.txt"
for f in "${FILES[@]}"; do
  curl -fsS -o "$RUN/ours.png" "http://127.0.0.1:$PORT/img/_/rs:fit:800:0/plain/$f@png"
  curl -fsS -o "$RUN/ours.jpg" "http://127.0.0.1:$PORT/img/_/rs:fit:800:0/q:80/plain/$f@jpg"
  vipsthumbnail "$CORPUS/$f" --size 800x -o "$RUN/ref.png"
  p=$(compare -metric PSNR "$RUN/ours.png" "$RUN/ref.png" null: 2>&1 | cut -d' ' -f1 || true)
  pj=$(compare -metric PSNR "$RUN/ours.jpg" "$RUN/ref.png" null: 2>&1 | cut -d' ' -f1 || true)
  echo "$f png=$p served_jpeg_q80=$pj" | tee -a "$RUN/psnr.txt"
done
stop "$pid"
echo "PSNR (PNG vs PNG) median=$(awk '{split($2,a,"="); print a[2]}' "$RUN/psnr.txt" | median) min=$(awk '{split($2,a,"="); print a[2]}' "$RUN/psnr.txt" | sort -n | head -1)" | tee -a "$results"
