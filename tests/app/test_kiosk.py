#!/usr/bin/env python3
"""Tests of kestrel-kiosk on the fake V4L2 camera (tests/fakecam), headless and
under Xvfb. One case per run: test_kiosk.py CASE (see CASES at the end).

Environment (set by tests/app/meson.build): KIOSK (the binary), KIOSK_FAKECAM
(libkestrel-fakecam.so), KESTREL_SOURCE_DIR, KESTREL_BUILD_DIR, KESTREL_CACHE.
Exit status 0 = pass; anything else fails with a message saying what was seen.
"""
import json
import os
import re
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time
import zlib

KIOSK = os.environ.get("KIOSK", "")
FAKECAM = os.environ.get("KIOSK_FAKECAM", "")
SOURCE = os.environ.get("KESTREL_SOURCE_DIR", ".")
CACHE = os.environ.get("KESTREL_CACHE", os.path.expanduser("~/.cache/kestrel"))
TMP = tempfile.mkdtemp(prefix="kiosk-test-")


class Failure(Exception):
    pass


def check(cond, message):
    if not cond:
        raise Failure(message)


def kiosk_env(camera=True, **extra):
    env = dict(os.environ)
    for k in ("DISPLAY", "WAYLAND_DISPLAY", "SDL_VIDEODRIVER"):
        env.pop(k, None)
    if camera:
        env["LD_PRELOAD"] = FAKECAM
    env.update({k: str(v) for k, v in extra.items()})
    return env


def run(args, env, timeout=120):
    p = subprocess.run([KIOSK] + args, env=env, capture_output=True, text=True, timeout=timeout)
    return p.returncode, p.stdout, p.stderr


def summary(stdout):
    m = re.search(r"^kestrel-kiosk: summary: (.*)$", stdout, re.M)
    check(m, "no summary line in the output:\n" + stdout[-2000:])
    out = {}
    for item in m.group(1).split(" "):
        if "=" in item:
            k, v = item.split("=", 1)
            try:
                out[k] = float(v)
            except ValueError:
                out[k] = v
    return out


def need_cache(*paths):
    for p in paths:
        check(os.path.exists(os.path.join(CACHE, p)),
              f"{CACHE}/{p} is missing: run scripts/setup.sh first")


# --- cases -------------------------------------------------------------------------


def case_list_cameras():
    """--list-cameras --json shows every fake camera with its configured modes."""
    env = kiosk_env(KESTREL_FAKECAM_DEVICES="0,7",
                    KESTREL_FAKECAM_VIDEO7_FORMATS="YUYV",
                    KESTREL_FAKECAM_VIDEO7_SIZES="640x480,1920x1080",
                    KESTREL_FAKECAM_VIDEO7_FPS="15,30")
    rc, out, err = run(["--list-cameras", "--json"], env)
    check(rc == 0, f"exit {rc}: {err}")
    data = json.loads(out)
    cams = {c["device"]: c for c in data["cameras"]}
    check(set(cams) == {"/dev/video0", "/dev/video7"}, f"cameras: {sorted(cams)}")
    modes0 = {(m["format"], m["width"], m["height"], m["fps"]) for m in cams["/dev/video0"]["modes"]}
    want0 = {(f, w, h, 30) for f in ("MJPG", "YUYV") for (w, h) in ((640, 480), (1280, 720))}
    check(modes0 == want0, f"video0 modes {sorted(modes0)} != {sorted(want0)}")
    modes7 = {(m["format"], m["width"], m["height"], m["fps"]) for m in cams["/dev/video7"]["modes"]}
    want7 = {("YUYV", w, h, r) for (w, h) in ((640, 480), (1920, 1080)) for r in (15, 30)}
    check(modes7 == want7, f"video7 modes {sorted(modes7)} != {sorted(want7)}")
    best0 = cams["/dev/video0"]["best_720p30"]
    check((best0["format"], best0["width"], best0["height"]) == ("MJPG", 1280, 720),
          f"best mode for 720p30 on video0: {best0}")
    ctl = cams["/dev/video0"]["controls"]
    check(ctl["brightness"] and ctl["brightness"]["min"] == -64 and ctl["brightness"]["max"] == 64,
          f"brightness control: {ctl['brightness']}")
    check(ctl["exposure_absolute"] is not None, "no exposure control")
    # The text listing says the same.
    rc, out, err = run(["--list-cameras"], env)
    check(rc == 0 and "/dev/video7" in out and "YUYV 1920x1080@15" in out, out)
    print("list-cameras: 2 cameras, modes and controls as configured")


def case_headless_faces():
    """Headless on the fake camera (MJPEG 1280x720 30 fps): faces found, snapshots written."""
    need_cache("photos/sample1.jpg")
    snaps = os.path.join(TMP, "snaps")
    rc, out, err = run(["--headless", "--frames", "60", "--snapshot-every", "30",
                        "--snapshot-dir", snaps], kiosk_env())
    check(rc == 0, f"exit {rc}: {err}")
    check("MJPG 1280x720@30" in out, "camera mode not MJPG 1280x720@30:\n" + out)
    s = summary(out)
    print("summary:", s)
    check(s["frames"] == 60, f"frames {s['frames']}")
    check(s["objects"] > 0, "no faces found")
    check(s["inferences"] > 0 and s["inference-ms"] > 0, "no inferences counted")
    check(s["fps"] > 15, f"fps {s['fps']} on a 30 fps camera")
    files = sorted(os.listdir(snaps))
    check(files == ["kiosk-00000030.jpg", "kiosk-00000060.jpg"], f"snapshots: {files}")
    for f in files:
        data = open(os.path.join(snaps, f), "rb").read()
        check(data[:2] == b"\xff\xd8" and data[-2:] == b"\xff\xd9" and len(data) > 20000,
              f"{f} is not a whole JPEG ({len(data)} bytes)")


def case_yuyv():
    """A YUYV camera goes through without a JPEG decode (YUY2 all the way)."""
    rc, out, err = run(["--headless", "--frames", "30", "--format", "yuyv"],
                       kiosk_env())
    check(rc == 0, f"exit {rc}: {err[-2000:]}")
    check("YUYV 1280x720@30" in out, out)
    check(summary(out)["frames"] == 30, out)


def case_reconnect():
    """Unplug every 45 frames, replug 1 s later: each recovery within 2 s,
    no descriptor leaked, no memory growth."""
    replug = 1.0
    rc, out, err = run(["--headless", "--duration", "16"],
                       kiosk_env(KESTREL_FAKECAM_UNPLUG_AFTER=45,
                                 KESTREL_FAKECAM_REPLUG_AFTER=replug), timeout=60)
    check(rc == 0, f"exit {rc}: {err}")
    back = re.findall(r"camera back: first frame ([\d.]+) s after the loss \(reconnect (\d+), "
                      r"fds (-?\d+), rss (-?\d+) kB\)", err)
    lost = err.count("camera lost")
    print(f"{lost} losses, {len(back)} recoveries")
    for t, n, fds, rss in back:
        print(f"  reconnect {n}: {float(t):.2f} s after the loss, fds {fds}, rss {rss} kB")
    check(len(back) >= 4, "fewer than 4 recoveries in 16 s:\n" + err)
    for t, n, fds, rss in back:
        check(float(t) - replug < 2.0,
              f"reconnect {n}: {float(t) - replug:.2f} s after the camera came back")
    fds = [int(b[2]) for b in back]
    check(len(set(fds)) == 1, f"descriptors grow across reconnects: {fds}")
    rss = [int(b[3]) for b in back]
    # After the first cycle (allocator warm-up), RSS stays flat within noise.
    check(rss[-1] - rss[1] < 8 * 1024, f"RSS grows across reconnects: {rss} kB")
    s = summary(out)
    check(s["reconnects"] >= 4 and s["objects"] > 0, str(s))


def write(name, text):
    path = os.path.join(TMP, name)
    with open(path, "w") as f:
        f.write(text)
    return path


def case_config():
    """Config errors name the file, line and key; flags override the file;
    the shipped default config is the built-in one."""
    env = kiosk_env(camera=False)
    shipped = os.path.join(SOURCE, "assets", "kiosk", "kestrel-kiosk.conf")
    rc, from_file, err = run(["--config", shipped, "--print-config"], env)
    check(rc == 0, f"shipped config: {err}")
    rc, builtin, err = run(["--print-config"], dict(env, XDG_CONFIG_HOME=TMP))
    check(rc == 0 and from_file == builtin,
          "assets/kiosk/kestrel-kiosk.conf differs from the built-in defaults")

    good = write("good.conf", "[source]\nfps = 15\n\n[display]\nmode = none\n")
    rc, out, err = run(["--config", good, "--print-config"], env)
    check(rc == 0 and re.search(r"^fps = 15$", out, re.M) and re.search(r"^mode = none$", out, re.M),
          out + err)
    rc, out, err = run(["--config", good, "--fps", "25", "--print-config"], env)
    check(rc == 0 and re.search(r"^fps = 25$", out, re.M), "flag did not override the file")
    rc, out, err = run(["--config", good, "--set", "model.threshold=0.7", "--print-config"], env)
    check(rc == 0 and re.search(r"^threshold = 0.7$", out, re.M), "--set did not apply")

    bad = [
        ("[source]\nwidth = 1280\nfps = fast\n", 3, "fps", "not a whole number"),
        ("# comment\n[display]\nmode = sideways\n", 3, "mode", "not one of"),
        ("[source]\n\n\nframerate = 30\n", 4, "framerate", "unknown key"),
        ("[run]\nframes 100\n", 2, None, "not a key = value line"),
        ("[model]\nthreshold = 1.5\n", 2, "threshold", "out of range"),
        ("[camera]\nexposure = bright\n", 2, "exposure", "neither auto nor a whole number"),
        ("[display]\nhud = maybe\n", 2, "hud", "not true or false"),
    ]
    for i, (text, line, key, why) in enumerate(bad):
        path = write(f"bad{i}.conf", text)
        rc, out, err = run(["--config", path, "--print-config"], env)
        check(rc == 2, f"bad{i}.conf: exit {rc}, stderr {err!r}")
        check(f"{path}:{line}:" in err, f"bad{i}.conf: line {line} not named: {err!r}")
        if key:
            check(key in err, f"bad{i}.conf: key {key} not named: {err!r}")
        check(why in err, f"bad{i}.conf: reason '{why}' missing: {err!r}")
        print(f"bad{i}.conf ->", err.strip())
    rc, out, err = run(["--fps", "0", "--print-config"], env)
    check(rc == 2 and "--fps" in err and "fps" in err, f"bad flag: {err!r}")


def case_sigterm():
    """Started headless without limits: says where to look, prints status
    lines, and SIGTERM stops it cleanly (exit 0, summary, whole files)."""
    snaps = os.path.join(TMP, "latest")
    env = kiosk_env()
    p = subprocess.Popen([KIOSK, "--snapshot-dir", snaps, "--status-every", "1"], env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines = []
    deadline = time.time() + 30
    while time.time() < deadline:
        line = p.stdout.readline()
        if not line:
            break
        lines.append(line)
        if re.search(r"running\s+frames [1-9]", line) and len(
                [l for l in lines if "running" in l]) >= 2:
            break
    text = "".join(lines)
    check(f"{snaps}/latest.jpg" in text, "no hint where to look:\n" + text)
    check("running" in text, "no status lines:\n" + text)
    t0 = time.time()
    p.send_signal(signal.SIGTERM)
    out, err = p.communicate(timeout=15)
    took = time.time() - t0
    print(text + out)
    check(p.returncode == 0, f"exit {p.returncode} after SIGTERM: {err}")
    check(took < 5, f"took {took:.1f} s to stop")
    check("stopping (SIGTERM)" in out, "no stop message")
    s = summary(out)
    check(s["frames"] > 0, str(s))
    data = open(os.path.join(snaps, "latest.jpg"), "rb").read()
    check(data[:2] == b"\xff\xd8" and data[-2:] == b"\xff\xd9", "latest.jpg is not whole")
    leftovers = [f for f in os.listdir(snaps) if ".tmp" in f]
    check(not leftovers, f"temporary files left: {leftovers}")


def case_model_failure():
    """A model that does not load: a clear message, and the video goes on."""
    broken = write("broken.kestrel", "this is not a model\n")
    rc, out, err = run(["--headless", "--frames", "30", "--model", broken], kiosk_env())
    check(rc == 0, f"exit {rc}: {err}")
    check("failed to load" in err and "broken.kestrel" in err, "no model message:\n" + err)
    s = summary(out)
    check(s["frames"] == 30 and s["model"] == "none", str(s))


def case_default_clip():
    """No camera, no source: the default clip plays (in a loop) and has faces."""
    need_cache("clips/faces-720p.avi")
    rc, out, err = run(["--headless", "--frames", "30"], kiosk_env(camera=False))
    check(rc == 0, f"exit {rc}: {err}")
    s = summary(out)
    check(str(s["source"]).endswith("clips/faces-720p.avi"), f"source {s['source']}")
    check(s["objects"] > 0, "no faces in the default clip")


# --- the display test: PNG reading and pixel checks ----------------------------------


def read_png_rgb(path):
    data = open(path, "rb").read()
    check(data[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG")
    pos, idat, w = 8, b"", 0
    while pos < len(data):
        n, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + n]
        if kind == b"IHDR":
            w, h, depth, ctype = struct.unpack(">IIBB", body[:10])
            check(depth == 8 and ctype == 2, "expected 8-bit RGB")
        elif kind == b"IDAT":
            idat += body
        pos += 12 + n
    raw = zlib.decompress(idat)
    stride = w * 3
    rows, prev = [], bytearray(stride)
    for y in range(h):
        f = raw[y * (stride + 1)]
        line = bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for x in range(stride):
            a = line[x - 3] if x >= 3 else 0
            b = prev[x]
            c = prev[x - 3] if x >= 3 else 0
            if f == 1:
                line[x] = (line[x] + a) & 255
            elif f == 2:
                line[x] = (line[x] + b) & 255
            elif f == 3:
                line[x] = (line[x] + (a + b) // 2) & 255
            elif f == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[x] = (line[x] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        rows.append(bytes(line))
        prev = line
    return w, h, rows


def pixel(rows, x, y):
    r = rows[y]
    return r[3 * x], r[3 * x + 1], r[3 * x + 2]


PALETTE = [(255, 64, 64), (64, 220, 64), (64, 128, 255), (255, 200, 0),
           (255, 64, 255), (0, 230, 230), (255, 140, 0), (160, 96, 255)]


def box_colour_fraction(rows, w, h, x0, y0, x1, y1):
    """Share of the pixels along a rectangle's outline (within 3 px) that are
    close to one of kestreloverlay's box colours."""
    hits = total = 0

    def near(px):
        return any(sum(abs(a - b) for a, b in zip(px, c)) < 90 for c in PALETTE)

    def best_on_line(points):
        # the box line is 2 px wide; take the best of a few offsets across it
        nonlocal hits, total
        for pts in points:
            total += 1
            if any(near(pixel(rows, min(max(x, 0), w - 1), min(max(y, 0), h - 1))) for x, y in pts):
                hits += 1

    step = 4
    best_on_line([[(x, y0 + d) for d in range(-3, 4)] for x in range(x0 + 6, x1 - 6, step)])
    best_on_line([[(x, y1 + d) for d in range(-3, 4)] for x in range(x0 + 6, x1 - 6, step)])
    best_on_line([[(x0 + d, y) for d in range(-3, 4)] for y in range(y0 + 6, y1 - 6, step)])
    best_on_line([[(x1 + d, y) for d in range(-3, 4)] for y in range(y0 + 6, y1 - 6, step)])
    return hits / max(total, 1)


def case_display():
    """Under Xvfb: run 45 frames in a window, screenshot before present; the
    boxes are drawn where the detections are and the HUD is there."""
    xvfb = shutil.which("xvfb-run")
    check(xvfb, "xvfb-run is missing (Debian xvfb)")
    shot = os.path.join(TMP, "kiosk.png")
    env = kiosk_env(SDL_RENDER_DRIVER="software")
    p = subprocess.run([xvfb, "-a", "-s", "-screen 0 1280x720x24", KIOSK, "--window",
                        "--frames", "45", "--screenshot", shot], env=env, capture_output=True,
                       text=True, timeout=120)
    check(p.returncode == 0, f"exit {p.returncode}: {p.stderr}")
    check("-> x11" in p.stdout, "not on the X11 display:\n" + p.stdout)
    info = json.load(open(shot + ".json"))
    w, h, rows = read_png_rgb(shot)
    check([w, h] == info["window"], f"screenshot {w}x{h}, window {info['window']}")
    vx, vy, vw, vh = info["video_rect"]
    fw, fh = info["frame"]
    objects = info["objects"]
    check(objects, "no detections on the last frame")
    sx, sy = vw / fw, vh / fh
    for o in objects:
        x0, y0 = int(vx + o["x"] * sx), int(vy + o["y"] * sy)
        x1, y1 = int(vx + (o["x"] + o["width"]) * sx), int(vy + (o["y"] + o["height"]) * sy)
        on = box_colour_fraction(rows, w, h, x0, y0, x1, y1)
        # The same outline moved into the box's inside: mostly face, not box.
        dx, dy = (x1 - x0) // 4, (y1 - y0) // 4
        off = box_colour_fraction(rows, w, h, x0 + dx, y0 + dy, x1 - dx, y1 - dy)
        print(f"box {o}: {on:.0%} of the outline in a box colour, {off:.0%} inside")
        check(on > 0.8, f"box at {x0},{y0}-{x1},{y1} not drawn ({on:.0%})")
        check(off < 0.5, f"inside of box at {x0},{y0} looks like a box outline ({off:.0%})")
    # HUD: a dark band with light text at the top left.
    hx, hy, hw, hh = info["hud_rect"]
    check(hw > 200 and hh > 20, f"HUD rect {info['hud_rect']}")
    dark = light = 0
    for y in range(hy + 2, hy + hh - 2):
        for x in range(hx + 2, hx + hw - 2, 2):
            r, g, b = pixel(rows, x, y)
            lum = (r * 299 + g * 587 + b * 114) // 1000
            dark += lum < 70
            light += lum > 200
    n = dark + light
    print(f"HUD: {dark} dark, {light} light pixels")
    check(dark > 0.6 * (hh - 4) * (hw - 4) / 2, "HUD background missing")
    check(light > 300, "HUD text missing")
    out = os.environ.get("KIOSK_SCREENSHOT_OUT")
    if out:
        shutil.copyfile(shot, out)


def case_screens():
    """The "camera lost" screen (camera absent) and the model-failure line, on
    SDL's offscreen driver: a dark box with text in the middle; a red bar."""
    gone = os.path.join(TMP, "camera-gone")
    open(gone, "w").close()
    shot = os.path.join(TMP, "lost.png")
    env = kiosk_env(SDL_VIDEODRIVER="offscreen", SDL_RENDER_DRIVER="software",
                    KESTREL_FAKECAM_UNPLUG_FILE=gone)
    rc, out, err = run(["--window", "--source", "/dev/video0", "--duration", "1.5",
                        "--screenshot", shot], env)
    check(rc == 0 and "camera lost" in err, f"exit {rc}: {err}")
    w, h, rows = read_png_rgb(shot)
    light = sum(1 for y in range(h * 2 // 5, h * 3 // 5) for x in range(w // 4, w * 3 // 4, 2)
                if min(pixel(rows, x, y)) > 200)
    print(f"camera lost: {light} light pixels in the middle")
    check(light > 1000, "no 'camera lost' message in the middle of the screen")

    broken = write("broken.kestrel", "not a model\n")
    shot = os.path.join(TMP, "nomodel.png")
    rc, out, err = run(["--window", "--frames", "10", "--model", broken, "--screenshot", shot],
                       kiosk_env(SDL_VIDEODRIVER="offscreen", SDL_RENDER_DRIVER="software"))
    check(rc == 0, f"exit {rc}: {err}")
    w, h, rows = read_png_rgb(shot)
    red = sum(1 for x in range(0, w, 4)
              if (lambda p: p[0] > 120 and p[1] < 60 and p[2] < 60)(pixel(rows, x, h - 3)))
    print(f"model failure: {red} of {w // 4} bottom-line samples red")
    check(red > 0.8 * (w // 4), "no red model-failure line at the bottom")


CASES = {
    "list-cameras": case_list_cameras,
    "headless-faces": case_headless_faces,
    "yuyv": case_yuyv,
    "reconnect": case_reconnect,
    "config": case_config,
    "sigterm": case_sigterm,
    "model-failure": case_model_failure,
    "default-clip": case_default_clip,
    "display": case_display,
    "screens": case_screens,
}


def main():
    if len(sys.argv) != 2 or sys.argv[1] not in CASES:
        print("usage: test_kiosk.py " + "|".join(CASES), file=sys.stderr)
        return 2
    check(os.access(KIOSK, os.X_OK), f"KIOSK={KIOSK!r} is not a program")
    check(os.path.exists(FAKECAM), f"KIOSK_FAKECAM={FAKECAM!r} is missing")
    try:
        CASES[sys.argv[1]]()
    except Failure as e:
        print("FAIL:", e, file=sys.stderr)
        return 1
    finally:
        shutil.rmtree(TMP, ignore_errors=True)
    print("PASS")
    return 0


if __name__ == "__main__":
    sys.exit(main())
