#!/bin/sh
# Kestrel's main job, as far as it exists today: set up, then find the faces in a real photo with
# MediaPipe's full-range face detector running on Kestrel's engine. (The kiosk replaces this later.)
#
#   scripts/main.sh [PHOTO]      # default: the face-api demo photo sample1.jpg from the cache
set -eu

SOURCE_DIR=$(cd "$(dirname "$0")/.." && pwd)
CACHE="${KESTREL_CACHE:-${HOME:-/root}/.cache/kestrel}"
export KESTREL_CACHE="$CACHE"

"$SOURCE_DIR/scripts/setup.sh"

photo="${1:-$CACHE/photos/sample1.jpg}"
model="$CACHE/models/face_detection_full_range.tflite"
echo "main: kestrel detect $(basename "$model") $photo"
exec "$SOURCE_DIR/build/nn/kestrel" detect "$model" "$photo"
