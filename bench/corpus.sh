#!/usr/bin/env bash
# Builds the benchmark corpus of real-photo JPEGs into bench/out/corpus/ (gitignored).
#
#   bench/corpus.sh            build what is missing (idempotent), then print the table
#   bench/corpus.sh --clean    delete bench/out/corpus first and rebuild
#
# Sources: the photographs in Debian's lomiri-wallpapers-16.04 and lomiri-wallpapers-20.04
# (CC0 / CC BY 4.0 / CC BY-SA; authors and licenses below and in bench/out/corpus/SOURCES.txt),
# fetched with `apt-get download` into bench/out/src/ unless already there.
# Output (~62 MB): a mix of 1 to 20 megapixels, ~80 KB to ~16 MB, baseline and progressive, 4:2:0 and 4:4:4:
#   orig-*   the largest real photos, byte-identical copies of the package files
#   NNmp-*   re-encoded with libvips (downscaled with vips thumbnail, lanczos3)
#   *-upscaled-*  real photos UPSCALED (lanczos3) to ~18 MP: real content, but smoother than a camera's
#
# Needs (Debian): libvips-tools (vips, vipsthumbnail, vipsheader), python3, apt (apt-get download, dpkg-deb;
# the apt lists must be current: `apt-get update`). Installs nothing.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
out=$here/out/corpus
src=$here/out/src
if [[ ${1:-} == --clean ]]; then rm -rf "$out"; fi
mkdir -p "$out" "$src"

for tool in vips vipsthumbnail vipsheader python3 dpkg-deb apt-get; do
    command -v "$tool" >/dev/null || { echo "corpus: missing $tool (see docs/development.md)" >&2; exit 1; }
done

# ---- fetch the source photos from the Debian archive ----
fetch() { # fetch PACKAGE: download and unpack into $src/PACKAGE unless done
    local pkg=$1
    [[ -f $src/$pkg/.unpacked ]] && return
    echo "corpus: fetching $pkg with apt-get download"
    (cd "$src" && rm -f "${pkg}"_*.deb && apt-get download "$pkg" >/dev/null) || {
        echo "corpus: apt-get download $pkg failed (run 'apt-get update' first?)" >&2
        exit 1
    }
    rm -rf "${src:?}/$pkg"
    dpkg-deb -x "$src/${pkg}"_*.deb "$src/$pkg"
    touch "$src/$pkg/.unpacked"
}
fetch lomiri-wallpapers-16.04
fetch lomiri-wallpapers-20.04
B16=$src/lomiri-wallpapers-16.04/usr/share/backgrounds
B20=$src/lomiri-wallpapers-20.04/usr/share/backgrounds

# short name -> file, author, license (from the packages' debian/copyright)
declare -A file author license
add_src() { file[$1]=$2; author[$1]=$3; license[$1]=$4; }
add_src seeding "$B16/seeding_by_Clements_Engelhardt.jpg" "Clemens Engelhardt" "CC0-1.0"
add_src dragonfly "$B16/Dragonfly_by_Bolly.jpg" "Bolly" "CC-BY-SA-4.0"
add_src sunset "$B16/sunset_by_Aitzol_Berasategi.jpg" "Aitzol Berasategi" "CC-BY-4.0"
add_src picos "$B16/picosdeeuropa_by_Aitzol_Berasategi.jpg" "Aitzol Berasategi" "CC-BY-4.0"
add_src life "$B16/life_by_Aitzol_Berasategi.jpg" "Aitzol Berasategi" "CC-BY-4.0"
add_src aitzgorri "$B16/aitzgorri_by_Aitzol_Berasategi.jpg" "Aitzol Berasategi" "CC-BY-4.0"
add_src friends "$B16/friends_by_Aitzol_Berasategi.jpg" "Aitzol Berasategi" "CC-BY-4.0"
add_src wine "$B16/Wine_by_Jakkub_Mede.jpg" "Jakub Mede" "CC-BY-4.0"
add_src free "$B16/free_by_Peter_Nerlich.jpg" "Peter Nerlich" "CC-BY-SA-4.0"
add_src brushes "$B16/Picture_1A_by_freespace.jpg" "Trevor \"Freespace\"" "CC-BY-4.0"
add_src kleiber "$B20/Kleiber_by_Lukas_Baubkus.jpg" "Lukas Baubkus" "CC-BY-SA-3.0"

sources=$out/SOURCES.txt
: >"$sources.new"
note() { printf '%s\t%s\n' "$1" "$2" >>"$sources.new"; }

orig() { # orig NAME SRC: byte-identical copy
    local name=$1 s=$2
    [[ -s $out/$name ]] || cp "${file[$s]}" "$out/$name"
    note "$name" "unchanged copy of $(basename "${file[$s]}") by ${author[$s]} (${license[$s]})"
}

# encode NAME SRC WIDTH Q progressive|baseline 420|444
#   WIDTH below the source width: vips thumbnail (shrink-on-load + lanczos3); above: vips resize lanczos3 (upscale);
#   equal: a plain re-encode. Metadata stripped, Huffman tables optimised.
encode() {
    local name=$1 s=$2 width=$3 q=$4 mode=$5 sub=$6
    local in=${file[$s]} w opts tmp
    w=$(vipsheader -f width "$in")
    opts="Q=$q,strip,optimize_coding"
    [[ $mode == progressive ]] && opts+=",interlace"
    [[ $sub == 444 ]] && opts+=",subsample_mode=off" || opts+=",subsample_mode=on"
    local how
    if ((width < w)); then how="downscaled to ${width}px wide (lanczos3)"
    elif ((width > w)); then how="UPSCALED from ${w}px to ${width}px wide (lanczos3)"
    else how="re-encoded at full size"; fi
    note "$name" "$(basename "$in") by ${author[$s]} (${license[$s]}), $how, $mode, Q$q, $sub"
    [[ -s $out/$name ]] && return
    tmp=$out/.tmp-$name
    if ((width < w)); then
        nice -n 10 vips thumbnail "$in" "${tmp}[$opts]" "$width" --height 100000 --size down
    elif ((width > w)); then
        nice -n 10 vips resize "$in" "${tmp}[$opts]" "$(python3 -c "print($width / $w)")" --kernel lanczos3
    else
        nice -n 10 vips copy "$in" "${tmp}[$opts]"
    fi
    mv "$tmp" "$out/$name"
}

# ---- the corpus ----
#    name                                   source     width  Q    mode        chroma
encode 01mp-baseline-q75-420-dandelions.jpg    seeding    1333   75   baseline    420
encode 01mp-progressive-q85-420-dogs.jpg       friends    820    85   progressive 420
encode 02mp-baseline-q85-420-stream.jpg        life       1920   85   baseline    420
encode 04mp-progressive-q90-420-mountain.jpg   aitzgorri  2560   90   progressive 420
encode 08mp-baseline-q95-444-picos.jpg         picos      3264   95   baseline    444
encode 12mp-progressive-q92-420-sunset.jpg     sunset     4272   92   progressive 420
encode 16mp-baseline-q97-444-dandelions.jpg    seeding    5312   97   baseline    444
encode 16mp-progressive-q95-420-dandelions.jpg seeding    5312   95   progressive 420
encode 18mp-baseline-q100-444-upscaled-dragonfly.jpg dragonfly 4896 100 baseline 444
encode 18mp-baseline-q100-444-upscaled-stream.jpg    life      5196 100 baseline 444
encode 18mp-progressive-q98-444-upscaled-stream.jpg  life      5196 98  progressive 444
encode 18mp-progressive-q95-420-upscaled-sunset.jpg  sunset    5196 95  progressive 420
orig orig-01mp-brushes-1365x1074.jpg      brushes
orig orig-06mp-lights-2880x2160.jpg       free
orig orig-10mp-wine-portrait-2560x3837.jpg wine
orig orig-12mp-sunset-4272x2848.jpg       sunset
orig orig-13mp-dragonfly-4224x3168.jpg    dragonfly
orig orig-16mp-dandelions-5312x2988.jpg   seeding
orig orig-20mp-kleiber-6028x3391.jpg      kleiber

{
    echo "# bench/out/corpus: generated by bench/corpus.sh from Debian packages lomiri-wallpapers-16.04 and"
    echo "# lomiri-wallpapers-20.04 (authors/licenses per file from their debian/copyright). name<TAB>origin"
    sort "$sources.new"
} >"$sources"
rm -f "$sources.new"

# ---- table: name, bytes, WxH, megapixels, progressive?, chroma sampling (parsed from the SOF marker) ----
python3 - "$out" <<'PY'
import os, struct, sys
d = sys.argv[1]
def sof(path):
    with open(path, "rb") as f:
        data = f.read(1 << 20)  # headers are in the first MiB for these files
    i = 2
    while i + 4 <= len(data):
        if data[i] != 0xFF:
            return None
        m = data[i + 1]
        length = struct.unpack(">H", data[i + 2:i + 4])[0]
        if m in (0xC0, 0xC1, 0xC2):
            h, w, n = struct.unpack(">HHB", data[i + 5:i + 10])
            comps = [data[i + 10 + 3 * k + 1] for k in range(n)]
            sampling = ",".join(f"{c >> 4}x{c & 15}" for c in comps)
            return w, h, m == 0xC2, sampling
        i += 2 + length
    return None
rows, total = [], 0
for name in sorted(os.listdir(d)):
    if not name.endswith(".jpg"):
        continue
    p = os.path.join(d, name)
    size = os.path.getsize(p)
    total += size
    w, h, prog, sampling = sof(p)
    rows.append((name, size, f"{w}x{h}", w * h / 1e6, "yes" if prog else "no", sampling))
print(f"{'file':50} {'bytes':>10} {'WxH':>10} {'MP':>5} {'progressive':>11}  sampling")
for r in rows:
    print(f"{r[0]:50} {r[1]:>10} {r[2]:>10} {r[3]:>5.1f} {r[4]:>11}  {r[5]}")
print(f"{len(rows)} files, {total} bytes ({total / 2**20:.1f} MiB) in {d}")
PY
