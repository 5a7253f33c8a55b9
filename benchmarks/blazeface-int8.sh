#!/bin/sh
# BlazeFace (the main workload: MediaPipe face detection, depthwise-separable) INT8 against
# Kestrel's own optimized FP32 path, one thread, same run (not a test). ONNX Runtime does not
# read TFLite, so the peer here is the FP32 model on Kestrel's fast kernels (which matches ORT
# on the PP-OCR models: int8-vs-ort.sh).
#
#   benchmarks/blazeface-int8.sh [ITERS [ROUNDS]]        (defaults: 300 iterations, 5 rounds)
#
# Per round, for short range (128x128) and full range (192x192): `kestrel bench` of the FP32
# .tflite (optimized at load) and of the INT8 .kestrel (`kestrel quantize` on the face
# calibration photos of scripts/quantize-defaults.sh), with the default ISA and with
# KESTREL_ISA=avx2 (no VNNI: what a Zen 3 core has). Each figure is the median over rounds of
# bench's median; the configurations alternate within a round.
set -eu

SOURCE_DIR=$(cd "$(dirname "$0")/.." && pwd)
BUILD_DIR=${KESTREL_BUILD_DIR:-$SOURCE_DIR/build}
CACHE=${KESTREL_CACHE:-${HOME:-/root}/.cache/kestrel}
iters=${1:-300}
rounds=${2:-5}
kestrel=$BUILD_DIR/nn/kestrel
[ -x "$kestrel" ] || { echo "missing $kestrel: run scripts/setup.sh first" >&2; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

P=$CACHE/photos
D=$CACHE/opencv/usr/share/doc/opencv-doc/examples/data
mkdir "$work/calib"
for f in "$P/sample1.jpg" "$P/sample2.jpg" "$P/sample3.jpg" "$P/sample4.jpg" \
         "$D/baboon.jpg" "$D/home.jpg" "$D/fruits.jpg"; do
    [ -f "$f" ] || { echo "missing $f: run scripts/setup.sh first" >&2; exit 1; }
    ln -s "$f" "$work/calib/"
done
for m in short full; do
    src=$CACHE/models/face_detection_${m}_range.tflite
    "$kestrel" quantize "$src" --calib "$work/calib" -o "$work/$m.int8.kestrel" >/dev/null 2>&1 ||
        { echo "kestrel quantize $src failed" >&2; exit 1; }
done

median() { sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
bench() { # ISA|default MODEL -> median ms
    if [ "$1" = default ]; then set -- "" "$2"; fi
    env ${1:+KESTREL_ISA=$1} taskset -c 0 "$kestrel" bench "$2" --iters "$iters" --json |
        sed 's/.*"median_ms":\([0-9.]*\).*/\1/'
}

isas="default avx2"
r=0
while [ "$r" -lt "$rounds" ]; do
    for m in short full; do
        for isa in $isas; do
            bench "$isa" "$CACHE/models/face_detection_${m}_range.tflite" >> "$work/$m-$isa-fp32"
            bench "$isa" "$work/$m.int8.kestrel" >> "$work/$m-$isa-int8"
        done
    done
    r=$((r + 1))
done

echo "BlazeFace, one thread (taskset -c 0), $iters iterations x $rounds rounds, medians (ms)"
printf '%-12s %-8s %9s %9s %10s\n' model isa FP32 INT8 INT8/FP32
for m in short full; do
    for isa in $isas; do
        f=$(median < "$work/$m-$isa-fp32")
        i=$(median < "$work/$m-$isa-int8")
        awk -v m="$m range" -v s="$isa" -v f="$f" -v i="$i" \
            'BEGIN { printf "%-12s %-8s %9.3f %9.3f %10.2f\n", m, s, f, i, i / f }'
    done
done
