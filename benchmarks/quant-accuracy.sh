#!/bin/sh
# INT8 vs FP32 accuracy of Kestrel's post-training quantization, per
# calibration method, on held-out real photos and video frames (never used
# for calibration). Prints one JSON line per (model, method); the numbers in
# docs/BENCHMARKS.md ("Quantization") come from this script.
#
#   benchmarks/quant-accuracy.sh [BUILD_DIR]      (KESTREL_CACHE as usual)
#   METHODS="percentile mse" DET_SHAPE=1,3,640,640 benchmarks/quant-accuracy.sh
#
# Calibration: face-api demo photos 1-4 and opencv-doc photos (faces);
# opencv-doc text images and scenes (PP-OCR). Evaluation: face-api photos
# 5-6, other opencv-doc photos, and frames sampled from Megamind.avi and
# vtest.avi (2 per second, decoded with gst-launch-1.0).
set -eu
SOURCE_DIR=$(cd "$(dirname "$0")/.." && pwd)
BUILD_DIR="${1:-$SOURCE_DIR/build}"
CACHE="${KESTREL_CACHE:-${HOME:-/root}/.cache/kestrel}"
EVAL="$BUILD_DIR/tests/quantize/quant_eval"
METHODS="${METHODS:-minmax percentile entropy mse}"
DET_SHAPE="${DET_SHAPE:-1,3,640,640}"
M="$CACHE/models"
P="$CACHE/photos"
D="$CACHE/opencv/usr/share/doc/opencv-doc/examples/data"
A="$SOURCE_DIR/assets/models"
[ -x "$EVAL" ] || { echo "build first: $EVAL missing" >&2; exit 1; }
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT

frames() { # VIDEO OUTDIR
  mkdir -p "$2"
  gst-launch-1.0 -q filesrc location="$1" ! decodebin ! videoconvert ! \
    videorate ! video/x-raw,framerate=2/1 ! jpegenc ! \
    multifilesink location="$2/f%04d.jpg" >/dev/null
}
frames "$D/Megamind.avi" "$T/megamind"
frames "$D/vtest.avi" "$T/vtest"
# Every 4th vtest frame keeps the run short (the scene changes slowly).
VT=$(ls "$T"/vtest/*.jpg | awk 'NR % 4 == 1')
MM=$(ls "$T"/megamind/*.jpg)

FACE_CAL="$P/sample1.jpg $P/sample2.jpg $P/sample3.jpg $P/sample4.jpg \
  $D/baboon.jpg $D/home.jpg $D/fruits.jpg"
FACE_EVAL="$P/sample5.jpg $P/sample6.jpg $D/messi5.jpg $D/basketball1.png \
  $D/basketball2.png $D/starry_night.jpg $MM"
TEXT_CAL="$D/text_defocus.jpg $D/imageTextN.png $D/notes.png $D/sudoku.png \
  $D/board.jpg $P/sample1.jpg $D/building.jpg"
TEXT_EVAL="$D/text_motion.jpg $D/imageTextR.png $D/licenseplate_motion.jpg \
  $D/cards.png $D/pic1.png $P/sample6.jpg $VT"

for method in $METHODS dynamic; do
  if [ "$method" = dynamic ]; then how="--dynamic"; else how="--method $method"; fi
  # shellcheck disable=SC2086
  "$EVAL" face "$M/face_detection_full_range.tflite" \
    "$A/face_detection_full_range.sidecar" $how \
    --calib $FACE_CAL --eval $FACE_EVAL || true
  # shellcheck disable=SC2086
  "$EVAL" face "$M/face_detection_short_range.tflite" \
    "$A/face_detection_short_range.sidecar" $how \
    --calib $FACE_CAL --eval $FACE_EVAL || true
  # shellcheck disable=SC2086
  "$EVAL" cls "$M/ch_ppocr_mobile_v2.0_cls_infer.onnx" \
    "$A/ch_ppocr_mobile_v2.0_cls_infer.sidecar" --shape 1,3,48,192 $how \
    --calib $TEXT_CAL --eval $TEXT_EVAL || true
  # shellcheck disable=SC2086
  "$EVAL" det "$M/ch_PP-OCRv4_det_infer.onnx" \
    "$A/ch_PP-OCRv4_det_infer.sidecar" --shape "$DET_SHAPE" $how \
    --calib $TEXT_CAL --eval $TEXT_EVAL || true
done
# Mixed precision for det: the fewest FP32 layers for 25 dB on calibration.
# shellcheck disable=SC2086
"$EVAL" det "$M/ch_PP-OCRv4_det_infer.onnx" "$A/ch_PP-OCRv4_det_infer.sidecar" \
  --shape "$DET_SHAPE" --target-snr 25 --calib $TEXT_CAL --eval $TEXT_EVAL || true
# The FP32 model's own noise floor: FP32 on the evaluation images against
# FP32 on the same images with +-K grey levels of uniform noise.
for k in 1 2 4; do
  # shellcheck disable=SC2086
  "$EVAL" det "$M/ch_PP-OCRv4_det_infer.onnx" "$A/ch_PP-OCRv4_det_infer.sidecar" \
    --shape "$DET_SHAPE" --input-noise "$k" --eval $TEXT_EVAL || true
done
