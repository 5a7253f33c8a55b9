#!/bin/sh
# Build the face test clip for the plugin's offline tests and benchmark, once:
# slow pans and zooms over each face-api sample photo, 1280x720, 15 fps,
# MJPEG in AVI (jpegenc + avimux, both in Debian's gst-plugins-good).
#
#   scripts/make-test-clip.sh            # writes $KESTREL_CACHE/clips/faces-720p.avi
#   scripts/make-test-clip.sh --force    # rebuild even if present
#
# Beside it, faces-720p.plan.txt says where each frame comes from, one line per frame:
# "FRAME PHOTO LEFT TOP WIDTH HEIGHT" (the crop window in photo pixels, scaled to 1280x720).
# The offline tests map detections back into the photo with it, where faces stand still, to
# know which face is which (ground truth for counting tracker id switches).
#
# Each frame is one crop window of a photo, scaled to 1280x720 and encoded by
# its own gst-launch-1.0; the window moves along a fixed path computed here
# with integer arithmetic, so the clip is the same on every run (given the
# same GStreamer and libjpeg). 6 photos x 60 frames = 360 frames, 24 s.
set -eu

CACHE="${KESTREL_CACHE:-${HOME:-/root}/.cache/kestrel}"
OUT="$CACHE/clips/faces-720p.avi"
PLAN="$CACHE/clips/faces-720p.plan.txt"
FRAMES_PER_PHOTO=60
FPS=15
FORCE=no
for arg in "$@"; do
    case "$arg" in
        --force) FORCE=yes ;;
        *) echo "usage: $0 [--force]" >&2; exit 2 ;;
    esac
done

log() { printf 'make-test-clip: %s\n' "$*"; }
die() { printf 'make-test-clip: error: %s\n' "$*" >&2; exit 1; }

command -v gst-launch-1.0 >/dev/null 2>&1 || die "gst-launch-1.0 is missing (gstreamer1.0-tools)"
for e in jpegdec videocrop videoscale jpegenc avimux multifilesrc; do
    gst-inspect-1.0 "$e" >/dev/null 2>&1 || die "GStreamer element $e is missing (gstreamer1.0-plugins-good/base)"
done

WORK="$CACHE/clips/.frames.$$"
trap 'rm -rf "$WORK"' EXIT
rm -rf "$WORK" && mkdir -p "$WORK"

# Photo size from the JPEG's SOF marker, via gst-discoverer-free means:
# jpegdec reports it in caps; parse `gst-launch -v` output once per photo.
photo_size() {
    gst-launch-1.0 -v filesrc location="$1" ! jpegparse ! fakesink 2>/dev/null \
        | sed -n 's/.*image\/jpeg.*width=(int)\([0-9]*\).*height=(int)\([0-9]*\).*/\1 \2/p' \
        | head -n 1
}

# One line per frame: photo, crop left, top, right, bottom (all even, so
# every chroma subsampling crops cleanly). Odd photos zoom in while panning
# right; even photos zoom out while panning left; all drift down a little.
# The window keeps 16:9, spans 100% .. 75% of the photo's width and stays in
# the upper part of the photo, where the faces are.
index=0
for i in 1 2 3 4 5 6; do
    photo="$CACHE/photos/sample$i.jpg"
    [ -f "$photo" ] || die "$photo is missing: run scripts/setup.sh"
    size=$(photo_size "$photo")
    [ -n "$size" ] || die "cannot read the size of $photo"
    set -- $size
    pw=$1 ph=$2
    t=0
    while [ "$t" -lt "$FRAMES_PER_PHOTO" ]; do
        # s in 0..1000 along the path
        s=$((t * 1000 / (FRAMES_PER_PHOTO - 1)))
        if [ $((i % 2)) -eq 1 ]; then z=$s; else z=$((1000 - s)); fi
        w=$((pw - pw * 25 * z / 100000))
        h=$((w * 9 / 16))
        if [ "$h" -gt "$ph" ]; then h=$ph; w=$((h * 16 / 9)); fi
        w=$((w / 2 * 2)); h=$((h / 2 * 2))
        if [ $((i % 2)) -eq 1 ]; then px=$s; else px=$((1000 - s)); fi
        py=$((150 + s / 5))
        left=$(((pw - w) * px / 1000 / 2 * 2))
        top=$(((ph - h) * py / 1000 / 2 * 2))
        right=$((pw - w - left))
        bottom=$((ph - h - top))
        printf '%s %d %d %d %d %05d %d %d %d\n' "$photo" "$left" "$top" "$right" "$bottom" \
            "$index" "$i" "$w" "$h"
        index=$((index + 1))
        t=$((t + 1))
    done
done > "$WORK/plan.txt"

# The plan is cheap: (re)write it every time, so that a clip made before it existed gets one.
mkdir -p "$(dirname "$PLAN")"
awk '{ printf "%d %d %d %d %d %d\n", $6, $7, $2, $3, $8, $9 }' "$WORK/plan.txt" > "$PLAN.tmp"
mv "$PLAN.tmp" "$PLAN"

if [ -s "$OUT" ] && [ "$FORCE" = no ]; then
    log "$OUT exists (use --force to rebuild)"
    exit 0
fi

log "rendering $(wc -l < "$WORK/plan.txt") frames from 6 photos"
# Two at a time: each gst-launch is mostly start-up and one JPEG decode.
export WORK
cut -d' ' -f1-6 "$WORK/plan.txt" | xargs -P 2 -L 1 sh -c '
    gst-launch-1.0 -q filesrc location="$0" ! jpegdec ! videoconvert ! video/x-raw,format=I420 \
        ! videocrop left="$1" top="$2" right="$3" bottom="$4" \
        ! videoscale method=bilinear add-borders=false ! video/x-raw,width=1280,height=720,pixel-aspect-ratio=1/1 \
        ! jpegenc quality=90 ! filesink location="$WORK/f$5.jpg" \
        || { echo "make-test-clip: error: frame $5 failed" >&2; exit 255; }
'  || die "rendering frames failed"

n=$(ls "$WORK"/f*.jpg | wc -l)
[ "$n" -eq "$index" ] || die "rendered $n frames, expected $index"

mkdir -p "$(dirname "$OUT")"
gst-launch-1.0 -q multifilesrc location="$WORK/f%05d.jpg" index=0 stop-index=$((index - 1)) \
        caps="image/jpeg,framerate=$FPS/1,width=1280,height=720,pixel-aspect-ratio=1/1" \
    ! jpegparse ! avimux ! filesink location="$OUT.tmp" || die "muxing the clip failed"
mv "$OUT.tmp" "$OUT"
log "wrote $OUT ($index frames, ${FPS} fps, $(du -k "$OUT" | cut -f1) KiB)"
