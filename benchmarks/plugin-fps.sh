#!/bin/sh
# Frames per second and CPU milliseconds per frame of the GStreamer plugin on the face test clip:
#
#   filesrc ! decodebin ! kestreldetect ! kestreloverlay ! fakesink                      (element
#       converts, scales and normalizes by itself)
#   filesrc ! decodebin ! videoconvert ! videoscale ! RGB at the model's size ! kestreldetect
#       ! kestreloverlay ! fakesink                                                          (GStreamer
#       does the conversion)
#
# at 640x480 and 1280x720, plus decoding alone as the floor and detection without the overlay. Not a test: machines are shared and
# noisy, so each pipeline runs ROUNDS times (alternating) and the medians are reported.
#
#   benchmarks/plugin-fps.sh [ROUNDS]        (default 3)
#
# The model is the INT8 BlazeFace full range: $KESTREL_INT8_FACE_MODEL, else set-up's
# $KESTREL_CACHE/compiled/, else quantized here with `kestrel quantize` (calibrated on the face
# photos). Prints a Markdown table for docs/BENCHMARKS.md.
set -eu

SOURCE_DIR=$(cd "$(dirname "$0")/.." && pwd)
BUILD_DIR=${KESTREL_BUILD_DIR:-$SOURCE_DIR/build}
CACHE=${KESTREL_CACHE:-${HOME:-/root}/.cache/kestrel}
rounds=${1:-3}

export GST_PLUGIN_PATH="$BUILD_DIR/plugins"
export GST_REGISTRY="$BUILD_DIR/plugins/bench-registry.bin"
clip=$CACHE/clips/faces-720p.avi
fp32=$CACHE/models/face_detection_full_range.tflite
sidecar=$SOURCE_DIR/assets/models/face_detection_full_range.sidecar
# BlazeFace full range takes 192x192 RGB.
model_size=192
for f in "$clip" "$fp32" "$sidecar" "$BUILD_DIR/plugins/libgstkestrel.so"; do
    [ -e "$f" ] || { echo "missing $f: run scripts/setup.sh first" >&2; exit 1; }
done
command -v /usr/bin/time >/dev/null 2>&1 || { echo "needs /usr/bin/time (Debian: time)" >&2; exit 1; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

model=${KESTREL_INT8_FACE_MODEL:-}
for pattern in '*full_range*int8*.kestrel' '*full_range*.kestrel'; do
    [ -z "$model" ] || break
    # shellcheck disable=SC2086
    model=$(ls "$CACHE"/compiled/$pattern 2>/dev/null | grep -v sparse | head -n 1 || true)
done
if [ -z "$model" ]; then
    model=$work/face_detection_full_range.int8.kestrel
    echo "note: no INT8 model in $CACHE/compiled; quantizing one with kestrel quantize" >&2
    "$BUILD_DIR/nn/kestrel" quantize "$fp32" --calib "$CACHE/photos" --config "$sidecar" \
        -o "$model" >&2
fi

# The 640x480 clip: the middle 4:3 of each frame, scaled, re-encoded once (so that both sizes
# run the very same pipeline from a file).
gst-launch-1.0 -q filesrc location="$clip" ! avidemux ! jpegdec ! videocrop left=160 right=160 \
    ! videoscale ! video/x-raw,width=640,height=480 ! jpegenc quality=90 ! avimux \
    ! filesink location="$work/faces-480p.avi"
frames=$(gst-launch-1.0 -q filesrc location="$clip" ! decodebin ! kestrelmetapublish \
    location="$work/count.jsonl" ! fakesink && wc -l < "$work/count.jsonl")

detect="kestreldetect model=$model config=$sidecar mode=sync"

# run NAME FILE PIPELINE-TAIL: appends "NAME wall_s cpu_s" to $work/times
run() {
    /usr/bin/time -f "%e %U %S" -o "$work/t" gst-launch-1.0 -q filesrc location="$2" ! decodebin \
        ! $3 ! fakesink sync=false >/dev/null
    awk -v n="$1" '{ print n, $1, $2 + $3 }' "$work/t" >> "$work/times"
}

median() {
    sort -g | awk '{ v[NR] = $1 } END {
        if (NR == 0) exit 1
        if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

: > "$work/times"
r=0
while [ "$r" -lt "$rounds" ]; do
    for size in 480 720; do
        if [ "$size" = 480 ]; then file=$work/faces-480p.avi; else file=$clip; fi
        run "decode-$size" "$file" "identity"
        run "detect-$size" "$file" "$detect"
        run "plugin-$size" "$file" "$detect ! kestreloverlay"
        run "convert-$size" "$file" "videoconvert ! videoscale ! video/x-raw,format=RGB,width=$model_size,height=$model_size ! $detect ! kestreloverlay"
    done
    r=$((r + 1))
done

echo "Model: $(basename "$model"); clip: $frames frames; $rounds rounds; medians."
echo "Machine: $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg)."
echo
echo "| pipeline | size | fps | CPU ms/frame | CPU ms/frame above decoding |"
echo "|---|---|---|---|---|"
for size in 480 720; do
    if [ "$size" = 480 ]; then dims=640x480; else dims=1280x720; fi
    dec_cpu=$(awk -v n="decode-$size" '$1 == n { print $3 }' "$work/times" | median)
    for kind in decode detect plugin convert; do
        wall=$(awk -v n="$kind-$size" '$1 == n { print $2 }' "$work/times" | median)
        cpu=$(awk -v n="$kind-$size" '$1 == n { print $3 }' "$work/times" | median)
        case $kind in
            decode) label="filesrc ! decodebin ! fakesink (floor)" ;;
            detect) label="decodebin ! kestreldetect (no overlay)" ;;
            plugin) label="decodebin ! kestreldetect ! kestreloverlay" ;;
            convert) label="decodebin ! videoconvert ! videoscale ! RGB ${model_size}x${model_size} ! kestreldetect ! kestreloverlay" ;;
        esac
        awk -v l="$label" -v d="$dims" -v f="$frames" -v w="$wall" -v c="$cpu" -v dc="$dec_cpu" \
            -v k="$kind" 'BEGIN {
                extra = (k == "decode") ? "—" : sprintf("%.2f", (c - dc) * 1000 / f)
                printf "| `%s` | %s | %.1f | %.2f | %s |\n", l, d, f / w, c * 1000 / f, extra }'
    done
done
