#!/bin/sh
# v4l2-ctl (Debian v4l-utils, optional) against the fake camera: listing,
# --all, formats, controls and a 30-frame mmap stream. Skips (77) without it.
# Usage: test_v4l2ctl.sh PATH/TO/libkestrel-fakecam.so
set -u
command -v v4l2-ctl >/dev/null 2>&1 || { echo "v4l2-ctl not installed (v4l-utils): skipped"; exit 77; }
[ -n "${KESTREL_CACHE:-}" ] || KESTREL_CACHE="$HOME/.cache/kestrel"
export LD_PRELOAD="$1" KESTREL_FAKECAM_DEVICES=/dev/video7 KESTREL_FAKECAM_SOURCE="$KESTREL_CACHE/photos"
out=$(mktemp -d) || exit 1
trap 'rm -rf "$out"' EXIT
fail=0
check() { # check NAME FILE PATTERN
    if grep -q -- "$3" "$2"; then echo "ok: $1"; else echo "FAIL: $1: '$3' not in:"; cat "$2"; fail=1; fi
}
timeout 30 v4l2-ctl --list-devices >"$out/list" 2>&1
check list-devices "$out/list" "/dev/video7"
timeout 30 v4l2-ctl -d /dev/video7 --all >"$out/all" 2>&1
check all-driver "$out/all" "Card type *: Kestrel Fake Camera 7"
check all-format "$out/all" "Pixel Format *: 'MJPG'"
timeout 30 v4l2-ctl -d /dev/video7 --list-formats-ext >"$out/fmt" 2>&1
check formats-yuyv "$out/fmt" "'YUYV'"
check formats-720p "$out/fmt" "Discrete 1280x720"
timeout 30 v4l2-ctl -d /dev/video7 --list-ctrls >"$out/ctrls" 2>&1
check ctrl-exposure "$out/ctrls" "exposure_absolute"
timeout 30 v4l2-ctl -d /dev/video7 --set-ctrl=brightness=12 >"$out/set" 2>&1
timeout 30 v4l2-ctl -d /dev/video7 --set-fmt-video=width=1280,height=720,pixelformat=YUYV \
    --stream-mmap --stream-count=30 --stream-to="$out/frames.yuv" >"$out/stream" 2>&1
size=$(wc -c <"$out/frames.yuv" 2>/dev/null || echo 0)
want=$((1280 * 720 * 2 * 30))
if [ "$size" -eq "$want" ]; then echo "ok: stream 30 YUYV frames ($size bytes)"; else
    echo "FAIL: streamed $size bytes, want $want"; cat "$out/stream"; fail=1; fi
[ "$fail" -eq 0 ] && echo "v4l2-ctl checks passed"
exit "$fail"
