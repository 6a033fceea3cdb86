#!/usr/bin/env bash
# Throughput cost of built-in heap profiling while it is switched off (issue 5).
#
# The proxy benchmark's setup (bench/proxy.sh): a Debian nginx static origin
# on loopback serving the real-photo JPEG corpus (bench/corpus.sh), wrk with
# the rotating path list, same connections and threads. Three release builds
# of this checkout take turns, RUNS rounds, so that drift of a shared machine
# hits all of them alike:
#   prof    default features: jemalloc, heap profiling built in (prof:true,
#           prof_active:false), /metrics
#   noprof  --no-default-features --features jemalloc: jemalloc, no profiling
#   system  --no-default-features: the system allocator, no profiling
#   proffalse  the `prof` binary run with MALLOC_CONF=prof:false (profiling
#           compiled in but switched off at start-up; no extra build)
# Prints per-run requests/s and the medians, and the ratios to `noprof`.
#
#   bench/obs-overhead.sh                       # 5 rounds x 10 s, 64 connections
#   RUNS=3 DURATION=15s bench/obs-overhead.sh
#   SKIP_BUILD=1 bench/obs-overhead.sh          # reuse bench/out/obs-bin/*
#   VARIANTS="prof noprof" bench/obs-overhead.sh  # skip the system-allocator build
#   SKIP_BUILD=1 VARIANTS="prof proffalse" BASE=proffalse bench/obs-overhead.sh
set -euo pipefail
source "$(dirname "$0")/lib.sh"

CONNS=${CONNS:-64}
DURATION=${DURATION:-10s}
RUNS=${RUNS:-5}
THREADS=${THREADS:-2}
VARIANTS=${VARIANTS:-prof noprof system}
CORPUS=${CORPUS:-$OUT_DIR/corpus}
ORIGIN_PORT=18091 SLUICE_PORT=18093 SLUICE_ADMIN=18094
BIN_DIR="$OUT_DIR/obs-bin"
mkdir -p "$BIN_DIR"

[ -d "$CORPUS" ] || "$BENCH_DIR/corpus.sh"
if [ -z "${SKIP_BUILD:-}" ]; then
  cd "$REPO_DIR"
  nice -n 10 cargo build --release --quiet --bin sluice --no-default-features --features jemalloc
  cp target/release/sluice "$BIN_DIR/sluice-noprof"
  if [[ " $VARIANTS " == *" system "* ]]; then
    nice -n 10 cargo build --release --quiet --bin sluice --no-default-features
    cp target/release/sluice "$BIN_DIR/sluice-system"
  fi
  # the default build last, so target/release/sluice stays the default
  nice -n 10 cargo build --release --quiet --bin sluice
  cp target/release/sluice "$BIN_DIR/sluice-prof"
fi

jpeg_paths "$CORPUS" > "$OUT_DIR/obs-paths.txt"

kill_pids_on_exit
origin_pid=$(start_static_origin obs-origin "$ORIGIN_PORT" "$CORPUS" "$(head -1 "$OUT_DIR/obs-paths.txt")")
pids+=("$origin_pid")

results="$OUT_DIR/obs-overhead-results.txt"
: > "$results"
for run in $(seq 1 "$RUNS"); do
  for variant in $VARIANTS; do
    bin="$BIN_DIR/sluice-$variant" malloc_conf=""
    if [ "$variant" = proffalse ]; then bin="$BIN_DIR/sluice-prof" malloc_conf="prof:false"; fi
    MALLOC_CONF="$malloc_conf" "$bin" --listen 127.0.0.1:$SLUICE_PORT --admin-listen 127.0.0.1:$SLUICE_ADMIN \
      --origin "http://127.0.0.1:$ORIGIN_PORT" --debug-token obs-overhead-bench-token > "$OUT_DIR/obs-sluice.log" 2>&1 &
    spid=$!
    wait_http "http://127.0.0.1:$SLUICE_PORT/healthz"
    out="$OUT_DIR/obs-wrk-$variant.txt"
    wrk -t"$THREADS" -c"$CONNS" -d"$DURATION" --timeout 30s -s "$BENCH_DIR/rotate.lua" \
      "http://127.0.0.1:$SLUICE_PORT" -- "$OUT_DIR/obs-paths.txt" > "$out"
    rps=$(awk '/^Requests\/sec:/ {print $2}' "$out")
    errors=$(awk '/Non-2xx|Socket errors/ {print}' "$out" | tr '\n' ' ')
    kill "$spid"; wait "$spid" 2>/dev/null || true
    echo "$variant run $run: $rps ${errors}" | tee -a "$results"
  done
done

echo
echo "| build | req/s (median of $RUNS) | vs ${BASE:-noprof} |"
echo "|---|---|---|"
base=${BASE:-noprof}
n=$(awk -v b="$base" '$1==b {print $4}' "$results" | median)
for v in $VARIANTS; do
  m=$(awk -v v=$v '$1==v {print $4}' "$results" | median)
  printf '| %s | %.0f | %.3f |\n' "$v" "$m" "$(echo "$m / $n" | bc -l)"
done
echo "(runs=$RUNS, $DURATION each, $CONNS connections, $THREADS wrk threads, nginx origin, $(wc -l < "$OUT_DIR/obs-paths.txt") JPEGs)"
