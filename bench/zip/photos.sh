#!/bin/sh
# Make the bench's 16 photos (~2 MB JPEGs, ~32 MB in all) in $1.
# Uses the shared corpus (bench/corpus.sh, real photographs) when it is
# there; otherwise renders photo-like JPEGs (plasma fractal + noise, q92)
# with ImageMagick so the bench can run anywhere.
set -eu
out=${1:?usage: photos.sh DIR}
mkdir -p "$out"
here=$(cd "$(dirname "$0")" && pwd)
if [ -x "$here/../corpus.sh" ] && [ -z "${SLUICE_BENCH_SYNTHETIC:-}" ]; then
    corpus=$(mktemp -d)
    "$here/../corpus.sh" "$corpus" >/dev/null
    # The 16 largest JPEGs of the corpus.
    find "$corpus" -iname '*.jp*g' -printf '%s %p\n' | sort -rn | head -16 |
        awk '{print $2}' | nl -nrz -w2 | while read -r n f; do cp "$f" "$out/photo-$n.jpg"; done
    rm -rf "$corpus"
fi
n=$(ls "$out" | wc -l)
i=$((n + 1))
while [ "$i" -le 16 ]; do
    f=$(printf '%s/photo-%02d.jpg' "$out" "$i")
    convert -seed "$i" -size 2800x1900 plasma:fractal -attenuate 0.6 +noise Gaussian \
        -quality 92 "$f"
    i=$((i + 1))
done
du -sh "$out"
