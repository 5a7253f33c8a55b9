// Page side of the TFLite reference run: fetch /data/model.tflite and
// /data/input.npy, run the model once in tfjs-tflite's wasm TFLite
// interpreter, and POST every output (raw float32 bytes, base64) to /result.
// Any failure is POSTed to /error so the driver can stop at once.
'use strict';

// The wasm runtime reports why a model fails to load on the console only.
const consoleLines = [];
for (const level of ['log', 'warn', 'error']) {
  const original = console[level].bind(console);
  console[level] = (...args) => {
    consoleLines.push(args.map(String).join(' '));
    original(...args);
  };
}

function status(text) {
  const el = document.getElementById('status');
  if (el) el.textContent = text;
}

async function post(path, body) {
  await fetch(path, {method: 'POST', body: JSON.stringify(body),
                     headers: {'Content-Type': 'application/json'}});
}

// Minimal .npy (version 1.x/2.x) reader for little-endian float32 arrays.
function parseNpy(buffer) {
  const bytes = new Uint8Array(buffer);
  const magic = String.fromCharCode(...bytes.slice(1, 6));
  if (bytes[0] !== 0x93 || magic !== 'NUMPY') throw new Error('not a .npy file');
  const major = bytes[6];
  const view = new DataView(buffer);
  const headerLen = major >= 2 ? view.getUint32(8, true) : view.getUint16(8, true);
  const headerStart = major >= 2 ? 12 : 10;
  const header = new TextDecoder().decode(bytes.slice(headerStart, headerStart + headerLen));
  if (!/'descr':\s*'<f4'/.test(header)) throw new Error('input must be <f4: ' + header);
  if (/'fortran_order':\s*True/.test(header)) throw new Error('fortran order input');
  const shapeText = /'shape':\s*\(([^)]*)\)/.exec(header)[1];
  const shape = shapeText.split(',').map(s => s.trim()).filter(s => s).map(Number);
  const offset = headerStart + headerLen;
  const count = shape.reduce((a, b) => a * b, 1);
  const data = new Float32Array(buffer.slice(offset, offset + 4 * count));
  if (data.length !== count) throw new Error('truncated .npy');
  return {shape, data};
}

function toBase64(float32) {
  const bytes = new Uint8Array(float32.buffer, float32.byteOffset, float32.byteLength);
  let s = '';
  for (let i = 0; i < bytes.length; i += 0x8000)
    s += String.fromCharCode.apply(null, bytes.subarray(i, i + 0x8000));
  return btoa(s);
}

async function main() {
  tflite.setWasmPath('/npm/tensorflow-tfjs-tflite-0.0.1-alpha.10/package/wasm/');
  await tf.setBackend('cpu');
  status('loading model');
  const model = await tflite.loadTFLiteModel('/data/model.tflite', {numThreads: 1});
  const input = parseNpy(await (await fetch('/data/input.npy')).arrayBuffer());
  const x = tf.tensor(input.data, input.shape, 'float32');
  status('running');
  const t0 = performance.now();
  let result = model.predict(x);
  const ms = performance.now() - t0;
  // One output comes back as a Tensor, several as a map keyed by name.
  const names = model.outputs.map(o => o.name);
  if (result instanceof tf.Tensor) result = {[names[0]]: result};
  const outputs = [];
  for (const name of names) {
    const t = result[name];
    if (!t) throw new Error('no output named ' + name);
    outputs.push({name, shape: t.shape, dtype: t.dtype,
                  data: toBase64(new Float32Array(await t.data()))});
  }
  await post('/result', {outputs, ms, wasm: await tflite.getWasmFeatures()});
  status('done');
}

main().catch(async e => {
  status('error: ' + e);
  await post('/error', {message: String(e && e.stack || e) + '\nconsole:\n' +
                                 consoleLines.slice(-20).join('\n')});
});
