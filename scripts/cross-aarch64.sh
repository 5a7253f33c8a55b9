#!/bin/sh
# Cross-build the kernels (nn/kernels/standalone) for aarch64 with Debian's
# gcc-aarch64-linux-gnu and run the kernel tests under qemu-user-static:
# NEON kernels against the portable references, bit-exact for integers.
# Needs: apt-get install gcc-aarch64-linux-gnu libc6-dev-arm64-cross
#        qemu-user-static meson ninja-build
# Usage: scripts/cross-aarch64.sh [build-dir]   (default build-aarch64)
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
echo "cross-aarch64: OK in $(( $(date +%s) - start )) s"
