#!/bin/sh
# Cross-build for aarch64 with Debian's gcc-aarch64-linux-gnu and run under
# qemu-user-static:
#  1. the kernels (nn/kernels/standalone) and their tests: NEON kernels
#     against the portable references, bit-exact for integers;
#  2. libkestrel-nn and the `kestrel` CLI (-Donnx=disabled -Dimages=disabled:
#     no arm64 protobuf-c/libjpeg/libpng needed) running one real model,
#     BlazeFace short range, on a fixed .npy input: FP32 with KESTREL_ISA=neon
#     and =ref against the x86 build's outputs (max abs diff <= 1e-4), and an
#     INT8 .kestrel quantized on x86 (the file is portable) whose outputs must
#     be byte-identical between NEON, ref and x86.
# Needs: apt-get install gcc-aarch64-linux-gnu libc6-dev-arm64-cross
#        qemu-user-static meson ninja-build python3-numpy, an x86 build
#        (default $src/build, or $KESTREL_X86_BUILD) and the model cache
#        ($KESTREL_CACHE, default ~/.cache/kestrel; scripts/setup.sh).
# Usage: scripts/cross-aarch64.sh [build-dir]   (default build-aarch64; the
#        engine is built in build-dir-engine)
set -eu
src=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-"$src/build-aarch64"}
for tool in aarch64-linux-gnu-gcc qemu-aarch64-static meson ninja; do
  command -v "$tool" >/dev/null 2>&1 || {
    echo "cross-aarch64: $tool not found (see the header of $0)" >&2
    exit 1
  }
done
start=$(date +%s)
if [ -d "$build" ]; then
  meson setup --reconfigure "$build" "$src/nn/kernels/standalone" \
    --cross-file "$src/scripts/cross/aarch64-linux-gnu.ini" -Dquick_tests=false
else
  meson setup "$build" "$src/nn/kernels/standalone" \
    --cross-file "$src/scripts/cross/aarch64-linux-gnu.ini" -Dquick_tests=false
fi
ninja -C "$build"
meson test -C "$build" --print-errorlogs
# The test binary reports which ISA it ran: make sure NEON was exercised.
grep -q "neon: all kernels match the reference" "$build/meson-logs/testlog.txt" || {
  echo "cross-aarch64: the NEON kernels were not tested" >&2
  exit 1
}
echo "cross-aarch64: kernel tests OK in $(( $(date +%s) - start )) s"

# --- 2. the engine and one real model ------------------------------------
t2=$(date +%s)
engine="$build-engine"
x86=${KESTREL_X86_BUILD:-"$src/build"}
cache=${KESTREL_CACHE:-"$HOME/.cache/kestrel"}
model="$cache/models/face_detection_short_range.tflite"
# Debian's python3 has numpy; one earlier on PATH (pyenv, venv) may not.
python=python3
[ -x /usr/bin/python3 ] && python=/usr/bin/python3
[ -f "$model" ] || { echo "cross-aarch64: $model missing (run scripts/setup.sh)" >&2; exit 1; }
[ -f "$x86/build.ninja" ] || { echo "cross-aarch64: no x86 build in $x86 (meson setup build)" >&2; exit 1; }
ninja -C "$x86" nn/kestrel
# -O2: Debian's aarch64 gcc 12 hits an internal compiler error in the -O3
# loop vectorizer on nn/src/decode/dbnet.c (the kernels build at -O2 anyway).
opts="-Donnx=disabled -Dimages=disabled -Dtests=false -Dplugins=false -Dapp=false
      -Doptimization=2 -Dwerror=true"
reconf=
[ -d "$engine" ] && reconf=--reconfigure
# shellcheck disable=SC2086
meson setup $reconf "$engine" "$src" --cross-file "$src/scripts/cross/aarch64-linux-gnu.ini" $opts
ninja -C "$engine" nn/kestrel
qemu() { qemu-aarch64-static -L /usr/aarch64-linux-gnu "$engine/nn/kestrel" "$@"; }
work="$engine/model-check"
rm -rf "$work" && mkdir -p "$work"
# A fixed, smooth input in BlazeFace's [-1, 1] range (no image decoder on
# the aarch64 side): the same bytes for every run.
"$python" -c '
import sys
import numpy as np
y, x, c = np.meshgrid(np.arange(128), np.arange(128), np.arange(3), indexing="ij")
a = (np.sin(x * 0.11 + c) * np.cos(y * 0.07 - c * 0.5)).astype(np.float32)[None]
np.save(sys.argv[1], a)
' "$work/input.npy"
# ONNX is compiled out: it must say so, not crash or call the file corrupt.
printf '\010\007' > "$work/tiny.onnx"
if qemu info "$work/tiny.onnx" > "$work/onnx.txt" 2>&1 ||
   ! grep -q "built without ONNX support" "$work/onnx.txt"; then
  echo "cross-aarch64: an ONNX model did not give 'built without ONNX support':" >&2
  cat "$work/onnx.txt" >&2
  exit 1
fi
# FP32: the x86 build's outputs are the reference.
"$x86/nn/kestrel" run "$model" --input "$work/input.npy" --output-dir "$work/x86-f32" > /dev/null
for isa in neon ref; do
  KESTREL_ISA=$isa qemu run "$model" --input "$work/input.npy" --output-dir "$work/$isa-f32" > /dev/null
  for i in 0 1; do
    echo "cross-aarch64: FP32 KESTREL_ISA=$isa output $i vs x86:"
    "$python" "$src/tests/tools/npy_compare.py" "$work/$isa-f32/output_$i.npy" \
      "$work/x86-f32/output_$i.npy" 1e-4 1
  done
done
# INT8: quantized on x86 (calibrated on three real photos); the .kestrel
# file is portable, and integer results must not depend on the ISA.
"$x86/nn/kestrel" quantize "$model" --calib "$cache/photos" --max-images 3 \
  -o "$work/blazeface-short.int8.kestrel" > /dev/null
"$x86/nn/kestrel" run "$work/blazeface-short.int8.kestrel" --input "$work/input.npy" \
  --output-dir "$work/x86-int8" > /dev/null
for isa in neon ref; do
  KESTREL_ISA=$isa qemu run "$work/blazeface-short.int8.kestrel" --input "$work/input.npy" \
    --output-dir "$work/$isa-int8" > /dev/null
done
for i in 0 1; do
  for other in ref x86; do
    cmp "$work/neon-int8/output_$i.npy" "$work/$other-int8/output_$i.npy" || {
      echo "cross-aarch64: INT8 output $i differs between NEON and $other" >&2
      exit 1
    }
  done
done
echo "cross-aarch64: INT8 outputs byte-identical (NEON, ref, x86)"
echo "cross-aarch64: real model OK in $(( $(date +%s) - t2 )) s; all OK in $(( $(date +%s) - start )) s"
