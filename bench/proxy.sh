#!/usr/bin/env bash
# Pass-through benchmark: sluice and nginx (Debian, proxy_pass with upstream
# keepalive, its best streaming configuration) proxy the same nginx static
# origin on loopback, in the same run, alternating, RUNS times each.
# wrk drives both with a rotating mix of real JPEGs (bench/corpus.sh).
# Prints requests/s, MB/s, peak RSS and the proxy's own CPU time per GB
# proxied (user + system, a steadier figure than req/s on a shared machine:
# wrk and the origin compete for the same 2 cores) per run and the medians.
#
#   bench/proxy.sh                     # 3 runs x 15 s at 64 connections
#   RUNS=5 DURATION=20s CONNS=64 bench/proxy.sh
set -euo pipefail
source "$(dirname "$0")/lib.sh"

CONNS=${CONNS:-64}
DURATION=${DURATION:-15s}
RUNS=${RUNS:-3}
THREADS=${THREADS:-2}
CORPUS=${CORPUS:-$OUT_DIR/corpus}
ORIGIN_PORT=18081 NGINX_PORT=18082 SLUICE_PORT=18083 SLUICE_ADMIN=18084

[ -d "$CORPUS" ] || "$BENCH_DIR/corpus.sh"
(cd "$REPO_DIR" && cargo build --release --quiet)
SLUICE_BIN="$REPO_DIR/target/release/sluice"

jpeg_paths "$CORPUS" > "$OUT_DIR/proxy-paths.txt"
count=$(wc -l < "$OUT_DIR/proxy-paths.txt")
bytes=$(cd "$CORPUS" && cat $(sed 's|^/||' "$OUT_DIR/proxy-paths.txt") | wc -c)
echo "corpus: $count JPEGs, $((bytes / 1048576)) MiB, mean $((bytes / count / 1024)) KiB"

kill_pids_on_exit
origin_pid=$(start_static_origin origin "$ORIGIN_PORT" "$CORPUS" "$(head -1 "$OUT_DIR/proxy-paths.txt")")
pids+=("$origin_pid")

nginx_conf="
  upstream origin { server 127.0.0.1:$ORIGIN_PORT; keepalive 256; }
  server {
    listen 127.0.0.1:$NGINX_PORT backlog=4096;
    keepalive_requests 1000000;
    $(nginx_proxy_location)
  }"

results="$OUT_DIR/proxy-results.txt"
: > "$results"
for run in $(seq 1 "$RUNS"); do
  # nginx
  npid=$(start_nginx proxy "$nginx_conf")
  wait_http "http://127.0.0.1:$NGINX_PORT$(head -1 "$OUT_DIR/proxy-paths.txt")"
  r=$(wrk_measure proxy-nginx "http://127.0.0.1:$NGINX_PORT" "$npid" "$OUT_DIR/proxy-paths.txt")
  kill "$npid"; wait "$npid" 2>/dev/null || true
  echo "nginx  run $run: $r" | tee -a "$results"
  # sluice
  "$SLUICE_BIN" --listen 127.0.0.1:$SLUICE_PORT --admin-listen 127.0.0.1:$SLUICE_ADMIN \
    --origin "http://127.0.0.1:$ORIGIN_PORT" > "$OUT_DIR/sluice-proxy.log" 2>&1 &
  spid=$!
  wait_http "http://127.0.0.1:$SLUICE_PORT/healthz"
  r=$(wrk_measure proxy-sluice "http://127.0.0.1:$SLUICE_PORT" "$spid" "$OUT_DIR/proxy-paths.txt")
  kill "$spid"; wait "$spid" 2>/dev/null || true
  echo "sluice run $run: $r" | tee -a "$results"
done

wrk_medians_table "$results" nginx sluice
n=$(awk '$1=="nginx" {print $4}' "$results" | median)
s=$(awk '$1=="sluice" {print $4}' "$results" | median)
printf 'sluice/nginx throughput ratio: %.2f (runs=%s, %s, %s connections, %s wrk threads)\n' \
  "$(echo "$s / $n" | bc -l)" "$RUNS" "$DURATION" "$CONNS" "$THREADS"
