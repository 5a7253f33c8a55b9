#!/bin/sh
# Reference comparison: one real photo through a TFLite model in Kestrel and
# in TensorFlow's own TFLite runtime (tfjs-tflite's wasm build, in headless
# Chromium), requiring every raw output to agree within a tolerance.
#
#   test_tflite_vs_reference.sh NAME MODEL PHOTO SIZE TOLERANCE [REF_MODEL]
#
# TOLERANCE is the largest absolute difference allowed; a comma-separated
# list gives one per output (in Kestrel's output order, the last repeats).
# REF_MODEL, when given, is what TFLite runs instead of MODEL: for a model
# with an op TFLite lacks (MediaPipe's custom transposed conv), an
# equivalent built from builtins with the same weights and output names.
#
# MODEL is relative to $KESTREL_CACHE/models (or an absolute path, for the
# generated INT8 model), PHOTO to $KESTREL_CACHE. Needs
# KESTREL_BUILD_DIR, KESTREL_SOURCE_DIR, KESTREL_CACHE (tests/meson.build
# sets them), node, chromium, python3 with numpy. Missing data is a failure.
set -eu

if [ $# -ne 5 ] && [ $# -ne 6 ]; then
    echo "usage: $0 NAME MODEL PHOTO SIZE TOLERANCE [REF_MODEL]" >&2
    exit 2
fi
name=$1 model=$KESTREL_CACHE/models/$2 photo=$KESTREL_CACHE/$3 size=$4 tol=$5
case $2 in /*) model=$2 ;; esac
ref_model=$model
[ $# -eq 6 ] && ref_model=$6

fail() { echo "FAIL: $*"; exit 1; }

for f in "$model" "$ref_model" "$photo"; do
    [ -f "$f" ] || fail "missing $f (run scripts/setup.sh)"
done
tool=$KESTREL_BUILD_DIR/tests/models/test_tflite_vs_reference
[ -x "$tool" ] || fail "missing $tool"
command -v node >/dev/null 2>&1 || fail "node is not on PATH"
python=python3
[ -x /usr/bin/python3 ] && python=/usr/bin/python3

work=$KESTREL_BUILD_DIR/tests/models/tflite-compare/$name
rm -rf "$work" && mkdir -p "$work/kestrel" "$work/tflite"

echo "== $name: $(basename "$model") on $3 at ${size}x$size"
"$tool" prep "$photo" "$size" "$work/input.npy" || fail "prep"
echo "-- kestrel"
"$tool" run "$model" "$work/input.npy" "$work/kestrel" || fail "kestrel run"
echo "-- tflite (tfjs-tflite wasm in chromium) on $(basename "$ref_model")"
node "$KESTREL_SOURCE_DIR/tests/models/tflite_reference/run_reference.js" \
    "$ref_model" "$work/input.npy" "$work/tflite" || fail "reference run"

echo "-- compare"
# Outputs are matched by tensor name, not position.
status=0 i=0 compared=0
while read -r out; do
    j=$(grep -n -x -F "$out" "$work/tflite/names.txt" | cut -d: -f1)
    [ -n "$j" ] || fail "reference has no output named '$out'"
    j=$((j - 1))
    t=$(echo "$tol" | cut -d, -f$((i + 1)))
    [ -n "$t" ] || t=${tol##*,}
    echo "output '$out':"
    "$python" "$KESTREL_SOURCE_DIR/tests/tools/npy_compare.py" \
        "$work/kestrel/output_$i.npy" "$work/tflite/output_$j.npy" "$t" || status=1
    i=$((i + 1)) compared=$((compared + 1))
done < "$work/kestrel/names.txt"
[ "$compared" -gt 0 ] || fail "no outputs compared"
[ "$compared" -eq "$(wc -l < "$work/tflite/names.txt")" ] || fail "output counts differ"
exit $status
