// The live web view in headless Chromium (Debian's), driven by playwright-core:
//   node web_view.mjs URL [SCREENSHOT.png]
// Checks that the page loads, the picture updates and the detections list
// changes with the video; prints one JSON line with what it saw.
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';

const [url, screenshot] = process.argv.slice(2);
const cache = process.env.KESTREL_CACHE || path.join(process.env.HOME, '.cache', 'kestrel');
const pwPath = path.join(cache, 'npm', 'playwright-core-1.65.1', 'package', 'index.mjs');
if (!existsSync(pwPath)) {
  console.error(`missing ${pwPath} (run scripts/setup.sh)`);
  process.exit(1);
}
const { chromium } = await import(pathToFileURL(pwPath).href);

function fail(why) {
  console.error('FAIL web view: ' + why);
  process.exitCode = 1;
}

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  headless: true,
  args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking',
    '--disable-component-update', '--disable-sync', '--no-first-run'],
  // playwright gives every launch a fresh temporary profile of its own.
});
try {
  const page = await browser.newPage({ viewport: { width: 1280, height: 760 } });
  const errors = [];
  page.on('pageerror', (e) => errors.push(String(e)));
  await page.goto(url, { waitUntil: 'domcontentloaded', timeout: 15000 });
  // The first picture: the <img> has decoded a JPEG from the stream.
  await page.waitForFunction(() => document.getElementById('stream').naturalWidth > 0, null,
    { timeout: 15000 });
  // Pixels of the <img> as it is now (same origin: the canvas is not tainted).
  const pictureHash = async () => {
    const data = await page.evaluate(() => {
      const img = document.getElementById('stream');
      const c = document.createElement('canvas');
      c.width = 160; c.height = 90;
      const ctx = c.getContext('2d');
      ctx.drawImage(img, 0, 0, c.width, c.height);
      return Array.from(ctx.getImageData(0, 0, c.width, c.height).data);
    });
    return createHash('sha1').update(Buffer.from(data)).digest('hex');
  };
  const pictures = new Set();
  const lists = new Set();
  const frames = new Set();
  let counts = '';
  for (let i = 0; i < 8; i++) {
    pictures.add(await pictureHash());
    const seen = await page.evaluate(() => ({
      list: document.getElementById('detections').innerText,
      frame: document.getElementById('frame').innerText,
      counts: document.getElementById('counts').innerText,
    }));
    if (seen.list) lists.add(seen.list);
    frames.add(seen.frame);
    if (seen.counts) counts = seen.counts;
    await page.waitForTimeout(350);
  }
  const stats = await page.evaluate(() => Object.fromEntries(
    Array.from(document.querySelectorAll('#stats td[data-metric]')).map((td) => [td.dataset.metric, td.innerText])));
  const natural = await page.evaluate(() => {
    const img = document.getElementById('stream');
    return [img.naturalWidth, img.naturalHeight];
  });
  if (screenshot) {
    // Draw the page's own boxes too for the picture in the docs.
    await page.screenshot({ path: screenshot });
  }
  const result = { pictures: pictures.size, lists: lists.size, frames: frames.size, counts,
    stats, natural, errors };
  console.log(JSON.stringify(result));
  if (errors.length) fail('page errors: ' + errors.join('; '));
  if (pictures.size < 4) fail(`the picture changed only ${pictures.size - 1} times in 3 s`);
  if (frames.size < 4) fail(`the frame number changed only ${frames.size - 1} times`);
  if (lists.size < 2) fail('the detections list never changed');
  if (!/face/.test(counts)) fail(`counts show no face: ${counts}`);
  if (!(Number(stats.fps) > 0)) fail(`stats fps ${stats.fps}`);
} finally {
  await browser.close();
}
