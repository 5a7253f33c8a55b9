#!/bin/sh
# Load on the kiosk's web view (issue 7): many MJPEG clients on loopback, some of them reading
# slowly, against kestrel-kiosk running the face clip with the INT8 model, headless.
#
#   benchmarks/http-load.sh [SECONDS] [CLIENTS] [SLOW]        (defaults: 60 50 10)
#
# 1. baseline: the same kiosk (web server on, nobody connected) for min(SECONDS, 30) s;
# 2. load: CLIENTS connect to /stream.mjpg; SLOW of them have a 16 KiB receive buffer and read
#    4 KiB every half second (a phone on a bad link); the rest read as fast as they can.
#    For SECONDS s it samples the kiosk's RSS every 2 s and counts the parts each client gets.
# Pass: the pipeline's frame rate under load within 5% of the baseline, RSS flat (the last
# sample within 10% of the first after warm-up), every well-behaved client >= 90% of the
# frames the pipeline made while it was connected. Loopback only; bounded in clients and time.
# Extra kiosk flags (another source, size, quality): KIOSK_ARGS="--source x.avi".
# Prints a Markdown table for docs/BENCHMARKS.md; exits 1 if a criterion fails.
set -eu

SOURCE_DIR=$(cd "$(dirname "$0")/.." && pwd)
BUILD_DIR=${KESTREL_BUILD_DIR:-$SOURCE_DIR/build}
seconds=${1:-60}
clients=${2:-50}
slow=${3:-10}
KIOSK=$BUILD_DIR/app/kestrel-kiosk
[ -x "$KIOSK" ] || { echo "missing $KIOSK: build first" >&2; exit 1; }
[ "$clients" -le 200 ] && [ "$seconds" -le 600 ] || { echo "bounded: at most 200 clients, 600 s" >&2; exit 2; }
export GST_PLUGIN_PATH="$BUILD_DIR/plugins"
export GST_REGISTRY="$BUILD_DIR/plugins/bench-registry.bin"

exec python3 - "$KIOSK" "$seconds" "$clients" "$slow" <<'EOF'
import os, re, shlex, socket, subprocess, sys, threading, time, urllib.request

kiosk, seconds, nclients, nslow = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
extra = shlex.split(os.environ.get("KIOSK_ARGS", ""))


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def start(duration, port):
    args = [kiosk, "--headless", "--duration", str(duration), "--http", f"127.0.0.1:{port}",
            "--set", f"network.max-clients={nclients + 10}", "--status-every", "0", *extra]
    p = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.time() + 20
    while time.time() < deadline:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1).read()
            return p
        except OSError:
            time.sleep(0.2)
    p.kill()
    sys.exit("the kiosk did not start its web server: " + p.communicate()[0])


def summary_fps(out):
    m = re.search(r"summary: frames=(\d+) seconds=([\d.]+) fps=([\d.]+)", out)
    if not m:
        sys.exit("no summary line from the kiosk:\n" + out[-2000:])
    return float(m.group(3))


def metric(port, name):
    body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    m = re.search(rf"^{re.escape(name)} (\S+)$", body, re.M)
    return float(m.group(1)) if m else 0.0


def rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        return int(re.search(r"VmRSS:\s+(\d+)", f.read()).group(1))


# --- 1. baseline -----------------------------------------------------------------------
base_s = min(seconds, 30)
port = free_port()
p = start(base_s, port)
out = p.communicate(timeout=base_s + 60)[0]
base_fps = summary_fps(out)
print(f"baseline: {base_fps:.2f} fps over {base_s} s, no clients", file=sys.stderr, flush=True)

# --- 2. load ------------------------------------------------------------------------------
MARK = b"--kestrelframe\r\n"


class Client(threading.Thread):
    def __init__(self, port, slow):
        super().__init__(daemon=True)
        self.port, self.slow = port, slow
        self.parts = 0
        self.error = None
        self.stop = threading.Event()

    def run(self):
        try:
            s = socket.socket()
            if self.slow:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)
            s.settimeout(10)
            s.connect(("127.0.0.1", self.port))
            s.sendall(b"GET /stream.mjpg HTTP/1.1\r\nHost: bench\r\n\r\n")
            tail = b""
            while not self.stop.is_set():
                data = s.recv(4096 if self.slow else 1 << 20)
                if not data:
                    self.error = "closed by the server"
                    break
                buf = tail + data
                self.parts += buf.count(MARK)
                tail = buf[-(len(MARK) - 1):]
                if self.slow:
                    time.sleep(0.5)
            s.close()
        except OSError as e:
            self.error = str(e)


port = free_port()
p = start(seconds + 15, port)
time.sleep(3)  # warm-up: model loaded, pipeline at rate
clients = [Client(port, i < nslow) for i in range(nclients)]
f0 = metric(port, "kestrel_frames_total")
t0 = time.time()
for c in clients:
    c.start()
time.sleep(1)  # all connected
rss = []
while time.time() - t0 < seconds:
    rss.append(rss_kb(p.pid))
    time.sleep(2)
f1 = metric(port, "kestrel_frames_total")
t1 = time.time()
dropped = metric(port, 'kestrel_frames_dropped_total{stage="mjpeg_client"}')
encoded = metric(port, "kestrel_mjpeg_frames_encoded_total")
for c in clients:
    c.stop.set()
for c in clients:
    c.join(timeout=15)
out = p.communicate(timeout=60)[0]
load_fps = (f1 - f0) / (t1 - t0)
made = f1 - f0
good = [c for c in clients if not c.slow]
ratios = sorted(c.parts / made for c in good) if made else [0]
errors = [c.error for c in clients if c.error]
warm = rss[2] if len(rss) > 3 else rss[0]
rss_growth = (rss[-1] - warm) / warm

ok_fps = abs(load_fps - base_fps) <= 0.05 * base_fps
ok_rss = rss_growth <= 0.10
ok_clients = ratios[0] >= 0.90 and not errors
print(f"| measure | value | criterion |")
print(f"| --- | --- | --- |")
print(f"| pipeline fps, no clients ({base_s} s) | {base_fps:.2f} | |")
print(f"| pipeline fps, {nclients} MJPEG clients ({nslow} slow), {seconds} s | {load_fps:.2f} "
      f"({100 * (load_fps / base_fps - 1):+.1f}%) | within 5%: {'yes' if ok_fps else 'NO'} |")
print(f"| kiosk RSS after warm-up / at the end | {warm / 1024:.1f} / {rss[-1] / 1024:.1f} MiB "
      f"({100 * rss_growth:+.1f}%) | flat (within 10%): {'yes' if ok_rss else 'NO'} |")
print(f"| frames each well-behaved client got, min / median / max | "
      f"{100 * ratios[0]:.1f}% / {100 * ratios[len(ratios) // 2]:.1f}% / {100 * ratios[-1]:.1f}% "
      f"of {made:.0f} | >= 90%: {'yes' if ratios[0] >= 0.90 else 'NO'} |")
slow_parts = [c.parts for c in clients if c.slow]
if slow_parts:
    print(f"| parts each slow client got, min / max | {min(slow_parts)} / {max(slow_parts)} | "
          f"(they drop; counted in /metrics: {dropped:.0f} frames) |")
print(f"| JPEG encodes (once per frame, shared) | {encoded:.0f} | |")
step = max(1, len(rss) // 6)
print(f"| kiosk RSS every {2 * step} s (MiB) | "
      f"{' '.join(f'{r / 1024:.1f}' for r in rss[::step])} | |")
if errors:
    print(f"\nclient errors: {errors[:5]}", file=sys.stderr)
sys.exit(0 if ok_fps and ok_rss and ok_clients else 1)
EOF
