#!/usr/bin/env bash
# Generates the odd-case images the tests feed sluice, from one real photo in samples/.
#
#   tests/data/make-odd-images.sh [OUTDIR]     (default: tests/data/odd, gitignored)
#
# Deterministic for a given tool set (no timestamps or random seeds leak into files) and fast
# (~2 s CPU; wall time grows on a loaded machine).
# Writes OUTDIR/INDEX.txt: one line per file, "name<TAB>expect<TAB>description", where expect is
#   decode  - a valid image every decent decoder reads; sluice must transform it correctly
#   reject  - broken or hostile input; sluice must answer a clear 4xx/5xx (or visibly abort), never panic,
#             never allocate by the header's claims
#   maybe   - valid per spec but commonly unsupported (e.g. arithmetic coding): decode, or reject clearly
# Note: libvips (vipsthumbnail) is lenient and "decodes" the truncated/corrupt/huge-dims rows with gray fill and
# exit code 0, so use it as a PSNR reference only for decode/maybe rows (and never on huge-dims-65500.png: ~30 s).
#
# Needs (Debian): imagemagick (the real /usr/bin/convert), libvips-tools, libjpeg-turbo-progs (cjpeg), python3.
# Installs nothing. Optional: libimage-exiftool-perl, only for the self-check (--check).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
check=0
if [[ ${1:-} == --check ]]; then check=1; shift; fi
out=${1:-$root/tests/data/odd}
src=${SLUICE_ODD_SOURCE:-$root/samples/picos-de-europa.jpg}

# /usr/local/bin/convert may be a stand-in; use ImageMagick's own binary when it is there.
if [[ -x /usr/bin/convert ]]; then IM=/usr/bin/convert; else IM=$(command -v convert); fi
for tool in "$IM" vips cjpeg python3; do
    command -v "$tool" >/dev/null || { echo "make-odd-images: missing $tool (see docs/development.md)" >&2; exit 1; }
done
[[ -f $src ]] || { echo "make-odd-images: source photo $src not found" >&2; exit 1; }

mkdir -p "$out"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
index=$tmp/INDEX.txt
: >"$index"
add() { printf '%s\t%s\t%s\n' "$1" "$2" "$3" >>"$index"; }

# -strip drops metadata; png:exclude-chunks keeps date/time chunks out, so PNGs are byte-reproducible.
im() { "$IM" "$@"; }
PNGDET=(-strip -define "png:exclude-chunks=date,time")

# The upright base picture: 400x300 (landscape, sky on top, so any wrong rotation or flip is visible and
# changes the aspect ratio). 8-bit sRGB PPM as the lossless intermediate.
vips thumbnail "$src" "$tmp/base.ppm" 400 --height 300 --crop centre

# ---- JPEG colour models and chroma subsampling ----
im "$tmp/base.ppm" -strip -quality 90 -sampling-factor 4:2:0 "$out/ycc-420.jpg"
add ycc-420.jpg decode "baseline JPEG, YCbCr 4:2:0 (2x2,1x1,1x1), q90, 400x300"
im "$tmp/base.ppm" -strip -quality 90 -sampling-factor 4:2:2 "$out/ycc-422.jpg"
add ycc-422.jpg decode "baseline JPEG, YCbCr 4:2:2 (2x1,1x1,1x1), q90, 400x300"
im "$tmp/base.ppm" -strip -quality 90 -sampling-factor 4:4:4 "$out/ycc-444.jpg"
add ycc-444.jpg decode "baseline JPEG, YCbCr 4:4:4 (1x1,1x1,1x1), q90, 400x300"
im "$tmp/base.ppm" -strip -crop 397x299+0+0 +repage -quality 90 -sampling-factor 4:2:0 "$out/ycc-420-odd-size.jpg"
add ycc-420-odd-size.jpg decode "baseline JPEG 4:2:0 at 397x299: dimensions not a multiple of the 16x16 MCU (partial edge blocks)"
cjpeg -quality 90 -sample 1x2,1x1,1x1 "$tmp/base.ppm" >"$out/ycc-440.jpg"
add ycc-440.jpg decode "baseline JPEG, YCbCr 4:4:0 (1x2,1x1,1x1, vertical-only subsampling), q90, 400x300"
im "$tmp/base.ppm" -strip -quality 90 -colorspace Gray "$out/gray.jpg"
add gray.jpg decode "baseline JPEG, one component (grayscale), q90, 400x300"
im "$tmp/base.ppm" -strip -quality 90 -colorspace CMYK "$out/cmyk.jpg"
add cmyk.jpg decode "baseline JPEG, four components: CMYK coded as YCCK (Adobe APP14 transform=2, inverted as Photoshop writes it), q90, 400x300. Naive CMYK->RGB (ImageMagick) gives ~38 dB vs the RGB base; libvips converts through a CMYK ICC profile and differs (~21 dB), so compare to a reference made the same way"
im "$tmp/base.ppm" -strip -quality 90 -interlace JPEG "$out/progressive.jpg"
add progressive.jpg decode "progressive JPEG (SOF2), 4:2:0, q90, 400x300"
cjpeg -quality 90 -restart 1 "$tmp/base.ppm" >"$out/restart-markers.jpg"
add restart-markers.jpg decode "baseline JPEG with restart markers (DRI, RSTn after every MCU row), 4:2:0, q90, 400x300"
cjpeg -quality 90 -progressive -restart 2B "$tmp/base.ppm" >"$out/progressive-restart.jpg"
add progressive-restart.jpg decode "progressive JPEG with restart markers every 2 MCUs, 4:2:0, q90, 400x300"
printf '0;\n1;\n2;\n' >"$tmp/one-component-scans.txt"
cjpeg -quality 90 -scans "$tmp/one-component-scans.txt" "$tmp/base.ppm" >"$out/non-interleaved.jpg"
add non-interleaved.jpg decode "baseline (sequential) JPEG whose three scans carry one component each: like a progressive file, the decoder must hold every coefficient until the last scan, 4:2:0, q90, 400x300"
cjpeg -quality 90 -arithmetic "$tmp/base.ppm" >"$out/arithmetic.jpg"
add arithmetic.jpg decode "JPEG with arithmetic coding (SOF9); valid, but many decoders (zune-jpeg, jpeg-decoder, browsers) do not support it; libjpeg-turbo does"

im "$tmp/base.ppm" -strip -gravity center -crop 1x1+0+0 +repage -quality 90 "$out/tiny-1x1.jpg"
add tiny-1x1.jpg decode "baseline JPEG, 1x1 pixel (centre pixel of the photo)"
im "$tmp/base.ppm" -strip -resize '4000x4!' -quality 90 "$out/thin-4000x4.jpg"
add thin-4000x4.jpg decode "baseline JPEG, 4000x4 (the photo squashed): extreme aspect ratio, resizing to a height must not yield 0 or huge widths"

# ---- EXIF orientation 1..8: the pixels are stored so that applying the tag gives the upright base ----
# stored = inverse(display transform) of the upright picture:
#   1 none | 2 mirror | 3 rot180 | 4 flip | 5 transpose | 6 display rotates 90 CW, so store rotated 90 CCW
#   7 transverse | 8 display rotates 90 CCW, so store rotated 90 CW
ops=("" "" "-flop" "-rotate 180" "-flip" "-transpose" "-rotate 270" "-transverse" "-rotate 90")
names=("" "TopLeft (normal)" "TopRight (mirrored)" "BottomRight (rotated 180)" "BottomLeft (flipped)"
    "LeftTop (transposed)" "RightTop (display rotates 90 CW)" "RightBottom (transversed)" "LeftBottom (display rotates 90 CCW)")
for o in 1 2 3 4 5 6 7 8; do
    # shellcheck disable=SC2086 # ops are deliberately word-split
    im "$tmp/base.ppm" ${ops[$o]} -strip -quality 90 -sampling-factor 4:2:0 "$tmp/orient-$o.jpg"
    add "orient-$o.jpg" decode "EXIF Orientation=$o ${names[$o]}; upright after applying it: 400x300"
done

# ---- byte-level cases (python3, stdlib only) ----
python3 - "$tmp" "$out" <<'PY'
import random, struct, sys, zlib
tmp, out = sys.argv[1], sys.argv[2]

def exif_app1(orientation):
    # Minimal EXIF: "Exif\0\0" + big-endian TIFF header + IFD0 with one entry, 0x0112 SHORT count 1.
    ifd = struct.pack(">H", 1) + struct.pack(">HHIHH", 0x0112, 3, 1, orientation, 0) + struct.pack(">I", 0)
    tiff = b"MM" + struct.pack(">HI", 42, 8) + ifd
    payload = b"Exif\x00\x00" + tiff
    return b"\xff\xe1" + struct.pack(">H", len(payload) + 2) + payload

for o in range(1, 9):
    data = open(f"{tmp}/orient-{o}.jpg", "rb").read()
    assert data[:2] == b"\xff\xd8"
    # After JFIF APP0 when there is one (the usual JFIF+EXIF layout), else right after SOI.
    at = 2 + 2 + struct.unpack(">H", data[4:6])[0] if data[2:4] == b"\xff\xe0" else 2
    open(f"{out}/orient-{o}.jpg", "wb").write(data[:at] + exif_app1(o) + data[at:])

base = open(f"{out}/ycc-420.jpg", "rb").read()

def sos_end(data):
    """Offset where entropy-coded data starts (just after the first SOS header)."""
    i = 2
    while i < len(data):
        assert data[i] == 0xFF, "lost marker sync"
        marker = data[i + 1]
        length = struct.unpack(">H", data[i + 2:i + 4])[0]
        if marker == 0xDA:
            return i + 2 + length
        i += 2 + length
    raise ValueError("no SOS")

# Truncated: first half of the file (headers intact, scan cut, no EOI).
open(f"{out}/truncated-half.jpg", "wb").write(base[: len(base) // 2])
# Headers only: everything up to the start of the scan data.
open(f"{out}/truncated-headers-only.jpg", "wb").write(base[: sos_end(base)])

# Corrupt: 512 seeded random bytes overwrite the middle of the scan data (length unchanged).
rng = random.Random(20261126)
mid = (sos_end(base) + len(base)) // 2
junk = bytes(rng.randrange(256) for _ in range(512))
open(f"{out}/corrupt-middle.jpg", "wb").write(base[:mid] + junk + base[mid + 512:])

# Not an image at all / empty.
open(f"{out}/empty.jpg", "wb").write(b"")
open(f"{out}/not-an-image.jpg", "wb").write(b"<html><body>404 Not Found</body></html>\n")

# JPEG bytes under a .png name: content sniffing must win over the extension.
open(f"{out}/jpeg-named.png", "wb").write(base)

# Decompression bomb, JPEG: real small JPEG whose SOF0 claims 65500x65500 (4.29 gigapixels).
def patch_sof(data, w, h):
    i = 2
    while True:
        marker = data[i + 1]
        length = struct.unpack(">H", data[i + 2:i + 4])[0]
        if marker in (0xC0, 0xC1, 0xC2):
            b = bytearray(data)
            b[i + 5:i + 9] = struct.pack(">HH", h, w)
            return bytes(b)
        i += 2 + length
open(f"{out}/huge-dims-65500.jpg", "wb").write(patch_sof(base, 65500, 65500))
# SOF0 height 0 (legal only with a DNL marker, which this file lacks).
open(f"{out}/zero-height.jpg", "wb").write(patch_sof(base, 400, 0))

# 16 APP15 segments of 65533 payload bytes (~1 MiB) between SOI and the real headers: valid JPEG whose
# headers end far past the first 64 KiB chunk; a header sniffer must keep reading (bounded), not give up.
pad = b"".join(b"\xff\xef" + struct.pack(">H", 65535) + bytes([k]) * 65533 for k in range(16))
open(f"{out}/app-segments-1mib.jpg", "wb").write(base[:2] + pad + base[2:])

# Decompression bomb, PNG: IHDR claims 65500x65500 RGB with a valid CRC, then one tiny IDAT and IEND.
def chunk(kind, body):
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)
ihdr = struct.pack(">IIBBBBB", 65500, 65500, 8, 2, 0, 0, 0)
png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 4096)) + chunk(b"IEND", b"")
open(f"{out}/huge-dims-65500.png", "wb").write(png)
PY
add truncated-half.jpg reject "ycc-420.jpg cut at half its length: scan data ends early, no EOI"
add truncated-headers-only.jpg reject "ycc-420.jpg cut right after the SOS header: no scan data at all"
add corrupt-middle.jpg reject "ycc-420.jpg with 512 random bytes (seeded) overwriting the middle of the scan data; length unchanged. libjpeg decodes it with warnings and garbage blocks; a strict decoder errors"
add empty.jpg reject "zero-byte file"
add not-an-image.jpg reject "an HTML error page served under a .jpg name"
add jpeg-named.png decode "ycc-420.jpg bytes under a .png name: format must come from the bytes, not the name"
add huge-dims-65500.jpg reject "ycc-420.jpg with SOF0 patched to claim 65500x65500 (4.3 Gpx, ~12.9 GB RGB): must be refused from the header, before allocating"
add zero-height.jpg reject "ycc-420.jpg with SOF0 height patched to 0 (needs a DNL marker, which is absent)"
add app-segments-1mib.jpg decode "ycc-420.jpg with 16 APP15 segments of 64 KiB (~1 MiB) before the real headers: SOF starts after byte 1048576"
add huge-dims-65500.png reject "PNG whose IHDR (valid CRC) claims 65500x65500 RGB, with one tiny IDAT: must be refused from the header"

# ---- PNG variants ----
im "$tmp/base.ppm" "${PNGDET[@]}" -define png:color-type=2 -depth 8 "$out/png-rgb.png"
add png-rgb.png decode "PNG truecolour RGB, 8-bit, 400x300"
im "$tmp/base.ppm" "${PNGDET[@]}" \( -size 300x400 'gradient:white-gray(25%)' -rotate 90 \) -alpha off -compose CopyOpacity -composite \
    -define png:color-type=6 -depth 8 "$out/png-rgba.png"
add png-rgba.png decode "PNG RGBA, 8-bit, alpha ramps 25%->100% left to right, 400x300"
im "$tmp/base.ppm" "${PNGDET[@]}" -depth 16 -define png:color-type=2 -define png:bit-depth=16 "$out/png-rgb16.png"
add png-rgb16.png decode "PNG truecolour RGB, 16 bits per sample, 400x300"
im "$tmp/base.ppm" "${PNGDET[@]}" -colors 256 -define png:color-type=3 "$out/png-palette.png"
add png-palette.png decode "PNG indexed colour (PLTE, 256 entries), 400x300"
im "$tmp/base.ppm" "${PNGDET[@]}" -colorspace Gray -define png:color-type=0 -depth 8 "$out/png-gray.png"
add png-gray.png decode "PNG grayscale, 8-bit, 400x300"
im "$tmp/base.ppm" "${PNGDET[@]}" -interlace PNG -define png:color-type=2 -depth 8 "$out/png-interlaced.png"
add png-interlaced.png decode "PNG RGB 8-bit, Adam7 interlaced, 400x300"

im "$tmp/base.ppm" "${PNGDET[@]}" \( -size 300x400 'gradient:white-gray(25%)' -rotate 90 \) -alpha off -compose CopyOpacity -composite \
    -colorspace Gray -define png:color-type=4 -depth 8 "$out/png-gray-alpha.png"
add png-gray-alpha.png decode "PNG grayscale + alpha (colour type 4), 8-bit, alpha ramps 25%->100% left to right, 400x300"
im "$tmp/base.ppm" "${PNGDET[@]}" -colorspace Gray -depth 16 -define png:color-type=0 -define png:bit-depth=16 "$out/png-gray16.png"
add png-gray16.png decode "PNG grayscale, 16 bits per sample, 400x300"
im "$tmp/base.ppm" "${PNGDET[@]}" -gravity center -crop 1x1+0+0 +repage -define png:color-type=2 -depth 8 "$out/tiny-1x1.png"
add tiny-1x1.png decode "PNG RGB, 1x1 pixel"

# ---- WebP and animated GIF ----
vips copy "$tmp/base.ppm" "$out/photo.webp[Q=80,strip]"
add photo.webp decode "WebP lossy (VP8), q80, 400x300"
vips copy "$out/png-rgba.png" "$out/photo-alpha-lossless.webp[lossless,strip]"
add photo-alpha-lossless.webp decode "WebP lossless (VP8L) with alpha (ramp 25%->100%), 400x300"
im "$tmp/base.ppm" -strip -resize 200x150 "$tmp/f0.ppm"
im "$tmp/f0.ppm" -flop "$tmp/f1.ppm"
im "$tmp/f0.ppm" -negate "$tmp/f2.ppm"
im -delay 50 "$tmp/f0.ppm" "$tmp/f1.ppm" "$tmp/f2.ppm" -loop 0 -strip "$out/animated.gif"
add animated.gif decode "animated GIF, 3 frames 200x150 (photo, mirrored, negated), 0.5 s each, loops; a still output uses frame 1"

mv "$index" "$out/INDEX.txt"
sort -o "$out/INDEX.txt" "$out/INDEX.txt"
echo "make-odd-images: wrote $(wc -l <"$out/INDEX.txt") files to $out (see INDEX.txt)"

# ---- optional self-check: formats and orientation are what INDEX.txt says ----
if ((check)); then
    fail=0
    for o in 1 2 3 4 5 6 7 8; do
        tag=$(python3 -c 'import sys;d=open(sys.argv[1],"rb").read();i=d.find(b"\x01\x12\x00\x03");print(int.from_bytes(d[i+8:i+10],"big"))' "$out/orient-$o.jpg")
        im "$out/orient-$o.jpg" -auto-orient "$tmp/up.ppm"
        psnr=$(compare -metric PSNR "$tmp/up.ppm" "$tmp/base.ppm" null: 2>&1 || true)
        dims=$(identify -format '%wx%h' "$tmp/up.ppm")
        echo "orient-$o.jpg: tag=$tag upright=$dims psnr-vs-base=$psnr dB"
        # A wrong transform of this photo scores ~10-15 dB; q90 re-encoding alone stays above 30.
        [[ $tag == "$o" && $dims == 400x300 ]] && python3 -c 'import sys; sys.exit(float(sys.argv[1]) < 30)' "$psnr" || fail=1
        if command -v exiftool >/dev/null; then exiftool -s -s -s -n -Orientation "$out/orient-$o.jpg" | grep -qx "$o" || fail=1; fi
    done
    while IFS=$'\t' read -r name expect _; do
        if [[ $expect == decode ]]; then
            identify "$out/$name" >/dev/null 2>&1 || { echo "check: $name does not decode"; fail=1; }
        fi
    done <"$out/INDEX.txt"
    if ((fail)); then echo "make-odd-images: check FAILED" >&2; exit 1; fi
    echo "make-odd-images: check passed"
fi
