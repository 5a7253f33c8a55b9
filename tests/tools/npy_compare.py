#!/usr/bin/env python3
"""Compare two .npy tensors (Kestrel's output against a reference) within an absolute tolerance.

    npy_compare.py ACTUAL.npy EXPECTED.npy TOLERANCE [MIN_SPREAD]

Prints shapes, the largest absolute difference and where it is, and exits 1 if the shapes differ,
either side holds NaN/Inf, or the largest difference exceeds TOLERANCE. With MIN_SPREAD, the
expected tensor must also span at least that range (max - min): a near-constant reference (say an
empty text map) would let almost any output pass, so such a case is reported as a failure too.
"""
import sys

import numpy as np


def main():
    if len(sys.argv) not in (4, 5):
        print(__doc__.strip(), file=sys.stderr)
        return 2
    actual = np.load(sys.argv[1], allow_pickle=False)
    expected = np.load(sys.argv[2], allow_pickle=False)
    tolerance = float(sys.argv[3])
    min_spread = float(sys.argv[4]) if len(sys.argv) == 5 else None
    print(f"actual   {sys.argv[1]}: shape {actual.shape} {actual.dtype}")
    print(f"expected {sys.argv[2]}: shape {expected.shape} {expected.dtype}")
    if actual.shape != expected.shape:
        print("FAIL: shapes differ")
        return 1
    if actual.size == 0:
        print("FAIL: empty output")
        return 1
    for name, t in (("actual", actual), ("expected", expected)):
        if not np.all(np.isfinite(t)):
            print(f"FAIL: {name} has {np.count_nonzero(~np.isfinite(t))} non-finite values")
            return 1
    a = actual.astype(np.float64)
    e = expected.astype(np.float64)
    diff = np.abs(a - e)
    worst = np.unravel_index(np.argmax(diff), diff.shape)
    print(f"expected range [{e.min():.6g}, {e.max():.6g}], mean {e.mean():.6g}")
    print(f"max abs diff {diff.max():.3e} at {tuple(int(i) for i in worst)} "
          f"(actual {a[worst]:.7g}, expected {e[worst]:.7g}); mean abs diff {diff.mean():.3e}; "
          f"tolerance {tolerance:g}")
    if min_spread is not None and e.max() - e.min() < min_spread:
        print(f"FAIL: the reference spans only {e.max() - e.min():.3g} < {min_spread:g}; "
              "this case cannot tell a right output from a wrong one")
        return 1
    if diff.max() > tolerance:
        print(f"FAIL: {np.count_nonzero(diff > tolerance)} of {diff.size} values off by more "
              f"than {tolerance:g}")
        return 1
    print("PASS")
    return 0


if __name__ == "__main__":
    sys.exit(main())
