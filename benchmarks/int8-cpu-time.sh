#!/bin/sh
# CPU time per inference (user + system, all threads) of Kestrel INT8/FP32 and ONNX Runtime 1.30
# FP32 on the same models, one thread (not a test). The companion of int8-vs-ort.sh for loaded
# machines: wall-clock latency there includes the time the scheduler gives to other processes,
# CPU time does not. Each figure is (CPU of a run with HI iterations - CPU of a run with LO
# iterations) / (HI - LO), so start-up, model loading and compilation cancel out; the median of
# ROUNDS rounds is reported. It still includes cache and memory-bandwidth contention.
#
#   benchmarks/int8-cpu-time.sh [ROUNDS [LO HI]]          (defaults: 3 rounds, 5 and 45 runs)
#
# PP-OCR cls runs 40x as many iterations as det (it is ~100x faster), so that the difference is
# far above /usr/bin/time's 10 ms resolution. "det INT8 2 threads" is the CPU of both threads:
# close to the 1-thread figure when splitting the work costs little.
set -eu

SOURCE_DIR=$(cd "$(dirname "$0")/.." && pwd)
BUILD_DIR=${KESTREL_BUILD_DIR:-$SOURCE_DIR/build}
CACHE=${KESTREL_CACHE:-${HOME:-/root}/.cache/kestrel}
export KESTREL_CACHE="$CACHE"
rounds=${1:-3}
lo=${2:-5}
hi=${3:-45}

kestrel=$BUILD_DIR/nn/kestrel
img2npy=$BUILD_DIR/tests/models/img2npy
ort_run=$SOURCE_DIR/tests/tools/ort_run.js
data=$CACHE/opencv/usr/share/doc/opencv-doc/examples/data
models=$CACHE/models
for f in "$kestrel" "$img2npy"; do
    [ -x "$f" ] || { echo "missing $f: run scripts/setup.sh first" >&2; exit 1; }
done
[ -x /usr/bin/time ] || { echo "needs /usr/bin/time (Debian package 'time')" >&2; exit 1; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

median() {
    sort -g | awk '{ v[NR] = $1 } END {
        if (NR == 0) exit 1
        if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

# Same models and calibration sets as int8-vs-ort.sh.
mkdir -p "$work/calib_det" "$work/calib_cls"
for i in 1 2 3 4 5 6; do cp "$CACHE/photos/sample$i.jpg" "$work/calib_det/"; done
for f in building.jpg fruits.jpg home.jpg; do cp "$data/$f" "$work/calib_det/"; done
for f in imageTextR.png building.jpg board.jpg box.png butterfly.jpg; do cp "$data/$f" "$work/calib_cls/"; done
det_onnx=$models/ch_PP-OCRv4_det_infer.onnx
cls_onnx=$models/ch_ppocr_mobile_v2.0_cls_infer.onnx
"$kestrel" compile "$det_onnx" --input-shape 1,3,640,640 -o "$work/det_fp32.kestrel" >&2
"$kestrel" compile "$cls_onnx" --input-shape 1,3,48,192 -o "$work/cls_fp32.kestrel" >&2
"$kestrel" quantize "$det_onnx" --input-shape 1,3,640,640 --calib "$work/calib_det" \
    -o "$work/det_int8.kestrel" >&2
"$kestrel" quantize "$cls_onnx" --input-shape 1,3,48,192 --calib "$work/calib_cls" \
    -o "$work/cls_int8.kestrel" >&2
"$img2npy" det "$data/text_motion.jpg" "$work/det.npy" 640x640
"$img2npy" cls "$data/imageTextN.png" "$work/cls.npy" 192x48 6,12,150,24

cpu_ms() { # CPU milliseconds (user + sys) of a command
    /usr/bin/time -f "%U %S" "$@" 2>&1 >/dev/null | tail -n 1 | awk '{ print ($1 + $2) * 1000 }'
}
per_run() { # per_run NAME ITERS_FACTOR kb|ob ARGS... (the command gets the count appended)
    name=$1 f=$2
    shift 2
    cmd=$("$@")
    # Word splitting of the command is intended: no paths with spaces here.
    # shellcheck disable=SC2086
    a=$(cpu_ms $cmd $((lo * f))) b=$(cpu_ms $cmd $((hi * f)))
    awk -v a="$a" -v b="$b" -v n=$(((hi - lo) * f)) 'BEGIN { printf "%.4f\n", (b - a) / n }' \
        >> "$work/$name"
}
# Commands for /usr/bin/time (not shell functions); per_run appends the count.
kb() { printf '%s\n' "$kestrel" bench "$1" --input-shape "$2" --threads "$3" --warmup 0 --iters; }
ob() { printf '%s\n' node "$ort_run" --warmup 0 --threads 1 "$1" "$2" --bench; }

round=1
while [ "$round" -le "$rounds" ]; do
    per_run det_int8 1 kb "$work/det_int8.kestrel" 1,3,640,640 1
    per_run det_fp32 1 kb "$work/det_fp32.kestrel" 1,3,640,640 1
    per_run det_ort 1 ob "$det_onnx" "$work/det.npy"
    per_run det_int8_t2 1 kb "$work/det_int8.kestrel" 1,3,640,640 2
    per_run cls_int8 40 kb "$work/cls_int8.kestrel" 1,3,48,192 1
    per_run cls_fp32 40 kb "$work/cls_fp32.kestrel" 1,3,48,192 1
    per_run cls_ort 40 ob "$cls_onnx" "$work/cls.npy"
    round=$((round + 1))
done

for n in det_int8 det_fp32 det_ort det_int8_t2 cls_int8 cls_fp32 cls_ort; do
    echo "rounds $n: $(tr '\n' ' ' < "$work/$n")" >&2
done
med() { median < "$work/$1"; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
echo "CPU ms per run (user+sys), $rounds rounds, runs $lo vs $hi; $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'); load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo
echo "| model | Kestrel INT8 | Kestrel FP32 | ORT FP32 | INT8 / ORT FP32 | FP32 / ORT FP32 |"
echo "|---|---:|---:|---:|---:|---:|"
for m in det cls; do
    i8=$(med "${m}_int8") f32=$(med "${m}_fp32") ort=$(med "${m}_ort")
    label="PP-OCRv4 det 640x640"
    [ "$m" = cls ] && label="PP-OCR cls 48x192"
    echo "| $label | $i8 | $f32 | $ort | $(ratio "$i8" "$ort") | $(ratio "$f32" "$ort") |"
done
echo
echo "PP-OCRv4 det INT8 CPU per run: 1 thread $(med det_int8) ms, 2 threads $(med det_int8_t2) ms (both threads)"
