#!/usr/bin/env python3
"""Compiles a real model with `kestrel compile` and checks that the .kestrel
file gives the source model's outputs on a real photo (max abs difference
within the tolerance), that `info` reads it, that `detect` uses the embedded
sidecar, and that an --input-shape other than the compiled one is refused.

    test_compiled_models.py MODEL_FILE PHOTO TOLERANCE
Environment: KESTREL_BUILD_DIR, KESTREL_CACHE (set by meson)."""
import json
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from npy_diff import load  # noqa: E402


def run(cmd, **kw):
    p = subprocess.run(cmd, capture_output=True, text=True, **kw)
    if p.returncode != 0:
        raise SystemExit(f"FAIL: {' '.join(cmd)}\n{p.stdout}{p.stderr}")
    return p.stdout


def main():
    model_name, photo_name, tol = sys.argv[1], sys.argv[2], float(sys.argv[3])
    build = os.environ["KESTREL_BUILD_DIR"]
    cache = os.environ.get("KESTREL_CACHE", os.path.expanduser("~/.cache/kestrel"))
    kestrel = os.path.join(build, "nn", "kestrel")
    model = os.path.join(cache, "models", model_name)
    photo = os.path.join(cache, "photos", photo_name)
    for f in (model, photo):
        if not os.path.isfile(f):
            raise SystemExit(f"FAIL: {f} missing (run scripts/setup.sh)")
    with tempfile.TemporaryDirectory() as tmp:
        src_out = os.path.join(tmp, "src")
        summary = json.loads(run([kestrel, "run", model, "--input", photo,
                                  "--output-dir", src_out, "--json"]))
        compiled = os.path.join(tmp, "model.kestrel")
        args = [kestrel, "compile", model, "-o", compiled]
        # Dynamic inputs (PP-OCR det) take the photo's size: the output map
        # has the input's height and width.
        shape = None
        if "_det_" in model_name:
            h, w = summary["outputs"][0]["shape"][2:4]
            shape = f"1,3,{h},{w}"
            args += ["--input-shape", shape]
        print(run(args).strip())
        k_out = os.path.join(tmp, "compiled")
        run([kestrel, "run", compiled, "--input", photo, "--output-dir", k_out])
        worst = 0.0
        for o in summary["outputs"]:
            name = os.path.basename(o["file"])
            sa, a = load(os.path.join(src_out, name))
            sb, b = load(os.path.join(k_out, name))
            if sa != sb:
                raise SystemExit(f"FAIL: {name}: shape {sa} vs {sb}")
            d = max((abs(x - y) for x, y in zip(a, b)), default=0.0)
            print(f"{name} {sa}: max abs diff {d:.3g} (tolerance {tol:g})")
            worst = max(worst, d)
        if not worst <= tol:
            raise SystemExit(f"FAIL: max abs diff {worst:.3g} > {tol:g}")
        info = run([kestrel, "info", compiled])
        if "Transpose" in info and model_name.endswith(".tflite"):
            raise SystemExit("FAIL: transposes inside a TFLite model:\n" + info)
        # ONNX models: at most the one transpose at the input.
        ops = [l.split() for l in info.splitlines() if l.startswith("  ")]
        transposes = sum(int(p[1]) for p in ops if p and p[0] == "Transpose")
        if transposes > 1:
            raise SystemExit(f"FAIL: {transposes} transposes:\n{info}")
        # A different input shape is refused with a clear message.
        p = subprocess.run([kestrel, "info", compiled, "--input-shape",
                            "1,3,64,64" if not shape else "1,3,64,96"],
                           capture_output=True, text=True)
        if p.returncode == 0 or "compiled for input shape" not in p.stderr:
            raise SystemExit(f"FAIL: other --input-shape: {p.stderr}")
        # detect reads the embedded sidecar (no sidecar next to the file).
        p = subprocess.run([kestrel, "detect", compiled, photo],
                           capture_output=True, text=True)
        if p.returncode != 0:
            raise SystemExit(f"FAIL: detect on .kestrel: {p.stderr}")
        print("detect:", p.stdout.strip()[:200])
    return 0


if __name__ == "__main__":
    sys.exit(main())
