#!/usr/bin/env node
// Hashes a 1 GiB file in the page (uploader.js's WorkerHasher: SHA1 in a Web Worker, slice by
// slice) and reports the browser-side peak memory while it runs:
//   - the page's JS heap from Chromium's performance metrics (CDP Performance.getMetrics:
//     JSHeapUsedSize, JSHeapTotalSize), and
//   - the resident memory (VmRSS from /proc) of the renderer process, which also holds the
//     worker's heap and its WebAssembly memory.
// Fails when either peak passes the limit. Usage: node hash-memory.mjs [MiB] (default 1024);
// HASH_MEMORY_LIMIT_MIB changes the limit (200).
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { chromium } from 'playwright-core';
import { launchArgs, randomFile, sha1File, startServer } from './e2e/support.mjs';

const MiB = 1 << 20;
const sizeMiB = Number(process.argv[2] ?? 1024);
const limitMiB = Number(process.env.HASH_MEMORY_LIMIT_MIB ?? 200);

/** Every descendant of `root` whose command line says it is a renderer. */
function rendererPids(root) {
  const children = new Map();
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const stat = readFileSync(`/proc/${d}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (!children.has(ppid)) children.set(ppid, []);
      children.get(ppid).push(Number(d));
    } catch {
      // Gone meanwhile.
    }
  }
  const out = [];
  const stack = [root];
  while (stack.length) {
    const pid = stack.pop();
    for (const c of children.get(pid) ?? []) {
      stack.push(c);
      try {
        if (readFileSync(`/proc/${c}/cmdline`, 'utf8').includes('--type=renderer')) out.push(c);
      } catch {
        // Gone meanwhile.
      }
    }
  }
  return out;
}

/** VmRSS and RssAnon (the process's own memory, without mapped files such as the binary). */
function memoryMiB(pid) {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const kb = (field) => Number(new RegExp(`${field}:\\s+(\\d+) kB`).exec(status)?.[1] ?? 0) / 1024;
    return { rss: kb('VmRSS'), anon: kb('RssAnon') };
  } catch {
    return { rss: 0, anon: 0 };
  }
}

/** The browser process: the one whose command line carries our marker switch. */
function browserPid(marker) {
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const cmd = readFileSync(`/proc/${d}/cmdline`, 'utf8');
      if (cmd.includes(marker) && !cmd.includes('--type=')) return Number(d);
    } catch {
      // Gone meanwhile.
    }
  }
  throw new Error('browser process not found');
}

const server = await startServer();
// A local launch, so that setInputFiles hands Chromium the path instead of streaming the bytes.
// Chromium ignores the unknown marker switch; it lets us find the browser's process.
const marker = `--chunkvault-hash-memory=${process.pid}`;
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
  headless: true,
  args: [...launchArgs, marker],
});
const root = browserPid(marker);
let file;
let failed = false;
try {
  // A sparse file: reading it costs no disk, and the hasher cannot tell.
  file = { dir: (await randomFile('seed', 0)).dir };
  file.path = join(file.dir, 'big.bin');
  const t = spawnSync('truncate', ['-s', `${sizeMiB}M`, file.path]);
  assert.equal(t.status, 0, String(t.stderr));
  const expected = await sha1File(file.path);

  const page = await browser.newPage();
  page.on('pageerror', (e) => console.error('page error:', e));
  await page.goto(server.base + '/');
  await page.evaluate(() => {
    const input = document.createElement('input');
    input.type = 'file';
    input.id = 'hash-me';
    document.body.append(input);
  });
  await page.locator('#hash-me').setInputFiles(file.path);
  const cdp = await page.context().newCDPSession(page);
  await cdp.send('Performance.enable');

  const peak = { heapUsed: 0, heapTotal: 0, rss: 0, anon: 0 };
  const sample = async () => {
    const { metrics } = await cdp.send('Performance.getMetrics');
    const m = Object.fromEntries(metrics.map(({ name, value }) => [name, value / MiB]));
    peak.heapUsed = Math.max(peak.heapUsed, m.JSHeapUsedSize);
    peak.heapTotal = Math.max(peak.heapTotal, m.JSHeapTotalSize);
    for (const m of rendererPids(root).map(memoryMiB)) {
      peak.rss = Math.max(peak.rss, m.rss);
      peak.anon = Math.max(peak.anon, m.anon);
    }
  };
  await sample();
  const before = { ...peak };
  let sampling = true;
  const sampler = (async () => {
    while (sampling) {
      await sample();
      await new Promise((r) => setTimeout(r, 50)); // sampling period, not synchronisation
    }
  })();

  const started = Date.now();
  const got = await page.evaluate(async () => {
    const { WorkerHasher } = await import('/uploader.js');
    const hasher = new WorkerHasher();
    const sha1 = await hasher.sha1(document.querySelector('#hash-me').files[0]);
    hasher.terminate();
    return sha1;
  });
  const seconds = (Date.now() - started) / 1000;
  sampling = false;
  await sampler;
  assert.equal(got, expected, 'the page computed a wrong SHA1');

  const f = (x) => x.toFixed(1);
  console.log(`hashed ${sizeMiB} MiB in the page in ${f(seconds)} s (${f(sizeMiB / seconds)} MiB/s), SHA1 ${got} (matches)`);
  console.log(`page JS heap (Performance.getMetrics): used ${f(before.heapUsed)} MiB before, peak ${f(peak.heapUsed)} MiB; total peak ${f(peak.heapTotal)} MiB`);
  console.log(`renderer process (page + hash worker, /proc): RSS ${f(before.rss)} MiB before, peak ${f(peak.rss)} MiB; of which its own (RssAnon) ${f(before.anon)} MiB before, peak ${f(peak.anon)} MiB`);
  console.log(`browser-side peak memory while hashing: ${f(peak.rss)} MiB renderer RSS, ${f(peak.heapTotal)} MiB page JS heap (limit ${limitMiB} MiB)`);
  // No renderer found means nothing was measured: a failure, not a pass.
  if (!(before.rss > 0) || !(peak.rss > 0)) {
    console.error('FAIL: no renderer process was found under the browser: its memory was not measured');
    failed = true;
  }
  if (peak.rss > limitMiB || peak.heapTotal > limitMiB) {
    console.error(`FAIL: peak memory over ${limitMiB} MiB`);
    failed = true;
  }
} finally {
  await browser.close();
  await server.stop();
  if (file?.dir) rmSync(file.dir, { recursive: true, force: true });
}
process.exit(failed ? 1 : 0);
