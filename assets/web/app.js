// Kestrel live view: the MJPEG stream, each frame's results from /events
// (docs/metadata-schema.md), and a few numbers from /metrics. No framework.
'use strict';

const token = new URLSearchParams(location.search).get('token');
const query = token ? '?token=' + encodeURIComponent(token) : '';
const $ = (id) => document.getElementById(id);

const img = $('stream');
const canvas = $('boxes');
const status = $('status');
let last = null;       // the newest frame's results
let eventsSeen = 0;

img.src = 'stream.mjpg' + query;
img.addEventListener('error', () => {
  // The stream broke (server restarted, camera gone): try again shortly.
  setStatus('video lost, retrying…', 'lost');
  setTimeout(() => { img.src = 'stream.mjpg' + query + (query ? '&' : '?') + 't=' + Date.now(); }, 2000);
});

function setStatus(text, cls) {
  status.textContent = text;
  status.className = 'status ' + (cls || '');
}

function text(el, value) {
  if (el.textContent !== value) el.textContent = value;
}

function renderCounts(frame) {
  const counts = {};
  for (const o of frame.objects) counts[o.label] = (counts[o.label] || 0) + 1;
  const ul = $('counts');
  const labels = Object.keys(counts).sort();
  ul.replaceChildren(...(labels.length ? labels : ['none']).map((label) => {
    const li = document.createElement('li');
    if (label === 'none' && !counts.none) {
      li.textContent = 'no objects';
    } else {
      const b = document.createElement('b');
      b.textContent = counts[label];
      li.append(b, ' ' + label);
    }
    return li;
  }));
}

function renderDetections(frame) {
  const ol = $('detections');
  ol.replaceChildren(...frame.objects.map((o) => {
    const li = document.createElement('li');
    const id = o.track_id === null ? '' : '#' + o.track_id + ' ';
    const conf = o.confidence === null ? '?' : Math.round(o.confidence * 100) + '%';
    li.textContent = `${id}${o.label} ${conf} at ${o.box.x},${o.box.y} ${o.box.width}×${o.box.height}`;
    if (o.stale) li.className = 'stale';
    li.dataset.trackId = o.track_id === null ? '' : String(o.track_id);
    return li;
  }));
}

function drawBoxes() {
  const ctx = canvas.getContext('2d');
  const w = img.clientWidth, h = img.clientHeight;
  if (canvas.width !== w || canvas.height !== h) { canvas.width = w; canvas.height = h; }
  ctx.clearRect(0, 0, w, h);
  if (!$('draw-boxes').checked || !last) return;
  ctx.lineWidth = 2;
  ctx.font = '12px system-ui, sans-serif';
  for (const o of last.objects) {
    const b = o.box_normalized;
    const x = b.x_min * w, y = b.y_min * h, bw = (b.x_max - b.x_min) * w, bh = (b.y_max - b.y_min) * h;
    ctx.strokeStyle = o.stale ? '#8a94a3' : '#3ddc84';
    ctx.strokeRect(x, y, bw, bh);
    ctx.fillStyle = ctx.strokeStyle;
    ctx.fillText((o.track_id === null ? '' : '#' + o.track_id + ' ') + o.label, x + 2, Math.max(12, y - 3));
  }
}

function onFrame(frame) {
  if (frame.version !== 1) {
    setStatus('unknown schema version ' + frame.version, 'lost');
    return;
  }
  last = frame;
  eventsSeen++;
  text($('frame'), 'frame ' + frame.frame);
  renderCounts(frame);
  renderDetections(frame);
  drawBoxes();
  setStatus('live · ' + frame.width + '×' + frame.height, 'live');
}

// Batches DOM updates to the display rate: events may come faster.
let pending = null;
const events = new EventSource('events' + query);
events.onmessage = (e) => {
  const first = pending === null;
  pending = e.data;
  if (first) requestAnimationFrame(() => { const d = pending; pending = null; onFrame(JSON.parse(d)); });
};
events.onerror = () => setStatus('event stream lost, retrying…', 'lost');

// --- metrics ---------------------------------------------------------------
function parseMetrics(body) {
  const m = {};
  for (const line of body.split('\n')) {
    if (!line || line[0] === '#') continue;
    const sp = line.lastIndexOf(' ');
    m[line.slice(0, sp)] = Number(line.slice(sp + 1));
  }
  return m;
}

function labelsOf(m, name) {
  // {'kestrel_model_info{name="a",sha256="b"}': 1} -> {name: 'a', sha256: 'b'}
  for (const key of Object.keys(m)) {
    if (key.startsWith(name + '{') && m[key] === 1) {
      const out = {};
      for (const [, k, v] of key.matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) out[k] = v;
      return out;
    }
  }
  return null;
}

function duration(s) {
  s = Math.floor(s);
  const h = Math.floor(s / 3600), m = Math.floor(s / 60) % 60;
  return (h ? h + 'h ' : '') + (h || m ? m + 'm ' : '') + (s % 60) + 's';
}

async function refreshMetrics() {
  try {
    const r = await fetch('metrics' + query, { cache: 'no-store' });
    if (!r.ok) throw new Error('HTTP ' + r.status);
    const m = parseMetrics(await r.text());
    const n = m['kestrel_inference_latency_seconds_count'] || 0;
    const mean = n ? (1000 * m['kestrel_inference_latency_seconds_sum'] / n).toFixed(1) + ' ms' : '–';
    const model = labelsOf(m, 'kestrel_model_info');
    const camera = labelsOf(m, 'kestrel_camera_state');
    const rows = [
      ['fps', (m['kestrel_fps'] || 0).toFixed(1)],
      ['inference (mean)', mean],
      ['inferences', String(m['kestrel_inferences_total'] || n)],
      ['inferences dropped', String(m['kestrel_inferences_dropped_total'] || 0)],
      ['frames', String(m['kestrel_frames_total'] || 0)],
      ['frames dropped (display)', String(m['kestrel_frames_dropped_total{stage="display"}'] || 0)],
      ['model', model ? model.name : 'none'],
      ['model sha256', model && model.sha256 ? model.sha256.slice(0, 16) + '…' : '–'],
      ['camera', camera ? camera.state : '–'],
      ['web clients', String((m['kestrel_http_clients{endpoint="mjpeg"}'] || 0) + (m['kestrel_http_clients{endpoint="events"}'] || 0))],
      ['uptime', duration(m['kestrel_uptime_seconds'] || 0)],
    ];
    const tbody = $('stats').tBodies[0];
    tbody.replaceChildren(...rows.map(([k, v]) => {
      const tr = document.createElement('tr');
      const a = document.createElement('td'), b = document.createElement('td');
      a.textContent = k; b.textContent = v;
      b.dataset.metric = k;
      tr.append(a, b);
      return tr;
    }));
  } catch (e) {
    setStatus('metrics unavailable: ' + e.message, 'lost');
  }
}

$('draw-boxes').addEventListener('change', drawBoxes);
window.addEventListener('resize', drawBoxes);
refreshMetrics();
setInterval(refreshMetrics, 1000);
