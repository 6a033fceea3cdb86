#!/usr/bin/env bash
# Resuming a large mod_zip archive whose manifest is a static file: nginx
# serves the files and the manifest (`add_header X-Archive-Files zip`, so a
# client's Range reaches the manifest too, and nginx answers it with 206 or
# 416), sluice proxies nginx. One whole download is the reference; then
# CUTS downloads are each cut at a random offset (the client hangs up) and
# resumed with `curl -C -`, which asks for `Range: bytes=<size of the
# part>-`. Each resumed file must be byte-identical to the reference, and
# the reference must pass `unzip -t`.
#
#   bench/zip/resume.sh                    # a 2 GiB archive, 3 cuts
#   GIB=5 CUTS=5 bench/zip/resume.sh       # past 4 GiB (ZIP64)
#   SLUICE_BIN=path/to/sluice bench/zip/resume.sh
set -euo pipefail
source "$(dirname "$0")/../lib.sh"

GIB=${GIB:-2}
CUTS=${CUTS:-3}
FILES=${FILES:-8}
ORIGIN_PORT=18290 SLUICE_PORT=18291 SLUICE_ADMIN=18292
WORK=$OUT_DIR/zip-resume
rm -rf "$WORK" && mkdir -p "$WORK/files"

if [[ -z ${SLUICE_BIN:-} ]]; then
  (cd "$REPO_DIR" && cargo build --release --quiet)
  SLUICE_BIN="$REPO_DIR/target/release/sluice"
fi

# FILES files of random bytes (stored entries: nothing to gain from
# compressible data), and the manifest with their CRCs, as an application
# that makes mod_zip manifests would store it.
python3 - "$WORK/files" "$GIB" "$FILES" <<'PY'
import os, sys, zlib
root, gib, files = sys.argv[1], float(sys.argv[2]), int(sys.argv[3])
each = int(gib * (1 << 30) / files)
lines = []
for i in range(files):
    name = "part-%02d.bin" % i
    crc, left = 0, each
    with open(os.path.join(root, name), "wb") as f:
        while left:
            chunk = os.urandom(min(left, 8 << 20))
            crc = zlib.crc32(chunk, crc)
            f.write(chunk)
            left -= len(chunk)
    lines.append("%08x %d /%s big/%s\n" % (crc, each, name, name))
open(os.path.join(root, "album.txt"), "w").write("".join(lines))
PY

kill_pids_on_exit
origin_pid=$(start_nginx zip-resume-origin "
  server {
    listen 127.0.0.1:$ORIGIN_PORT;
    root $WORK/files;
    sendfile on;
    location = /album.txt {
      add_header X-Archive-Files zip;
      add_header Content-Disposition 'attachment; filename=\"album.zip\"';
    }
  }")
pids+=("$origin_pid")
wait_http "http://127.0.0.1:$ORIGIN_PORT/album.txt"
"$SLUICE_BIN" --origin "http://127.0.0.1:$ORIGIN_PORT" --listen "127.0.0.1:$SLUICE_PORT" \
  --admin-listen "127.0.0.1:$SLUICE_ADMIN" > "$WORK/sluice.log" 2>&1 &
sluice_pid=$!
pids+=("$sluice_pid")
wait_http "http://127.0.0.1:$SLUICE_PORT/album.txt" >/dev/null || true
url="http://127.0.0.1:$SLUICE_PORT/album.txt"

echo "manifest (a static file on nginx): $(wc -l < "$WORK/files/album.txt") entries"
curl -sS -D "$WORK/head.txt" -o "$WORK/whole.zip" "$url"
size=$(stat -c %s "$WORK/whole.zip")
declared=$(awk 'tolower($1) == "content-length:" {gsub("\r", ""); print $2}' "$WORK/head.txt")
echo "whole: $size bytes (Content-Length: $declared), $(grep -i '^accept-ranges' "$WORK/head.txt" | tr -d '\r')"
[[ $size == "$declared" ]] || { echo "FAIL: length differs from Content-Length" >&2; exit 1; }
unzip -tq "$WORK/whole.zip"
want=$(sha256sum < "$WORK/whole.zip" | cut -d' ' -f1)

failed=0
for i in $(seq 1 "$CUTS"); do
  cut=$(python3 -c "import random; print(random.randrange(1, $size))")
  rm -f "$WORK/part.zip"
  # The client hangs up after `cut` bytes (curl stops on the closed pipe).
  (curl -sS "$url" 2>/dev/null || true) | head -c "$cut" > "$WORK/part.zip"
  start=$(date +%s.%N)
  curl -sS -C - -o "$WORK/part.zip" "$url"
  took=$(echo "$(date +%s.%N) - $start" | bc -l)
  got=$(sha256sum < "$WORK/part.zip" | cut -d' ' -f1)
  if [[ $got == "$want" ]]; then verdict=identical; else verdict=DIFFERENT; failed=1; fi
  printf 'cut at %d (%.1f%%), resumed %d bytes in %.2f s: %s\n' \
    "$cut" "$(echo "100 * $cut / $size" | bc -l)" "$((size - cut))" "$took" "$verdict"
done
echo "sluice peak RSS: $(peak_rss_kib "$sluice_pid") KiB"
exit "$failed"
