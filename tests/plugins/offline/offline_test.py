#!/usr/bin/env python3
"""Offline video tests of the plugin: kestreldetect + kestreltrack over
recorded videos, compared with committed golden JSON lines, and bad inputs.

  offline_test.py golden faces|megamind   FP32 and INT8 runs vs the golden
  offline_test.py bad truncated|garbage   damaged videos end cleanly
  offline_test.py make-golden             (re)write tests/golden/*.jsonl
  offline_test.py render VIDEO OUT_DIR FRAME...   PNGs with kestreloverlay
  offline_test.py metrics VIDEO GOLDEN.jsonl RUN.jsonl   F1 and id switches

Environment (set by meson): KESTREL_SOURCE_DIR, KESTREL_BUILD_DIR,
KESTREL_CACHE, GST_PLUGIN_PATH, GST_REGISTRY. The INT8 model is
$KESTREL_INT8_FACE_MODEL, else the one set-up compiled into
$KESTREL_CACHE/compiled/, else it is quantized here with `kestrel quantize`
(calibrated on the face photos) into the build directory.
"""
import glob
import json
import os
import shutil
import subprocess
import sys

SOURCE = os.environ.get("KESTREL_SOURCE_DIR", "")
BUILD = os.environ.get("KESTREL_BUILD_DIR", "")
CACHE = os.environ.get("KESTREL_CACHE", "")
WORK = os.path.join(BUILD, "tests", "plugins", "offline-work")

VIDEOS = {
    "faces": "clips/faces-720p.avi",
    "megamind": "opencv/usr/share/doc/opencv-doc/examples/data/Megamind.avi",
}
GOLDEN = {
    "faces": "tests/golden/faces-720p.fp32.jsonl",
    "megamind": "tests/golden/megamind.fp32.jsonl",
}
FP32_MODEL = "models/face_detection_full_range.tflite"
SIDECAR = "assets/models/face_detection_full_range.sidecar"

F1_MIN = 0.95          # the bar for INT8 vs the FP32 golden
F1_MIN_FP32 = 0.98     # FP32 here vs FP32 when the golden was made
MATCH_IOU = 0.5
RUN_TIMEOUT = 600      # seconds for one pass over a video
BAD_TIMEOUT = 120


class Failure(Exception):
    pass


def need(path, what):
    if not os.path.exists(path):
        raise Failure("%s is missing: %s (run scripts/setup.sh)" % (what, path))
    return path


def cache(rel):
    if not CACHE:
        raise Failure("KESTREL_CACHE is not set")
    return need(os.path.join(CACHE, rel), rel)


def sidecar():
    return need(os.path.join(SOURCE, SIDECAR), "the BlazeFace sidecar")


def int8_model():
    """The INT8 BlazeFace: env, set-up's compiled/, or quantized here."""
    env = os.environ.get("KESTREL_INT8_FACE_MODEL")
    if env:
        return need(env, "KESTREL_INT8_FACE_MODEL")
    compiled = os.path.join(CACHE, "compiled")
    # An INT8 file by name first, else any compiled full-range model.
    for pattern in ("*full_range*int8*.kestrel", "*full_range*.kestrel"):
        found = sorted(p for p in glob.glob(os.path.join(compiled, pattern))
                       if "sparse" not in os.path.basename(p))
        if found:
            return found[0]
    out = os.path.join(WORK, "face_detection_full_range.int8.kestrel")
    if not os.path.exists(out):
        cli = need(os.path.join(BUILD, "nn", "kestrel"), "the kestrel CLI")
        os.makedirs(WORK, exist_ok=True)
        print("note: no INT8 model in %s; quantizing one with kestrel quantize" % compiled)
        run([cli, "quantize", cache(FP32_MODEL), "--calib", cache("photos"),
             "--config", sidecar(), "-o", out], RUN_TIMEOUT)
    return out


def run(argv, timeout):
    try:
        p = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           timeout=timeout)
    except subprocess.TimeoutExpired:
        raise Failure("timed out after %d s: %s" % (timeout, " ".join(argv)))
    if p.returncode != 0:
        raise Failure("exit %d: %s\n%s%s" % (p.returncode, " ".join(argv),
                                             p.stdout.decode(errors="replace"),
                                             p.stderr.decode(errors="replace")))
    return p


def pipeline(video, model, out_jsonl, tail="fakesink sync=false"):
    """gst-launch argv: detect (sync, every frame) + track + publish."""
    return ["gst-launch-1.0", "-q", "filesrc", "location=" + video, "!",
            "decodebin", "!", "kestreldetect", "model=" + model,
            "config=" + sidecar(), "mode=sync", "interval=1", "!",
            "kestreltrack", "!", "kestrelmetapublish",
            "location=" + out_jsonl, "!"] + tail.split()


def detect_run(video, model, out_jsonl):
    run(pipeline(video, model, out_jsonl), RUN_TIMEOUT)
    return load(out_jsonl)


def load(path):
    frames = []
    with open(path) as f:
        for n, line in enumerate(f):
            d = json.loads(line)
            if d.get("version") != 1 or d.get("frame") != n:
                raise Failure("%s line %d: bad version or frame number" % (path, n + 1))
            frames.append(d)
    return frames


# --- metrics ---------------------------------------------------------------

def box(o):
    b = o["box"]
    return (b["x"], b["y"], b["x"] + b["width"], b["y"] + b["height"])


def iou(a, b):
    x0, y0 = max(a[0], b[0]), max(a[1], b[1])
    x1, y1 = min(a[2], b[2]), min(a[3], b[3])
    inter = max(0, x1 - x0) * max(0, y1 - y0)
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def greedy_match(boxes_a, boxes_b, min_iou):
    """Pairs (i, j) by descending IoU, each box used once."""
    pairs = sorted(((iou(a, b), i, j) for i, a in enumerate(boxes_a)
                    for j, b in enumerate(boxes_b)), reverse=True)
    used_a, used_b, out = set(), set(), []
    for v, i, j in pairs:
        if v < min_iou:
            break
        if i in used_a or j in used_b:
            continue
        used_a.add(i)
        used_b.add(j)
        out.append((i, j))
    return out


def f1(golden, run_frames):
    if len(golden) != len(run_frames):
        raise Failure("frame counts differ: golden %d, run %d" % (len(golden), len(run_frames)))
    tp = fp = fn = 0
    for g, r in zip(golden, run_frames):
        gb = [box(o) for o in g["objects"]]
        rb = [box(o) for o in r["objects"]]
        m = len(greedy_match(gb, rb, MATCH_IOU))
        tp += m
        fp += len(rb) - m
        fn += len(gb) - m
    score = 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 1.0
    return score, tp, fp, fn


def near(a, b):
    """Same object? Overlapping enough, or centres closer than half a box."""
    if iou(a, b) >= 0.3:
        return True
    size = max(a[2] - a[0], a[3] - a[1], b[2] - b[0], b[3] - b[1])
    dx = (a[0] + a[2] - b[0] - b[2]) / 2
    dy = (a[1] + a[3] - b[1] - b[3]) / 2
    return (dx * dx + dy * dy) ** 0.5 < 0.5 * size


def load_plan(path):
    """faces-720p.plan.txt: frame -> (photo, left, top, width, height)."""
    plan = {}
    with open(path) as f:
        for line in f:
            n, photo, left, top, w, h = (int(x) for x in line.split())
            plan[n] = (photo, left, top, w, h)
    return plan


def identities_from_plan(frames, plan):
    """Which face each detection is, from where it sits in its photo.

    The clip pans and zooms over still photos: mapped back into photo
    pixels, a face keeps its place, so detections that land near each
    other in the same photo are the same face."""
    faces = {}             # photo -> [box in photo pixels]
    out = []
    for n, fr in enumerate(frames):
        if n not in plan:
            raise Failure("frame %d is not in the clip's plan" % n)
        photo, left, top, w, h = plan[n]
        sx, sy = w / fr["width"], h / fr["height"]
        ids = []
        for o in fr["objects"]:
            b = box(o)
            pb = (left + b[0] * sx, top + b[1] * sy, left + b[2] * sx, top + b[3] * sy)
            known = faces.setdefault(photo, [])
            match = next((k for k, f in enumerate(known) if near(f, pb)), None)
            if match is None:
                known.append(pb)
                match = len(known) - 1
            ids.append((photo, match))
        out.append(ids)
    return out


def identities_from_continuity(frames, max_gap=15):
    """Which object each detection is, for videos without ground truth: a
    detection continues the object whose last box (seen up to max_gap frames
    before) is near it, closest first."""
    chains = []            # [last box, last frame]
    out = []
    for n, fr in enumerate(frames):
        boxes = [box(o) for o in fr["objects"]]
        live = [k for k, c in enumerate(chains) if n - c[1] <= max_gap]
        pairs = sorted(((iou(chains[k][0], b), k, j) for k in live
                        for j, b in enumerate(boxes) if near(chains[k][0], b)), reverse=True)
        taken, det = set(), {}
        for _, k, j in pairs:
            if k in taken or j in det:
                continue
            taken.add(k)
            det[j] = k
        ids = []
        for j, b in enumerate(boxes):
            if j not in det:
                chains.append([b, n])
                det[j] = len(chains) - 1
            chains[det[j]][0], chains[det[j]][1] = b, n
            ids.append(det[j])
        out.append(ids)
    return out


def id_switches(frames, identities):
    """Identity errors of the tracker's ids against reference identities.

    A switch: an object's track id changes from one sighting to the next
    (untracked sightings skipped). A reuse: one track id on two objects.
    Returns (switches + reuses, switches, reuses, objects)."""
    last = {}
    objects_of_id = {}
    switches = 0
    for fr, ids in zip(frames, identities):
        for o, ident in zip(fr["objects"], ids):
            tid = o.get("track_id")
            if tid is None:
                continue
            if ident in last and last[ident] != tid:
                switches += 1
            last[ident] = tid
            objects_of_id.setdefault(tid, set()).add(ident)
    reuses = sum(len(v) - 1 for v in objects_of_id.values())
    objects = len({i for ids in identities for i in ids})
    return switches + reuses, switches, reuses, objects


def identity_errors(key, frames):
    if key == "faces":
        plan = load_plan(cache("clips/faces-720p.plan.txt"))
        return id_switches(frames, identities_from_plan(frames, plan))
    return id_switches(frames, identities_from_continuity(frames))


def describe(frames):
    objs = sum(len(f["objects"]) for f in frames)
    ids = {o["track_id"] for f in frames for o in f["objects"] if o.get("track_id") is not None}
    return "%d frames, %d detections, %d track ids" % (len(frames), objs, len(ids))


# --- cases -----------------------------------------------------------------

def case_golden(key):
    video = cache(VIDEOS[key])
    golden_path = need(os.path.join(SOURCE, GOLDEN[key]), "golden file")
    golden = load(golden_path)
    os.makedirs(WORK, exist_ok=True)
    g_err, g_sw, g_tr, g_obj = identity_errors(key, golden)
    print("golden %s: %s; id switches %d (%d changed ids, %d reused ids) over %d objects"
          % (key, describe(golden), g_err, g_sw, g_tr, g_obj))
    failures = []

    # FP32 today against FP32 when the golden was made.
    fp32 = detect_run(video, cache(FP32_MODEL), os.path.join(WORK, key + ".fp32.jsonl"))
    score, tp, fp, fn = f1(golden, fp32)
    print("FP32 vs golden: F1 %.4f (tp %d fp %d fn %d)" % (score, tp, fp, fn))
    if score < F1_MIN_FP32:
        failures.append("FP32 F1 %.4f < %.2f" % (score, F1_MIN_FP32))

    # INT8 twice: it must match the golden and repeat itself byte for byte.
    model = int8_model()
    a = os.path.join(WORK, key + ".int8.a.jsonl")
    b = os.path.join(WORK, key + ".int8.b.jsonl")
    int8 = detect_run(video, model, a)
    detect_run(video, model, b)
    score, tp, fp, fn = f1(golden, int8)
    err, sw, tr, nobj = identity_errors(key, int8)
    print("INT8 (%s): %s" % (os.path.basename(model), describe(int8)))
    print("INT8 vs golden: F1 %.4f (tp %d fp %d fn %d); id switches %d (%d changed, %d reused) "
          "over %d objects, golden %d" % (score, tp, fp, fn, err, sw, tr, nobj, g_err))
    if score < F1_MIN:
        failures.append("INT8 F1 %.4f < %.2f" % (score, F1_MIN))
    if err > g_err:
        failures.append("INT8 id switches %d > golden's %d" % (err, g_err))
    with open(a, "rb") as fa, open(b, "rb") as fb:
        if fa.read() != fb.read():
            failures.append("two INT8 runs differ (%s, %s)" % (a, b))
        else:
            print("INT8 run twice: identical output")
    if failures:
        raise Failure("; ".join(failures))


def damaged_copy(kind, src, dst):
    data = bytearray(open(src, "rb").read())
    if kind == "truncated":
        data = data[: len(data) * 55 // 100]
    else:
        # Deterministic garbage (a linear congruential generator) over 16 KiB
        # at 40% and 4 KiB at 70% of the file: headers, index and frame
        # data of the chunks there are destroyed.
        state = 12345
        for start, size in ((len(data) * 40 // 100, 16384), (len(data) * 70 // 100, 4096)):
            for k in range(start, min(start + size, len(data))):
                state = (state * 1103515245 + 12345) & 0x7FFFFFFF
                data[k] = (state >> 16) & 0xFF
    with open(dst, "wb") as f:
        f.write(data)


def case_bad(kind):
    os.makedirs(WORK, exist_ok=True)
    model = int8_model()
    failures = []
    for key in ("megamind", "faces"):
        src = cache(VIDEOS[key])
        damaged = os.path.join(WORK, "%s.%s.avi" % (key, kind))
        damaged_copy(kind, src, damaged)
        out = os.path.join(WORK, "%s.%s.jsonl" % (key, kind))
        if os.path.exists(out):
            os.unlink(out)
        argv = pipeline(damaged, model, out, "kestreloverlay ! fakesink sync=false")
        try:
            p = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               timeout=BAD_TIMEOUT)
        except subprocess.TimeoutExpired:
            failures.append("%s %s: hung (no end within %d s)" % (kind, key, BAD_TIMEOUT))
            continue
        text = (p.stdout + p.stderr).decode(errors="replace")
        lines = sum(1 for _ in open(out)) if os.path.exists(out) else 0
        if p.returncode < 0:
            failures.append("%s %s: killed by signal %d\n%s" % (kind, key, -p.returncode, text))
        elif p.returncode == 0:
            print("%s %s: recovered, %d frames processed" % (kind, key, lines))
        elif "ERROR" in text:
            first = next((l for l in text.splitlines() if "ERROR" in l), "")
            print("%s %s: ended with an error after %d frames: %s" % (kind, key, lines, first.strip()))
        else:
            failures.append("%s %s: exit %d without an error message\n%s" % (kind, key, p.returncode, text))
        if lines == 0:
            failures.append("%s %s: no frame processed before the damage" % (kind, key))
    if failures:
        raise Failure("; ".join(failures))


def case_make_golden():
    for key in VIDEOS:
        out = os.path.join(SOURCE, GOLDEN[key])
        os.makedirs(os.path.dirname(out), exist_ok=True)
        frames = detect_run(cache(VIDEOS[key]), cache(FP32_MODEL), out)
        err, sw, tr, nobj = identity_errors(key, frames)
        print("%s: %s; id switches %d (%d changed, %d reused) over %d objects"
              % (out, describe(frames), err, sw, tr, nobj))


def case_render(key, out_dir, frames):
    """Frames of the FP32 run drawn by kestreloverlay, as PNG, for review."""
    os.makedirs(out_dir, exist_ok=True)
    tmp = os.path.join(out_dir, "all")
    os.makedirs(tmp, exist_ok=True)
    jsonl = os.path.join(out_dir, key + ".jsonl")
    run(pipeline(cache(VIDEOS[key]), cache(FP32_MODEL), jsonl,
                 "kestreloverlay hud=true ! videoconvert ! videoscale ! "
                 "video/x-raw,format=RGB ! pngenc compression-level=1 ! "
                 "multifilesink location=" + os.path.join(tmp, "%05d.png")), RUN_TIMEOUT)
    for n in frames:
        shutil.copy(os.path.join(tmp, "%05d.png" % n), os.path.join(out_dir, "%s-%05d.png" % (key, n)))
    shutil.rmtree(tmp)


def main(argv):
    try:
        if len(argv) == 3 and argv[1] == "golden" and argv[2] in VIDEOS:
            case_golden(argv[2])
        elif len(argv) == 3 and argv[1] == "bad" and argv[2] in ("truncated", "garbage"):
            case_bad(argv[2])
        elif len(argv) == 2 and argv[1] == "make-golden":
            case_make_golden()
        elif len(argv) >= 4 and argv[1] == "render" and argv[2] in VIDEOS:
            case_render(argv[2], argv[3], [int(x) for x in argv[4:]])
        elif len(argv) == 5 and argv[1] == "metrics" and argv[2] in VIDEOS:
            g, r = load(argv[3]), load(argv[4])
            print("F1 %.4f (tp %d fp %d fn %d)" % f1(g, r))
            print("id switches (total, changed, reused, objects): golden %s, run %s"
                  % (identity_errors(argv[2], g), identity_errors(argv[2], r)))
        else:
            print(__doc__, file=sys.stderr)
            return 2
    except Failure as e:
        print("FAIL: %s" % e)
        return 1
    print("PASS")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
