#!/usr/bin/env node
// Runs a .tflite model on a .npy input in TensorFlow's TFLite runtime (wasm,
// from @tensorflow/tfjs-tflite) inside headless Chromium, and writes each
// output as OUTDIR/output_<i>.npy (float32) plus OUTDIR/names.txt.
//
//   node run_reference.js MODEL.tflite INPUT.npy OUTDIR
//
// Needs $KESTREL_CACHE/npm/ with tensorflow-tfjs-tflite-0.0.1-alpha.10,
// tensorflow-tfjs-core-4.9.0 and tensorflow-tfjs-backend-cpu-4.9.0 unpacked
// (scripts/setup.sh), and Debian's chromium (CHROMIUM overrides the path).
// Only node's standard library is used: a loopback HTTP server serves the
// page, the packages and the data, and receives the results by POST.
'use strict';

const fs = require('fs');
const http = require('http');
const os = require('os');
const path = require('path');
const {spawn} = require('child_process');

const TIMEOUT_MS = 120000;
const PACKAGES = ['tensorflow-tfjs-tflite-0.0.1-alpha.10', 'tensorflow-tfjs-core-4.9.0',
                  'tensorflow-tfjs-backend-cpu-4.9.0'];

function die(msg) {
  console.error('run_reference: ' + msg);
  process.exit(1);
}

if (process.argv.length !== 5) die('usage: run_reference.js MODEL.tflite INPUT.npy OUTDIR');
const [modelPath, inputPath, outDir] = process.argv.slice(2);
const cache = process.env.KESTREL_CACHE || path.join(os.homedir(), '.cache', 'kestrel');
const npmDir = path.join(cache, 'npm');
const harnessDir = __dirname;
const chromium = process.env.CHROMIUM || '/usr/bin/chromium';
for (const p of PACKAGES)
  if (!fs.existsSync(path.join(npmDir, p, 'package')))
    die(`missing ${path.join(npmDir, p)} (run scripts/setup.sh)`);
for (const f of [modelPath, inputPath, chromium])
  if (!fs.existsSync(f)) die('missing ' + f);

const TYPES = {'.html': 'text/html', '.js': 'text/javascript', '.wasm': 'application/wasm',
               '.npy': 'application/octet-stream', '.tflite': 'application/octet-stream'};

// Maps a URL path to a file under one of the served roots, refusing escapes.
function resolve(urlPath) {
  const fixed = {'/': path.join(harnessDir, 'index.html'), '/data/model.tflite': modelPath,
                 '/data/input.npy': inputPath};
  if (fixed[urlPath]) return fixed[urlPath];
  for (const [prefix, root] of [['/npm/', npmDir], ['/harness/', harnessDir]]) {
    if (!urlPath.startsWith(prefix)) continue;
    const file = path.resolve(root, decodeURIComponent(urlPath.slice(prefix.length)));
    if (file.startsWith(path.resolve(root) + path.sep)) return file;
  }
  return null;
}

// float32 array -> .npy (format 1.0), header padded to a multiple of 64.
function npyBytes(shape, floatBytes) {
  const shapeText = shape.length === 1 ? `(${shape[0]},)` : `(${shape.join(', ')})`;
  let header = `{'descr': '<f4', 'fortran_order': False, 'shape': ${shapeText}, }`;
  const total = 10 + header.length + 1;
  header += ' '.repeat((64 - (total % 64)) % 64) + '\n';
  const pre = Buffer.alloc(10);
  pre[0] = 0x93;
  pre.write('NUMPY', 1, 'latin1');
  pre[6] = 1;
  pre[7] = 0;
  pre.writeUInt16LE(header.length, 8);
  return Buffer.concat([pre, Buffer.from(header, 'latin1'), floatBytes]);
}

let browser = null;
let finished = false;
function finish(code, msg) {
  if (finished) return;
  finished = true;
  if (msg) (code ? console.error : console.log)('run_reference: ' + msg);
  server.close();
  // Chromium writes its profile until it is gone: remove it after exit.
  const done = () => {
    try {
      fs.rmSync(profile, {recursive: true, force: true, maxRetries: 10, retryDelay: 200});
    } catch (e) {
      console.error('run_reference: could not remove ' + profile + ': ' + e);
    }
    process.exit(code);
  };
  if (browser && browser.exitCode === null && browser.signalCode === null) {
    browser.removeAllListeners('exit');
    browser.once('exit', done);
    // Its own process group: the renderer and zygote go with it.
    try {
      process.kill(-browser.pid, 'SIGKILL');
    } catch (e) {
      browser.kill('SIGKILL');
    }
    setTimeout(done, 5000).unref();
  } else {
    done();
  }
}

const server = http.createServer((req, res) => {
  const url = new URL(req.url, 'http://127.0.0.1');
  if (req.method === 'POST') {
    const chunks = [];
    req.on('data', c => chunks.push(c));
    req.on('end', () => {
      res.end('ok');
      let body;
      try {
        body = JSON.parse(Buffer.concat(chunks).toString('utf8'));
      } catch (e) {
        return finish(1, 'bad POST body: ' + e);
      }
      if (url.pathname === '/error') return finish(1, 'page failed: ' + body.message);
      if (url.pathname !== '/result') return finish(1, 'unexpected POST ' + url.pathname);
      fs.mkdirSync(outDir, {recursive: true});
      const names = [];
      body.outputs.forEach((o, i) => {
        const bytes = Buffer.from(o.data, 'base64');
        const count = o.shape.reduce((a, b) => a * b, 1);
        if (bytes.length !== 4 * count) return finish(1, `output ${o.name}: bad size`);
        fs.writeFileSync(path.join(outDir, `output_${i}.npy`), npyBytes(o.shape, bytes));
        names.push(o.name);
        console.log(`run_reference: output ${i} '${o.name}' [${o.shape}] ${o.dtype}`);
      });
      fs.writeFileSync(path.join(outDir, 'names.txt'), names.join('\n') + '\n');
      finish(0, `ran in ${body.ms.toFixed(1)} ms (wasm features ${JSON.stringify(body.wasm)})`);
    });
    return;
  }
  const file = resolve(url.pathname);
  if (!file || !fs.existsSync(file) || !fs.statSync(file).isFile()) {
    res.statusCode = 404;
    return res.end('not found');
  }
  res.setHeader('Content-Type', TYPES[path.extname(file)] || 'application/octet-stream');
  fs.createReadStream(file).pipe(res);
});

const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'kestrel-chromium-'));
server.listen(0, '127.0.0.1', () => {
  const url = `http://127.0.0.1:${server.address().port}/`;
  browser = spawn(chromium, [
    '--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
    '--disable-component-update', '--disable-sync', '--no-first-run',
    '--disable-dev-shm-usage', `--user-data-dir=${profile}`,
    // Keeps the page alive after load; the driver kills the browser itself.
    '--remote-debugging-port=0', url], {stdio: ['ignore', 'ignore', 'pipe'], detached: true});
  let log = '';
  browser.stderr.on('data', d => { log = (log + d).slice(-4000); });
  browser.on('exit', code => finish(1, `chromium exited (${code}) before results:\n${log}`));
});
setTimeout(() => finish(1, `no result within ${TIMEOUT_MS / 1000} s`), TIMEOUT_MS).unref();
