#!/bin/sh
# Quantize the default models into $KESTREL_CACHE/compiled/ (once): BlazeFace
# full range for faces and the PP-OCR pair, calibrated on real photos from
# the cache (face-api demo photos and opencv-doc images). Called at the end
# of scripts/setup.sh; `kestrel quantize --help` explains the options.
#
#   KESTREL_CACHE=... scripts/quantize-defaults.sh [BUILD_DIR]
set -eu
CACHE="${KESTREL_CACHE:-${HOME:-/root}/.cache/kestrel}"
SOURCE_DIR=$(cd "$(dirname "$0")/.." && pwd)
BUILD_DIR="${1:-$SOURCE_DIR/build}"
K="$BUILD_DIR/nn/kestrel"
M="$CACHE/models"
P="$CACHE/photos"
D="$CACHE/opencv/usr/share/doc/opencv-doc/examples/data"
OUT="$CACHE/compiled"
[ -x "$K" ] || { echo "quantize-defaults: $K not built" >&2; exit 1; }
mkdir -p "$OUT"
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT

# Calibration sets: faces for BlazeFace, text and scenes for PP-OCR. The
# held-out images of benchmarks/quant-accuracy.sh are not among them.
mkdir "$T/faces" "$T/text"
for f in "$P/sample1.jpg" "$P/sample2.jpg" "$P/sample3.jpg" "$P/sample4.jpg" \
         "$D/baboon.jpg" "$D/home.jpg" "$D/fruits.jpg"; do
  ln -s "$f" "$T/faces/"
done
for f in "$D/text_defocus.jpg" "$D/imageTextN.png" "$D/notes.png" \
         "$D/sudoku.png" "$D/board.jpg" "$P/sample1.jpg" "$D/building.jpg"; do
  ln -s "$f" "$T/text/"
done

# The files are only as good as the quantizer and optimizer that made them:
# a build whose kestrel binary or library differs from the one recorded in the stamp
# (any change to nn/), or that has no stamp, makes them again, so a cached
# file never hides a fix.
stamp="$OUT/.made-by"
# The CLI links libkestrel-nn, where the quantizer and passes live: hash both.
made_by=$(cat "$K" "$BUILD_DIR"/nn/libkestrel-nn.so* 2>/dev/null | sha256sum | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$made_by" ]; then
  echo "quantize-defaults: $K changed since the cached models were made; making them again"
  rm -f "$OUT"/*.kestrel
fi

quantize() { # NAME MODEL CALIB ARGS...
  name=$1 model=$2 calib=$3
  shift 3
  if [ -f "$OUT/$name" ] && "$K" info "$OUT/$name" >/dev/null 2>&1; then
    echo "quantize-defaults: $OUT/$name exists"
    return 0
  fi
  "$K" quantize "$model" --calib "$calib" "$@" -o "$OUT/$name.tmp"
  mv "$OUT/$name.tmp" "$OUT/$name"
}

quantize face_detection_full_range.int8.kestrel \
  "$M/face_detection_full_range.tflite" "$T/faces"
quantize ch_ppocr_mobile_v2.0_cls_infer.int8.kestrel \
  "$M/ch_ppocr_mobile_v2.0_cls_infer.onnx" "$T/text" --input-shape 1,3,48,192
# PP-OCR det loses most of its accuracy in plain int8 on document images
# (docs/BENCHMARKS.md, Quantization): keep in FP32 the layers needed for a
# 25 dB probability map on the calibration set.
quantize ch_PP-OCRv4_det_infer.int8.kestrel \
  "$M/ch_PP-OCRv4_det_infer.onnx" "$T/text" --input-shape 1,3,640,640 \
  --target-snr 25
echo "$made_by" > "$stamp"
