#!/bin/sh
# Kestrel's main job: set up, then run the kiosk (issue 6). It finds the first camera (V4L2); with no
# camera and no source given it plays the bundled face clip ($KESTREL_CACHE/clips/faces-720p.avi) in a
# loop through MediaPipe's full-range face detector on Kestrel's engine (INT8 when compiled). With a
# display it shows the video full-screen-ready in a window; without one it runs headless, says where the
# newest frame is written ($KESTREL_CACHE/snapshots/latest.jpg) and prints a status line every 5 s.
#
#   scripts/main.sh [KIOSK-FLAGS]   # e.g. --source /dev/video2, --fullscreen, --frames 300
#                                   # (see build/app/kestrel-kiosk --help and docs/kiosk.md)
set -eu

SOURCE_DIR=$(cd "$(dirname "$0")/.." && pwd)
CACHE="${KESTREL_CACHE:-${HOME:-/root}/.cache/kestrel}"
export KESTREL_CACHE="$CACHE"

"$SOURCE_DIR/scripts/setup.sh"

echo "main: kestrel-kiosk $*"
exec "$SOURCE_DIR/build/app/kestrel-kiosk" "$@"
