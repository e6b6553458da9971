// End-to-end: the page served by the real chunkvault binary, in headless Debian Chromium.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { copyFile, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import {
  apiUpload, fileRow, launchBrowser, listFiles, randomFile, screenshotPath, sha1File, signUp,
  startServer, uploadItem, waitForState,
} from './support.mjs';

const MiB = 1 << 20;
const PART_URL = '**/uploads/*/parts/*';
const partOf = (url) => {
  const m = /\/uploads\/([^/]+)\/parts\/(\d+)$/.exec(new URL(url).pathname);
  return m && { upload: m[1], part: Number(m[2]) };
};

let server;
let browser;
const cleanup = [];

before(async () => {
  server = await startServer();
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await server?.stop();
  for (const dir of cleanup) await rm(dir, { recursive: true, force: true });
});

async function newPage() {
  const context = await browser.newContext({ acceptDownloads: true, viewport: { width: 1100, height: 900 } });
  const page = await context.newPage();
  page.errors = [];
  page.on('pageerror', (e) => page.errors.push(String(e)));
  page.on('console', (m) => {
    if (m.type() === 'error' && /Content Security Policy|Refused to/.test(m.text())) page.errors.push(m.text());
  });
  return page;
}

/** No script error and nothing the Content-Security-Policy refused. */
async function closePage(page) {
  assert.deepEqual(page.errors, []);
  await page.context().close();
}

async function file(name, size) {
  const f = await randomFile(name, size);
  cleanup.push(f.dir);
  return f;
}

/** SHA1 of what the server sends for the user's file of content `sha1` (streamed, never held whole). */
async function downloadedSha1(token, sha1) {
  const file = (await listFiles(server.base, token)).find((f) => f.sha1 === sha1);
  assert.ok(file, `no file of SHA1 ${sha1} is listed`);
  const res = await fetch(`${server.base}/api/files/${encodeURIComponent(file.id)}/content`, {
    headers: { Authorization: `Bearer ${token}` },
  });
  assert.equal(res.status, 200);
  const h = createHash('sha1');
  for await (const chunk of res.body) h.update(chunk);
  return h.digest('hex');
}

/** How often the server stored each part of `upload`, from its log. */
function storedCounts(upload) {
  const counts = new Map();
  for (const s of server.partsStored()) {
    if (s.upload === upload) counts.set(s.part, (counts.get(s.part) ?? 0) + 1);
  }
  return counts;
}

/** Records every state an upload item shows, from the page's side. */
async function recordStates(page) {
  await page.evaluate(() => {
    window.statesSeen = [];
    new MutationObserver((records) => {
      for (const r of records) if (r.target.dataset?.state) window.statesSeen.push(r.target.dataset.state);
    }).observe(document.querySelector('#uploads'), { subtree: true, attributes: true, attributeFilter: ['data-state'] });
  });
}

test('1: sign up, upload 64 MiB, download it: same SHA1', { timeout: 180_000 }, async () => {
  const page = await newPage();
  const { token } = await signUp(page, server.base);
  // An empty account: "No files yet.", and no pager to page through nothing.
  await page.locator('#files-empty').waitFor();
  assert.ok(await page.locator('.pager').isHidden());
  const f = await file('大文件 测试-64MiB.bin', 64 * MiB);
  const name = '大文件 测试-64MiB.bin';
  await page.locator('#file-input').setInputFiles(f.path);
  const item = await waitForState(page, name, 'done');
  assert.match(await item.locator('.figures').textContent(), /100% · 64 of 64 MiB sent/);
  // Finished: the card folds into the summary line, the list says what happened.
  await page.locator('#finished-text', { hasText: '1 finished: 1 uploaded.' }).waitFor();
  assert.ok(await item.isHidden());
  assert.match(await page.locator('#files-status').textContent(), /uploaded/);
  const row = fileRow(page, name);
  await row.waitFor();
  await page.screenshot({ path: screenshotPath('1-uploaded-64MiB'), fullPage: true });

  const [download] = await Promise.all([
    page.waitForEvent('download'),
    row.getByRole('button', { name: `Download ${name}` }).click(),
  ]);
  assert.equal(download.suggestedFilename(), name);
  const saved = join(f.dir, 'downloaded');
  await download.saveAs(saved);
  assert.equal(await sha1File(saved), f.sha1);

  const [listed] = await listFiles(server.base, token);
  assert.equal(listed.name, name);
  assert.equal(listed.sha1, f.sha1);
  assert.equal(listed.size, 64 * MiB);
  assert.equal(await row.getAttribute('data-id'), listed.id);
  await closePage(page);
});

test('2: 30% of part requests aborted: the upload completes and is correct', { timeout: 180_000 }, async () => {
  const page = await newPage();
  const { token } = await signUp(page, server.base);
  const name = 'flaky network.bin';
  const f = await file(name, 64 * MiB);
  let requests = 0;
  let aborted = 0;
  let upload = null;
  await page.route(PART_URL, (route) => {
    upload = partOf(route.request().url()).upload;
    // Three of every ten part requests fail as a dropped connection would.
    if ([0, 3, 6].includes(requests++ % 10)) {
      aborted++;
      return route.abort('connectionreset');
    }
    return route.continue();
  });
  await recordStates(page);
  await page.locator('#file-input').setInputFiles(f.path);
  await waitForState(page, name, 'done');

  assert.ok(aborted >= 4, `only ${aborted} of ${requests} part requests were aborted`);
  assert.equal(aborted, [...Array(requests).keys()].filter((i) => [0, 3, 6].includes(i % 10)).length);
  assert.ok((await page.evaluate(() => window.statesSeen)).includes('retrying'), 'the page never showed "retrying"');
  // Aborted requests never reached the server, so each of the 13 parts was stored exactly once.
  const counts = storedCounts(upload);
  assert.deepEqual([...counts.keys()].sort((a, b) => a - b), [...Array(13).keys()].map((i) => i + 1));
  assert.ok([...counts.values()].every((c) => c === 1), JSON.stringify([...counts]));
  assert.equal(requests, 13 + aborted);
  assert.equal(await downloadedSha1(token, f.sha1), f.sha1);
  await closePage(page);
});

test('3: reload mid-upload, choose the file again: it resumes, no acknowledged part sent twice', { timeout: 180_000 }, async () => {
  const page = await newPage();
  const { token } = await signUp(page, server.base);
  const name = '断点续传 resume.bin';
  const f = await file(name, 64 * MiB);

  // Five parts go through; later ones are held (never answered) until the reload cuts them.
  const LET_THROUGH = 5;
  let passed = 0;
  let held = 0;
  const acked = new Set();
  let upload = null;
  let reloaded = false;
  const sentAfterReload = [];
  let signalMidway;
  const midway = new Promise((resolve) => { signalMidway = resolve; });
  page.on('response', (res) => {
    const p = partOf(res.url());
    if (p && res.request().method() === 'PUT' && res.status() === 200 && !reloaded) {
      acked.add(p.part);
      upload = p.upload;
      if (acked.size === LET_THROUGH && held > 0) signalMidway();
    }
  });
  page.on('request', (req) => {
    const p = partOf(req.url());
    if (p && req.method() === 'PUT' && reloaded) sentAfterReload.push(p.part);
  });
  await page.route(PART_URL, (route) => {
    if (passed < LET_THROUGH) {
      passed++;
      return route.continue();
    }
    held++;
    if (acked.size === LET_THROUGH) signalMidway();
    return undefined; // held
  });

  await page.locator('#file-input').setInputFiles(f.path);
  await midway;
  // The page has seen the five answers: its bar shows them.
  const item = uploadItem(page, name);
  await page.waitForFunction(
    (want) => document.querySelector('#uploads progress.send').value >= want,
    Math.floor(((LET_THROUGH * 5 * MiB) / (64 * MiB)) * 1000),
  );
  assert.match(await item.getAttribute('data-state'), /uploading|retrying/);
  await page.screenshot({ path: screenshotPath('3-mid-upload-progress'), fullPage: true });

  // Count only the new page's requests: until the reload is done, the old page may still
  // start parts (held by the route above, so they never reach the server).
  await page.reload();
  reloaded = true;
  await page.unrouteAll({ behavior: 'ignoreErrors' });
  const offer = page.locator(`#resume-list li[data-name="${name}"]`);
  await offer.waitFor();
  assert.match(await offer.textContent(), /\d+% sent/);

  await page.locator('#file-input').setInputFiles(f.path);
  const done = await waitForState(page, name, 'done');
  assert.equal(await done.getAttribute('data-resumed'), 'true');
  await page.screenshot({ path: screenshotPath('3-resumed-done'), fullPage: true });
  assert.equal(await offer.count(), 0, 'a finished upload is still offered for resuming');

  // Client side: nothing acknowledged before the reload was sent after it.
  assert.equal(acked.size, LET_THROUGH);
  assert.deepEqual(sentAfterReload.filter((n) => acked.has(n)), []);
  assert.equal(sentAfterReload.length, 13 - LET_THROUGH);
  // Server side: every part stored exactly once.
  const counts = storedCounts(upload);
  assert.equal(counts.size, 13);
  assert.ok([...counts.values()].every((c) => c === 1), JSON.stringify([...counts]));
  assert.equal(await downloadedSha1(token, f.sha1), f.sha1);
  await closePage(page);
});

test('4: a second copy of the same content is instant and sends no part', { timeout: 120_000 }, async () => {
  const page = await newPage();
  await signUp(page, server.base);
  const f = await file('original.bin', 12 * MiB);
  await page.locator('#file-input').setInputFiles(f.path);
  await waitForState(page, 'original.bin', 'done');

  const copyName = '副本 copy.bin';
  const copy = join(f.dir, copyName);
  await copyFile(f.path, copy);
  const parts = [];
  const proofs = [];
  page.on('request', (req) => {
    if (partOf(req.url())) parts.push(req.url());
    if (new URL(req.url()).pathname === '/uploads/proof') proofs.push(req.method());
  });
  // POST /uploads is held until the card says the server is deciding (the answer would
  // otherwise come within one frame of the request).
  let sawVerifying = false;
  await page.route('**/uploads', async (route) => {
    if (route.request().method() === 'POST') {
      const deadline = Date.now() + 30_000;
      while (!sawVerifying && Date.now() < deadline) {
        sawVerifying = await page.evaluate((n) => [...document.querySelectorAll('#uploads li')]
          .some((li) => li.dataset.name === n && li.dataset.state === 'verifying'
            && /verifying on the server/.test(li.textContent)), copyName);
        if (!sawVerifying) await new Promise((r) => setTimeout(r, 20)); // polling period
      }
    }
    return route.continue();
  });
  await page.locator('#file-input').setInputFiles(copy);
  const item = await waitForState(page, copyName, 'instant');
  assert.match(await item.locator('.state').textContent(), /instant/);
  assert.ok(sawVerifying, 'the card never said it was verifying on the server');
  assert.deepEqual(parts, []);
  // The server held the content and asked for proof of ownership: answered once.
  assert.deepEqual(proofs, ['POST']);
  await fileRow(page, copyName).waitFor();
  // The new file is marked in the list; the status line says nothing was sent.
  await page.locator(`#file-rows tr.fresh[data-name="${copyName}"]`).waitFor();
  assert.match(await page.locator('#files-status').textContent(), /already stored, nothing was sent/);
  await page.screenshot({ path: screenshotPath('4-instant'), fullPage: true });
  await closePage(page);
});

test('5: file manager: paging, share link, rename and delete (Chinese names)', { timeout: 120_000 }, async () => {
  const page = await newPage();
  const { token } = await signUp(page, server.base);
  for (let i = 1; i <= 22; i++) {
    await apiUpload(server.base, token, `file-${String(i).padStart(2, '0')}.txt`, Buffer.from(`file number ${i}\n`));
  }
  const name = '季度报告 2026.txt';
  const f = await file(name, 3000);
  await page.locator('#file-input').setInputFiles(f.path);
  await waitForState(page, name, 'done');
  // Two files dropped at once.
  const dropped = await page.evaluateHandle(() => {
    const dt = new DataTransfer();
    dt.items.add(new File(['拖放的第一个文件\n'], '拖放 一.txt', { type: 'text/plain' }));
    dt.items.add(new File(['second dropped file\n'], 'dropped two.txt', { type: 'text/plain' }));
    return dt;
  });
  // Dropped on the file list, far from the dashed box: the whole page takes drops.
  await page.dispatchEvent('#files-title', 'dragover', { dataTransfer: dropped });
  await page.dispatchEvent('#files-title', 'drop', { dataTransfer: dropped });
  await waitForState(page, '拖放 一.txt', 'done');
  await waitForState(page, 'dropped two.txt', 'done');
  await page.getByRole('button', { name: 'Delete 拖放 一.txt' }).waitFor();
  page.once('dialog', (d) => d.accept());
  await page.getByRole('button', { name: 'Delete 拖放 一.txt' }).click();
  page.once('dialog', (d) => d.accept());
  await fileRow(page, '拖放 一.txt').waitFor({ state: 'detached' });
  await page.getByRole('button', { name: 'Delete dropped two.txt' }).click();
  await fileRow(page, 'dropped two.txt').waitFor({ state: 'detached' });
  const row = fileRow(page, name);
  await row.waitFor();

  // 23 files: 20 on the first page, 3 on the second.
  assert.equal(await page.locator('#file-rows tr').count(), 20);
  await page.getByRole('button', { name: 'Next' }).click();
  await page.locator('#page-label', { hasText: 'Page 2' }).waitFor();
  assert.equal(await page.locator('#file-rows tr').count(), 3);
  assert.ok(await page.getByRole('button', { name: 'Next' }).isDisabled());
  await page.getByRole('button', { name: 'Previous' }).click();
  await row.waitFor();

  // Every button's accessible name contains its visible text (axe: label-content-name-mismatch).
  const mismatched = await page.evaluate(() =>
    [...document.querySelectorAll('button[aria-label]')]
      .filter((b) => b.textContent.trim() && !b.getAttribute('aria-label').includes(b.textContent.trim()))
      .map((b) => `${b.textContent.trim()} / ${b.getAttribute('aria-label')}`));
  assert.deepEqual(mismatched, []);

  // Search: names containing the text, listed as typed (case does not matter).
  await page.getByLabel('Search names').fill('FILE-1');
  await page.locator('#file-rows tr', { hasText: 'file-19.txt' }).waitFor();
  await page.waitForFunction(() => document.querySelectorAll('#file-rows tr').length === 10);
  assert.deepEqual(
    (await page.locator('#file-rows tr').evaluateAll((rows) => rows.map((r) => r.dataset.name))).sort(),
    [...Array(10).keys()].map((i) => `file-1${i}.txt`),
  );
  await page.getByLabel('Search names').fill('no such name');
  await page.locator('#files-empty', { hasText: 'No file name contains “no such name”.' }).waitFor();
  await page.getByLabel('Search names').fill('');
  await page.waitForFunction(() => document.querySelectorAll('#file-rows tr').length === 20);
  // Sorting by the column headers: Name gives A to Z, again Z to A; Size gives largest first.
  const names = () => page.locator('#file-rows tr').evaluateAll((rows) => rows.map((r) => r.dataset.name));
  await page.getByRole('button', { name: 'Name', exact: true }).click();
  await page.locator('th[data-sort=name][aria-sort=ascending]').waitFor();
  assert.deepEqual((await names()).slice(0, 3), ['file-01.txt', 'file-02.txt', 'file-03.txt']);
  await page.getByRole('button', { name: 'Name', exact: true }).click();
  await page.locator('th[data-sort=name][aria-sort=descending]').waitFor();
  assert.equal((await names())[0], name);
  await page.getByRole('button', { name: 'Size', exact: true }).click();
  await page.locator('th[data-sort=size][aria-sort=descending]').waitFor();
  assert.equal((await names())[0], name, 'the 3000-byte file is the largest');
  await page.getByRole('button', { name: 'Uploaded', exact: true }).click();
  await page.locator('th[data-sort=uploaded][aria-sort=descending]').waitFor();
  await row.waitFor();

  // Share link: opens without a token, for the lifetime picked.
  await page.context().grantPermissions(['clipboard-read', 'clipboard-write'], { origin: server.base });
  await row.getByRole('button', { name: `Copy link to ${name}`, exact: true }).click();
  await page.locator('#files-status', { hasText: 'copied' }).waitFor();
  const shareLabel = await page.locator('#share-label').textContent();
  assert.ok(shareLabel.includes(name) && shareLabel.includes('until'), shareLabel);
  assert.ok((await page.locator('#files-status').textContent()).includes('until'));
  const box = await page.locator('#share-link').boundingBox();
  const column = await page.locator('#files').boundingBox();
  assert.ok(box.x + box.width <= column.x + column.width + 0.5, 'the link box stays in its column');
  const link = await page.locator('#share-link').inputValue();
  assert.equal(await page.evaluate(() => navigator.clipboard.readText()), link);
  const shared = await fetch(link);
  assert.equal(shared.status, 200);
  assert.equal(createHash('sha1').update(Buffer.from(await shared.arrayBuffer())).digest('hex'), f.sha1);
  const expiresOf = (url) => Number(new URL(url).searchParams.get('expires'));
  assert.ok(Math.abs(expiresOf(link) - (Date.now() / 1000 + 3600)) < 120, 'the page offers an hour first');
  await page.getByLabel('The link works for').selectOption({ label: '7 days' });
  await page.waitForFunction((old) => document.querySelector('#share-link').value !== old, link);
  const week = await page.locator('#share-link').inputValue();
  assert.ok(Math.abs(expiresOf(week) - (Date.now() / 1000 + 7 * 86400)) < 120, week);
  assert.equal((await fetch(week)).status, 200);

  // Rename by keyboard, in the row: the columns stay where they were, a refused name is
  // explained under the input.
  const renamed = '年度总结 2026.txt';
  const sizeCell = () => row.locator('td').nth(1).boundingBox();
  const before = await sizeCell();
  await row.getByRole('button', { name: `Rename ${name}` }).focus();
  await page.keyboard.press('Enter');
  const input = page.getByLabel(`New name for ${name}`);
  const during = await sizeCell();
  assert.ok(Math.abs(during.x - before.x) < 2, `the row reflowed: ${before.x} → ${during.x}`);
  await input.fill('a/b');
  await input.press('Enter');
  const error = row.locator('form.rename .error');
  await error.filter({ hasText: 'Not renamed' }).waitFor();
  assert.doesNotMatch(await page.locator('#files-status').textContent(), /renamed/i, 'the error is at the row, not above the list');
  await input.fill(renamed);
  await input.press('Enter');
  const renamedRow = fileRow(page, renamed);
  await renamedRow.waitFor();
  assert.equal(await fileRow(page, name).count(), 0);
  const listed = await listFiles(server.base, token);
  assert.ok(listed.some((m) => m.name === renamed && m.sha1 === f.sha1));
  assert.ok(!listed.some((m) => m.name === name));
  await page.screenshot({ path: screenshotPath('5-file-manager'), fullPage: true });
  await page.setViewportSize({ width: 390, height: 844 });
  await page.screenshot({ path: screenshotPath('5-file-manager-phone'), fullPage: true });
  await page.setViewportSize({ width: 1100, height: 900 });

  // Delete (confirmed in the browser's dialog).
  page.once('dialog', (d) => d.accept());
  await renamedRow.getByRole('button', { name: `Delete ${renamed}` }).click();
  await renamedRow.waitFor({ state: 'detached' });
  const after = await listFiles(server.base, token);
  assert.equal(after.length, 22);
  assert.ok(!after.some((m) => m.sha1 === f.sha1));
  await closePage(page);
});

test('6: an outage far longer than the retry budget: waiting for the server, then it finishes', { timeout: 180_000 }, async () => {
  const page = await newPage();
  const { token } = await signUp(page, server.base);
  const name = 'outage.bin';
  const f = await file(name, 12 * MiB);
  let refused = 0;
  let down = true;
  await page.route(PART_URL, (route) => {
    if (!down) return route.continue();
    refused++;
    return route.abort('connectionrefused');
  });
  await page.locator('#file-input').setInputFiles(f.path);
  const item = uploadItem(page, name);
  // Each `online` event (the browser is back on the network) ends the backoff wait at once: far
  // more failures than the 10 attempts that used to fail the card, in a few seconds.
  while (refused < 30) {
    await page.evaluate(() => window.dispatchEvent(new Event('online')));
    await new Promise((r) => setTimeout(r, 20)); // pacing only: the loop's condition is what waits
    assert.notEqual(await item.getAttribute('data-state'), 'failed', await item.locator('.message').textContent());
  }
  await page.locator(`#uploads li[data-name="${name}"][data-waiting=server]`).waitFor();
  assert.match(await item.locator('.state').textContent(), /waiting for the server/);
  assert.match(await item.locator('.figures').textContent(), /cannot be reached/);
  assert.doesNotMatch(await item.locator('.figures').textContent(), /\/s|left/, 'no frozen speed or ETA');
  await page.screenshot({ path: screenshotPath('6-waiting-for-the-server'), fullPage: true });
  down = false;
  await page.evaluate(() => window.dispatchEvent(new Event('online')));
  await waitForState(page, name, 'done');
  assert.equal(await downloadedSha1(token, f.sha1), f.sha1);
  await closePage(page);
});

test('7: the token expires mid-upload: the password is asked in place, the upload goes on', { timeout: 180_000 }, async () => {
  const page = await newPage();
  const { username, token } = await signUp(page, server.base);
  const name = 'long upload.bin';
  const f = await file(name, 32 * MiB);
  let passed = 0;
  let upload = null;
  await page.route(PART_URL, async (route) => {
    upload = partOf(route.request().url()).upload;
    // After three parts the session ends (signed out elsewhere): the next parts are refused.
    if (passed++ === 3) {
      const res = await fetch(`${server.base}/api/sessions/current`, {
        method: 'DELETE', headers: { Authorization: `Bearer ${token}` },
      });
      assert.equal(res.status, 200);
    }
    return route.continue();
  });
  await recordStates(page);
  await page.locator('#file-input').setInputFiles(f.path);
  const dialog = page.getByRole('dialog', { name: 'Sign in again' });
  await dialog.waitFor();
  const item = uploadItem(page, name);
  await page.locator(`#uploads li[data-name="${name}"][data-waiting=signin]`).waitFor();
  assert.match(await item.locator('.state').textContent(), /sign in/);
  await page.screenshot({ path: screenshotPath('7-sign-in-again'), fullPage: true });
  // A wrong password is said in the dialog, which stays.
  await dialog.getByLabel(`Password for ${username}`).fill('wrong password');
  await dialog.getByRole('button', { name: 'Sign in' }).click();
  await dialog.locator('.error', { hasText: /.+/ }).waitFor();
  await dialog.getByLabel(`Password for ${username}`).fill('correct-horse-battery');
  await dialog.getByRole('button', { name: 'Sign in' }).click();
  await dialog.waitFor({ state: 'detached' });
  await waitForState(page, name, 'done');
  assert.ok(!(await page.evaluate(() => window.statesSeen)).includes('failed'));
  assert.match(await page.locator('#whoami').textContent(), new RegExp(username));
  const newToken = await page.evaluate(() => JSON.parse(localStorage.getItem('chunkvault.session')).token);
  assert.notEqual(newToken, token);
  // Every part stored once, and the file is whole.
  const counts = storedCounts(upload);
  assert.equal(counts.size, 7);
  assert.ok([...counts.values()].every((c) => c === 1), JSON.stringify([...counts]));
  assert.equal(await downloadedSha1(newToken, f.sha1), f.sha1);
  await closePage(page);
});

test('8: finished uploads fold into one line with Show and Clear; a cancelled card has no bar', { timeout: 120_000 }, async () => {
  const page = await newPage();
  await signUp(page, server.base);
  const files = [];
  for (const n of ['one.bin', 'two.bin', 'three.bin']) files.push((await file(n, 100_000 + files.length)).path);
  await page.locator('#file-input').setInputFiles(files);
  for (const n of ['one.bin', 'two.bin', 'three.bin']) await waitForState(page, n, 'done');
  await page.locator('#finished-text', { hasText: '3 finished: 3 uploaded.' }).waitFor();
  assert.equal(await page.locator('#uploads li:visible').count(), 0, 'finished cards are folded');

  // A cancelled upload: its card keeps no bar.
  const big = await file('cancel me.bin', 64 * MiB);
  await page.route(PART_URL, () => undefined); // parts never answered
  await page.locator('#file-input').setInputFiles(big.path);
  const item = uploadItem(page, 'cancel me.bin');
  await page.locator('#uploads li[data-name="cancel me.bin"][data-state=uploading]').waitFor();
  await item.getByRole('button', { name: 'Cancel cancel me.bin' }).click();
  await page.locator('#finished-text', { hasText: '4 finished: 3 uploaded, 1 cancelled.' }).waitFor();
  await page.getByRole('button', { name: 'Show finished uploads' }).click();
  assert.equal(await page.locator('#uploads li:visible').count(), 4);
  assert.equal(await item.locator('progress:visible').count(), 0);
  await page.screenshot({ path: screenshotPath('8-finished-shown'), fullPage: true });
  await page.getByRole('button', { name: 'Clear' }).click();
  assert.equal(await page.locator('#uploads li').count(), 0);
  assert.equal(await page.locator('#finished-text').textContent(), '');
  assert.ok(await page.getByRole('button', { name: 'Clear' }).isHidden());
  await closePage(page);
});

test('9: the sign-in form says how to sign up and its rules before anything fails', { timeout: 60_000 }, async () => {
  const page = await newPage();
  await page.goto(server.base + '/');
  assert.match(await page.getByRole('heading', { level: 2 }).first().textContent(), /create an account/);
  assert.ok(await page.getByText('At least 8 characters.').isVisible());
  assert.ok(await page.getByText(/3 to 64 characters/).first().isVisible());
  // A short password: the message is about the password only.
  await page.getByLabel('Username').fill('newcomer');
  await page.getByLabel('Password').fill('short');
  await page.getByRole('button', { name: 'Sign up' }).click();
  const error = await page.locator('#auth-error').textContent();
  assert.match(error, /password must be at least 8/);
  assert.doesNotMatch(error, /username/i);
  await closePage(page);
});

test('10: axe-core finds no serious or critical accessibility problem', { timeout: 120_000 }, async () => {
  const axeSource = await readFile(new URL('../node_modules/axe-core/axe.min.js', import.meta.url), 'utf8');
  const page = await newPage();
  // Run through the DevTools protocol, so the page's CSP (no inline scripts) does not apply.
  const audit = async (what) => {
    await page.evaluate(axeSource);
    const violations = await page.evaluate(async () => {
      const r = await window.axe.run(document, { resultTypes: ['violations'] });
      return r.violations
        .filter((v) => v.impact === 'serious' || v.impact === 'critical')
        .map((v) => `${v.id} (${v.impact}): ${v.nodes.map((n) => n.target.join(' ')).join(', ')}`);
    });
    assert.deepEqual(violations, [], what);
  };
  await page.goto(server.base + '/');
  await page.getByLabel('Username').waitFor();
  await audit('sign-in form');
  const { token } = await signUp(page, server.base);
  for (let i = 1; i <= 3; i++) await apiUpload(server.base, token, `axe-${i}.txt`, Buffer.from(`axe ${i}\n`));
  const f = await file('audited.bin', 200_000);
  await page.locator('#file-input').setInputFiles(f.path);
  await waitForState(page, 'audited.bin', 'done');
  await page.getByRole('button', { name: 'Show finished uploads' }).click();
  await fileRow(page, 'axe-1.txt').waitFor();
  await page.context().grantPermissions(['clipboard-read', 'clipboard-write'], { origin: server.base });
  await fileRow(page, 'axe-1.txt').getByRole('button', { name: 'Copy link to axe-1.txt' }).click();
  await page.locator('#share').waitFor();
  await audit('files, uploads and share box');
  await closePage(page);
});

test('hash worker: SHA1 and MD5 as node computes them, streamed and sliced', { timeout: 60_000 }, async () => {
  const page = await newPage();
  await page.goto(server.base + '/');
  const f = await file('hash me.bin', 9 * MiB + 12345);
  const bytes = await readFile(f.path);
  const part = bytes.subarray(MiB + 7, 6 * MiB);
  await page.evaluate(() => {
    const input = Object.assign(document.createElement('input'), { type: 'file', id: 'hash-input' });
    document.body.append(input);
  });
  await page.locator('#hash-input').setInputFiles(f.path);
  const got = await page.evaluate(async ([from, to]) => {
    const { WorkerHasher } = await import('/uploader.js');
    const blob = document.querySelector('#hash-input').files[0];
    const out = {};
    for (const slices of [false, true]) {
      const hasher = new WorkerHasher({ slices, sliceSize: 1 << 20 });
      const progress = [];
      out[slices ? 'sliced' : 'streamed'] = {
        sha1: await hasher.sha1(blob, { onProgress: (n) => progress.push(n) }),
        md5: await hasher.md5(blob.slice(from, to)),
        lastProgress: progress.at(-1),
      };
      hasher.terminate();
    }
    return out;
  }, [MiB + 7, 6 * MiB]);
  const expected = {
    sha1: f.sha1,
    md5: createHash('md5').update(part).digest('base64'),
    lastProgress: bytes.length,
  };
  assert.deepEqual(got, { streamed: expected, sliced: expected });
  await closePage(page);
});
