#!/usr/bin/env bash
# Throughput cost of built-in heap profiling while it is inactive (issue 5).
#
# Builds three release binaries from this checkout:
#   prof    default features: jemalloc with profiling built in, prof_active:false
#   noprof  --no-default-features --features jemalloc (jemalloc, no profiling)
#   system  --no-default-features (the system allocator)
# then runs the same wrk load against each (pass-through from a directory
# origin, on loopback), interleaved over ROUNDS rounds so that drift of a
# shared machine hits all three alike, and prints the median requests/s of
# each and the ratios to `noprof`.
#
# Usage: bench/obs-overhead.sh            (ROUNDS=5 DURATION=10s CONNS=32 by default)
#        SKIP_BUILD=1 bench/obs-overhead.sh   (reuse binaries in $OUT)
# sluice runs on CPU 0 and wrk on CPU 1 (taskset) when the machine has 2+ CPUs.
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-5}
DURATION=${DURATION:-10s}
CONNS=${CONNS:-32}
OUT=${OUT:-target/obs-bench}
PORT_BASE=${PORT_BASE:-18480}
mkdir -p "$OUT/origin"

if [ -z "${SKIP_BUILD:-}" ]; then
  nice -n 10 cargo build --release --bin sluice
  cp target/release/sluice "$OUT/sluice-prof"
  nice -n 10 cargo build --release --bin sluice --no-default-features --features jemalloc
  cp target/release/sluice "$OUT/sluice-noprof"
  nice -n 10 cargo build --release --bin sluice --no-default-features
  cp target/release/sluice "$OUT/sluice-system"
  # leave the default build in place
  nice -n 10 cargo build --release --bin sluice
fi

# Two bodies: 4 KiB (per-request costs dominate) and 256 KiB (streaming).
head -c 4096 /dev/urandom > "$OUT/origin/small.bin"
head -c 262144 /dev/urandom > "$OUT/origin/medium.bin"

pin_server=(); pin_client=()
if [ "$(nproc)" -ge 2 ] && command -v taskset >/dev/null; then
  pin_server=(taskset -c 0); pin_client=(taskset -c 1)
fi

run_one() { # variant file -> prints requests/s
  local variant=$1 file=$2 port=$((PORT_BASE)) admin=$((PORT_BASE + 1))
  "${pin_server[@]}" "$OUT/sluice-$variant" --listen 127.0.0.1:$port --admin-listen 127.0.0.1:$admin \
    --origin "$OUT/origin" --log-format json >/dev/null 2>&1 &
  local pid=$!
  for _ in $(seq 50); do curl -fs -o /dev/null http://127.0.0.1:$port/$file && break; sleep 0.1; done
  # warm-up, then the measured run
  "${pin_client[@]}" wrk -t1 -c"$CONNS" -d2s http://127.0.0.1:$port/$file >/dev/null
  "${pin_client[@]}" wrk -t1 -c"$CONNS" -d"$DURATION" http://127.0.0.1:$port/$file \
    | awk '/^Requests\/sec/ {print $2}'
  kill "$pid"; wait "$pid" 2>/dev/null || true
}

median() { sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }

for file in small.bin medium.bin; do
  : > "$OUT/$file.prof"; : > "$OUT/$file.noprof"; : > "$OUT/$file.system"
  for r in $(seq "$ROUNDS"); do
    for v in prof noprof system; do
      rps=$(run_one "$v" "$file")
      echo "$rps" >> "$OUT/$file.$v"
      echo "round $r $file $v $rps req/s" >&2
    done
  done
  p=$(median < "$OUT/$file.prof"); n=$(median < "$OUT/$file.noprof"); s=$(median < "$OUT/$file.system")
  printf '%s: median req/s  prof=%s  noprof=%s  system=%s  prof/noprof=%.3f  system/noprof=%.3f\n' \
    "$file" "$p" "$n" "$s" "$(echo "$p / $n" | bc -l)" "$(echo "$s / $n" | bc -l)"
done
