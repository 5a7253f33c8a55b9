#!/bin/sh
# Build the 1080p MJPEG clip of the frame-path tests and benchmark, once:
# slow pans and zooms over each face-api sample photo (real faces), 1920x1080,
# JPEG quality 85 (4:2:0, as jpegenc codes I420), 30 fps, in AVI -- what a
# 1080p USB camera sends.
#
#   scripts/make-mjpeg-clip.sh            # writes $KESTREL_CACHE/clips/faces-1080p-mjpeg.avi
#   scripts/make-mjpeg-clip.sh --force    # rebuild even if present
#
# 6 photos x 50 frames = 300 frames (10 s). Each frame is a 16:9 window of
# a photo (95% .. 70% of its width, moving along a fixed integer path, so the
# clip is the same on every run with the same GStreamer and libjpeg), scaled
# to 1920x1080 and encoded by its own gst-launch-1.0. The photos are 1920
# pixels wide: windows are enlarged a little, like a camera's digital zoom.
set -eu

CACHE="${KESTREL_CACHE:-${HOME:-/root}/.cache/kestrel}"
OUT="$CACHE/clips/faces-1080p-mjpeg.avi"
FRAMES_PER_PHOTO=50
FPS=30
QUALITY=85
FORCE=no
for arg in "$@"; do
    case "$arg" in
        --force) FORCE=yes ;;
        *) echo "usage: $0 [--force]" >&2; exit 2 ;;
    esac
done

log() { printf 'make-mjpeg-clip: %s\n' "$*"; }
die() { printf 'make-mjpeg-clip: error: %s\n' "$*" >&2; exit 1; }

if [ -s "$OUT" ] && [ "$FORCE" = no ]; then
    log "$OUT exists (use --force to rebuild)"
    exit 0
fi

command -v gst-launch-1.0 >/dev/null 2>&1 || die "gst-launch-1.0 is missing (gstreamer1.0-tools)"
for e in jpegdec jpegparse videocrop videoscale jpegenc avimux multifilesrc; do
    gst-inspect-1.0 "$e" >/dev/null 2>&1 || die "GStreamer element $e is missing (gstreamer1.0-plugins-good/base)"
done

WORK="$CACHE/clips/.mjpeg.$$"
trap 'rm -rf "$WORK"' EXIT
rm -rf "$WORK" && mkdir -p "$WORK"

photo_size() {
    gst-launch-1.0 -v filesrc location="$1" ! jpegparse ! fakesink 2>/dev/null \
        | sed -n 's/.*image\/jpeg.*width=(int)\([0-9]*\).*height=(int)\([0-9]*\).*/\1 \2/p' \
        | head -n 1
}

# One line per frame: photo, crop left, top, right, bottom (even values), index.
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
        s=$((t * 1000 / (FRAMES_PER_PHOTO - 1)))
        # even photos zoom in, odd ones out; the window pans the other way
        if [ $((i % 2)) -eq 0 ]; then z=$s; else z=$((1000 - s)); fi
        w=$((pw * 95 / 100 - pw * 25 * z / 100000))
        h=$((w * 9 / 16))
        if [ "$h" -gt "$ph" ]; then h=$ph; w=$((h * 16 / 9)); fi
        w=$((w / 2 * 2)); h=$((h / 2 * 2))
        if [ $((i % 2)) -eq 0 ]; then px=$((1000 - s)); else px=$s; fi
        py=$((100 + s / 4))
        left=$(((pw - w) * px / 1000 / 2 * 2))
        top=$(((ph - h) * py / 1000 / 2 * 2))
        printf '%s %d %d %d %d %05d\n' "$photo" "$left" "$top" "$((pw - w - left))" \
            "$((ph - h - top))" "$index"
        index=$((index + 1))
        t=$((t + 1))
    done
done > "$WORK/plan.txt"

log "rendering $index frames at 1920x1080, quality $QUALITY"
export WORK QUALITY
xargs -P 2 -L 1 sh -c '
    gst-launch-1.0 -q filesrc location="$0" ! jpegdec ! videoconvert ! video/x-raw,format=I420 \
        ! videocrop left="$1" top="$2" right="$3" bottom="$4" \
        ! videoscale method=bilinear add-borders=false \
        ! video/x-raw,width=1920,height=1080,pixel-aspect-ratio=1/1 \
        ! jpegenc quality="$QUALITY" ! filesink location="$WORK/f$5.jpg" \
        || { echo "make-mjpeg-clip: error: frame $5 failed" >&2; exit 255; }
' < "$WORK/plan.txt" || die "rendering frames failed"

n=$(ls "$WORK"/f*.jpg | wc -l)
[ "$n" -eq "$index" ] || die "rendered $n frames, expected $index"

mkdir -p "$(dirname "$OUT")"
gst-launch-1.0 -q multifilesrc location="$WORK/f%05d.jpg" index=0 stop-index=$((index - 1)) \
        caps="image/jpeg,framerate=$FPS/1,width=1920,height=1080,pixel-aspect-ratio=1/1" \
    ! jpegparse ! avimux ! filesink location="$OUT.tmp" || die "muxing the clip failed"
mv "$OUT.tmp" "$OUT"
log "wrote $OUT ($index frames, $FPS fps, $(du -k "$OUT" | cut -f1) KiB)"
