#!/usr/bin/env bash
# Static-file benchmark: sluice's directory origin (`--origin DIR`) against
# a Debian nginx serving the same directory (sendfile on, tcp_nopush, long
# keep-alive: its static best), and sluice with `--splice false` (files read
# through user space), alternating, RUNS times each. wrk drives each with a
# rotating mix of real JPEGs (bench/corpus.sh). Prints requests/s, MB/s,
# peak RSS and the server's own CPU seconds per GB per run, and the medians.
#
#   bench/static.sh                    # 3 runs x 15 s at 64 connections
#   RUNS=5 DURATION=15s bench/static.sh
set -euo pipefail
source "$(dirname "$0")/lib.sh"

CONNS=${CONNS:-64}
DURATION=${DURATION:-15s}
RUNS=${RUNS:-3}
THREADS=${THREADS:-2}
CORPUS=${CORPUS:-$OUT_DIR/corpus}
NGINX_PORT=18091 SLUICE_PORT=18093 SLUICE_ADMIN=18094

[ -d "$CORPUS" ] || "$BENCH_DIR/corpus.sh"
(cd "$REPO_DIR" && cargo build --release --quiet)
SLUICE_BIN="$REPO_DIR/target/release/sluice"
jpeg_paths "$CORPUS" > "$OUT_DIR/static-paths.txt"
first=$(head -1 "$OUT_DIR/static-paths.txt")
kill_pids_on_exit

results="$OUT_DIR/static-results.txt"
: > "$results"
for run in $(seq 1 "$RUNS"); do
  npid=$(start_static_origin static "$NGINX_PORT" "$CORPUS" "$first")
  echo "nginx          run $run: $(wrk_measure static-nginx "http://127.0.0.1:$NGINX_PORT" "$npid" "$OUT_DIR/static-paths.txt")" | tee -a "$results"
  kill "$npid"; wait "$npid" 2>/dev/null || true
  for splice in true false; do
    "$SLUICE_BIN" --listen 127.0.0.1:$SLUICE_PORT --admin-listen 127.0.0.1:$SLUICE_ADMIN \
      --origin "$CORPUS" --splice "$splice" > "$OUT_DIR/sluice-static.log" 2>&1 &
    spid=$!
    wait_http "http://127.0.0.1:$SLUICE_PORT$first"
    name=sluice; [ "$splice" = true ] || name=sluice-nosplice
    printf '%-14s run %s: %s\n' "$name" "$run" "$(wrk_measure "static-$name" "http://127.0.0.1:$SLUICE_PORT" "$spid" "$OUT_DIR/static-paths.txt")" | tee -a "$results"
    kill "$spid"; wait "$spid" 2>/dev/null || true
  done
done

echo
echo "| server | req/s (median) | MB/s (median) | peak RSS MiB (median) | CPU s per GB (median) |"
echo "|---|---|---|---|---|"
for s in nginx sluice sluice-nosplice; do
  col() { awk -v s=$s -v c=$1 '$1==s {print $c}' "$results" | median; }
  printf '| %s | %.0f | %.0f | %.1f | %.2f |\n' "$s" "$(col 4)" "$(col 5)" "$(echo "$(col 6) / 1024" | bc -l)" "$(col 7)"
done
n=$(awk '$1=="nginx" {print $4}' "$results" | median)
s=$(awk '$1=="sluice" {print $4}' "$results" | median)
printf 'sluice/nginx throughput ratio: %.2f (runs=%s, %s, %s connections)\n' "$(echo "$s / $n" | bc -l)" "$RUNS" "$DURATION" "$CONNS"
