#!/usr/bin/env python3
"""Tests of the `kestrel` command-line tool, one case per invocation:

    cli_test.py CASE

Uses build/nn/kestrel (KESTREL_BUILD_DIR), the models and photos in
KESTREL_CACHE and tests/data in KESTREL_SOURCE_DIR. Missing cache data is a
failure, not a skip: CI always runs scripts/setup.sh first.
Only the Python standard library is used (no numpy on the test machines).
"""
import json
import os
import struct
import subprocess
import sys
import tempfile
import zlib

SOURCE = os.environ.get("KESTREL_SOURCE_DIR", ".")
BUILD = os.environ.get("KESTREL_BUILD_DIR", "build")
CACHE = os.environ.get("KESTREL_CACHE", os.path.expanduser("~/.cache/kestrel"))
KESTREL = os.path.join(BUILD, "nn", "kestrel")
MODELS = os.path.join(CACHE, "models")
PHOTOS = os.path.join(CACHE, "photos")
CLS = os.path.join(MODELS, "ch_ppocr_mobile_v2.0_cls_infer.onnx")
FACE_FULL = os.path.join(MODELS, "face_detection_full_range.tflite")
FACE_SHORT = os.path.join(MODELS, "face_detection_short_range.tflite")
DET = os.path.join(MODELS, "ch_PP-OCRv4_det_infer.onnx")

failures = []


def check(cond, msg):
    if not cond:
        failures.append(msg)
        print("FAIL: " + msg, file=sys.stderr)
    return cond


def need(path):
    if not os.path.exists(path):
        print("missing test data: %s (run scripts/setup.sh)" % path,
              file=sys.stderr)
        sys.exit(1)


def kestrel(*args, timeout=300):
    p = subprocess.run([KESTREL] + [str(a) for a in args],
                       capture_output=True, text=True, timeout=timeout)
    return p.returncode, p.stdout, p.stderr


def expect_error(args, code, what):
    rc, out, err = kestrel(*args)
    lines = err.splitlines()
    check(rc == code, "%s: exit %d, want %d (stderr %r)" % (what, rc, code, err))
    check(len(lines) == 1 and lines[0].startswith("kestrel: "),
          "%s: want one 'kestrel: ...' line on stderr, got %r" % (what, err))


# --- .npy and TensorProto writers (independent of the C code) -------------

def npy_bytes(shape, descr, payload, major=1):
    dims = "%d," % shape[0] if len(shape) == 1 else ", ".join(str(d) for d in shape)
    header = "{'descr': '%s', 'fortran_order': False, 'shape': (%s), }" % (descr, dims)
    pre = 10 if major == 1 else 12
    pad = (64 - (pre + len(header) + 1) % 64) % 64
    header = header + " " * pad + "\n"
    if major == 1:
        head = b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header))
    else:
        head = b"\x93NUMPY\x02\x00" + struct.pack("<I", len(header))
    return head + header.encode() + payload


def read_npy(path):
    data = open(path, "rb").read()
    assert data[:6] == b"\x93NUMPY", "bad magic"
    if data[6] == 1:
        hlen = struct.unpack("<H", data[8:10])[0]
        start = 10
    else:
        hlen = struct.unpack("<I", data[8:12])[0]
        start = 12
    header = data[start:start + hlen].decode()
    d = eval(header, {"__builtins__": {}}, {"False": False, "True": True})
    shape = tuple(d["shape"])
    n = 1
    for s in shape:
        n *= s
    fmt = {"<f4": "f", "<i8": "q", "<i4": "i", "|u1": "B", "|b1": "?"}[d["descr"]]
    body = data[start + hlen:]
    values = struct.unpack("<%d%s" % (n, fmt), body[:n * struct.calcsize(fmt)])
    return d["descr"], shape, values


def varint(v):
    out = b""
    while True:
        b = v & 0x7F
        v >>= 7
        if v:
            out += bytes([b | 0x80])
        else:
            return out + bytes([b])


def tensor_proto(shape, floats):
    """onnx.TensorProto: dims = 1 (varint), data_type = 2, raw_data = 9."""
    msg = b""
    for d in shape:
        msg += b"\x08" + varint(d)
    msg += b"\x10" + varint(1)  # FLOAT
    raw = struct.pack("<%df" % len(floats), *floats)
    msg += b"\x4a" + varint(len(raw)) + raw
    return msg


def pattern(n):
    # Deterministic values in [-1, 1].
    return [((i * 37) % 101) / 50.0 - 1.0 for i in range(n)]


# --- cases -----------------------------------------------------------------

def case_help():
    rc, out, _ = kestrel("--help")
    check(rc == 0 and "usage: kestrel" in out, "kestrel --help")
    for cmd in ("info", "run", "detect", "bench"):
        rc, out, err = kestrel(cmd, "--help")
        check(rc == 0, "%s --help exit %d" % (cmd, rc))
        check(out.startswith("usage: kestrel %s" % cmd),
              "%s --help text: %r" % (cmd, out[:60]))
        check(err == "", "%s --help wrote to stderr" % cmd)


def case_usage():
    need(CLS)
    for args, what in (
            ([], "no command"),
            (["frobnicate"], "unknown command"),
            (["info"], "info without model"),
            (["info", CLS, CLS], "info with two models"),
            (["info", "--bogus", CLS], "unknown option"),
            (["info", CLS, "--input-shape", "1,x,2"], "bad shape"),
            (["run", CLS], "run without --output-dir"),
            (["run", CLS, "--output-dir"], "option missing its value"),
            (["detect", CLS], "detect without images"),
            (["detect", CLS, "a.jpg", "--threshold", "7"], "threshold > 1"),
            (["bench", CLS, "--iters", "0"], "zero iterations"),
            (["bench", CLS, "--threads", "-1"], "negative threads")):
        expect_error(args, 2, what)


def case_errors():
    need(CLS)
    need(DET)
    # A shape whose activations would need 16 GB: a clear error, not an
    # allocation that the kernel grants lazily and then kills the process for.
    rc, out, err = kestrel("bench", DET, "--input-shape", "1,3,16000,16000",
                           "--no-optimize", "--iters", "1")
    check(rc == 1 and "activation arena" in err and "limit" in err,
          "huge arena: exit %d, stderr %r" % (rc, err))
    with tempfile.TemporaryDirectory() as tmp:
        expect_error(["info", "/nonexistent/model.onnx"], 1, "missing model")
        junk = os.path.join(tmp, "junk.onnx")
        open(junk, "wb").write(b"\x0a\xff\xff\xff\xff\x0f garbage")
        expect_error(["info", junk], 1, "corrupt model")
        expect_error(["run", CLS, "--input", "/nonexistent.npy",
                      "--output-dir", tmp], 1, "missing input")
        # Wrong number of inputs for the model.
        good = os.path.join(tmp, "x.npy")
        open(good, "wb").write(npy_bytes((1, 3, 48, 192), "<f4",
                                         struct.pack("<27648f", *pattern(27648))))
        expect_error(["run", CLS, "--input", good, "--input", good,
                      "--output-dir", tmp], 1, "too many inputs")
        # Shape the model rejects.
        small = os.path.join(tmp, "small.npy")
        open(small, "wb").write(npy_bytes((1, 2, 4, 4), "<f4",
                                          struct.pack("<32f", *pattern(32))))
        expect_error(["run", CLS, "--input", small, "--output-dir", tmp], 1,
                     "wrong channel count")
        # A sidecar with a typo names file, line and key.
        bad = os.path.join(tmp, "bad.sidecar")
        open(bad, "w").write("[input]\nwidth = 4\nhieght = 4\n")
        rc, _, err = kestrel("detect", CLS, os.path.join(PHOTOS, "sample1.jpg"),
                             "--config", bad)
        check(rc == 1 and "bad.sidecar:3: key 'hieght'" in err,
              "sidecar error message: %r" % err)
        # Not an image.
        fake = os.path.join(tmp, "fake.jpg")
        open(fake, "wb").write(b"\xff\xd8\xff\xe0 truncated")
        expect_error(["detect", FACE_FULL, fake], 1, "truncated JPEG")


def case_npy_malformed():
    need(CLS)
    header_ok = npy_bytes((1, 3, 48, 192), "<f4", b"")
    body = struct.pack("<27648f", *pattern(27648))
    cases = {
        "empty": b"",
        "bad_magic": b"\x93NUMPX" + header_ok[6:] + body,
        "version_9": header_ok[:6] + b"\x09\x00" + header_ok[8:] + body,
        "header_past_end": header_ok[:8] + b"\xff\xff" + header_ok[10:40],
        "truncated_data": header_ok + body[:1000],
        "fortran": npy_bytes((1, 3, 48, 192), "<f4", body).replace(
            b"'fortran_order': False", b"'fortran_order': True "),
        "big_endian": npy_bytes((1, 3, 48, 192), ">f4", body),
        "unknown_dtype": npy_bytes((1, 3, 48, 192), "<c8", body),
        "no_shape": header_ok.replace(b"'shape'", b"'shap_'") + body,
        "bad_shape": header_ok.replace(b"(1, 3, 48, 192)", b"(1, x, 48, 192)") + body,
        "huge_shape": npy_bytes((1 << 40, 1 << 40), "<f4", body),
        "negative_dim": header_ok.replace(b"(1, 3, 48, 192)", b"(1, -3, 48, 19)") + body,
        "nine_dims": npy_bytes((1,) * 9, "<f4", body),
    }
    with tempfile.TemporaryDirectory() as tmp:
        for name, data in cases.items():
            path = os.path.join(tmp, name + ".npy")
            open(path, "wb").write(data)
            expect_error(["run", CLS, "--input", path, "--output-dir", tmp], 1,
                         "malformed npy '%s'" % name)
        # Garbage .pb and a .pb whose raw_data disagrees with its dims.
        pb = os.path.join(tmp, "bad.pb")
        open(pb, "wb").write(b"\xff\xff\xff\xff")
        expect_error(["run", CLS, "--input", pb, "--output-dir", tmp], 1,
                     "garbage .pb")
        short = tensor_proto((1, 3, 48, 192), pattern(100))
        open(pb, "wb").write(short)
        expect_error(["run", CLS, "--input", pb, "--output-dir", tmp], 1,
                     ".pb with short raw_data")


def case_run():
    need(CLS)
    values = pattern(3 * 48 * 192)
    with tempfile.TemporaryDirectory() as tmp:
        npy = os.path.join(tmp, "x.npy")
        open(npy, "wb").write(npy_bytes((1, 3, 48, 192), "<f4",
                                        struct.pack("<%df" % len(values), *values)))
        out1 = os.path.join(tmp, "out_npy")
        rc, out, err = kestrel("run", CLS, "--input", npy, "--output-dir", out1,
                               "--json")
        check(rc == 0, "run .npy: exit %d %s" % (rc, err))
        if rc == 0:
            summary = json.loads(out)
            check(summary["outputs"][0]["shape"] == [1, 2],
                  "run --json shape %r" % summary["outputs"][0])
            descr, shape, probs = read_npy(os.path.join(out1, "output_0.npy"))
            check(descr == "<f4" and shape == (1, 2), "output npy %s %r" % (descr, shape))
            check(abs(sum(probs) - 1.0) < 1e-4 and min(probs) >= 0,
                  "softmax output sums to %r" % (sum(probs),))
        # Same tensor as a TensorProto, and as a v2 .npy of float64: same
        # result (the values are exactly representable in float32).
        pb = os.path.join(tmp, "x.pb")
        open(pb, "wb").write(tensor_proto((1, 3, 48, 192), values))
        out2 = os.path.join(tmp, "out_pb")
        rc, _, err = kestrel("run", CLS, "--input", pb, "--output-dir", out2)
        check(rc == 0, "run .pb: exit %d %s" % (rc, err))
        npy64 = os.path.join(tmp, "x64.npy")
        f32 = struct.unpack("<%df" % len(values), struct.pack("<%df" % len(values), *values))
        open(npy64, "wb").write(npy_bytes((1, 3, 48, 192), "<f8",
                                          struct.pack("<%dd" % len(f32), *f32), major=2))
        out3 = os.path.join(tmp, "out_f64")
        rc, _, err = kestrel("run", CLS, "--input", npy64, "--output-dir", out3)
        check(rc == 0, "run f64 .npy: exit %d %s" % (rc, err))
        if all(os.path.exists(os.path.join(d, "output_0.npy")) for d in (out1, out2, out3)):
            a = read_npy(os.path.join(out1, "output_0.npy"))[2]
            b = read_npy(os.path.join(out2, "output_0.npy"))[2]
            c = read_npy(os.path.join(out3, "output_0.npy"))[2]
            check(a == b == c, "npy/pb/f64 outputs differ: %r %r %r" % (a, b, c))
        # An image input is preprocessed per the sidecar (found by sha256).
        need(PHOTOS)
        out4 = os.path.join(tmp, "out_img")
        rc, _, err = kestrel("run", FACE_FULL, "--input",
                             os.path.join(PHOTOS, "sample1.jpg"),
                             "--output-dir", out4)
        check(rc == 0, "run image: exit %d %s" % (rc, err))
        if rc == 0:
            _, s0, _ = read_npy(os.path.join(out4, "output_0.npy"))
            _, s1, _ = read_npy(os.path.join(out4, "output_1.npy"))
            check(s0 == (1, 2304, 16) and s1 == (1, 2304, 1),
                  "face outputs %r %r" % (s0, s1))


def case_info():
    need(FACE_FULL)
    rc, out, err = kestrel("info", FACE_FULL, "--json")
    check(rc == 0, "info --json exit %d %s" % (rc, err))
    if rc:
        return
    info = json.loads(out)
    check(info["inputs"][0]["shape"] == [1, 192, 192, 3], "input %r" % info["inputs"])
    check([o["shape"] for o in info["outputs"]] == [[1, 2304, 16], [1, 2304, 1]],
          "outputs %r" % info["outputs"])
    check(info["format"] == "tflite" and len(info["sha256"]) == 64, "format/sha")
    check(info["params"] > 100000 and info["macs"] > 10**7 and
          info["weight_bytes"] > 100000, "stats %r" % info)
    check(sum(info["ops"].values()) >= 100 and "CONV_2D" in info["ops"],
          "ops %r" % info["ops"])
    rc, out, _ = kestrel("info", DET, "--input-shape", "1,3,320,320")
    check(rc == 0 and "[1, 3, 320, 320]" in out, "info --input-shape: %r" % out[:300])


def case_bench():
    need(CLS)
    rc, out, err = kestrel("bench", CLS, "--iters", "5", "--warmup", "1", "--json")
    check(rc == 0, "bench exit %d %s" % (rc, err))
    if rc:
        return
    b = json.loads(out)
    for key in ("median_ms", "min_ms", "peak_rss_kb", "mean_ms"):
        check(key in b, "bench lacks %s" % key)
    check(0 < b["min_ms"] <= b["median_ms"], "bench times %r" % b)
    check(b["peak_rss_kb"] > 1000, "peak rss %r" % b["peak_rss_kb"])
    check(b["input_shape"] == [1, 3, 48, 192], "shape from sidecar %r" % b["input_shape"])
    # --profile: one entry per executed node, each timed, in run order.
    rc, out, err = kestrel("bench", CLS, "--iters", "3", "--warmup", "0", "--json",
                           "--profile")
    check(rc == 0, "bench --profile exit %d %s" % (rc, err))
    if rc:
        return
    prof = json.loads(out).get("profile", [])
    rc, out, _ = kestrel("info", CLS, "--json")
    nodes = json.loads(out)["nodes"] if rc == 0 else -1
    # bench optimizes an ONNX model first (fewer, fused nodes); --no-optimize
    # runs every imported node.
    check(10 <= len(prof) < nodes, "profile has %d entries, model %r nodes" % (len(prof), nodes))
    rc, out, err = kestrel("bench", CLS, "--iters", "1", "--warmup", "0", "--json",
                           "--profile", "--no-optimize")
    raw = json.loads(out).get("profile", []) if rc == 0 else []
    check(len(raw) == nodes, "--no-optimize profile has %d entries, model %r nodes"
          % (len(raw), nodes))
    check(all(e["ms"] >= 0 and e["op"] for e in prof), "profile entries %r" % prof[:3])
    convs = [e for e in prof if e["op"] == "Conv"]
    check(len(convs) >= 10 and sum(e["ms"] for e in convs) > 0,
          "profile convs %r" % convs[:3])
    check(any("3x3" in e["detail"] for e in convs), "conv detail %r" % convs[:3])
    rc, out, _ = kestrel("bench", CLS, "--iters", "2", "--profile")
    check(rc == 0 and "ms/run" in out and "Conv" in out, "bench --profile text %r" % out[-400:])


def case_detect():
    need(FACE_SHORT)
    photos = [os.path.join(PHOTOS, "sample%d.jpg" % i) for i in range(1, 7)]
    for p in photos:
        need(p)
    rc, out, err = kestrel("detect", FACE_SHORT, *photos, "--json")
    check(rc == 0, "detect exit %d %s" % (rc, err))
    lines = out.splitlines()
    check(len(lines) == len(photos), "want one line per image, got %d" % len(lines))
    total = 0
    for line, photo in zip(lines, photos):
        r = json.loads(line)
        check(r["image"] == photo and r["width"] == 1920 and r["height"] > 1000,
              "image fields %r" % {k: r[k] for k in ("image", "width", "height")})
        for o in r["objects"]:
            total += 1
            x, y, w, h = o["box"]
            check(o["label"] == "face" and 0.5 <= o["confidence"] <= 1,
                  "object %r" % o)
            check(-w < x < r["width"] and -h < y < r["height"] and 10 < w < 1920,
                  "box %r outside %dx%d" % (o["box"], r["width"], r["height"]))
            check(len(o["keypoints"]) == 6, "keypoints %r" % o.get("keypoints"))
            # Eyes and nose lie inside (or very near) their face box.
            for kx, ky in o["keypoints"][:3]:
                check(x - 0.2 * w <= kx <= x + 1.2 * w and
                      y - 0.2 * h <= ky <= y + 1.2 * h,
                      "keypoint (%g,%g) far from box %r" % (kx, ky, o["box"]))
    check(total >= 6, "short-range model found only %d faces in 6 group photos" % total)
    # Text output and --threshold.
    rc, out, _ = kestrel("detect", FACE_SHORT, photos[0], "--threshold", "0.99")
    check(rc == 0 and "0 objects" in out, "threshold 0.99: %r" % out)


# --- minimal PNG reading/writing (stdlib zlib) for making text-line crops --

def read_png_rgb(path):
    """8-bit, non-interlaced PNG (grey, RGB, palette, +alpha) to RGB rows."""
    data = open(path, "rb").read()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat, plte = 8, b"", None
    while pos < len(data):
        n = struct.unpack(">I", data[pos:pos + 4])[0]
        typ, body = data[pos + 4:pos + 8], data[pos + 8:pos + 8 + n]
        pos += 12 + n
        if typ == b"IHDR":
            w, h, depth, ctype, _, _, interlace = struct.unpack(">IIBBBBB", body)
        elif typ == b"PLTE":
            plte = body
        elif typ == b"IDAT":
            idat += body
    assert depth == 8 and interlace == 0, "unsupported PNG"
    bpp = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}[ctype]
    raw = zlib.decompress(idat)
    stride, prev, rows, p = w * bpp, bytearray(w * bpp), [], 0
    for _ in range(h):
        f, line = raw[p], bytearray(raw[p + 1:p + 1 + stride])
        p += 1 + stride
        for i in range(stride):
            a = line[i - bpp] if i >= bpp else 0
            b = prev[i]
            c = prev[i - bpp] if i >= bpp else 0
            if f == 1:
                line[i] = (line[i] + a) & 255
            elif f == 2:
                line[i] = (line[i] + b) & 255
            elif f == 3:
                line[i] = (line[i] + (a + b) // 2) & 255
            elif f == 4:
                pa, pb, pc = abs(b - c), abs(a - c), abs(a + b - 2 * c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else
                                      b if pb <= pc else c)) & 255
        rows.append(line)
        prev = line
    out = []
    for line in rows:
        rgb = bytearray()
        for x in range(w):
            if ctype == 3:
                rgb += plte[3 * line[x]:3 * line[x] + 3]
            elif ctype in (0, 4):
                rgb += bytes([line[x * bpp]]) * 3
            else:
                rgb += line[x * bpp:x * bpp + 3]
        out.append(rgb)
    return w, h, out


def write_png_rgb(path, w, h, rows):
    def chunk(t, b):
        return (struct.pack(">I", len(b)) + t + b +
                struct.pack(">I", zlib.crc32(t + b) & 0xFFFFFFFF))
    raw = b"".join(b"\x00" + bytes(r) for r in rows)
    open(path, "wb").write(
        b"\x89PNG\r\n\x1a\n" +
        chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)) +
        chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def crop_and_flip(rows, x0, y0, w, h):
    crop = [r[3 * x0:3 * (x0 + w)] for r in rows[y0:y0 + h]]
    flipped = [b"".join(bytes(r[3 * i:3 * i + 3]) for i in reversed(range(w)))
               for r in reversed(crop)]
    return crop, flipped


def case_classify():
    """PP-OCR direction classifier on crops of words from opencv-doc's
    imageTextN.png, upright and turned 180 degrees."""
    need(CLS)
    src = os.path.join(CACHE, "opencv", "usr", "share", "doc", "opencv-doc",
                       "examples", "data", "imageTextN.png")
    need(src)
    w, h, rows = read_png_rgb(src)
    check((w, h) == (556, 257), "imageTextN.png is %dx%d" % (w, h))
    with tempfile.TemporaryDirectory() as tmp:
        files, want = [], []
        # "technical details" on line 1, "our courses, we" on line 2.
        for i, (x0, y0, cw, ch) in enumerate(((26, 14, 120, 24), (100, 30, 120, 24))):
            crop, flipped = crop_and_flip(rows, x0, y0, cw, ch)
            for rot, img in (("0", crop), ("180", flipped)):
                path = os.path.join(tmp, "word%d_%s.png" % (i, rot))
                write_png_rgb(path, cw, ch, img)
                files.append(path)
                want.append(rot)
        rc, out, err = kestrel("detect", CLS, *files, "--json")
        if not check(rc == 0, "detect exit %d %s" % (rc, err)):
            return
        for line, label in zip(out.splitlines(), want):
            r = json.loads(line)
            top = r["classes"][0]
            check(top["label"] == label and top["score"] >= 0.9,
                  "%s: %r, want %s" % (os.path.basename(r["image"]), r["classes"], label))
            check(len(r["classes"]) == 2 and
                  abs(sum(c["score"] for c in r["classes"]) - 1) < 1e-3,
                  "classes %r" % r["classes"])


def case_dbnet():
    """PP-OCRv4 det on opencv-doc's paragraph of 13 text lines, upright and
    rotated (the rotated copy rises ~9 degrees to the right)."""
    need(DET)
    data = os.path.join(CACHE, "opencv", "usr", "share", "doc", "opencv-doc",
                        "examples", "data")
    upright = os.path.join(data, "imageTextN.png")
    rotated = os.path.join(data, "imageTextR.png")
    need(upright)
    need(rotated)
    import math
    rc, out, err = kestrel("detect", DET, upright, rotated, "--json")
    if not check(rc == 0, "detect exit %d %s" % (rc, err)):
        return
    results = [json.loads(l) for l in out.splitlines()]
    for r, lo, hi in ((results[0], -1.5, 1.5), (results[1], -12.0, -6.0)):
        objs = r["objects"]
        check(len(objs) == 13, "%s: %d text lines, want 13" % (r["image"], len(objs)))
        for o in objs:
            q = o["quad"]
            angle = math.degrees(math.atan2(q[1][1] - q[0][1], q[1][0] - q[0][0]))
            height = math.hypot(q[3][0] - q[0][0], q[3][1] - q[0][1])
            width = math.hypot(q[1][0] - q[0][0], q[1][1] - q[0][1])
            check(lo <= angle <= hi, "%s: line angle %.1f not in [%g, %g]"
                  % (r["image"], angle, lo, hi))
            check(10 <= height <= 30 and width > 200,
                  "%s: line %gx%g" % (r["image"], width, height))
            check(o["label"] == "text" and o["confidence"] >= 0.6, "object %r" % o)
        # Lines do not overlap: sorted by the top-left corner, each starts
        # below the previous one.
        tops = sorted(o["quad"][0][1] for o in objs)
        check(all(b - a > 8 for a, b in zip(tops, tops[1:])), "tops %r" % tops)


def case_sidecar_lookup():
    """MODEL.sidecar beats BASENAME.sidecar beats the sha256 match in the
    asset folder ($KESTREL_ASSETS); no sidecar at all is an error."""
    need(FACE_FULL)
    photo = os.path.join(PHOTOS, "sample1.jpg")
    need(photo)
    import shutil
    src = open(os.path.join(SOURCE, "assets", "models",
                            "face_detection_full_range.sidecar")).read()
    with tempfile.TemporaryDirectory() as tmp:
        model = os.path.join(tmp, "model.tflite")
        shutil.copy(FACE_FULL, model)
        env = dict(os.environ)

        def detect(assets):
            env["KESTREL_ASSETS"] = assets
            p = subprocess.run([KESTREL, "detect", model, photo, "--json"],
                               capture_output=True, text=True, env=env, timeout=300)
            return p.returncode, p.stdout, p.stderr

        rc, out, err = detect(os.path.join(tmp, "empty"))
        check(rc == 1 and "no sidecar" in err, "no sidecar: %d %r" % (rc, err))
        rc, out, err = detect(os.path.join(SOURCE, "assets", "models"))
        check(rc == 0 and len(json.loads(out)["objects"]) >= 3,
              "sha256 lookup: %d %r" % (rc, err))
        # BASENAME.sidecar next to the model: a threshold nothing reaches.
        open(os.path.join(tmp, "model.sidecar"), "w").write(
            src.replace("min_score = 0.6", "min_score = 0.9999"))
        rc, out, err = detect(os.path.join(SOURCE, "assets", "models"))
        check(rc == 0 and json.loads(out)["objects"] == [],
              "basename sidecar not used: %d %r" % (rc, out[:200]))
        # MODEL.sidecar wins over the basename one.
        open(model + ".sidecar", "w").write(src)
        rc, out, err = detect(os.path.join(tmp, "empty"))
        check(rc == 0 and len(json.loads(out)["objects"]) >= 3,
              "MODEL.sidecar not preferred: %d %r" % (rc, err))


def iou(a, b):
    ax0, ay0, aw, ah = a
    bx0, by0, bw, bh = b
    ix = max(0.0, min(ax0 + aw, bx0 + bw) - max(ax0, bx0))
    iy = max(0.0, min(ay0 + ah, by0 + bh) - max(ay0, by0))
    inter = ix * iy
    union = aw * ah + bw * bh - inter
    return inter / union if union > 0 else 0.0


def case_faces_marked():
    """Full-range model against faces marked by eye (tests/data)."""
    need(FACE_FULL)
    marked = json.load(open(os.path.join(SOURCE, "tests", "data",
                                         "faces_marked.json")))
    photos = [os.path.join(PHOTOS, m["image"]) for m in marked["images"]]
    for p in photos:
        need(p)
    rc, out, err = kestrel("detect", FACE_FULL, *photos, "--json")
    if not check(rc == 0, "detect exit %d %s" % (rc, err)):
        return
    results = [json.loads(l) for l in out.splitlines()]
    check(len(results) == len(photos), "one line per photo")
    false_positives = 0
    for m, r in zip(marked["images"], results):
        check(r["width"] == m["width"] and r["height"] == m["height"],
              "%s size %dx%d" % (m["image"], r["width"], r["height"]))
        boxes = [o["box"] for o in r["objects"]]
        used = set()
        for face in m["faces"]:
            best, best_iou = None, 0.0
            for i, b in enumerate(boxes):
                v = iou(face, b)
                if i not in used and v > best_iou:
                    best, best_iou = i, v
            if check(best is not None and best_iou >= 0.5,
                     "%s: marked face %r not found (best IoU %.2f, boxes %r)"
                     % (m["image"], face, best_iou, boxes)):
                used.add(best)
            print("%s face %r: IoU %.2f" % (m["image"], face, best_iou))
        extra = [b for i, b in enumerate(boxes) if i not in used]
        if extra:
            print("%s: unmatched detections %r" % (m["image"], extra))
        false_positives += len(extra)
    check(false_positives <= 1, "%d false positives (at most 1 allowed)"
          % false_positives)


CASES = {name[5:]: fn for name, fn in globals().items() if name.startswith("case_")}

if __name__ == "__main__":
    if len(sys.argv) != 2 or sys.argv[1] not in CASES:
        print("usage: cli_test.py {%s}" % ",".join(sorted(CASES)), file=sys.stderr)
        sys.exit(2)
    if not os.access(KESTREL, os.X_OK):
        print("no kestrel binary at %s" % KESTREL, file=sys.stderr)
        sys.exit(1)
    CASES[sys.argv[1]]()
    if failures:
        print("%d check(s) failed" % len(failures), file=sys.stderr)
        sys.exit(1)
    print("ok")
