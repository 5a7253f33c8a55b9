#!/bin/sh
# FP32 latency, one thread: Kestrel next to ONNX Runtime 1.30 on the same inputs, in the same run.
# Not a test: machines are shared and noisy, so both engines are timed in alternating rounds and
# each number is the median over rounds of a per-round median.
#
#   benchmarks/fp32-vs-ort.sh [RUNS_PER_ROUND [ROUNDS]]     (defaults: 20 runs, 3 rounds)
#
# Needs a build (scripts/setup.sh) and the cache; prints a Markdown table for docs/BENCHMARKS.md.
# ONNX Runtime is fed a real photo; `kestrel bench` fills its input with fixed pseudo-random values.
# FP32 convolution time does not depend on the values (no data-dependent paths), only the shape.
set -eu

SOURCE_DIR=$(cd "$(dirname "$0")/.." && pwd)
BUILD_DIR=${KESTREL_BUILD_DIR:-$SOURCE_DIR/build}
CACHE=${KESTREL_CACHE:-${HOME:-/root}/.cache/kestrel}
export KESTREL_CACHE="$CACHE"
runs=${1:-20}
rounds=${2:-3}

kestrel=$BUILD_DIR/nn/kestrel
img2npy=$BUILD_DIR/tests/models/img2npy
ort_run=$SOURCE_DIR/tests/tools/ort_run.js
data=$CACHE/opencv/usr/share/doc/opencv-doc/examples/data
for f in "$kestrel" "$img2npy"; do
    [ -x "$f" ] || { echo "missing $f: run scripts/setup.sh first" >&2; exit 1; }
done

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# median of the numbers on stdin
median() {
    sort -g | awk '{ v[NR] = $1 } END {
        if (NR == 0) exit 1
        if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

# The number after "median_ms" in a tool's output (kestrel bench --json: "median_ms":4.3,
# ort_run.js --bench: median_ms=4.3), in milliseconds.
median_field() {
    sed -n 's/.*median_ms[^0-9]*\([0-9][0-9.]*\).*/\1/p' | head -n 1
}

bench_one() {  # bench_one LABEL MODEL INPUT.npy N,C,H,W
    label=$1 model=$2 input=$3 shape=$4
    : > "$work/k" && : > "$work/o"
    round=1
    while [ "$round" -le "$rounds" ]; do
        out=$("$kestrel" bench "$model" --input-shape "$shape" --threads 1 --warmup 3 \
              --iters "$runs" --json) || { echo "kestrel bench failed on $label" >&2; exit 1; }
        echo "$out" | median_field >> "$work/k"
        out=$(node "$ort_run" --bench "$runs" --warmup 3 --threads 1 "$model" "$input") \
            || { echo "ort_run.js failed on $label" >&2; exit 1; }
        echo "$out" | median_field >> "$work/o"
        round=$((round + 1))
    done
    if ! k=$(median < "$work/k") || ! o=$(median < "$work/o"); then
        echo "no timings parsed for $label" >&2
        exit 1
    fi
    echo "rounds for $label: kestrel $(tr '\n' ' ' < "$work/k")| ort $(tr '\n' ' ' < "$work/o")" >&2
    awk -v l="$label" -v s="$shape" -v k="$k" -v o="$o" \
        'BEGIN { printf "| %s | %s | %.2f | %.2f | %.2f |\n", l, s, k, o, k / o }'
}

"$img2npy" cls "$data/imageTextN.png" "$work/cls.npy" 192x48 6,12,150,24
"$img2npy" det "$data/text_motion.jpg" "$work/det640.npy" 640x640

cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')
echo "FP32, 1 thread, $runs runs x $rounds rounds; $cpu, $(nproc) cores," \
    "load average $(cut -d' ' -f1-3 /proc/loadavg) at start"
echo
echo "| model | input | Kestrel ms | ONNX Runtime ms | Kestrel / ORT |"
echo "|---|---|---:|---:|---:|"
bench_one "PP-OCR cls (mobile v2.0)" "$CACHE/models/ch_ppocr_mobile_v2.0_cls_infer.onnx" \
    "$work/cls.npy" 1,3,48,192
bench_one "PP-OCRv4 det" "$CACHE/models/ch_PP-OCRv4_det_infer.onnx" "$work/det640.npy" 1,3,640,640
