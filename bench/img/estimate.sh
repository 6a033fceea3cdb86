#!/usr/bin/env bash
# Calibration of the memory estimate (src/image/plan/estimate.rs): runs the
# pipeline (examples/process.rs, jemalloc) once per file and option string,
# one process each, and prints the job's estimate next to the process's
# peak growth while processing (VmHWM), then how many estimates fell short.
#
#   bench/img/estimate.sh                 # bench corpus + odd images
# Needs: bench/corpus.sh run once, tests/data/odd (cargo test generates it).
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
(cd "$REPO_DIR" && cargo build --release --quiet --example process)
PROCESS=$REPO_DIR/target/release/examples/process
ODD=$REPO_DIR/tests/data/odd
OPTIONS=("rs:fit:800:0/q:80/f:jpg" "q:95/f:jpg" "q:70/f:jpg" "f:png" "w:2000/f:webp" "rs:fill:100:100/f:webp")
for f in "$OUT_DIR"/corpus/*.jpg "$ODD"/*.jpg "$ODD"/*.png "$ODD"/*.webp "$ODD"/*.gif; do
  for o in "${OPTIONS[@]}"; do
    r=$("$PROCESS" "$f" "$o" /tmp/sluice-estimate.out 2>&1 | grep estimate | sed 's/.*; //') || true
    [ -n "$r" ] && echo "$(basename "$f") $o $r"
  done
done | tee "$OUT_DIR/estimate.txt"
awk '{e=$4; p=$7; gsub(/\+/, "", p); r=e/p; n++; if (r < 1) {u++; print "SHORT:", $0}
      if (p > 20) {big++; if (minb == "" || r < minb) minb = r}}
     END {printf "%d jobs, %d estimates short of the peak; jobs over 20 MiB: %d, lowest ratio %.2f\n", n, u, big, minb}' \
  "$OUT_DIR/estimate.txt"
