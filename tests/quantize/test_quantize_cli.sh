#!/bin/sh
# `kestrel quantize` and `kestrel export-onnx` end to end on real data:
#  - a calibration folder holding a non-image (skipped with a note),
#  - --report writes text, JSON and SVG with one row per layer,
#  - --keep-float keeps the named node FP32 (visible in the report),
#  - a video as calibration source (frames decoded by gst-launch-1.0),
#  - --calib none (dynamic) produces a model that runs,
#  - the sidecar travels inside the INT8 file (as `kestrel compile` embeds
#    it): detect needs no sidecar on disk, and --config replaces it,
#  - the INT8 model exported as ONNX QDQ loads in ONNX Runtime and its
#    output matches Kestrel's INT8 output.
set -eu
: "${KESTREL_BUILD_DIR:?}" "${KESTREL_SOURCE_DIR:?}" "${KESTREL_CACHE:?}"
K="$KESTREL_BUILD_DIR/nn/kestrel"
M="$KESTREL_CACHE/models"
D="$KESTREL_CACHE/opencv/usr/share/doc/opencv-doc/examples/data"
P="$KESTREL_CACHE/photos"
for f in "$M/ch_ppocr_mobile_v2.0_cls_infer.onnx" \
         "$M/face_detection_short_range.tflite" "$D/vtest.avi" \
         "$P/sample1.jpg" "$D/imageTextN.png"; do
  [ -f "$f" ] || { echo "FAIL: missing $f (run scripts/setup.sh)"; exit 1; }
done
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
fail() { echo "FAIL: $*"; exit 1; }

mkdir "$T/calib"
cp "$P/sample1.jpg" "$D/text_defocus.jpg" "$D/imageTextN.png" "$D/notes.png" \
   "$T/calib/"
echo "not an image" > "$T/calib/README.txt"

# 1. Static quantization of PP-OCR cls, portable graph, report, keep-float.
"$K" quantize "$M/ch_ppocr_mobile_v2.0_cls_infer.onnx" --calib "$T/calib" \
  --input-shape 1,3,48,192 --no-optimize --report "$T/report" \
  --keep-float p2o.Conv.3 -o "$T/cls.int8.kestrel" 2> "$T/err.txt" ||
  { cat "$T/err.txt"; fail "quantize"; }
grep -q "skipping .*README.txt" "$T/err.txt" || fail "non-image not noted"
for f in report.txt report.json report.svg; do
  [ -s "$T/report/$f" ] || fail "report/$f missing"
done
grep -q '"snr_db"' "$T/report/report.json" || fail "no SNR in report.json"
grep -q '<svg' "$T/report/report.svg" || fail "report.svg is not SVG"
rows=$(grep -c 'Conv ' "$T/report/report.txt")
[ "$rows" -ge 40 ] || fail "report has $rows Conv rows"
grep -E '^[0-9]+ +p2o.Conv.3 .*float' "$T/report/report.txt" >/dev/null ||
  fail "--keep-float p2o.Conv.3 is not float in the report"
grep -E '^[0-9]+ +p2o.Conv.4 .*int8' "$T/report/report.txt" >/dev/null ||
  fail "p2o.Conv.4 should be int8"
"$K" info "$T/cls.int8.kestrel" | grep -q QuantizeLinear ||
  fail "no QuantizeLinear in the int8 model"

# 2. Kestrel INT8 vs ONNX Runtime running the exported QDQ model.
"$K" export-onnx "$T/cls.int8.kestrel" -o "$T/cls.int8.onnx" >/dev/null
"$KESTREL_BUILD_DIR/tests/models/img2npy" cls "$D/imageTextR.png" "$T/in.npy" \
  192x48 >/dev/null
"$K" run "$T/cls.int8.kestrel" --input "$T/in.npy" --output-dir "$T/k" \
  >/dev/null
node "$KESTREL_SOURCE_DIR/tests/tools/ort_run.js" "$T/cls.int8.onnx" \
  "$T/in.npy" "$T/o" >/dev/null
/usr/bin/python3 "$KESTREL_SOURCE_DIR/tests/tools/npy_compare.py" \
  "$T/k/output_0.npy" "$T/o/output_0.npy" 0.02 ||
  fail "ONNX Runtime disagrees with Kestrel on the INT8 model"

# 3. A video as calibration source; the default (optimized) output runs.
"$K" quantize "$M/face_detection_short_range.tflite" --calib "$D/vtest.avi" \
  --max-images 6 -o "$T/face.int8.kestrel" >/dev/null 2>"$T/err.txt" ||
  { cat "$T/err.txt"; fail "quantize from video"; }
"$K" detect "$T/face.int8.kestrel" "$P/sample1.jpg" > "$T/det.txt" ||
  fail "detect with the int8 model"
grep -q "face" "$T/det.txt" || fail "int8 BlazeFace found no face"

# 4. Dynamic quantization.
"$K" quantize "$M/face_detection_short_range.tflite" --calib none \
  -o "$T/face.dyn.kestrel" >/dev/null || fail "quantize --calib none"
"$K" detect "$T/face.dyn.kestrel" "$P/sample1.jpg" | grep -q face ||
  fail "dynamic int8 BlazeFace found no face"

# 4b. The sidecar is embedded verbatim: with no asset folder to look in,
# detect still finds the faces, and a --config sidecar is the one used.
empty="$T/no-assets"
mkdir "$empty"
contains() { # FILE NEEDLE-FILE: NEEDLE's bytes occur in FILE
  /usr/bin/python3 -c 'import sys; a = open(sys.argv[1], "rb").read(); \
b = open(sys.argv[2], "rb").read(); sys.exit(0 if b and b in a else 1)' "$1" "$2"
}
S="$KESTREL_SOURCE_DIR/assets/models/face_detection_short_range.sidecar"
contains "$T/face.int8.kestrel" "$S" || fail "static int8 file lacks the sidecar"
contains "$T/face.dyn.kestrel" "$S" || fail "dynamic int8 file lacks the sidecar"
cp "$T/face.int8.kestrel" "$T/renamed.kestrel"
KESTREL_ASSETS="$empty" "$K" detect "$T/renamed.kestrel" "$P/sample1.jpg" \
  > "$T/det.txt" || fail "detect without a sidecar on disk"
grep -q "face" "$T/det.txt" || fail "embedded sidecar: no face found"
sed 's/^labels = face$/labels = visage/' "$S" > "$T/custom.sidecar"
grep -q "labels = visage" "$T/custom.sidecar" || fail "sidecar edit"
"$K" quantize "$M/face_detection_short_range.tflite" --calib none \
  --config "$T/custom.sidecar" -o "$T/custom.kestrel" >/dev/null ||
  fail "quantize --config"
contains "$T/custom.kestrel" "$T/custom.sidecar" || fail "--config not embedded"
KESTREL_ASSETS="$empty" "$K" detect "$T/custom.kestrel" "$P/sample1.jpg" \
  > "$T/det.txt" || fail "detect with the --config sidecar"
grep -q "visage" "$T/det.txt" || fail "the embedded --config sidecar is not used"

# 5. Errors are clear and exit 1.
if "$K" quantize "$M/face_detection_short_range.tflite" --calib "$T/nowhere" \
     -o "$T/x.kestrel" 2>/dev/null; then fail "missing calib accepted"; fi
if "$K" quantize "$M/ch_ppocr_mobile_v2.0_cls_infer.onnx" --calib "$T/calib" \
     --input-shape 1,3,48,192 --keep-float no.such.node -o "$T/x.kestrel" \
     2>"$T/err.txt"; then fail "unknown --keep-float accepted"; fi
grep -q "no.such.node" "$T/err.txt" || fail "unknown node not named"
echo "PASS"
