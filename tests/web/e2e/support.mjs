// Shared by the end-to-end tests: the real chunkvault binary on a free port with a fresh data
// directory, Debian's Chromium driven by playwright-core, test files, the server's log.
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { once } from 'node:events';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const here = dirname(fileURLToPath(import.meta.url));
const repo = resolve(here, '../../..');
export const SCREENSHOTS = resolve(here, '../screenshots');

/** The binary under test: $CHUNKVAULT_BIN, else the debug build under $CARGO_TARGET_DIR (or target/). */
export function binaryPath() {
  if (process.env.CHUNKVAULT_BIN) return process.env.CHUNKVAULT_BIN;
  const target = process.env.CARGO_TARGET_DIR ? resolve(process.env.CARGO_TARGET_DIR) : join(repo, 'target');
  for (const profile of ['debug', 'release']) {
    const p = join(target, profile, 'chunkvault');
    if (existsSync(p)) return p;
  }
  throw new Error(`no chunkvault binary under ${target}; build it (cargo build -p chunkvault-cli) or set CHUNKVAULT_BIN`);
}

/**
 * Starts `chunkvault serve` on 127.0.0.1:0 with a temporary data directory; `listen`, `dir`
 * (a data directory to start again from) and extra `args` for tests that need them.
 */
export async function startServer({ listen = '127.0.0.1:0', dir = null, args = [] } = {}) {
  const bin = binaryPath();
  dir ??= mkdtempSync(join(tmpdir(), 'chunkvault-web-'));
  const logPath = join(dir, 'server.log');
  const log = createWriteStream(logPath, { flags: 'a' });
  await once(log, 'open');
  const env = { ...process.env, CHUNKVAULT_LOG: 'info' };
  delete env.CHUNKVAULT_DATABASE_URL;
  delete env.CHUNKVAULT_REDIS_URL;
  const child = spawn(bin, ['serve', '--listen', listen, '--data-dir', join(dir, 'data'), ...args], {
    stdio: ['ignore', 'pipe', log],
    env,
  });
  const exited = once(child, 'exit').then(([code]) => {
    throw new Error(`chunkvault exited (${code}) before listening:\n${readFileSync(logPath, 'utf8')}`);
  });
  const lines = createInterface({ input: child.stdout });
  const firstLine = once(lines, 'line').then(([line]) => line);
  const line = await Promise.race([firstLine, exited]);
  exited.catch(() => {});
  const base = line.trim().replace(/^listening on /, '');
  if (!base.startsWith('http://')) throw new Error(`unexpected first line from chunkvault: ${line}`);
  return {
    base,
    logPath,
    dir,
    /** (upload id, part) of every "part stored" line so far. */
    partsStored() {
      const stored = [];
      for (const l of readFileSync(logPath, 'utf8').split('\n')) {
        if (!l.includes('part stored')) continue;
        const upload = /upload=(\S+)/.exec(l)?.[1];
        const part = Number(/part=(\d+)/.exec(l)?.[1]);
        stored.push({ upload, part });
      }
      return stored;
    },
    /** Stops the server; with `keep`, its data directory stays for a restart. */
    async stop({ keep = false } = {}) {
      if (child.exitCode === null) {
        child.kill('SIGTERM');
        await once(child, 'exit');
      }
      log.end();
      if (!keep) rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Chromium flags: nothing reaching out to the network on its own (the machine has none). */
export const launchArgs = [
  '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
];

/** Debian's Chromium, headless (playwright gives it a fresh profile directory). */
export async function launchBrowser() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
    headless: true,
    args: launchArgs,
  });
}

/** A file of `size` random bytes in a fresh temp directory; returns its path and SHA1. */
export async function randomFile(name, size) {
  const dir = mkdtempSync(join(tmpdir(), 'chunkvault-web-file-'));
  const path = join(dir, name);
  const out = createWriteStream(path);
  const sha1 = createHash('sha1');
  for (let left = size; left > 0;) {
    const chunk = randomBytes(Math.min(left, 1 << 20));
    sha1.update(chunk);
    left -= chunk.length;
    if (!out.write(chunk)) await once(out, 'drain');
  }
  out.end();
  await once(out, 'close');
  return { path, dir, sha1: sha1.digest('hex'), size };
}

export async function sha1File(path) {
  const h = createHash('sha1');
  for await (const chunk of createReadStream(path)) h.update(chunk);
  return h.digest('hex');
}

export function screenshotPath(name) {
  mkdirSync(SCREENSHOTS, { recursive: true });
  return join(SCREENSHOTS, `${name}.png`);
}

let users = 0;
/** Signs up a new user through the page; resolves once the upload area shows. */
export async function signUp(page, base) {
  const username = `user${process.pid}_${++users}_${Date.now() % 100000}`;
  await page.goto(base + '/');
  await page.getByLabel('Username').fill(username);
  await page.getByLabel('Password').fill('correct-horse-battery');
  await page.getByRole('button', { name: 'Sign up' }).click();
  await page.getByRole('heading', { name: 'Upload' }).waitFor();
  const token = await page.evaluate(() => JSON.parse(localStorage.getItem('chunkvault.session')).token);
  return { username, token };
}

/** The upload list item of the file named `name`. */
export const uploadItem = (page, name) => page.locator(`#uploads li[data-name="${cssString(name)}"]`);

/** The file manager's row of the file named `name`. */
export const fileRow = (page, name) => page.locator(`#file-rows tr[data-name="${cssString(name)}"]`);

function cssString(s) {
  return s.replace(/["\\]/g, '\\$&');
}

/** Waits until the upload of `name` reaches `state`; fails at once if it fails instead. */
export async function waitForState(page, name, state, timeout = 120_000) {
  const item = uploadItem(page, name);
  await page.waitForFunction(
    ([sel, wanted]) => {
      const li = document.querySelector(sel);
      if (li?.dataset.state === 'failed') throw new Error(`upload failed: ${li.querySelector('.message').textContent}`);
      return li?.dataset.state === wanted;
    },
    [`#uploads li[data-name="${cssString(name)}"]`, state],
    { timeout, polling: 100 },
  );
  return item;
}

/** A JSON API call from node with the user's token (to check what the server holds). */
export async function apiGet(base, token, path) {
  const res = await fetch(base + path, { headers: { Authorization: `Bearer ${token}` } });
  const body = await res.json();
  if (body.code !== 0) throw new Error(`${path}: ${body.msg}`);
  return body.data;
}

/** The user's files as GET /api/files lists them (up to 1000). */
export const listFiles = (base, token) => apiGet(base, token, '/api/files?limit=1000');

/** Uploads `bytes` as `name` from node through the REST upload API; resolves to the file's view. */
export async function apiUpload(base, token, name, bytes) {
  const call = async (method, path, init = {}) => {
    const headers = { Authorization: `Bearer ${token}`, ...init.headers };
    const res = await fetch(base + path, { ...init, method, headers });
    const body = await res.json();
    if (!res.ok || body.code !== 0) throw new Error(`${method} ${path}: HTTP ${res.status} ${body.msg}`);
    return body.data;
  };
  const sha1 = createHash('sha1').update(bytes).digest('hex');
  const session = await call('POST', '/uploads', {
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ filename: name, size: bytes.length, sha1 }),
  });
  if (session.instant) return session.file;
  if (!session.upload_id) throw new Error(`POST /uploads: no session for ${name}: ${JSON.stringify(session)}`);
  const id = encodeURIComponent(session.upload_id);
  for (let part = 1; part <= session.chunk_count; part++) {
    const body = bytes.subarray((part - 1) * session.chunk_size, part * session.chunk_size);
    await call('PUT', `/uploads/${id}/parts/${part}`, { headers: { 'Content-Type': 'application/octet-stream' }, body });
  }
  return call('POST', `/uploads/${id}/complete`);
}
