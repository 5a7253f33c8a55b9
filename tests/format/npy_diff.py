#!/usr/bin/env python3
"""Max absolute difference between two float32 .npy files (no numpy needed).
Usage: npy_diff.py A.npy B.npy -> prints 'maxabs N count' ; exit 1 on shape
mismatch."""
import ast
import struct
import sys


def load(path):
    with open(path, "rb") as f:
        data = f.read()
    if data[:6] != b"\x93NUMPY":
        raise SystemExit(f"{path}: not a .npy file")
    major = data[6]
    if major == 1:
        hlen = struct.unpack("<H", data[8:10])[0]
        start = 10
    else:
        hlen = struct.unpack("<I", data[8:12])[0]
        start = 12
    header = ast.literal_eval(data[start:start + hlen].decode("latin1"))
    if header["descr"] != "<f4" or header["fortran_order"]:
        raise SystemExit(f"{path}: want little-endian float32, C order")
    body = data[start + hlen:]
    count = len(body) // 4
    return tuple(header["shape"]), struct.unpack(f"<{count}f", body)


def main():
    sa, a = load(sys.argv[1])
    sb, b = load(sys.argv[2])
    if sa != sb:
        print(f"shape mismatch {sa} vs {sb}")
        return 1
    worst = max((abs(x - y) for x, y in zip(a, b)), default=0.0)
    print(f"maxabs {worst:.3g} count {len(a)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
