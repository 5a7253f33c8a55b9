#!/bin/sh
# Builds the libFuzzer targets with clang (ASan + UBSan) in build-fuzz/ and
# runs each for SECONDS, seeded with the real models from $KESTREL_CACHE and
# the ONNX conformance models. Exits non-zero if any target finds a crash,
# leak, timeout or sanitizer report; the reproducer is left in
# build-fuzz/findings/<target>/ (add it to tests/fuzz/corpus-regress/<format>/
# once fixed).
#
#   tests/fuzz/run-fuzzers.sh 300            # every target, 300 s each
#   tests/fuzz/run-fuzzers.sh 300 onnx       # only fuzz_onnx
#   FUZZ_SEED=1 tests/fuzz/run-fuzzers.sh 90 # what CI runs: repeatable
#
# FUZZ_SEED=N makes a run repeatable: libFuzzer's -seed=N, address-space
# randomization off (setarch -R: libFuzzer feeds compared values, pointers
# included, back into its mutations) and a fixed number of runs per target
# (FUZZ_RUNS_<target>, defaults below, sized for about a minute here) with
# SECONDS as a cap. Two such runs follow nearly the same inputs (measured:
# 746 vs 766 new corpus units in 20000 onnx runs; coverage feedback is not
# perfectly stable), so a CI finding very likely shows up here with the same
# command, and CI does not fail at random on a machine twice as fast.
# Without FUZZ_SEED every run explores new inputs (use it for long sessions).
set -eu

SECONDS_PER_TARGET=${1:-60}
[ $# -gt 0 ] && shift
TARGETS=${*:-onnx tflite kestrel}
SRC=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=${KESTREL_FUZZ_BUILD:-$SRC/build-fuzz}
CACHE=${KESTREL_CACHE:-$HOME/.cache/kestrel}
ONNX_TESTDATA=${ONNX_TESTDATA:-/usr/share/libonnx-testdata/data/node}
SAN=-fsanitize=fuzzer-no-link,address,undefined

if [ ! -f "$BUILD/build.ninja" ]; then
  CC=clang meson setup "$BUILD" "$SRC" -Dfuzzers=true -Dplugins=false \
    -Dapp=false -Ddefault_library=static -Dbuildtype=debugoptimized \
    -Db_lundef=false -Dc_args="$SAN -fno-sanitize-recover=undefined" \
    -Dc_link_args="-fsanitize=address,undefined"
fi
# Only the fuzz targets: the rest of the tree is not needed here.
targets=
for target in $TARGETS; do
  [ -f "$SRC/tests/fuzz/fuzz_$target.c" ] && targets="$targets tests/fuzz/fuzz_$target"
done
# The kestrel target's seeds are the real models compiled by this build.
case " $TARGETS " in *" kestrel "*) targets="$targets nn/kestrel" ;; esac
ninja -C "$BUILD" $targets

status=0
failed=
for target in $TARGETS; do
  bin="$BUILD/tests/fuzz/fuzz_$target"
  [ -x "$bin" ] || { echo "run-fuzzers: no $bin, skipping"; continue; }
  corpus="$BUILD/corpus/$target"
  seeds="$BUILD/seeds/$target"
  findings="$BUILD/findings/$target"
  mkdir -p "$corpus" "$seeds" "$findings"
  # Seeds: real models from the cache and, for ONNX, every conformance model.
  for f in "$CACHE"/models/*."$target"; do
    [ -f "$f" ] && cp -f "$f" "$seeds/"
  done
  if [ "$target" = kestrel ]; then
    for f in ch_ppocr_mobile_v2.0_cls_infer.onnx face_detection_short_range.tflite \
             face_detection_full_range.tflite; do
      [ -f "$CACHE/models/$f" ] &&
        "$BUILD/nn/kestrel" compile "$CACHE/models/$f" -o "$seeds/${f%.*}.kestrel" >/dev/null
      [ -f "$CACHE/models/$f" ] &&
        "$BUILD/nn/kestrel" compile --no-pack "$CACHE/models/$f" -o "$seeds/${f%.*}-nopack.kestrel" >/dev/null
    done
  fi
  if [ "$target" = onnx ] && [ -d "$ONNX_TESTDATA" ]; then
    for d in "$ONNX_TESTDATA"/*/; do
      [ -f "$d/model.onnx" ] && cp -f "$d/model.onnx" "$seeds/$(basename "$d").onnx"
    done
  fi
  regress="$SRC/tests/fuzz/corpus-regress/$target"
  [ -d "$regress" ] || regress=
  echo "run-fuzzers: fuzz_$target for $SECONDS_PER_TARGET s ($(ls "$seeds" | wc -l) seeds)"
  # No -max_len: libFuzzer grows lengths slowly from small inputs anyway, and
  # a cap would truncate the real models. -rss_limit_mb also caps single
  # mallocs, so an absurd allocation is reported as a finding.
  # libFuzzer's progress goes to a log (only its tail is shown): CI keeps
  # the end of the output, so a finding is summarised last, below.
  log="$BUILD/fuzz_$target.log"
  repeat=
  run_prefix=
  if [ -n "${FUZZ_SEED:-}" ]; then
    eval "runs=\${FUZZ_RUNS_$target:-}"
    case $target in
      onnx) runs=${runs:-100000} ;;
      tflite) runs=${runs:-5000} ;;
      *) runs=${runs:-20000} ;;
    esac
    repeat="-seed=$FUZZ_SEED -runs=$runs"
    # A fresh corpus each time: what earlier runs added would change the
    # mutations.
    rm -rf "$corpus" && mkdir -p "$corpus"
    if setarch "$(uname -m)" -R true 2>/dev/null; then
      run_prefix="setarch $(uname -m) -R"
    fi
    echo "run-fuzzers: repeatable: $repeat${run_prefix:+, no ASLR}"
  fi
  # shellcheck disable=SC2086
  if ! ASAN_OPTIONS=detect_leaks=1:allocator_may_return_null=1 \
      UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
      $run_prefix "$bin" $repeat -max_total_time="$SECONDS_PER_TARGET" -timeout=20 \
      -rss_limit_mb=4096 -malloc_limit_mb=2048 -print_final_stats=1 \
      -artifact_prefix="$findings/" "$corpus" "$seeds" $regress > "$log" 2>&1; then
    echo "run-fuzzers: fuzz_$target found a problem; see $findings/"
    failed="$failed $target"
    status=1
  fi
  tail -n 8 "$log"
done

# Each failing target: the sanitizer or libFuzzer report and the reproducer
# (base64, when small enough to paste into tests/fuzz/corpus-regress/).
for target in $failed; do
  log="$BUILD/fuzz_$target.log"
  echo "=== run-fuzzers: fuzz_$target report"
  grep -n -m1 -E '^==[0-9]+==|runtime error|ERROR: libFuzzer|^==[0-9]+== ERROR' "$log" |
    cut -d: -f1 | while read -r first; do
      sed -n "$first,$((first + 40))p" "$log"
    done
  for f in "$BUILD/findings/$target"/*; do
    [ -f "$f" ] || continue
    size=$(wc -c < "$f")
    echo "reproducer $f ($size bytes)"
    [ "$size" -le 6000 ] && base64 -w 120 "$f"
  done
done
[ $status -eq 0 ] || echo "run-fuzzers: problems in:$failed"
exit $status
