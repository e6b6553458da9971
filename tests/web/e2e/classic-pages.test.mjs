// End-to-end: the classic pages (web/static/view/, the tutorial's paths and routes) served by the
// real chunkvault binary, in headless Debian Chromium, used as a person would: sign up, sign in,
// upload with the plain form and in chunks, download, rename, delete, sign out.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { apiUpload, launchBrowser, listFiles, randomFile, screenshotPath, startServer } from './support.mjs';

const MiB = 1 << 20;
const PASSWORD = 'correct-horse-battery';

let server;
let browser;
let page;
let token;
const username = `classic${process.pid}_${Date.now() % 100000}`;
const errors = [];
const cleanup = [];

/** A page in a fresh browser context whose script errors and CSP refusals land in `errors`. */
async function newPage() {
  const context = await browser.newContext({ acceptDownloads: true, viewport: { width: 1100, height: 900 } });
  const p = await context.newPage();
  p.on('pageerror', (e) => errors.push(String(e)));
  p.on('console', (m) => {
    if (m.type() === 'error' && /Content Security Policy|Refused to/.test(m.text())) errors.push(m.text());
  });
  return p;
}

before(async () => {
  server = await startServer();
  browser = await launchBrowser();
  page = await newPage();
});

after(async () => {
  await browser?.close();
  await server?.stop();
  for (const dir of cleanup) await rm(dir, { recursive: true, force: true });
});

const view = (name) => `${server.base}/static/view/${name}.html`;
const cssString = (s) => s.replace(/["\\]/g, '\\$&');
/** home.html's row of the file named `name`. */
const row = (name) => page.locator(`#file-rows tr[data-name="${cssString(name)}"]`);

async function file(name, size) {
  const f = await randomFile(name, size);
  cleanup.push(f.dir);
  return f;
}

async function apiDelete(id) {
  const res = await fetch(`${server.base}/api/files/${encodeURIComponent(id)}`, {
    method: 'DELETE',
    headers: { Authorization: `Bearer ${token}` },
  });
  assert.equal(res.status, 200);
}

/** The cells of a row as a person reads them: name, size, uploaded, last updated. */
async function rowText(name) {
  const cells = await row(name).locator('td').allTextContents();
  return cells.slice(0, 4);
}

/** Clicks `trigger` and saves the download it starts; resolves to its file name and bytes. */
async function downloadBy(trigger, dir) {
  const [download] = await Promise.all([page.waitForEvent('download'), trigger.click()]);
  const saved = join(dir, `downloaded-${Date.now()}`);
  await download.saveAs(saved);
  return { name: download.suggestedFilename(), bytes: await readFile(saved) };
}

test('sign up, sign in (a wrong password first): home.html shows the user', async () => {
  await page.goto(view('signup'));
  await page.getByLabel('Username').fill(username);
  await page.getByLabel('Password', { exact: true }).fill(PASSWORD);
  await page.getByLabel('Confirm password').fill(PASSWORD);
  await page.screenshot({ path: screenshotPath('classic-1-signup'), fullPage: true });
  await page.getByRole('button', { name: 'Sign up' }).click();
  await page.waitForURL('**/static/view/signin.html?*');
  assert.equal(await page.getByLabel('Username').inputValue(), username);

  await page.getByLabel('Password').fill('not-the-password');
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.locator('#message', { hasText: 'Sign-in failed' }).waitFor();
  assert.ok(page.url().includes('/static/view/signin.html'));
  assert.equal(await page.evaluate(() => localStorage.getItem('token')), null);

  await page.getByLabel('Password').fill(PASSWORD);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.waitForURL('**/static/view/home.html');
  await page.locator('#username', { hasText: username }).waitFor();
  assert.equal(await page.locator('#username').textContent(), username);
  assert.match(await page.locator('#signup-at').textContent(), /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$/);
  await page.locator('#files-empty').waitFor();
  token = await page.evaluate(() => localStorage.getItem('token'));
  assert.equal(await page.evaluate(() => localStorage.getItem('username')), username);
  assert.ok(token);
});

test('upload.html: the native form posts the file, home.html lists it, Download gives its bytes', async () => {
  const name = '教程 笔记 notes.txt';
  const f = await file(name, 1500);
  await page.getByRole('link', { name: 'Upload a file' }).click();
  await page.waitForURL('**/static/view/upload.html');
  // The token travels in the form, before the file.
  assert.equal(await page.locator('#token').inputValue(), token);
  assert.deepEqual(
    await page.locator('#upload-form').evaluate((form) => [...form.elements].map((e) => e.name).filter(Boolean)),
    ['token', 'file'],
  );
  await page.getByLabel('File', { exact: true }).setInputFiles(f.path);
  await page.screenshot({ path: screenshotPath('classic-2-upload'), fullPage: true });
  const posted = page.waitForResponse((r) => new URL(r.url()).pathname === '/file/upload' && r.request().method() === 'POST');
  await page.getByRole('button', { name: 'Upload' }).click();
  const answer = await posted;
  assert.equal(answer.status(), 302);
  assert.match(answer.request().headers()['content-type'], /^multipart\/form-data; boundary=/);
  await page.waitForURL('**/static/view/home.html');

  await row(name).waitFor();
  const [shownName, shownSize, uploaded, updated] = await rowText(name);
  assert.equal(shownName, name);
  assert.equal(shownSize, '1.5 KiB');
  assert.match(uploaded, /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$/);
  assert.match(updated, /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$/);
  await page.screenshot({ path: screenshotPath('classic-2-home'), fullPage: true });

  const got = await downloadBy(row(name).getByRole('button', { name: `Download ${name}` }), f.dir);
  assert.equal(got.name, name);
  assert.deepEqual(got.bytes, await readFile(f.path));

  // Its name leads to download.html: the meta, and a Download button of its own.
  await row(name).getByRole('link', { name }).click();
  await page.waitForURL(`**/static/view/download.html?filehash=${f.sha1}`);
  await page.locator('#meta-name', { hasText: name }).waitFor();
  assert.equal(await page.locator('#meta-sha1').textContent(), f.sha1);
  assert.equal(await page.locator('#meta-size').textContent(), '1.5 KiB (1500 bytes)');
  const again = await downloadBy(page.getByRole('button', { name: `Download ${name}` }), f.dir);
  assert.equal(again.name, name);
  assert.deepEqual(again.bytes, await readFile(f.path));
});

test('mpupload.html: a 12 MiB file goes in three checked chunks and is listed; the same file again is not sent', { timeout: 120_000 }, async () => {
  const name = 'chunked upload.bin';
  const f = await file(name, 12 * MiB);
  const bytes = await readFile(f.path);
  const parts = [];
  const onRequest = (req) => {
    const url = new URL(req.url());
    if (url.pathname === '/file/mpupload/uppart') {
      parts.push({ index: Number(url.searchParams.get('index')), chkhash: url.searchParams.get('chkhash'), token: url.searchParams.get('token') });
    }
  };
  page.on('request', onRequest);

  await page.goto(view('home'));
  await page.getByRole('link', { name: 'Upload in chunks' }).click();
  await page.waitForURL('**/static/view/mpupload.html');
  await page.getByLabel('File', { exact: true }).setInputFiles(f.path);
  await page.getByRole('button', { name: 'Upload' }).click();
  await page.waitForURL('**/static/view/home.html', { timeout: 110_000 });
  await row(name).waitFor();
  const [shownName, shownSize] = await rowText(name);
  assert.equal(shownName, name);
  assert.equal(shownSize, '12 MiB');

  // Three chunks of the server's 5 MiB, each with the SHA1 of its bytes.
  const chunk = 5 * MiB;
  assert.deepEqual(parts, [1, 2, 3].map((index) => ({
    index,
    chkhash: createHash('sha1').update(bytes.subarray((index - 1) * chunk, index * chunk)).digest('hex'),
    token,
  })));
  const listed = (await listFiles(server.base, token)).find((m) => m.name === name);
  assert.equal(listed?.sha1, f.sha1);
  assert.equal(listed?.size, 12 * MiB);

  // The user already holds this content: init answers 10006 and nothing is sent.
  parts.length = 0;
  await page.goto(view('mpupload'));
  await page.getByLabel('File', { exact: true }).setInputFiles(f.path);
  const init = page.waitForResponse((r) => new URL(r.url()).pathname === '/file/mpupload/init');
  await page.getByRole('button', { name: 'Upload' }).click();
  const answer = JSON.parse(await (await init).text());
  assert.equal(answer.code, 10006, `init of content the user holds: ${JSON.stringify(answer)}`);
  await page.locator('#progress', { hasText: 'already stored' }).waitFor();
  assert.deepEqual(parts, []);
  await page.screenshot({ path: screenshotPath('classic-3-mpupload-already-stored'), fullPage: true });
  page.off('request', onRequest);
});

test('home.html: rename (prompt) and delete (confirm)', async () => {
  await page.goto(view('home'));
  const name = '教程 笔记 notes.txt';
  const renamed = 'renamed notes.txt';
  await row(name).waitFor();
  page.once('dialog', (d) => {
    assert.equal(d.type(), 'prompt');
    assert.equal(d.defaultValue(), name);
    d.accept(renamed);
  });
  await row(name).getByRole('button', { name: `Rename ${name}` }).click();
  await row(renamed).waitFor();
  assert.equal(await row(name).count(), 0);
  await page.locator('#status', { hasText: `Renamed ${name} to ${renamed}.` }).waitFor();

  page.once('dialog', (d) => {
    assert.equal(d.type(), 'confirm');
    d.accept();
  });
  await row(renamed).getByRole('button', { name: `Delete ${renamed}` }).click();
  await row(renamed).waitFor({ state: 'detached' });
  await row('chunked upload.bin').waitFor();
  await page.screenshot({ path: screenshotPath('classic-4-after-delete'), fullPage: true });
  assert.deepEqual((await listFiles(server.base, token)).map((m) => m.name), ['chunked upload.bin']);
});

test('mpupload.html where crypto.subtle is missing (plain http from another machine): hash-wasm hashes', async () => {
  const name = 'no subtle crypto.bin';
  const f = await file(name, 2 * MiB + 3);
  const other = await newPage();
  await other.addInitScript(() => {
    Object.defineProperty(Crypto.prototype, 'subtle', { get: () => undefined });
  });
  await other.goto(view('index'));
  await other.evaluate(([u, t]) => {
    localStorage.setItem('username', u);
    localStorage.setItem('token', t);
  }, [username, token]);
  assert.equal(await other.evaluate(() => window.crypto.subtle), undefined);
  const chkhashes = [];
  other.on('request', (req) => {
    const url = new URL(req.url());
    if (url.pathname === '/file/mpupload/uppart') chkhashes.push(url.searchParams.get('chkhash'));
  });
  await other.goto(view('mpupload'));
  await other.getByLabel('File', { exact: true }).setInputFiles(f.path);
  await other.getByRole('button', { name: 'Upload' }).click();
  await other.waitForURL('**/static/view/home.html');
  await other.locator(`#file-rows tr[data-name="${name}"]`).waitFor();
  assert.deepEqual(chkhashes, [f.sha1]);
  const listed = (await listFiles(server.base, token)).find((m) => m.name === name);
  assert.equal(listed?.sha1, f.sha1);
  await other.context().close();
  // Not part of what the next tests count.
  await apiDelete(listed.id);
});

test('home.html: 20 files a page, Next and Previous', async () => {
  for (let i = 1; i <= 21; i++) {
    await apiUpload(server.base, token, `page file ${String(i).padStart(2, '0')}.txt`, Buffer.from(`page file ${i}\n`));
  }
  await page.goto(view('home'));
  await row('page file 21.txt').waitFor();
  assert.equal(await page.locator('#file-rows tr').count(), 20);
  assert.ok(await page.getByRole('button', { name: 'Previous' }).isDisabled());
  await page.getByRole('button', { name: 'Next' }).click();
  await page.locator('#page-label', { hasText: 'Page 2' }).waitFor();
  // 22 files: the chunked one and 21 small ones.
  assert.equal(await page.locator('#file-rows tr').count(), 2);
  assert.ok(await page.getByRole('button', { name: 'Next' }).isDisabled());
  await page.getByRole('button', { name: 'Previous' }).click();
  await page.locator('#page-label', { hasText: 'Page 1' }).waitFor();
  assert.equal(await page.locator('#file-rows tr').count(), 20);
});

test('sign out: back to signin.html, and the old token no longer opens home.html', async () => {
  await page.goto(view('home'));
  await page.locator('#username', { hasText: username }).waitFor();
  await page.getByRole('button', { name: 'Sign out' }).click();
  await page.waitForURL('**/static/view/signin.html');
  assert.equal(await page.evaluate(() => localStorage.getItem('token')), null);

  // Without a token: straight to the sign-in page.
  await page.goto(view('home'));
  await page.waitForURL('**/static/view/signin.html');
  // With the revoked token: the server's 401 sends the page there too.
  await page.evaluate(([u, t]) => {
    localStorage.setItem('username', u);
    localStorage.setItem('token', t);
  }, [username, token]);
  await page.goto(view('home'));
  await page.waitForURL('**/static/view/signin.html');
  const res = await fetch(`${server.base}/api/account`, { headers: { Authorization: `Bearer ${token}` } });
  assert.equal(res.status, 401);
});

test('the classic GET routes serve the same pages, which work there too', async () => {
  for (const [route, view] of [['/user/signup', 'signup'], ['/file/upload', 'upload']]) {
    const [a, b] = await Promise.all([fetch(server.base + route), fetch(`${server.base}/static/view/${view}.html`)]);
    assert.equal(a.status, 200, route);
    assert.match(a.headers.get('content-type'), /^text\/html/, route);
    assert.equal(await a.text(), await b.text(), route);
  }
  const signin = await fetch(`${server.base}/user/signin`, { redirect: 'manual' });
  assert.equal(signin.status, 302);
  assert.equal(signin.headers.get('location'), '/static/view/signin.html');

  // The sign-up page at /user/signup: its scripts and links are absolute, so it signs up from there.
  await page.goto(`${server.base}/user/signup`);
  await page.getByLabel('Username').fill(`${username}b`);
  await page.getByLabel('Password', { exact: true }).fill(PASSWORD);
  await page.getByLabel('Confirm password').fill(PASSWORD);
  await page.getByRole('button', { name: 'Sign up' }).click();
  await page.waitForURL('**/static/view/signin.html?*');
});

test('no script error and nothing refused by the Content-Security-Policy', () => {
  assert.deepEqual(errors, []);
});
