// Uppy out of the box: a page on another origin with Uppy's Dashboard and its Tus plugin
// (the `uppy` bundle from npm, pinned in package-lock.json), pointed at ChunkVault's `/files/`
// with a bearer token, in headless Chromium. What a person does — add a file, press Upload,
// pause, resume, reload the page and add the file again — and what they see (the Dashboard's
// status), while the server checks what arrived: the stored file's SHA1.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { createServer as tcpServer } from 'node:net';
import { once } from 'node:events';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startServer, launchBrowser, randomFile, screenshotPath } from './support.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const dist = resolve(here, '../node_modules/uppy/dist');
const CHUNK = 256 * 1024;

// The page: Uppy's Dashboard inline, Tus to the endpoint and token in the URL's fragment.
const APP = `
import { Uppy, Dashboard, Tus } from '/uppy.min.mjs';
const p = new URLSearchParams(location.hash.slice(1));
const uppy = new Uppy({ id: 'chunkvault' })
  .use(Dashboard, { inline: true, target: '#uppy', proudlyDisplayPoweredByUppy: false })
  .use(Tus, {
    endpoint: p.get('endpoint'),
    headers: { authorization: 'Bearer ' + p.get('token') },
    chunkSize: ${CHUNK},
    protocol: p.get('protocol'),
    retryDelays: [0, 250, 500, 1000, 2000, 3000, 5000, 8000],
  });
window.uppy = uppy;
window.results = [];
uppy.on('complete', (r) => window.results.push({ ok: r.successful.length, failed: r.failed.length }));
`;
const PAGE = `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Uppy → ChunkVault</title>
<link rel="stylesheet" href="/uppy.min.css"></head><body><div id="uppy"></div>
<script type="module" src="/app.mjs"></script></body></html>`;

let site;
let origin;
before(async () => {
  site = createServer((req, res) => {
    const path = new URL(req.url, 'http://x').pathname;
    const files = {
      '/': ['text/html', () => PAGE],
      '/app.mjs': ['text/javascript', () => APP],
      '/uppy.min.mjs': ['text/javascript', () => readFileSync(join(dist, 'uppy.min.mjs'))],
      '/uppy.min.css': ['text/css', () => readFileSync(join(dist, 'uppy.min.css'))],
    };
    const f = files[path];
    if (!f) {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(200, { 'content-type': f[0] }).end(f[1]());
  });
  site.listen(0, '127.0.0.1');
  await once(site, 'listening');
  origin = `http://127.0.0.1:${site.address().port}`;
});
after(() => site.close());

async function account(base) {
  const form = { 'content-type': 'application/x-www-form-urlencoded' };
  const body = `username=uppy${process.pid}${Date.now() % 100000}&password=correct-horse-battery`;
  let r = await fetch(`${base}/user/signup`, { method: 'POST', headers: form, body });
  assert.equal(r.status, 200, await r.text());
  r = await fetch(`${base}/user/signin`, { method: 'POST', headers: form, body });
  return (await r.json()).data.Token;
}

async function storedSha1s(base, token) {
  const r = await fetch(`${base}/api/files?limit=1000`, { headers: { authorization: `Bearer ${token}` } });
  return (await r.json()).data.map((f) => `${f.name} ${f.sha1}`);
}

/** Polls `check` until it returns something truthy (the page's CSP-free here, but the house way). */
async function until(what, check, timeout = 60_000) {
  const end = Date.now() + timeout;
  for (;;) {
    const v = await check();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/**
 * A browser page on the Uppy site, uploading to `base`. PATCHes past the `holdAfter`-th are held
 * (not sent) until `release()`; `acked` counts PATCHes the server answered, `sent` records the
 * offsets of every PATCH and HEAD that reached the network. A held request the page gave up
 * meanwhile (pause, reload) is dropped, not sent: a browser never sends an aborted request, and
 * Playwright, let go of one, may send its headers with no body, which holds the upload's lock
 * until the server's body timeout (60 s), longer than Uppy retries.
 */
async function uppyPage(browser, base, token, protocol, { holdAfter = Infinity } = {}) {
  const context = await browser.newContext();
  const page = await context.newPage();
  const state = {
    acked: 0, patches: [], heads: 0, posts: 0, held: [], open: false, spoke: new Set(), aborted: new Set(),
  };
  page.on('requestfailed', (req) => state.aborted.add(req));
  await page.route('**/files/**', async (route) => {
    const req = route.request();
    const h = req.headers();
    state.spoke.add(h['upload-draft-interop-version'] ? `ietf ${h['upload-draft-interop-version']}` : `tus ${h['tus-resumable']}`);
    if (req.method() === 'PATCH') {
      state.patches.push(Number(req.headers()['upload-offset']));
      if (!state.open && state.patches.length > holdAfter) {
        await new Promise((resolve) => state.held.push(resolve));
        if (state.aborted.has(req)) {
          await route.abort().catch(() => {});
          return;
        }
      }
    }
    if (req.method() === 'HEAD') state.heads++;
    if (req.method() === 'POST') state.posts++;
    await route.continue().catch(() => {}); // aborted meanwhile (pause, reload)
  });
  page.on('response', (res) => {
    if (res.request().method() === 'PATCH' && res.status() === 204) state.acked++;
  });
  const release = () => {
    state.open = true;
    for (const r of state.held.splice(0)) r();
  };
  await page.goto(`${origin}/#endpoint=${encodeURIComponent(base + '/files/')}&token=${token}&protocol=${protocol}`);
  await page.locator('.uppy-Dashboard').waitFor();
  const reload = async () => {
    await page.reload();
    await page.locator('.uppy-Dashboard').waitFor();
  };
  return { page, context, state, release, reload };
}

const statusText = (page) => page.locator('.uppy-StatusBar').first().innerText();

async function addAndUpload(page, file) {
  await page.locator('input.uppy-Dashboard-input').first().setInputFiles(file.path);
  await page.getByRole('button', { name: /^Upload 1 file/ }).click();
}

async function completed(page) {
  await until('Uppy to report the upload complete', () =>
    page.evaluate(() => window.results.length > 0 && window.results.at(-1)));
  const r = await page.evaluate(() => window.results.at(-1));
  assert.deepEqual(r, { ok: 1, failed: 0 });
  assert.match(await statusText(page), /Complete/);
}

// tus 1.0 (the Tus plugin's default) and the IETF draft (tus-js-client's `protocol` option, which
// the plugin passes on).
for (const protocol of ['tus-v1', 'ietf-draft-05']) {
test(`Uppy Dashboard + Tus (${protocol}): upload, pause and resume, reload and resume, server restart`, { timeout: 240_000 }, async () => {
  // One data directory and one port for both server processes (the page keeps its endpoint).
  const dir = mkdtempSync(join(tmpdir(), 'chunkvault-uppy-'));
  const probe = tcpServer().listen(0, '127.0.0.1');
  await once(probe, 'listening');
  const listen = `127.0.0.1:${probe.address().port}`;
  probe.close();
  await once(probe, 'close');
  let server = await startServer({ listen, dir, args: ['--cors-origins', origin] });
  const base = server.base;
  const token = await account(base);
  const browser = await launchBrowser();
  const files = [];
  try {
    // 1. A plain upload.
    const plain = await randomFile('uppy-plain.bin', 3 * 1024 * 1024 + 5);
    files.push(plain);
    {
      const { page, context, state } = await uppyPage(browser, base, token, protocol);
      await addAndUpload(page, plain);
      await completed(page);
      // Every request spoke the protocol asked for.
      assert.deepEqual([...state.spoke], [protocol === 'tus-v1' ? 'tus 1.0.0' : 'ietf 6']);
      await page.screenshot({ path: screenshotPath(`uppy-complete-${protocol}`) });
      await context.close();
    }

    // 2. Pause (the Dashboard's button) while a PATCH is on its way, then resume: nothing is
    //    sent while paused, the upload goes on from the server's offset, not from 0.
    const paused = await randomFile('uppy-pause.bin', 4 * 1024 * 1024);
    files.push(paused);
    {
      const { page, context, state, release } = await uppyPage(browser, base, token, protocol, { holdAfter: 5 });
      await addAndUpload(page, paused);
      await until('five acknowledged PATCHes and a held one', () => state.acked >= 5 && state.held.length > 0);
      await page.getByRole('button', { name: 'Pause upload' }).first().click();
      await until('the Dashboard to say Paused', async () => /Paused/.test(await statusText(page)));
      await until('the held PATCH to be given up by the page', () => state.aborted.size > 0);
      const sentBefore = state.patches.length;
      release();
      await until('the held PATCH to be let go', () => state.held.length === 0);
      assert.equal(state.acked, 5, 'the PATCH cut by the pause was not acknowledged');
      await page.getByRole('button', { name: 'Resume upload' }).first().click();
      await completed(page);
      const resumedAt = state.patches[sentBefore];
      assert.ok(resumedAt >= 5 * CHUNK, `resumed at ${resumedAt}, after ${5 * CHUNK} acknowledged bytes`);
      await context.close();
    }

    // 3. Reload the page mid-upload and add the same file again: Uppy finds the upload (its
    //    fingerprint in localStorage), asks the offset (HEAD) and goes on; no new upload made.
    const reloaded = await randomFile('uppy-reload.bin', 4 * 1024 * 1024);
    files.push(reloaded);
    {
      const { page, context, state, release, reload } = await uppyPage(browser, base, token, protocol, { holdAfter: 6 });
      await addAndUpload(page, reloaded);
      await until('six acknowledged PATCHes and a held one', () => state.acked >= 6 && state.held.length > 0);
      const postsBefore = state.posts;
      await reload(); // the page and its Uppy start afresh
      release();
      const patchesBefore = state.patches.length;
      const headsBefore = state.heads;
      await addAndUpload(page, reloaded);
      await completed(page);
      assert.equal(state.posts, postsBefore, 'no second upload was created');
      assert.ok(state.heads > headsBefore, 'the offset was asked for');
      const first = state.patches[patchesBefore];
      assert.ok(first >= 6 * CHUNK, `went on at ${first}`);
      await context.close();
    }

    // 4. The server restarts mid-upload: the held PATCH goes out while the server is down, Uppy
    //    retries, asks the offset of the restarted server and finishes.
    const restarted = await randomFile('uppy-restart.bin', 4 * 1024 * 1024);
    files.push(restarted);
    {
      const { page, context, state, release } = await uppyPage(browser, base, token, protocol, { holdAfter: 4 });
      await addAndUpload(page, restarted);
      await until('four acknowledged PATCHes and a held one', () => state.acked >= 4 && state.held.length > 0);
      await server.stop({ keep: true });
      const headsBefore = state.heads;
      release(); // refused: nothing listens
      server = await startServer({ listen, dir, args: ['--cors-origins', origin] });
      await completed(page);
      assert.ok(state.heads > headsBefore, 'the offset was asked of the restarted server');
      await context.close();
    }

    const stored = await storedSha1s(base, token);
    for (const f of files) {
      assert.ok(stored.includes(`${f.path.split('/').pop()} ${f.sha1}`), `${f.path}: ${stored}`);
    }
    assert.equal(stored.length, files.length, `${stored}`);
  } finally {
    await browser.close();
    await server.stop();
    for (const f of files) rmSync(f.dir, { recursive: true, force: true });
  }
});
}
