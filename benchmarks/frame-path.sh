#!/bin/sh
# The frame path (issue 5): what a 1080p MJPEG camera costs from JPEG to
# detections, naive versus fast, on one core.
#
#   benchmarks/frame-path.sh [--print-pipelines] [--metadata] [--runs N] [--profile DIR]
#
# --print-pipelines  print the two pipelines timed (first naive, second fast),
#                    one per line, as gst-launch-1.0 takes them; with --metadata
#                    the metadata-only pair instead. Nothing is run.
# --runs N           runs per pipeline, alternating; medians reported (default 3)
# --profile DIR      also record each fast pipeline with perf record -e cpu-clock
#                    (hardware counters are not exposed here) and print the top
#                    of each profile
#
# Input: $KESTREL_CACHE/clips/faces-1080p-mjpeg.avi, 300 frames of 1920x1080
# MJPEG (q85, real faces; scripts/make-mjpeg-clip.sh, run by set-up). Model:
# INT8 BlazeFace full range ($KESTREL_CACHE/compiled/, made by set-up), else
# the FP32 TFLite (the output says which). Every pipeline runs under
# taskset -c 0 with mode=sync (inference inline, on that core).
#
#   full-size output  naive: avidemux ! jpegdec ! videoconvert ! RGB ! kestreldetect
#                            ! kestreloverlay ! fakesink
#                     fast:  avidemux ! kestreljpegdec (TurboJPEG to I420) ! kestreldetect
#                            (fused I420 kernel) ! kestreloverlay (on the planes) ! fakesink
#   metadata only     naive: avidemux ! jpegdec ! videoconvert ! videoscale
#                            ! RGB 192x108 ! kestreldetect ! fakesink
#                     fast:  avidemux ! kestreldetect (on the JPEG: 1/8 DCT decode for the
#                            model, boxes in 1920x1080 pixels on the JPEG buffers) ! fakesink
#
# Per pipeline: CPU ms per frame ((user + sys) / frames, whole process) and fps
# (frames / wall time; the machines are shared, so also 1000 / CPU ms: the rate
# one dedicated core would reach). Last line: the two ratios fast/naive of CPU
# ms per frame (targets: full-size <= 0.5 and >= 100 fps, metadata <= 0.35).
set -eu

SOURCE_DIR=$(cd "$(dirname "$0")/.." && pwd)
BUILD_DIR=${KESTREL_BUILD_DIR:-$SOURCE_DIR/build}
CACHE=${KESTREL_CACHE:-${HOME:-/root}/.cache/kestrel}
FRAMES=300

print=no
variant=full
runs=3
profile=
while [ $# -gt 0 ]; do
    case "$1" in
        --print-pipelines) print=yes ;;
        --metadata) variant=metadata ;;
        --runs) shift; runs=${1:?--runs needs a number} ;;
        --profile) shift; profile=${1:?--profile needs a folder} ;;
        -h|--help) sed -n '2,33p' "$0"; exit 0 ;;
        *) echo "usage: $0 [--print-pipelines] [--metadata] [--runs N] [--profile DIR]" >&2; exit 2 ;;
    esac
    shift
done

clip=$CACHE/clips/faces-1080p-mjpeg.avi
sidecar=$SOURCE_DIR/assets/models/face_detection_full_range.sidecar
model=$CACHE/compiled/face_detection_full_range.int8.kestrel
model_note="INT8 BlazeFace full range ($model)"
if [ ! -f "$model" ]; then
    model=$CACHE/models/face_detection_full_range.tflite
    model_note="FP32 BlazeFace full range ($model): the INT8 file is not there yet"
fi

detect="kestreldetect model=$model config=$sidecar mode=sync"
src="filesrc location=$clip ! avidemux"
naive_full="$src ! jpegdec ! videoconvert ! video/x-raw,format=RGB ! $detect ! kestreloverlay ! fakesink"
fast_full="$src ! kestreljpegdec ! $detect ! kestreloverlay ! fakesink"
naive_meta="$src ! jpegdec ! videoconvert ! videoscale ! video/x-raw,format=RGB,width=192,height=108 ! $detect ! fakesink"
fast_meta="$src ! $detect ! fakesink"

if [ "$print" = yes ]; then
    if [ "$variant" = metadata ]; then
        printf '%s\n%s\n' "$naive_meta" "$fast_meta"
    else
        printf '%s\n%s\n' "$naive_full" "$fast_full"
    fi
    exit 0
fi

for f in "$clip" "$model" "$sidecar" "$BUILD_DIR/plugins/libgstkestrel.so"; do
    [ -e "$f" ] || { echo "frame-path: missing $f (run scripts/setup.sh)" >&2; exit 1; }
done
command -v /usr/bin/time >/dev/null 2>&1 || { echo "frame-path: needs /usr/bin/time (Debian: time)" >&2; exit 1; }
command -v taskset >/dev/null 2>&1 || { echo "frame-path: needs taskset (util-linux)" >&2; exit 1; }
export GST_PLUGIN_PATH="${GST_PLUGIN_PATH:-$BUILD_DIR/plugins}"
export GST_REGISTRY="${GST_REGISTRY:-$BUILD_DIR/plugins/frame-path-registry.bin}"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# Seconds of user+sys CPU and of wall time of one run: "cpu wall".
run_once() {
    # shellcheck disable=SC2086
    /usr/bin/time -f '%U %S %e' -o "$work/time" taskset -c 0 gst-launch-1.0 -q $1 \
        > "$work/out" 2>&1 || { cat "$work/out" >&2; echo "frame-path: pipeline failed: $1" >&2; exit 1; }
    awk '{ printf "%.3f %.3f\n", $1 + $2, $3 }' "$work/time"
}

median() { sort -n | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

# The full-size pair with the model run once per clip (interval=300): what
# the frame path itself costs, without the inference both share. (The fast
# metadata path decodes only the frames the model runs on, so there it
# would measure next to nothing.)
once() { printf '%s' "$1" | sed 's/ mode=sync / mode=sync interval=300 /'; }
naive_full_once=$(once "$naive_full")
fast_full_once=$(once "$fast_full")

names="naive_full fast_full naive_meta fast_meta naive_full_once fast_full_once"
echo "frame path: $FRAMES frames of 1920x1080 MJPEG ($clip)"
echo "model: $model_note"
echo "one core (taskset -c 0), mode=sync, $runs run(s) each, medians"
r=0
while [ "$r" -lt "$runs" ]; do
    for n in $names; do
        eval "p=\$$n"
        run_once "$p" >> "$work/$n.times"
    done
    r=$((r + 1))
done

for n in $names; do
    cpu=$(cut -d' ' -f1 "$work/$n.times" | median)
    wall=$(cut -d' ' -f2 "$work/$n.times" | median)
    eval "cpu_$n=$cpu"
    case $n in
        naive_full) label="full-size output, naive" ;;
        fast_full) label="full-size output, fast " ;;
        naive_meta) label="metadata only,    naive" ;;
        fast_meta) label="metadata only,    fast " ;;
        naive_full_once) label="full-size, model once, naive" ;;
        fast_full_once) label="full-size, model once, fast " ;;
    esac
    awk -v l="$label" -v c="$cpu" -v w="$wall" -v f="$FRAMES" 'BEGIN {
        printf "%s: %6.2f CPU ms/frame, %6.1f fps (wall), %6.1f fps (one dedicated core)\n",
            l, 1000 * c / f, f / w, f / c }'
done

if [ -n "$profile" ]; then
    command -v perf >/dev/null 2>&1 || { echo "frame-path: --profile needs perf (linux-perf)" >&2; exit 1; }
    mkdir -p "$profile"
    for n in naive_full fast_full naive_meta fast_meta; do
        eval "p=\$$n"
        # shellcheck disable=SC2086
        taskset -c 0 perf record -q -e cpu-clock -o "$profile/$n.data" gst-launch-1.0 -q $p \
            > "$work/perf.out" 2>&1 || { cat "$work/perf.out" >&2; echo "frame-path: perf record failed" >&2; continue; }
        echo "profile $n (perf report -i $profile/$n.data):"
        perf report -i "$profile/$n.data" --no-children --sort dso,symbol 2>/dev/null \
            | grep -v '^#' | grep '%' | head -n 12
        echo "  by library:"
        perf report -i "$profile/$n.data" --no-children --sort dso 2>/dev/null \
            | grep -v '^#' | grep '%' | grep -v -- '--' | head -n 6
    done
fi

awk -v nf="$cpu_naive_full_once" -v ff="$cpu_fast_full_once" 'BEGIN {
    printf "frame path alone (full-size output), fast/naive: %.2f\n", ff / nf }'
awk -v nf="$cpu_naive_full" -v ff="$cpu_fast_full" -v nm="$cpu_naive_meta" -v fm="$cpu_fast_meta" -v f="$FRAMES" 'BEGIN {
    printf "ratios fast/naive (CPU per frame): full-size output %.2f (target <= 0.5; fast %.0f fps/core, target >= 100), metadata only %.2f (target <= 0.35)\n",
        ff / nf, f / ff, fm / nm }'
