#!/usr/bin/env bash
# Pass-through over TLS: sluice (--tls-cert) and nginx (listen ssl,
# proxy_pass with upstream keepalive, its best streaming configuration,
# plus a shared session cache) terminate TLS in front of the same nginx
# static origin on loopback, in the same run, alternating, RUNS times each,
# with the same throwaway P-256 certificate. wrk (HTTP/1.1 over TLS, one
# handshake per connection) drives both with a rotating mix of real JPEGs
# (bench/corpus.sh). Prints requests/s, MB/s, peak RSS and CPU s per GB,
# and the medians. Neither uses kernel TLS: sluice has none yet, and
# Debian's nginx only with `ssl_conf_command Options KTLS` and the tls
# module loaded; NGINX_KTLS=1 adds that line (see docs/benchmarks.md).
#
#   bench/tls.sh                       # 3 runs x 15 s at 64 connections
#   RUNS=5 DURATION=20s bench/tls.sh
set -euo pipefail
source "$(dirname "$0")/lib.sh"

CONNS=${CONNS:-64}
DURATION=${DURATION:-15s}
RUNS=${RUNS:-3}
THREADS=${THREADS:-2}
CORPUS=${CORPUS:-$OUT_DIR/corpus}
ORIGIN_PORT=18481 NGINX_PORT=18482 SLUICE_PORT=18483 SLUICE_ADMIN=18484
WORK=$OUT_DIR/tls
mkdir -p "$WORK"

[ -d "$CORPUS" ] || "$BENCH_DIR/corpus.sh"
if [[ -z ${SLUICE_BIN:-} ]]; then
  (cd "$REPO_DIR" && cargo build --release --quiet)
  SLUICE_BIN="$REPO_DIR/target/release/sluice"
fi
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
  -subj /CN=localhost -addext subjectAltName=IP:127.0.0.1 \
  -keyout "$WORK/key.pem" -out "$WORK/cert.pem" 2>/dev/null

jpeg_paths "$CORPUS" > "$WORK/paths.txt"
kill_pids_on_exit
pids+=("$(start_static_origin tls-origin "$ORIGIN_PORT" "$CORPUS" "$(head -1 "$WORK/paths.txt")")")

ktls=""
[[ ${NGINX_KTLS:-0} == 1 ]] && ktls="ssl_conf_command Options KTLS;"
nginx_conf="
  upstream origin { server 127.0.0.1:$ORIGIN_PORT; keepalive 256; }
  server {
    listen 127.0.0.1:$NGINX_PORT ssl backlog=4096;
    ssl_certificate $WORK/cert.pem;
    ssl_certificate_key $WORK/key.pem;
    ssl_protocols TLSv1.2 TLSv1.3;
    ssl_session_cache shared:SSL:10m;
    $ktls
    keepalive_requests 1000000;
    $(nginx_proxy_location)
  }"

results="$WORK/results.txt"
: > "$results"
first=$(head -1 "$WORK/paths.txt")
for run in $(seq 1 "$RUNS"); do
  npid=$(start_nginx tls-proxy "$nginx_conf")
  for _ in $(seq 1 100); do curl -ksf -o /dev/null "https://127.0.0.1:$NGINX_PORT$first" && break; sleep 0.05; done
  r=$(wrk_measure tls-nginx "https://127.0.0.1:$NGINX_PORT" "$npid" "$WORK/paths.txt")
  kill "$npid"; wait "$npid" 2>/dev/null || true
  echo "nginx  run $run: $r" | tee -a "$results"

  "$SLUICE_BIN" --listen 127.0.0.1:$SLUICE_PORT --admin-listen 127.0.0.1:$SLUICE_ADMIN \
    --origin "http://127.0.0.1:$ORIGIN_PORT" --tls-cert "$WORK/cert.pem" --tls-key "$WORK/key.pem" \
    > "$WORK/sluice.log" 2>&1 &
  spid=$!
  wait_http "http://127.0.0.1:$SLUICE_ADMIN/readyz"
  r=$(wrk_measure tls-sluice "https://127.0.0.1:$SLUICE_PORT" "$spid" "$WORK/paths.txt")
  kill "$spid"; wait "$spid" 2>/dev/null || true
  echo "sluice run $run: $r" | tee -a "$results"
done

wrk_medians_table "$results" nginx sluice
