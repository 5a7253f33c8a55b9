#!/bin/sh
# Run Kestrel's test suite and end with one summary line: "N passed, N failed[, N skipped]".
#
#   scripts/test.sh              # set-up, build, every suite in build/
#   scripts/test.sh --sanitize   # instead: build build-asan (clang-14, ASan+UBSan) and run the
#                                # quick suites there: unit, conformance, cli, fuzz regressions,
#                                # fast paths, kernels, passes, format
#   scripts/test.sh -- ARGS      # extra arguments for `meson test` (e.g. --suite ort)
#
# Exits nonzero if any test failed (or nothing could be run).
set -eu

SOURCE_DIR=$(cd "$(dirname "$0")/.." && pwd)
sanitize=no
while [ $# -gt 0 ]; do
    case "$1" in
        --sanitize) sanitize=yes; shift ;;
        --) shift; break ;;
        *) echo "usage: $0 [--sanitize] [-- MESON-TEST-ARGS]" >&2; exit 2 ;;
    esac
done

# Debian's python3 parses the test log; a python3 earlier on PATH (pyenv, venv) would do as well.
python=python3
[ -x /usr/bin/python3 ] && python=/usr/bin/python3

# Print the summary line from a meson test log; returns 1 if anything failed.
summarize() {
    "$python" - "$1" <<'EOF'
import json, sys
passed = failed = skipped = 0
try:
    with open(sys.argv[1]) as log:
        for line in log:
            line = line.strip()
            if not line:
                continue
            try:
                result = json.loads(line).get("result", "ERROR")
            except ValueError:
                result = "unparsable log line"
                print(f"test: {result}: {line[:60]}...")
            if result in ("OK", "EXPECTEDFAIL"):
                passed += 1
            elif result == "SKIP":
                skipped += 1
            else:  # FAIL, TIMEOUT, ERROR, UNEXPECTEDPASS, INTERRUPT
                failed += 1
except FileNotFoundError:
    failed = 1
    print(f"no test log at {sys.argv[1]}")
summary = f"{passed} passed, {failed} failed"
if skipped:
    summary += f", {skipped} skipped"
print(summary)
sys.exit(1 if failed or passed + skipped == 0 else 0)
EOF
}

# A build failure runs no tests; report it in the same one-line format so a reader of the last
# line never mistakes it for success.
build_failed() {
    echo "test: $1 failed; no tests ran" >&2
    echo "0 passed, 1 failed"
    exit 1
}

cd "$SOURCE_DIR"
"$SOURCE_DIR/scripts/setup.sh" || build_failed "scripts/setup.sh"

if [ "$sanitize" = yes ]; then
    builddir=build-asan
    if [ ! -f "$builddir/build.ninja" ]; then
        # clang's UBSan checks more than gcc's (e.g. pointer arithmetic on NULL, which gcc 12
        # let through in an int8 fast path and the NMS call of the SSD decoder).
        sanitize_cc=
        command -v clang-14 >/dev/null 2>&1 && sanitize_cc=clang-14
        env ${sanitize_cc:+CC=$sanitize_cc} meson setup "$builddir" \
            -Db_sanitize=address,undefined -Db_lundef=false \
            -Dbuildtype=debugoptimized || build_failed "meson setup $builddir"
    fi
    # The unit tests, plus the other quick suites that feed the engine odd inputs (ONNX node
    # tests, CLI error paths, fuzz regressions), every fast path and kernel against its
    # reference, the passes and the compiled-file round trips; not the model comparisons, which
    # run the same code on big inputs through node/chromium. UBSan stops on the first report so
    # that it counts as a failure.
    suites="--suite unit --suite conformance --suite cli --suite fuzz --suite fast"
    suites="$suites --suite kernels --suite passes --suite format"
    export UBSAN_OPTIONS="${UBSAN_OPTIONS:-halt_on_error=1:abort_on_error=1:print_stacktrace=1}"
    export ASAN_OPTIONS="${ASAN_OPTIONS:-halt_on_error=1:abort_on_error=1:detect_leaks=1}"
    timeout_multiplier=4
else
    builddir=build
    suites=""
    timeout_multiplier=1
fi
ninja -C "$builddir" || build_failed "ninja -C $builddir"

# meson's JSON test log (one object per test, "result": OK/FAIL/SKIP/...) is what we count. It gets
# a name of its own for this run: a build dir shared with other `meson test` runs (which all write
# meson-logs/testlog.json) must not mix their results into ours, nor a stale log be counted.
# The logs are kept afterwards as meson-logs/testlog-test-sh.{json,txt}.
logbase=testlog-test-sh-$$
# shellcheck disable=SC2086
meson test -C "$builddir" --print-errorlogs --no-rebuild --logbase "$logbase" \
    --timeout-multiplier "$timeout_multiplier" $suites "$@" || true
log="$builddir/meson-logs/$logbase.json"
echo "test: logs kept as $builddir/meson-logs/testlog-test-sh.{json,txt}"
status=0
summarize "$log" || status=1
for ext in json txt; do
    if [ -f "$builddir/meson-logs/$logbase.$ext" ]; then
        mv -f "$builddir/meson-logs/$logbase.$ext" "$builddir/meson-logs/testlog-test-sh.$ext"
    fi
done
rm -f "$builddir/meson-logs/$logbase.junit.xml"
exit $status
