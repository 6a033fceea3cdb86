#!/usr/bin/env bash
# Soak benchmark: 10 minutes of mixed traffic at fixed rates (pass-through,
# thumbnails, zip downloads, and a few abusive clients: silent connections,
# slowloris heads, stalled uploads, hostile URLs, clients that leave
# mid-download) against a release sluice in front of a Debian nginx static
# origin serving the bench corpus. Reports errors and latency percentiles
# per class, and RSS once a second; RSS must stay flat (the last minute's
# median within 10 % of the second minute's). Plots RSS to a PNG.
#
#   bench/soak.sh                      # 600 s
#   SECONDS_TOTAL=120 bench/soak.sh    # a short run
#
# Needs: nginx, python3 with matplotlib (pip install matplotlib), and the
# corpus (bench/corpus.sh builds it).
set -euo pipefail
source "$(dirname "$0")/lib.sh"

SECONDS_TOTAL=${SECONDS_TOTAL:-600}
CORPUS=${CORPUS:-$OUT_DIR/corpus}
ORIGIN_PORT=18181 SLUICE_PORT=18183 SLUICE_ADMIN=18184
PLOT=${PLOT:-$REPO_DIR/docs/img/soak-rss.png}

[ -d "$CORPUS" ] || "$BENCH_DIR/corpus.sh"
(cd "$REPO_DIR" && cargo build --release --quiet && cargo build --release --quiet --example soak)
jpeg_paths "$CORPUS" > "$OUT_DIR/soak-paths.txt"

kill_pids_on_exit
origin_pid=$(start_static_origin soak-origin "$ORIGIN_PORT" "$CORPUS" "$(head -1 "$OUT_DIR/soak-paths.txt")")
pids+=("$origin_pid")

"$REPO_DIR/target/release/sluice" --origin "http://127.0.0.1:$ORIGIN_PORT" \
  --listen "127.0.0.1:$SLUICE_PORT" --admin-listen "127.0.0.1:$SLUICE_ADMIN" \
  --memory-budget 256MiB --header-timeout 10s --body-timeout 30s \
  > "$OUT_DIR/soak-sluice.log" 2>&1 &
sluice_pid=$!
pids+=("$sluice_pid")
wait_http "http://127.0.0.1:$SLUICE_ADMIN/readyz"

"$REPO_DIR/target/release/examples/soak" "http://127.0.0.1:$SLUICE_PORT" \
  "http://127.0.0.1:$SLUICE_ADMIN" "$sluice_pid" "$OUT_DIR/soak-paths.txt" \
  "$SECONDS_TOTAL" "$OUT_DIR"

mkdir -p "$(dirname "$PLOT")"
python3 "$BENCH_DIR/soak_plot.py" "$OUT_DIR/soak-rss.csv" "$PLOT" "$OUT_DIR/soak-summary.txt"
echo "plot: $PLOT"
