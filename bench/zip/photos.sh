#!/usr/bin/env bash
# Put the bench's 16 photos (~32 MB of real JPEGs) into DIR.
# They come from the shared corpus (bench/corpus.sh: real photographs from
# Debian's wallpaper packages): sorted by size, the two largest (16 and
# 11 MB upscales) are dropped and the next 16 taken, ~34 MB in all.
#   bench/zip/photos.sh DIR
set -euo pipefail
out=${1:?usage: photos.sh DIR}
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
corpus=$here/../out/corpus
[[ -f $corpus/SOURCES.txt ]] || "$here/../corpus.sh" >/dev/null
mkdir -p "$out"
n=0
while read -r _ f; do
    n=$((n + 1))
    cp "$f" "$out/$(printf 'photo-%02d.jpg' "$n")"
done < <(find "$corpus/" -name '*.jpg' -printf '%s %p\n' | sort -rn | sed -n '3,18p')
[[ $n -eq 16 ]] || { echo "photos: corpus has too few JPEGs" >&2; exit 1; }
du -sb "$out" | awk '{printf "photos: 16 JPEGs, %.1f MB\n", $1/1e6}'
