#!/bin/sh
# The INT8 engine against ONNX Runtime 1.30 on the same machine, in the same run (not a test):
#   - Kestrel INT8 vs ORT FP32 (PP-OCR det 640x640, PP-OCR cls 48x192), one thread
#   - Kestrel FP32 (compiled: fused, NHWC, packed) vs ORT FP32, one thread
#   - Kestrel INT8 vs ORT running Kestrel's own INT8 model exported as ONNX QDQ, one thread
#   - PP-OCR det INT8, 2 threads vs 1
#   - load time, file size, peak RSS against weights + arena + 10 MB
#
#   benchmarks/int8-vs-ort.sh [RUNS_PER_ROUND [ROUNDS]]     (defaults: 20 runs, 3 rounds)
#
# Machines are shared and noisy: every engine/configuration is timed once per round, the rounds
# alternate, each figure is the median over rounds of that round's median of RUNS runs.
# Models are made with the real CLI: `kestrel compile` (FP32) and `kestrel quantize` (INT8,
# calibrated on face-api and opencv-doc photos; the timed input photos are not among them).
# Kestrel's `bench` feeds fixed pseudo-random values; ONNX Runtime gets a preprocessed real photo.
# Neither engine has data-dependent paths, so only the shape matters for time.
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
models=$CACHE/models
for f in "$kestrel" "$img2npy"; do
    [ -x "$f" ] || { echo "missing $f: run scripts/setup.sh first" >&2; exit 1; }
done

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

median() {
    sort -g | awk '{ v[NR] = $1 } END {
        if (NR == 0) exit 1
        if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
# The value of "KEY": in kestrel bench --json output, or KEY= in ort_run.js output.
field() {
    sed -n "s/.*\"\{0,1\}$1\"\{0,1\}[:=]\([0-9][0-9.]*\).*/\1/p" | head -n 1
}

# --- models --------------------------------------------------------------------------------------
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
# Kestrel's INT8 model as ONNX QDQ for ONNX Runtime: export-onnx takes the quantized graph before
# fusion/NHWC/packing, so the same quantization (same calibration, same ranges) is made again with
# --no-optimize and exported; ORT then applies its own QDQ fusions to it.
"$kestrel" quantize "$det_onnx" --input-shape 1,3,640,640 --calib "$work/calib_det" --no-optimize \
    -o "$work/det_int8_noopt.kestrel" >&2
"$kestrel" quantize "$cls_onnx" --input-shape 1,3,48,192 --calib "$work/calib_cls" --no-optimize \
    -o "$work/cls_int8_noopt.kestrel" >&2
qdq=1
for m in det cls; do
    if ! "$kestrel" export-onnx "$work/${m}_int8_noopt.kestrel" -o "$work/${m}_qdq.onnx" >&2; then
        echo "export-onnx failed: no INT8-vs-INT8 figures" >&2
        qdq=0
    fi
done

"$img2npy" det "$data/text_motion.jpg" "$work/det.npy" 640x640
"$img2npy" cls "$data/imageTextN.png" "$work/cls.npy" 192x48 6,12,150,24

# --- timing ---------------------------------------------------------------------------------------
# kbench NAME MODEL SHAPE THREADS: appends the round's median to $work/NAME, keeps the last JSON.
kbench() {
    out=$("$kestrel" bench "$2" --input-shape "$3" --threads "$4" --warmup 3 --iters "$runs" \
          --json) || { echo "kestrel bench failed on $2" >&2; exit 1; }
    echo "$out" | field median_ms >> "$work/$1"
    echo "$out" > "$work/$1.json"
}
obench() {  # obench NAME MODEL INPUT
    out=$(node "$ort_run" --bench "$runs" --warmup 3 --threads 1 "$2" "$3") \
        || { echo "ort_run.js failed on $2" >&2; exit 1; }
    echo "$out" | field median_ms >> "$work/$1"
}

round=1
while [ "$round" -le "$rounds" ]; do
    for m in det cls; do
        shape=1,3,640,640
        [ "$m" = cls ] && shape=1,3,48,192
        kbench "${m}_int8" "$work/${m}_int8.kestrel" "$shape" 1
        kbench "${m}_fp32" "$work/${m}_fp32.kestrel" "$shape" 1
        obench "${m}_ort" "$([ "$m" = det ] && echo "$det_onnx" || echo "$cls_onnx")" "$work/$m.npy"
        [ "$qdq" = 1 ] && obench "${m}_ortq" "$work/${m}_qdq.onnx" "$work/$m.npy"
    done
    kbench det_int8_t2 "$work/det_int8.kestrel" 1,3,640,640 2
    kbench det_int8_t1 "$work/det_int8.kestrel" 1,3,640,640 1
    round=$((round + 1))
done

med() { median < "$work/$1"; }
rounds_of() { tr '\n' ' ' < "$work/$1"; }
for n in det_int8 det_fp32 det_ort cls_int8 cls_fp32 cls_ort det_int8_t1 det_int8_t2; do
    echo "rounds $n: $(rounds_of "$n")" >&2
done
if [ "$qdq" = 1 ]; then
    for n in det_ortq cls_ortq; do echo "rounds $n: $(rounds_of "$n")" >&2; done
fi
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }

echo "Runs: $runs per round x $rounds rounds; $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'); load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo
echo "| model | Kestrel INT8 ms | Kestrel FP32 ms | ORT FP32 ms | ORT on Kestrel's QDQ ms | INT8 / ORT FP32 | FP32 / ORT FP32 | INT8 / ORT QDQ |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|"
for m in det cls; do
    i8=$(med "${m}_int8") f32=$(med "${m}_fp32") ort=$(med "${m}_ort")
    if [ "$qdq" = 1 ]; then ortq=$(med "${m}_ortq"); rq=$(ratio "$i8" "$ortq"); else ortq=n/a; rq=n/a; fi
    label="PP-OCRv4 det 640x640"
    [ "$m" = cls ] && label="PP-OCR cls 48x192"
    echo "| $label | $i8 | $f32 | $ort | $ortq | $(ratio "$i8" "$ort") | $(ratio "$f32" "$ort") | $rq |"
done
t1=$(med det_int8_t1) t2=$(med det_int8_t2)
echo
echo "PP-OCRv4 det INT8: 1 thread $t1 ms, 2 threads $t2 ms, speed-up $(ratio "$t1" "$t2")x"
echo
echo "| model | file bytes | source bytes | file / source | load ms | weights bytes | arena bytes | peak RSS kB | weights + arena + 10 MB, kB |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|"
for m in det_int8 det_fp32 cls_int8 cls_fp32; do
    src=$det_onnx
    case $m in cls*) src=$cls_onnx ;; esac
    fb=$(stat -c %s "$work/$m.kestrel") sb=$(stat -c %s "$src")
    json=$(cat "$work/$m.json")
    load=$(echo "$json" | field load_ms) arena=$(echo "$json" | field arena_bytes)
    rss=$(echo "$json" | field peak_rss_kb)
    wb=$("$kestrel" info "$work/$m.kestrel" --json | field weight_bytes)
    budget=$(awk -v w="$wb" -v a="$arena" 'BEGIN { printf "%d", (w + a) / 1024 + 10240 }')
    echo "| $m | $fb | $sb | $(ratio "$fb" "$sb") | $load | $wb | $arena | $rss | $budget |"
done
