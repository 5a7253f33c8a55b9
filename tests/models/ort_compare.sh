#!/bin/sh
# Reference comparison: run one real photo through a model in Kestrel and in ONNX Runtime, and
# require the outputs to agree within a tolerance.
#
#   ort_compare.sh NAME det|cls MODEL PHOTO WIDTHxHEIGHT TOLERANCE [CROP x,y,w,h]
#
# MODEL is relative to $KESTREL_CACHE/models, PHOTO to $KESTREL_CACHE. Needs KESTREL_BUILD_DIR,
# KESTREL_SOURCE_DIR and KESTREL_CACHE (tests/meson.build sets them), the img2npy helper built
# in $KESTREL_BUILD_DIR/tests/models, node, and python3 with numpy. Missing data is a failure.
set -eu

if [ $# -lt 6 ] || [ $# -gt 7 ]; then
    echo "usage: $0 NAME det|cls MODEL PHOTO WIDTHxHEIGHT TOLERANCE [x,y,w,h]" >&2
    exit 2
fi
name=$1 mode=$2 model=$KESTREL_CACHE/models/$3 photo=$KESTREL_CACHE/$4 size=$5 tol=$6
crop=${7:-}

fail() { echo "FAIL: $*"; exit 1; }

for f in "$model" "$photo"; do
    [ -f "$f" ] || fail "missing $f (run scripts/setup.sh)"
done
kestrel=$KESTREL_BUILD_DIR/nn/kestrel
img2npy=$KESTREL_BUILD_DIR/tests/models/img2npy
tools=$KESTREL_SOURCE_DIR/tests/tools
[ -x "$kestrel" ] || fail "missing $kestrel"
[ -x "$img2npy" ] || fail "missing $img2npy"
command -v node >/dev/null 2>&1 || fail "node is not on PATH"
# Debian's python3 carries numpy; a python3 earlier on PATH (pyenv, venv) may not.
python=python3
[ -x /usr/bin/python3 ] && python=/usr/bin/python3

width=${size%x*} height=${size#*x}
work=$KESTREL_BUILD_DIR/tests/models/ort-compare/$name
rm -rf "$work" && mkdir -p "$work"

echo "== $name: $mode $(basename "$model") on $4 ${crop:+crop $crop }at ${width}x$height"
# shellcheck disable=SC2086
"$img2npy" "$mode" "$photo" "$work/input.npy" "$size" $crop || fail "img2npy"

# Both of Kestrel's FP32 paths: the optimized graph on the fast kernels (what `kestrel run`
# does by default) and the graph as imported on the reference kernels (--no-optimize).
echo "-- kestrel (optimized, fast kernels)"
"$kestrel" run "$model" --input "$work/input.npy" --input-shape "1,3,$height,$width" \
    --output-dir "$work/kestrel" || fail "kestrel run exited with $?"
echo "-- kestrel --no-optimize (reference kernels)"
"$kestrel" run "$model" --no-optimize --input "$work/input.npy" \
    --input-shape "1,3,$height,$width" --output-dir "$work/kestrel-ref" ||
    fail "kestrel run --no-optimize exited with $?"
echo "-- onnx runtime"
node "$tools/ort_run.js" "$model" "$work/input.npy" "$work/ort" || fail "ort_run.js"

# A text map with no text in it would compare equal to nearly anything: demand a real response.
spread=""
[ "$mode" = det ] && spread=0.5
for k in kestrel kestrel-ref; do
    echo "-- compare $k with onnx runtime"
    # shellcheck disable=SC2086
    "$python" "$tools/npy_compare.py" "$work/$k/output_0.npy" "$work/ort/output_0.npy" "$tol" \
        $spread || exit 1
done
