#!/usr/bin/env node
// Reference runner: feeds a .npy tensor to ONNX Runtime (the native library shipped in the
// onnxruntime-node npm tarball) and writes its outputs as .npy, or times session.run.
// Used by tests/models/ort_compare.sh and benchmarks/fp32-vs-ort.sh as the independent oracle.
//
//   node ort_run.js MODEL IN.npy OUTDIR             -> OUTDIR/output_<i>.npy, one per model output
//   node ort_run.js --bench N MODEL IN.npy          -> median/min/mean ms of N session.run calls
//   options: --threads T (intra-op threads, default 1), --warmup W (default 3, bench only)
//
// The binding is loaded by path from $KESTREL_CACHE (no npm install): its JS wrapper needs the
// onnxruntime-common package, which we do not fetch, so we talk to the native binding directly and
// hand it the one thing it needs from onnxruntime-common: a Tensor constructor for the outputs.
'use strict';

const fs = require('fs');
const path = require('path');

function die(msg) {
  process.stderr.write(`ort_run: ${msg}\n`);
  process.exit(1);
}

function parseArgs(argv) {
  const opt = { threads: 1, warmup: 3, bench: 0, rest: [] };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const next = () => {
      if (i + 1 >= argv.length) die(`${a} needs a value`);
      return argv[++i];
    };
    if (a === '--threads') opt.threads = parseInt(next(), 10);
    else if (a === '--warmup') opt.warmup = parseInt(next(), 10);
    else if (a === '--bench') opt.bench = parseInt(next(), 10);
    else if (a.startsWith('--')) die(`unknown option ${a}`);
    else opt.rest.push(a);
  }
  if (!(opt.threads >= 1) || !(opt.warmup >= 0) || !(opt.bench >= 0)) die('bad numeric option');
  const want = opt.bench ? 2 : 3;
  if (opt.rest.length !== want) {
    die('usage: ort_run.js [--threads T] MODEL IN.npy OUTDIR\n' +
        '       ort_run.js --bench N [--warmup W] [--threads T] MODEL IN.npy');
  }
  return opt;
}

// --- .npy (format 1.0/2.0/3.0, little-endian, C order) ---------------------------------------------

const NPY_TYPES = {
  '<f4': { ort: 'float32', array: Float32Array },
  '<i8': { ort: 'int64', array: BigInt64Array },
  '<i4': { ort: 'int32', array: Int32Array },
  '|u1': { ort: 'uint8', array: Uint8Array },
  '|i1': { ort: 'int8', array: Int8Array },
};

function readNpy(file) {
  const buf = fs.readFileSync(file);
  if (buf.length < 10 || buf.readUInt8(0) !== 0x93 || buf.toString('latin1', 1, 6) !== 'NUMPY') {
    die(`${file}: not a .npy file`);
  }
  const major = buf.readUInt8(6);
  let headerLen;
  let offset;
  if (major === 1) {
    headerLen = buf.readUInt16LE(8);
    offset = 10;
  } else if (major === 2 || major === 3) {
    if (buf.length < 12) die(`${file}: truncated header`);
    headerLen = buf.readUInt32LE(8);
    offset = 12;
  } else {
    die(`${file}: unsupported .npy version ${major}`);
  }
  if (offset + headerLen > buf.length) die(`${file}: header runs past the end of the file`);
  const header = buf.toString('latin1', offset, offset + headerLen);
  const descr = /'descr'\s*:\s*'([^']*)'/.exec(header);
  const fortran = /'fortran_order'\s*:\s*(True|False)/.exec(header);
  const shape = /'shape'\s*:\s*\(([^)]*)\)/.exec(header);
  if (!descr || !fortran || !shape) die(`${file}: cannot parse header ${header.trim()}`);
  if (fortran[1] !== 'False') die(`${file}: Fortran order is not supported`);
  const type = NPY_TYPES[descr[1]];
  if (!type) die(`${file}: dtype ${descr[1]} is not supported`);
  const dims = shape[1].split(',').map((s) => s.trim()).filter((s) => s.length).map(Number);
  if (dims.some((d) => !Number.isInteger(d) || d < 0)) die(`${file}: bad shape (${shape[1]})`);
  const count = dims.reduce((a, b) => a * b, 1);
  const dataOffset = offset + headerLen;
  const bytes = count * type.array.BYTES_PER_ELEMENT;
  if (dataOffset + bytes !== buf.length) {
    die(`${file}: ${buf.length - dataOffset} data bytes, shape needs ${bytes}`);
  }
  // Copy into a fresh, aligned buffer: the file buffer's offset need not be element-aligned.
  const data = new type.array(count);
  Buffer.from(data.buffer).set(buf.subarray(dataOffset, dataOffset + bytes));
  return { type: type.ort, data, dims };
}

function writeNpy(file, tensor) {
  const descr = Object.keys(NPY_TYPES).find((k) => NPY_TYPES[k].ort === tensor.type);
  if (!descr) die(`cannot write output of type ${tensor.type}`);
  const dims = tensor.dims.map(Number);
  const shape = dims.length === 1 ? `(${dims[0]},)` : `(${dims.join(', ')})`;
  let header = `{'descr': '${descr}', 'fortran_order': False, 'shape': ${shape}, }`;
  // Pad so that magic + length + header + newline is a multiple of 64, as numpy does.
  const total = Math.ceil((10 + header.length + 1) / 64) * 64;
  header = header.padEnd(total - 10 - 1, ' ') + '\n';
  const pre = Buffer.alloc(10);
  pre.writeUInt8(0x93, 0);
  pre.write('NUMPY', 1, 'latin1');
  pre.writeUInt8(1, 6);
  pre.writeUInt8(0, 7);
  pre.writeUInt16LE(header.length, 8);
  const data = Buffer.from(tensor.data.buffer, tensor.data.byteOffset, tensor.data.byteLength);
  fs.writeFileSync(file, Buffer.concat([pre, Buffer.from(header, 'latin1'), data]));
}

// --- ONNX Runtime --------------------------------------------------------------------------------

function loadBinding() {
  const cache = process.env.KESTREL_CACHE ||
      path.join(process.env.HOME || '/root', '.cache', 'kestrel');
  const dir = process.env.ORT_NODE_DIR ||
      path.join(cache, 'npm', 'onnxruntime-node-1.30.0', 'package');
  const file = path.join(dir, 'bin', 'napi-v6', process.platform, process.arch,
                         'onnxruntime_binding.node');
  if (!fs.existsSync(file)) die(`ONNX Runtime binding not found at ${file} (run scripts/setup.sh)`);
  const binding = require(file);
  // The binding builds output tensors with `new Tensor(type, data, dims)`.
  class Tensor {
    constructor(type, data, dims) {
      this.type = type;
      this.data = data;
      this.dims = dims;
      this.location = 'cpu';
      this.size = data.length;
    }
  }
  binding.initOrtOnce(3 /* log errors only */, Tensor, true);
  return { binding, Tensor };
}

function main() {
  const opt = parseArgs(process.argv.slice(2));
  const [modelPath, inputPath, outDir] = opt.rest;
  const { binding, Tensor } = loadBinding();
  const session = new binding.InferenceSession();
  session.loadModel(modelPath, {
    intraOpNumThreads: opt.threads,
    interOpNumThreads: 1,
    executionMode: 'sequential',
    graphOptimizationLevel: 'all',
  });
  const inputs = session.inputMetadata;
  if (inputs.length !== 1) die(`model has ${inputs.length} inputs; this runner feeds exactly one`);
  const x = readNpy(inputPath);
  const feeds = { [inputs[0].name]: new Tensor(x.type, x.data, x.dims) };
  const fetches = {};
  for (const o of session.outputMetadata) fetches[o.name] = null;

  if (opt.bench) {
    for (let i = 0; i < opt.warmup; i++) session.run(feeds, fetches, {});
    const ms = [];
    for (let i = 0; i < opt.bench; i++) {
      const t0 = process.hrtime.bigint();
      session.run(feeds, fetches, {});
      ms.push(Number(process.hrtime.bigint() - t0) / 1e6);
    }
    ms.sort((a, b) => a - b);
    const median = ms.length % 2 ? ms[(ms.length - 1) / 2]
                                 : (ms[ms.length / 2 - 1] + ms[ms.length / 2]) / 2;
    const mean = ms.reduce((a, b) => a + b, 0) / ms.length;
    console.log(`median_ms=${median.toFixed(3)} min_ms=${ms[0].toFixed(3)} ` +
                `mean_ms=${mean.toFixed(3)} runs=${ms.length} threads=${opt.threads}`);
    return;
  }

  const out = session.run(feeds, fetches, {});
  fs.mkdirSync(outDir, { recursive: true });
  session.outputMetadata.forEach((o, i) => {
    const t = out[o.name];
    writeNpy(path.join(outDir, `output_${i}.npy`), t);
    console.log(`output_${i}: ${o.name} ${t.type} [${t.dims.join(',')}]`);
  });
}

main();
