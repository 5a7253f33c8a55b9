#!/usr/bin/env python3
"""Network output tests (issue 7), one case per run: python3 test_network.py CASE.

Real clients on loopback against net-harness (app/net_*.c on a small
pipeline) and kestrelmetapublish: raw sockets and http.client for HTTP,
GStreamer's rtspsrc and souphttpsrc for RTSP and MJPEG decoding."""
import hashlib
import http.client
import http.server
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse

HARNESS = os.environ.get("NET_HARNESS", "")
SOURCE = os.environ.get("KESTREL_SOURCE_DIR", "")
CACHE = os.environ.get("KESTREL_CACHE", os.path.expanduser("~/.cache/kestrel"))
TOKEN = "test-token-0123456789+/abcdef="
CLIP = os.path.join(CACHE, "clips", "faces-720p.avi")
MODEL = os.path.join(CACHE, "models", "face_detection_full_range.tflite")


class Fail(Exception):
    pass


def check(cond, what):
    if not cond:
        raise Fail(what)


def need(path):
    # Cache data comes from scripts/setup.sh; its absence is a failure, not a skip.
    check(os.path.exists(path), f"missing {path} (run scripts/setup.sh)")


class Harness:
    def __init__(self, *args, expect_fail=False):
        check(HARNESS and os.path.exists(HARNESS), "NET_HARNESS is not set to the built net-harness")
        self.proc = subprocess.Popen([HARNESS, *args], stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True)
        self.http = self.rtsp = None
        self.final = ""
        if expect_fail:
            return
        deadline = time.time() + 10
        want_http = "--http" in args
        want_rtsp = "--rtsp" in args
        while time.time() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                raise Fail("net-harness ended early: " + self.proc.stderr.read())
            if line.startswith("http-port"):
                self.http = int(line.split()[1])
            if line.startswith("rtsp-port"):
                self.rtsp = int(line.split()[1])
            if (self.http or not want_http) and (self.rtsp or not want_rtsp):
                return
        raise Fail("net-harness did not report its ports")

    def stop(self, wait=0):
        if wait:
            try:
                self.proc.wait(timeout=wait)
            except subprocess.TimeoutExpired:
                pass
        if self.proc.poll() is None:
            self.proc.terminate()
        try:
            out, err = self.proc.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            out, err = self.proc.communicate()
            raise Fail("net-harness did not stop within 15 s of SIGTERM")
        self.final = out
        return out, err

    def fps(self):
        m = re.search(r"frames (\d+) seconds ([\d.]+) fps ([\d.]+)", self.final)
        check(m, "net-harness printed no frame count: " + self.final)
        return float(m.group(3))

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def get(port, path, headers=None, method="GET", body=None, timeout=5):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    c.request(method, path, body=body, headers=headers or {})
    r = c.getresponse()
    data = r.read()
    c.close()
    return r, data


def raw(port, payload, timeout=5):
    """Sends raw bytes, returns the status code of the answer (or None)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        s.sendall(payload)
        buf = b""
        while b"\r\n" not in buf:
            chunk = s.recv(4096)
            if not chunk:
                break
            buf += chunk
    finally:
        s.close()
    m = re.match(rb"HTTP/1\.[01] (\d{3})", buf)
    return int(m.group(1)) if m else None


# --- MJPEG ------------------------------------------------------------------------

class MjpegReader:
    """Reads multipart/x-mixed-replace parts from a raw socket (chunked)."""

    def __init__(self, port, path="/stream.mjpg", headers=b"", rcvbuf=None):
        self.s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf:
            self.s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.s.settimeout(5)
        self.s.connect(("127.0.0.1", port))
        self.s.sendall(b"GET " + path.encode() + b" HTTP/1.1\r\nHost: x\r\n" + headers + b"\r\n")
        self.buf = b""
        while b"\r\n\r\n" not in self.buf:
            self._more()
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        self.head = head.decode("latin-1")
        self.status = int(self.head.split()[1])
        self.chunked = "transfer-encoding: chunked" in self.head.lower()
        self.body = b""

    def _more(self):
        d = self.s.recv(262144)
        if not d:
            raise Fail("stream closed")
        self.buf += d

    def _fill(self, n):
        # De-chunk into self.body until it holds n bytes.
        while len(self.body) < n:
            if not self.chunked:
                self._more()
                self.body += self.buf
                self.buf = b""
                continue
            while b"\r\n" not in self.buf:
                self._more()
            size_line, rest = self.buf.split(b"\r\n", 1)
            size = int(size_line.split(b";")[0], 16)
            while len(rest) < size + 2:
                self._more()
                rest = self.buf.split(b"\r\n", 1)[1]
            self.body += rest[:size]
            self.buf = rest[size + 2:]

    def part(self):
        self._fill(1)
        while b"\r\n\r\n" not in self.body:
            self._fill(len(self.body) + 1)
        head, rest = self.body.split(b"\r\n\r\n", 1)
        check(head.startswith(b"--kestrelframe"), f"part does not start with the boundary: {head[:40]!r}")
        m = re.search(rb"Content-Length: (\d+)", head)
        check(m and b"Content-Type: image/jpeg" in head, f"bad part headers {head!r}")
        n = int(m.group(1))
        self.body = rest
        self._fill(n + 2)
        jpeg, self.body = self.body[:n], self.body[n + 2:]
        return jpeg

    def close(self):
        self.s.close()


def jpeg_size(data):
    """Checks SOI/EOI and returns (width, height) from the SOF marker."""
    check(data[:2] == b"\xff\xd8", "JPEG does not start with SOI")
    check(data[-2:] == b"\xff\xd9", "JPEG does not end with EOI")
    i = 2
    while i + 4 < len(data):
        check(data[i] == 0xFF, f"JPEG marker expected at {i}")
        marker = data[i + 1]
        length = int.from_bytes(data[i + 2:i + 4], "big")
        if marker in (0xC0, 0xC1, 0xC2):
            h = int.from_bytes(data[i + 5:i + 7], "big")
            w = int.from_bytes(data[i + 7:i + 9], "big")
            return w, h
        i += 2 + length
    raise Fail("JPEG has no SOF marker")


def case_http_mjpeg():
    with Harness("--http", "127.0.0.1:0", "--mjpeg-width", "320", "--quality", "60") as h:
        r = MjpegReader(h.http)
        check(r.status == 200, f"status {r.status}")
        check("multipart/x-mixed-replace; boundary=kestrelframe" in r.head, r.head)
        digests = set()
        t0 = time.time()
        for _ in range(30):
            jpeg = jpeg_size_and = r.part()
            w, hh = jpeg_size(jpeg)
            check((w, hh) == (320, 180), f"JPEG is {w}x{hh}, want 320x180 (640x360 scaled)")
            digests.add(hashlib.sha1(jpeg_size_and).hexdigest())
        rate = 29 / (time.time() - t0)
        r.close()
        check(len(digests) >= 25, f"only {len(digests)} different pictures in 30 parts")
        check(rate > 20, f"{rate:.1f} parts/s, want about 30")
        # A real decoder: GStreamer's souphttpsrc + multipartdemux + jpegdec.
        out = subprocess.run(
            ["gst-launch-1.0", "-q", "souphttpsrc", f"location=http://127.0.0.1:{h.http}/stream.mjpg",
             "is-live=true", "!", "multipartdemux", "!", "jpegdec", "!", "videoconvert", "!",
             "fakesink", "num-buffers=20"], capture_output=True, text=True, timeout=30)
        check(out.returncode == 0, "gst-launch could not decode the stream: " + out.stderr[-500:])
        h.stop()
    print(f"ok: 30 parts 320x180, {len(digests)} distinct, {rate:.1f}/s; 20 decoded by jpegdec")


# --- SSE --------------------------------------------------------------------------

def read_events(port, n, path="/events", timeout=20):
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    s.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    buf = b""
    events = []
    deadline = time.time() + timeout
    while len(events) < n and time.time() < deadline:
        d = s.recv(65536)
        if not d:
            break
        buf += d
        for line in re.findall(rb"data: (\{.*?\})\n\n", buf):
            pass
        events = re.findall(rb"(?m)^data: (.*)$", buf)
    s.close()
    head = buf.split(b"\r\n\r\n", 1)[0].decode("latin-1")
    return head, [json.loads(e) for e in events[:n]]


def case_http_events():
    need(CLIP)
    need(MODEL)
    with Harness("--http", "127.0.0.1:0", "--source", CLIP, "--model", MODEL) as h:
        head, events = read_events(h.http, 12)
        h.stop()
    check("text/event-stream" in head, head)
    check(len(events) == 12, f"{len(events)} events")
    frames = [e["frame"] for e in events]
    check(frames == sorted(frames) and len(set(frames)) == len(frames), f"frames {frames}")
    labels = set()
    for e in events:
        check(e["version"] == 1, "schema version")
        for key in ("frame", "timestamp", "width", "height", "objects", "classifications"):
            check(key in e, f"missing {key}")
        check((e["width"], e["height"]) == (1280, 720), "frame size")
        for o in e["objects"]:
            for key in ("label", "label_id", "confidence", "box", "box_normalized", "track_id",
                        "stale", "keypoints", "classifications"):
                check(key in o, f"object missing {key}")
            labels.add(o["label"])
    check(labels == {"face"}, f"labels {labels}: the clip shows faces")
    n = sum(len(e["objects"]) for e in events)
    print(f"ok: 12 events, schema 1, {n} faces")


# --- metrics ----------------------------------------------------------------------

METRIC = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\]|\\.)*"'
                    r'(?:,[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\]|\\.)*")*)?\})? (\S+)$')


def parse_prometheus(text):
    """Strict enough: every sample line parses, every family has a TYPE first."""
    types = {}
    samples = []
    for line in text.splitlines():
        if not line:
            continue
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ", 3)
            check(kind in ("counter", "gauge", "histogram", "summary", "untyped"), line)
            types[name] = kind
            continue
        if line.startswith("#"):
            check(line.startswith("# HELP "), f"bad comment {line!r}")
            continue
        m = METRIC.match(line)
        check(m, f"not a Prometheus sample line: {line!r}")
        name = m.group(1)
        family = re.sub(r"_(bucket|sum|count)$", "", name)
        check(name in types or family in types, f"{name} has no TYPE line before it")
        labels = dict(re.findall(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"', m.group(3) or ""))
        samples.append((name, labels, float(m.group(4))))
    return types, samples


def case_http_metrics():
    need(CLIP)
    need(MODEL)
    with Harness("--http", "127.0.0.1:0", "--source", CLIP, "--model", MODEL) as h:
        time.sleep(3)
        r, data = get(h.http, "/metrics")
        h.stop()
    check(r.status == 200, f"status {r.status}")
    check(r.getheader("Content-Type").startswith("text/plain; version=0.0.4"), "content type")
    types, samples = parse_prometheus(data.decode())
    names = {s[0] for s in samples}
    for want in ("kestrel_fps", "kestrel_uptime_seconds", "kestrel_frames_total",
                 "kestrel_frames_dropped_total", "kestrel_inferences_total",
                 "kestrel_inferences_dropped_total", "kestrel_inference_latency_seconds_bucket",
                 "kestrel_inference_latency_seconds_sum", "kestrel_inference_latency_seconds_count",
                 "kestrel_objects", "kestrel_objects_total", "kestrel_model_info",
                 "kestrel_camera_state"):
        check(want in names, f"no {want}")
    check(all(n.startswith("kestrel_") for n in names), "a metric without the kestrel_ prefix")
    check(types["kestrel_inference_latency_seconds"] == "histogram", "histogram type")
    buckets = [(s[1]["le"], s[2]) for s in samples if s[0] == "kestrel_inference_latency_seconds_bucket"]
    values = [v for _, v in buckets]
    check(values == sorted(values), "histogram buckets are not cumulative")
    check(buckets[-1][0] == "+Inf", "no +Inf bucket")
    count = [s[2] for s in samples if s[0] == "kestrel_inference_latency_seconds_count"][0]
    check(count == values[-1] and count > 0, f"+Inf bucket {values[-1]} vs count {count}")
    fps = [s[2] for s in samples if s[0] == "kestrel_fps"][0]
    check(fps > 0, "fps is 0 while playing")
    info = [s[1] for s in samples if s[0] == "kestrel_model_info"][0]
    sha = hashlib.sha256(open(MODEL, "rb").read()).hexdigest()
    check(info["sha256"] == sha and info["name"] == os.path.basename(MODEL), f"model info {info}")
    faces = [s[2] for s in samples if s[0] == "kestrel_objects_total" and s[1].get("label") == "face"]
    check(faces and faces[0] > 0, "no faces counted")
    state = {s[1]["state"]: s[2] for s in samples if s[0] == "kestrel_camera_state"}
    check(state.get("running") == 1, f"camera state {state}")
    print(f"ok: {len(samples)} samples, fps {fps:.1f}, {int(count)} inferences, faces {faces[0]:.0f}")


# --- page, auth, limits -----------------------------------------------------------

def case_http_page():
    with Harness("--http", "127.0.0.1:0") as h:
        r, page = get(h.http, "/")
        check(r.status == 200 and r.getheader("Content-Type").startswith("text/html"), "page")
        check(b"stream.mjpg" in page or b"app.js" in page, "the page does not load the stream")
        for path, kind in (("/app.js", "text/javascript"), ("/style.css", "text/css")):
            r, body = get(h.http, path)
            check(r.status == 200 and r.getheader("Content-Type").startswith(kind) and body, path)
        r, _ = get(h.http, "/../../etc/passwd")
        check(r.status == 404, f"traversal answered {r.status}")
        r, _ = get(h.http, "/assets/web/index.html")
        check(r.status == 404, "files outside the list are served")
        h.stop()
    print("ok: page, script, style; others 404")


def case_http_auth():
    # Default: loopback, no token, open.
    with Harness("--http", "127.0.0.1:0") as h:
        r, _ = get(h.http, "/metrics")
        check(r.status == 200, f"open loopback answered {r.status}")
        h.stop()
    with Harness("--http", "127.0.0.1:0", "--token", TOKEN) as h:
        r, _ = get(h.http, "/metrics")
        check(r.status == 401, f"no token: {r.status}")
        check(r.getheader("WWW-Authenticate", "").startswith("Bearer"), "no WWW-Authenticate")
        r, _ = get(h.http, "/metrics", {"Authorization": "Bearer wrong-token-0123456789"})
        check(r.status == 401, f"wrong token: {r.status}")
        r, _ = get(h.http, "/metrics?token=" + TOKEN[:-1])
        check(r.status == 401, f"prefix of the token: {r.status}")
        r, _ = get(h.http, "/metrics", {"Authorization": "Bearer " + TOKEN})
        check(r.status == 200, f"Bearer: {r.status}")
        r, _ = get(h.http, "/metrics?token=" + urllib.parse.quote(TOKEN, safe=""))
        check(r.status == 200, f"?token=: {r.status}")
        r, _ = get(h.http, "/nothing-here", {"Authorization": "Bearer " + TOKEN})
        check(r.status == 404, f"unknown path: {r.status}")
        r, _ = get(h.http, "/nothing-here")
        check(r.status == 401, f"unknown path without token: {r.status} (must not reveal paths)")
        # The page opened with ?token= hands the browser a strict cookie.
        r, _ = get(h.http, "/?token=" + urllib.parse.quote(TOKEN, safe=""))
        cookie = r.getheader("Set-Cookie", "")
        check(r.status == 200 and "HttpOnly" in cookie and "SameSite=Strict" in cookie, cookie)
        r, _ = get(h.http, "/metrics", {"Cookie": cookie.split(";")[0]})
        check(r.status == 200, f"cookie: {r.status}")
        r, _ = get(h.http, "/metrics", {"Cookie": "kestrel_token=nope-0123456789abcdef"})
        check(r.status == 401, f"wrong cookie: {r.status}")
        m = MjpegReader(h.http, "/stream.mjpg?token=" + urllib.parse.quote(TOKEN, safe=""))
        check(m.status == 200, "stream with ?token=")
        jpeg_size(m.part())
        m.close()
        h.stop()
    # Any other address: a token is required to start at all.
    with Harness("--http", "0.0.0.0:0", expect_fail=True) as h:
        out, err = h.stop(wait=10)
        check(h.proc.returncode != 0 and "token" in err, f"0.0.0.0 without token started: {err}")
    with Harness("--http", "0.0.0.0:0", "--token", "short", expect_fail=True) as h:
        out, err = h.stop(wait=10)
        check(h.proc.returncode != 0 and "16" in err, f"short token accepted: {err}")
    with Harness("--http", "0.0.0.0:0", "--token", TOKEN) as h:
        r, _ = get(h.http, "/healthz")
        check(r.status == 401, f"0.0.0.0 with token, none given: {r.status}")
        r, _ = get(h.http, "/healthz", {"Authorization": "Bearer " + TOKEN})
        check(r.status == 200, f"0.0.0.0 with token: {r.status}")
        h.stop()
    print("ok: open on loopback; 401 without/with wrong token; Bearer and ?token=; 404; "
          "0.0.0.0 needs a token of 16+ characters")


def case_http_limits():
    with Harness("--http", "127.0.0.1:0") as h:
        p = h.http
        r, _ = get(p, "/metrics", method="POST", body=b"x" * 100)
        check(r.status == 413, f"POST with a body: {r.status}")
        # A huge announced body is refused from the headers alone.
        st = raw(p, b"POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000000\r\n\r\n")
        check(st == 413, f"1 GB Content-Length: {st}")
        st = raw(p, b"GET /metrics HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n")
        check(st == 413, f"chunked request body: {st}")
        r, _ = get(p, "/metrics", method="PUT")
        check(r.status == 405, f"PUT: {r.status}")
        st = raw(p, b"THIS IS NOT HTTP\r\n\r\n")
        check(st == 400, f"garbage request line: {st}")
        for bad in (b"GET /metrics HTTP/1.1\r\nNoColonHere\r\n\r\n",
                    b"GET /metrics HTTP/1.1\r\n\r\n",  # HTTP/1.1 without Host
                    b"GET metrics HTTP/1.1\r\nHost: x\r\n\r\n",
                    b"GET /%zz HTTP/1.1\r\nHost: x\r\n\r\n",
                    b"GET /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n"):
            st = raw(p, bad)
            check(st == 400, f"malformed request {bad!r}: {st}")
        st = raw(p, b"GET /" + b"a" * 5000 + b" HTTP/1.1\r\nHost: x\r\n\r\n")
        check(st in (414, 400), f"5000-byte URI: {st}")
        st = raw(p, b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Big: " + b"b" * 20000 + b"\r\n\r\n")
        check(st in (431, 400, 413), f"20 KB header: {st}")
        r, _ = get(p, "/healthz")
        check(r.status == 200, "server unhealthy after the bad requests")
        h.stop()
    print("ok: 413 bodies, 405 methods, 400 malformed, 414 long URI, big headers refused")


def case_http_client_cap():
    with Harness("--http", "127.0.0.1:0", "--max-clients", "3") as h:
        streams = [MjpegReader(h.http) for _ in range(3)]
        for s in streams:
            check(s.status == 200, "stream within the cap refused")
            s.part()
        r, _ = get(h.http, "/metrics")
        check(r.status == 503, f"4th client: {r.status}, want 503")
        streams.pop().close()
        time.sleep(0.3)
        r, body = get(h.http, "/metrics")
        check(r.status == 200, f"after one left: {r.status}")
        check(b'kestrel_http_clients{endpoint="mjpeg"} 2' in body, "client gauge")
        for s in streams:
            s.part()  # the others never noticed
            s.close()
        h.stop()
    print("ok: 3 allowed, 4th 503, slot freed on close")


def case_http_slow_client():
    with Harness("--http", "127.0.0.1:0", "--mjpeg-width", "640", "--quality", "90") as h:
        # A client that connects and never reads, with a tiny receive buffer.
        slow = MjpegReader(h.http, rcvbuf=4096)
        good = MjpegReader(h.http)
        good.part()
        t0 = time.time()
        n = 0
        while time.time() - t0 < 4:
            good.part()
            n += 1
        rate = n / (time.time() - t0)
        r, body = get(h.http, "/metrics")
        _, samples = parse_prometheus(body.decode())
        dropped = [s[2] for s in samples if s[0] == "kestrel_frames_dropped_total"
                   and s[1]["stage"] == "mjpeg_client"][0]
        slow.close()
        good.close()
        h.stop()
        fps = h.fps()
    check(rate >= 0.9 * 30, f"the good client got {rate:.1f} frames/s next to a stalled one")
    check(dropped > 0, "the stalled client never dropped a frame")
    check(fps >= 0.95 * 30, f"pipeline at {fps:.1f} fps")
    print(f"ok: good client {rate:.1f}/s, stalled client dropped {dropped:.0f}, pipeline {fps:.2f} fps")


# --- RTSP --------------------------------------------------------------------------

def rtsp_client(url, n, extra=()):
    """gst-launch rtspsrc -> decoder -> fakesink; returns (caps line, pts list, stderr)."""
    cmd = ["gst-launch-1.0", "-v", "rtspsrc", f"location={url}", "latency=0", *extra, "!",
           "rtph264depay", "!", "h264parse", "!", "avdec_h264", "!", "fakesink", "silent=false",
           "sync=false", f"num-buffers={n}"]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=40)
    caps = re.findall(r"fakesink0.GstPad:sink: caps = (video/x-raw.*)", out.stdout)
    pts = [int(h) * 3600 + int(m) * 60 + float(s) for h, m, s in
           re.findall(r"chain.*?pts: (\d+):(\d+):([\d.]+)", out.stdout)]
    return out.returncode, caps, pts, out.stdout[-1500:] + out.stderr[-1500:]


def case_rtsp_play():
    with Harness("--rtsp", "0", "--width", "640", "--height", "360", "--fps", "25") as h:
        code, caps, pts, log = rtsp_client(f"rtsp://127.0.0.1:{h.rtsp}/kestrel", 75)
        h.stop()
    check(code == 0, "rtspsrc failed: " + log)
    check(caps and "width=(int)640" in caps[-1] and "height=(int)360" in caps[-1],
          f"caps {caps}")
    check(len(pts) >= 70, f"{len(pts)} frames decoded")
    span = pts[-1] - pts[0]
    rate = (len(pts) - 1) / span if span > 0 else 0
    check(abs(rate - 25) < 2.5, f"frame rate {rate:.2f}, want 25")
    print(f"ok: 640x360, {len(pts)} frames at {rate:.2f} fps (timestamps)")


def case_rtsp_auth():
    with Harness("--rtsp", "0", "--token", TOKEN) as h:
        url = f"rtsp://127.0.0.1:{h.rtsp}/kestrel"
        code, caps, pts, log = rtsp_client(url, 5)
        check(code != 0 and "nauthorized" in log, "played without a token: " + log[-300:])
        code, caps, pts, log = rtsp_client(url, 5, ["user-id=kestrel", "user-pw=wrong-0123456789abc"])
        check(code != 0, "played with a wrong token")
        code, caps, pts, log = rtsp_client(url, 10, ["user-id=kestrel", f"user-pw={TOKEN}"])
        check(code == 0 and len(pts) >= 10, "the token (Basic) did not play: " + log)
        code, caps, pts, log = rtsp_client(url + "?token=" + urllib.parse.quote(TOKEN, safe=""), 10)
        check(code == 0 and len(pts) >= 10, "?token= did not play: " + log)
        code, caps, pts, log = rtsp_client(url + "?token=wrong-0123456789abcdef", 5)
        check(code != 0, "played with a wrong ?token=")
        code, _, _, log = rtsp_client(f"rtsp://127.0.0.1:{h.rtsp}/nothing", 5,
                                      ["user-id=kestrel", f"user-pw={TOKEN}"])
        check(code != 0 and ("Not Found" in log or "not found" in log), "unknown mount: " + log[-300:])
        h.stop()
    print("ok: 401 without/with wrong token, plays with it (Basic, ?token=), unknown mount 404")


def case_rtsp_client_cap():
    with Harness("--rtsp", "0", "--max-clients", "1") as h:
        url = f"rtsp://127.0.0.1:{h.rtsp}/kestrel"
        # RTP over the RTSP connection (TCP): on a loaded machine UDP packets may be
        # dropped and the first client would then wait for buffers that never come.
        # Its output is kept, and the second client starts only once the first one
        # receives video (a fixed sleep raced the first client's SETUP/PLAY).
        tmp = tempfile.mkdtemp()
        log_path = os.path.join(tmp, "first-client.log")
        with open(log_path, "w") as first_log:
            first = subprocess.Popen(["gst-launch-1.0", "-v", "rtspsrc", f"location={url}",
                                      "protocols=tcp", "!", "rtph264depay", "!", "fakesink",
                                      "silent=false", "num-buffers=90"],
                                     stdout=first_log, stderr=subprocess.STDOUT)
            deadline = time.time() + 30
            while time.time() < deadline and first.poll() is None:
                with open(log_path, errors="replace") as f:
                    if "chain" in f.read():
                        break
                time.sleep(0.1)
            code, _, _, log = rtsp_client(url, 5)
            check(code != 0 and "Unavailable" in log,
                  "a 2nd client beyond max-clients 1: " + log[-400:])
            try:
                rc = first.wait(timeout=60)
            except subprocess.TimeoutExpired:
                first.kill()
                rc = "timeout"
        if rc != 0:
            with open(log_path, errors="replace") as f:
                tail = f.read()[-1500:]
            check(False, f"the first client did not play to the end ({rc}): {tail}")
        shutil.rmtree(tmp, ignore_errors=True)
        code, _, pts, log = rtsp_client(url, 5)
        check(code == 0, "the slot did not free: " + log[-400:])
        h.stop()
    print("ok: max-clients 1: the 2nd client gets 503, the slot frees when the first leaves")


# --- kestrelmetapublish network targets ----------------------------------------------

def gst(*pipeline, timeout=30):
    return subprocess.run(["gst-launch-1.0", "-q", *pipeline], capture_output=True, text=True,
                          timeout=timeout)


def case_publish_udp():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    s.settimeout(3)
    port = s.getsockname()[1]
    out = gst("videotestsrc", "num-buffers=40", "!", "video/x-raw,width=160,height=120", "!",
              "kestrelmetapublish", f"location=udp://127.0.0.1:{port}", "!", "fakesink")
    check(out.returncode == 0, out.stderr)
    got = []
    try:
        while len(got) < 40:
            got.append(json.loads(s.recv(70000)))
    except socket.timeout:
        pass
    check(len(got) == 40, f"{len(got)} datagrams of 40")
    check([g["frame"] for g in got] == list(range(40)), "frames out of order or missing")
    check(all(g["version"] == 1 and g["width"] == 160 for g in got), "content")
    # Nobody listening: the pipeline still runs to the end.
    s.close()
    out = gst("videotestsrc", "num-buffers=40", "!", "kestrelmetapublish",
              f"location=udp://127.0.0.1:{port}", "!", "fakesink")
    check(out.returncode == 0, "no receiver stopped the pipeline: " + out.stderr)
    print("ok: 40 datagrams, one JSON frame each; no receiver is harmless")


class Collector(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, fail_first=0):
        self.bodies = []
        self.types = []
        self.fail_left = fail_first
        self.lock = threading.Lock()
        outer = self

        class H(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                n = int(self.headers.get("Content-Length", 0))
                body = self.rfile.read(n)
                with outer.lock:
                    if outer.fail_left > 0:
                        outer.fail_left -= 1
                        self.send_response(503)
                        self.end_headers()
                        return
                    outer.bodies.append(body)
                    outer.types.append(self.headers.get("Content-Type"))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *a):
                pass

        super().__init__(("127.0.0.1", 0), H)
        threading.Thread(target=self.serve_forever, daemon=True).start()


def case_publish_http():
    c = Collector(fail_first=2)
    port = c.server_address[1]
    out = gst("videotestsrc", "num-buffers=100", "!", "video/x-raw,width=160,height=120", "!",
              "kestrelmetapublish", f"location=http://127.0.0.1:{port}/ingest", "batch-size=16",
              "batch-interval=100", "!", "fakesink")
    check(out.returncode == 0, out.stderr)
    c.shutdown()
    lines = [json.loads(l) for b in c.bodies for l in b.decode().splitlines()]
    check(all(t == "application/x-ndjson" for t in c.types), f"content types {set(c.types)}")
    check([l["frame"] for l in lines] == list(range(100)),
          f"got frames {[l['frame'] for l in lines][:20]}... ({len(lines)})")
    sizes = [len(b.decode().splitlines()) for b in c.bodies]
    check(max(sizes) <= 16 and len(sizes) >= 7, f"batch sizes {sizes}")
    print(f"ok: 100 lines in {len(sizes)} POSTs (max {max(sizes)}), in order, after 2 refused")


def rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def case_publish_dead_collector():
    # A collector that accepts connections and never answers: the worst kind.
    black = socket.socket()
    black.bind(("127.0.0.1", 0))
    black.listen(1000)
    port = black.getsockname()[1]
    # Rate: a live 30 fps source for 90 frames takes 3 s, collector or not.
    t0 = time.time()
    out = subprocess.run(["gst-launch-1.0", "videotestsrc", "is-live=true", "num-buffers=90", "!",
                          "video/x-raw,width=160,height=120,framerate=30/1", "!",
                          "kestrelmetapublish", f"location=http://127.0.0.1:{port}/x", "timeout=1",
                          "batch-size=10", "!", "fakesink", "sync=true"],
                         capture_output=True, text=True, timeout=30)
    total = time.time() - t0
    check(out.returncode == 0, out.stderr)
    # gst-launch's own measure: PLAYING to EOS, i.e. the 90 frames.
    m = re.search(r"Execution ended after (\d+):(\d+):([\d.]+)", out.stdout)
    check(m, "no execution time: " + out.stdout[-300:])
    took = int(m.group(1)) * 3600 + int(m.group(2)) * 60 + float(m.group(3))
    check(abs(took - 3.0) < 0.3, f"90 frames at 30 fps took {took:.2f} s next to a silent collector")
    # Stopping waits at most 2 s for the queue to drain.
    check(total < took + 2 + 1.5, f"stopping took {total - took:.2f} s")
    # Memory: as fast as possible, a small queue; RSS must not grow.
    p = subprocess.Popen(["gst-launch-1.0", "-q", "videotestsrc", "pattern=black", "!",
                          "video/x-raw,width=32,height=32", "!", "kestrelmetapublish",
                          "location=http://127.0.0.1:9/refused", "max-queue=200",
                          "retry-max=200", "!", "fakesink", "sync=false"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(1.0)
        a = rss_kb(p.pid)
        time.sleep(2.0)
        b = rss_kb(p.pid)
    finally:
        p.terminate()
        p.wait()
    black.close()
    check(a > 0 and b - a < 3000, f"RSS grew from {a} to {b} kB with a dead collector")
    print(f"ok: 90 frames in {took:.2f} s with a silent collector (stop {total - took:.1f} s); "
          f"RSS {a} -> {b} kB at full speed")


def case_auth_unit():
    # The address rules through the harness's argument parsing.
    for spec, ok in (("127.0.0.1:0", True), ("[::1]:0", True), ("localhost:0", True),
                     ("nonsense", False), ("1.2.3.4.5:80", False), ("127.0.0.1:99999", False),
                     ("::1:80", False)):
        with Harness("--http", spec, "--duration", "0.2", expect_fail=True) as h:
            out, err = h.stop(wait=10)
            got = h.proc.returncode == 0
            check(got == ok, f"--http {spec}: exit {h.proc.returncode}, {err.strip()}")
    print("ok: listen address parsing")


def case_web_chromium():
    need(CLIP)
    need(MODEL)
    with Harness("--http", "127.0.0.1:0", "--token", TOKEN, "--source", CLIP, "--model", MODEL) as h:
        shot = os.environ.get("KESTREL_WEB_SCREENSHOT", "")
        out = subprocess.run(["node", os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                                   "web_view.mjs"),
                              f"http://127.0.0.1:{h.http}/?token={urllib.parse.quote(TOKEN, safe='')}", *([shot] if shot else [])],
                             capture_output=True, text=True, timeout=60)
        h.stop()
    check(out.returncode == 0, out.stdout + out.stderr)
    seen = json.loads(out.stdout.strip().splitlines()[-1])
    print(f"ok: {seen['pictures']} pictures, {seen['lists']} detection lists, counts {seen['counts']!r}")


def case_kiosk_network():
    """The kiosk itself: --http and --rtsp flags, the token from its config file."""
    kiosk = os.environ.get("KIOSK", "")
    check(kiosk and os.path.exists(kiosk), "KIOSK is not set to the built kestrel-kiosk")
    need(CLIP)
    ports = []
    for _ in range(2):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        ports.append(s.getsockname()[1])
        s.close()
    http_port, rtsp_port = ports
    conf = os.path.join(os.environ.get("TMPDIR", "/tmp"), f"kestrel-net-{os.getpid()}.conf")
    with open(conf, "w") as f:
        f.write(f"[network]\ntoken = {TOKEN}\nmjpeg-width = 480\n")
    auth = {"Authorization": "Bearer " + TOKEN}
    p = subprocess.Popen([kiosk, "--config", conf, "--headless", "--duration", "25", "--source", CLIP,
                          "--http", f"127.0.0.1:{http_port}", "--rtsp", str(rtsp_port)],
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.time() + 15
        while True:
            try:
                r, _ = get(http_port, "/healthz", auth, timeout=1)
                break
            except OSError:
                check(time.time() < deadline and p.poll() is None, "the kiosk's web server never came up")
                time.sleep(0.2)
        r, _ = get(http_port, "/healthz")
        check(r.status == 401, f"the config file's token is not enforced: {r.status}")
        m = MjpegReader(http_port, headers=f"Authorization: Bearer {TOKEN}\r\n".encode())
        w, hh = jpeg_size(m.part())
        m.close()
        check((w, hh) == (480, 270), f"MJPEG {w}x{hh}, want 480x270 (mjpeg-width from the config)")
        _, events = read_events(http_port, 10, "/events?token=" + urllib.parse.quote(TOKEN, safe=""))
        check(len(events) == 10 and any(e["objects"] for e in events), "no faces in /events")
        r, body = get(http_port, "/metrics", auth)
        _, samples = parse_prometheus(body.decode())
        info = [s[1] for s in samples if s[0] == "kestrel_model_info"]
        check(info and info[0]["name"].startswith("face_detection"), f"model info {info}")
        check(any(s[0] == "kestrel_inferences_total" and s[2] > 0 for s in samples), "no inferences")
        code, caps, pts, log = rtsp_client(f"rtsp://127.0.0.1:{rtsp_port}/kestrel", 45,
                                           ["user-id=kestrel", f"user-pw={TOKEN}"])
        check(code == 0 and caps and "width=(int)1280" in caps[-1], "RTSP: " + log[-800:])
        rate = (len(pts) - 1) / (pts[-1] - pts[0])
        check(abs(rate - 15) < 1.5, f"RTSP at {rate:.2f} fps, the clip is 15")
        p.terminate()
        out = p.communicate(timeout=20)[0]
        check(p.returncode == 0, f"kiosk exit {p.returncode}: {out[-500:]}")
        check("web view on http://127.0.0.1" in out and "RTSP on rtsp://" in out, out[:500])
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        os.unlink(conf)
    print(f"ok: kiosk with token from its config: MJPEG 480x270, events with faces, metrics, "
          f"RTSP 1280x720 at {rate:.2f} fps")


CASES = {
    "kiosk-network": case_kiosk_network,
    "web-chromium": case_web_chromium,
    "auth-unit": case_auth_unit,
    "http-mjpeg": case_http_mjpeg,
    "http-events": case_http_events,
    "http-metrics": case_http_metrics,
    "http-page": case_http_page,
    "http-auth": case_http_auth,
    "http-limits": case_http_limits,
    "http-client-cap": case_http_client_cap,
    "http-slow-client": case_http_slow_client,
    "rtsp-play": case_rtsp_play,
    "rtsp-auth": case_rtsp_auth,
    "rtsp-client-cap": case_rtsp_client_cap,
    "publish-udp": case_publish_udp,
    "publish-http": case_publish_http,
    "publish-dead-collector": case_publish_dead_collector,
}

if __name__ == "__main__":
    if len(sys.argv) != 2 or sys.argv[1] not in CASES:
        print("usage: test_network.py " + "|".join(CASES), file=sys.stderr)
        sys.exit(2)
    try:
        CASES[sys.argv[1]]()
    except Fail as e:
        print(f"FAIL {sys.argv[1]}: {e}", file=sys.stderr)
        sys.exit(1)
