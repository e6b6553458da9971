// Unit tests of web/uploader.js: scheduling, retry and resume, against an in-memory server.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { createHash } from 'node:crypto';
import {
  answerChallenge, backoffDelay, classifyStatus, PartPlan, rate, ResumeStore, retryAfterMs, Slots, toHex, Uploader,
} from '../../../web/uploader.js';
import { FakeServer, makeFile, memoryStorage, nodeHasher, seeded, until, virtualTimers } from './support.mjs';

function uploader(server, opts = {}) {
  const timers = opts.timers ?? virtualTimers();
  const up = new Uploader({
    token: () => 'T',
    owner: () => 'alice',
    hasher: nodeHasher,
    fetch: server.fetch,
    storage: opts.storage ?? memoryStorage(),
    random: seeded(3),
    ...timers,
    ...opts,
  });
  up.timers$ = timers;
  return up;
}

/** Parts that were PUT again after the server had acknowledged them to the client. */
function resentAfterAck(server) {
  const acked = new Set();
  const resent = [];
  for (const r of server.requests) {
    if (r.method !== 'PUT') continue;
    const key = `${r.upload}/${r.part}`;
    if (acked.has(key)) resent.push(key);
    if (r.outcome === 200) acked.add(key);
  }
  return resent;
}

describe('backoff and classification', () => {
  test('delays grow exponentially within equal-jitter bounds and are capped', () => {
    for (let attempt = 0; attempt < 12; attempt++) {
      const ceiling = Math.min(20_000, 300 * 2 ** attempt);
      assert.equal(backoffDelay(attempt, { random: () => 0 }), Math.round(ceiling / 2));
      assert.equal(backoffDelay(attempt, { random: () => 1 }), ceiling);
      const d = backoffDelay(attempt, { random: seeded(attempt) });
      assert.ok(d >= ceiling / 2 && d <= ceiling, `${attempt}: ${d}`);
    }
    assert.equal(backoffDelay(100, { random: () => 1, maxDelayMs: 5000 }), 5000);
  });

  test('network errors, 5xx, 408, 409 and 429 are retried; other answers are final', () => {
    for (const s of [0, 408, 409, 429, 500, 502, 503, 504]) assert.equal(classifyStatus(s), 'retry', s);
    for (const s of [400, 401, 403, 404, 405, 413, 416, 422]) assert.equal(classifyStatus(s), 'fatal', s);
  });

  test('Retry-After in seconds', () => {
    assert.equal(retryAfterMs(new Headers({ 'retry-after': '3' })), 3000);
    assert.equal(retryAfterMs(new Headers({ 'retry-after': 'Wed, 21 Oct 2015 07:28:00 GMT' })), 0);
    assert.equal(retryAfterMs(new Headers()), 0);
  });
});

describe('PartPlan', () => {
  test('hands out each missing part once, in order; acknowledged parts never again', () => {
    const plan = new PartPlan(5, [2, 4]);
    assert.equal(plan.take(), 1);
    assert.equal(plan.take(), 3);
    plan.ack(1);
    plan.release(1); // a late failure of an acknowledged part does not requeue it
    plan.release(3);
    assert.equal(plan.take(), 3, 'a failed part goes back to the front');
    assert.equal(plan.take(), 5);
    assert.equal(plan.take(), null);
    plan.ack(3);
    plan.ack(5);
    assert.ok(plan.done);
    assert.equal(plan.ackedBytes(10, 45), 45);
  });

  test('merge skips parts the server already has; reopen sends lost ones again', () => {
    const plan = new PartPlan(4);
    plan.merge([2, 3]);
    assert.equal(plan.take(), 1);
    assert.equal(plan.take(), 4);
    assert.equal(plan.take(), null);
    plan.ack(1);
    plan.ack(4);
    assert.ok(plan.done);
    plan.reopen([3]);
    assert.ok(!plan.done);
    assert.equal(plan.take(), 3);
  });
});

test('rate over a sliding window', () => {
  assert.equal(rate([], 1000), 0);
  assert.equal(rate([[0, 0], [1000, 500], [2000, 1000]], 2000), 500);
  assert.equal(rate([[0, 0], [9000, 100], [10_000, 1100]], 10_000), 1000, 'old samples fall out');
});

test('ResumeStore keeps entries per owner and survives garbage', () => {
  const storage = memoryStorage();
  const store = new ResumeStore(storage);
  const file = { name: '报告.pdf', size: 10, lastModified: 5 };
  const k = ResumeStore.fileKey('alice', file);
  assert.notEqual(k, ResumeStore.fileKey('bob', file));
  store.put(k, { owner: 'alice', uploadId: 'u1' });
  store.put(ResumeStore.fileKey('bob', file), { owner: 'bob', uploadId: 'u2' });
  assert.deepEqual(new ResumeStore(storage).get(k), { owner: 'alice', uploadId: 'u1' });
  assert.deepEqual(store.forOwner('alice').map(([, e]) => e.uploadId), ['u1']);
  store.remove(k);
  assert.equal(store.get(k), null);
  storage.setItem('chunkvault.uploads.v1', '{not json');
  assert.deepEqual(store.all(), {});
});

test('Slots never lets more than n through; an abort while waiting gives the slot up', async () => {
  const slots = new Slots(2);
  await slots.acquire();
  await slots.acquire();
  const controller = new AbortController();
  const waiting = slots.acquire(controller.signal);
  let third = false;
  const next = slots.acquire().then(() => { third = true; });
  controller.abort();
  await assert.rejects(waiting, /stopped/);
  await new Promise((r) => setImmediate(r));
  assert.equal(third, false);
  slots.release();
  await next;
  assert.equal(third, true);
});

describe('Uploader', () => {
  test('sends every part once with Content-MD5, at most 4 at a time, and completes', async () => {
    const server = new FakeServer({ chunkSize: 10 });
    const up = uploader(server);
    const u = up.add(makeFile('数据.bin', 195));
    await u.finished;
    assert.equal(u.state, 'done', u.error);
    assert.equal(server.puts().length, 20);
    assert.deepEqual(server.puts().map((r) => r.part).sort((a, b) => a - b), [...Array(20).keys()].map((i) => i + 1));
    assert.equal(server.maxInFlight, 4, 'parts go in parallel');
    assert.equal(server.files[0].name, '数据.bin');
    assert.equal(u.progress(), 1);
    assert.deepEqual(up.resumeStore.all(), {}, 'a finished upload is forgotten');
  });

  test('parallelism is shared by all uploads of one uploader', async () => {
    const server = new FakeServer({ chunkSize: 10 });
    const up = uploader(server, { parallel: 3 });
    const a = up.add(makeFile('a.bin', 100, { seed: 1 }));
    const b = up.add(makeFile('b.bin', 100, { seed: 2 }));
    await Promise.all([a.finished, b.finished]);
    assert.equal(a.state, 'done');
    assert.equal(b.state, 'done');
    assert.equal(server.maxInFlight, 3);
  });

  test('retries network errors, 5xx, 409 and 429 with backoff; never resends an acknowledged part', async () => {
    const failures = new Map([[2, [503, 503]], [3, ['network']], [4, [409]], [5, ['store-then-network']], [6, [429]]]);
    const server = new FakeServer({
      chunkSize: 10,
      fault: (req) => {
        if (req.method !== 'PUT') return null;
        const f = failures.get(req.part)?.shift();
        if (f === 429) return { status: 429, code: 0, msg: 'slow down', headers: { 'retry-after': '7' } };
        if (typeof f === 'number') return { status: f, msg: 'injected' };
        return f ?? null;
      },
    });
    const up = uploader(server);
    const seen = new Set();
    const u = up.add(makeFile('flaky.bin', 80));
    u.addEventListener('change', () => seen.add(u.state));
    await u.finished;
    assert.equal(u.state, 'done', u.error);
    assert.ok(seen.has('retrying'));
    assert.deepEqual(resentAfterAck(server), []);
    // Part 2: two retries with growing delays; 429: at least its Retry-After.
    const delays = up.timers$.delays;
    assert.equal(delays.length, 6);
    assert.ok(delays.includes(7000), `Retry-After honoured: ${delays}`);
    assert.ok(delays.every((d) => d >= 150 && d <= 7000), `${delays}`);
    // Part 5 was stored and its answer lost: sent again (it was never acknowledged), stored twice.
    assert.equal(server.stored.filter((s) => s.part === 5).length, 2);
    assert.equal(server.puts().length, 8 + 6);
  });

  test('a final answer fails the upload with the server message and stops the other parts', async () => {
    const server = new FakeServer({
      chunkSize: 10,
      fault: (req) => (req.method === 'PUT' && req.part === 2 ? { status: 400, code: 10005, msg: 'Content-MD5 does not match the part' } : null),
    });
    const up = uploader(server, { parallel: 2 });
    const u = up.add(makeFile('bad.bin', 200));
    await u.finished;
    assert.equal(u.state, 'failed');
    assert.equal(u.error, 'Content-MD5 does not match the part');
    assert.ok(server.puts().length < 20, `${server.puts().length} parts sent after a fatal error`);
    assert.ok(!server.files.length);
  });

  test('gives up after maxAttempts answers that are not an outage', async () => {
    const server = new FakeServer({ fault: (req) => (req.method === 'PUT' ? { status: 500, msg: 'unavailable' } : null) });
    const up = uploader(server, { maxAttempts: 4 });
    const u = up.add(makeFile('down.bin', 5));
    await u.finished;
    assert.equal(u.state, 'failed');
    assert.equal(u.error, 'unavailable (gave up after 4 attempts)');
    assert.equal(server.puts().length, 4);
    assert.deepEqual(up.timers$.delays.map((d) => d >= 150), [true, true, true]);
    // The delays grow: each one's floor is the previous one's ceiling.
    const [a, b, c] = up.timers$.delays;
    assert.ok(a <= 300 && b >= 300 && b <= 600 && c >= 600 && c <= 1200, `${[a, b, c]}`);
  });

  test('an outage is waited out for as long as it lasts, shown as waiting for the server', async () => {
    // 40 failures in a row (network errors, then a proxy's 502/503/504): far past maxAttempts.
    let down = 40;
    const kinds = ['network', { status: 502, msg: 'bad gateway' }, { status: 503, msg: 'unavailable' }, { status: 504, msg: 'timeout' }];
    const server = new FakeServer({
      chunkSize: 10,
      fault: (req) => (req.method === 'PUT' && down > 0 ? kinds[down-- % kinds.length] : null),
    });
    const up = uploader(server, { maxAttempts: 3, parallel: 1 });
    const waits = new Set();
    const u = up.add(makeFile('outage.bin', 30));
    u.addEventListener('change', () => waits.add(`${u.state}/${u.waiting}`));
    await u.finished;
    assert.equal(u.state, 'done', u.error);
    assert.equal(down, 0);
    assert.ok(waits.has('retrying/server'), [...waits].join(' '));
    assert.equal(u.waiting, null, 'no longer waiting once the server answers');
    // Backoff keeps growing to its cap instead of hammering the server.
    const longest = Math.max(...up.timers$.delays);
    assert.ok(longest >= 10_000 && longest <= 20_000, `${longest}`);
  });

  test('wake() (the browser is online again) ends a backoff wait at once', async () => {
    const pending = [];
    const timers = {
      delays: [],
      setTimeout(fn, ms) {
        timers.delays.push(ms);
        const t = { fn };
        pending.push(t);
        return t;
      },
      clearTimeout(t) {
        t.cleared = true;
      },
    };
    let down = true;
    const server = new FakeServer({ chunkSize: 10, fault: (req) => (req.method === 'PUT' && down ? 'network' : null) });
    const up = uploader(server, { timers, parallel: 1 });
    const u = up.add(makeFile('wake.bin', 10));
    await until(() => u.waiting === 'server' && pending.length === 1);
    down = false;
    up.wake(); // no timer ever fires: only wake() can end the wait
    await u.finished;
    assert.equal(u.state, 'done', u.error);
    assert.ok(pending[0].cleared, 'the backoff timer was cancelled');
  });

  test('a refused token waits for the user to sign in again, then every upload goes on', async () => {
    let token = 'T';
    let asked = 0;
    let signIn;
    let expired = false;
    const server = new FakeServer({
      chunkSize: 10,
      fault: (req) => {
        if (req.method !== 'PUT' || req.part !== 3 || expired) return null;
        expired = true;
        token = 'expired'; // the server refuses it from now on
        return 'network';
      },
    });
    const up = uploader(server, {
      token: () => token,
      parallel: 2,
      reauthenticate: () => {
        asked++;
        return new Promise((resolve) => {
          signIn = () => {
            token = 'T';
            resolve();
          };
        });
      },
    });
    const a = up.add(makeFile('a.bin', 50, { seed: 1 }));
    await until(() => a.waiting === 'signin');
    const b = up.add(makeFile('b.bin', 30, { seed: 2 }));
    await until(() => b.waiting === 'signin' && a.waiting === 'signin');
    assert.equal(asked, 1, 'one sign-in for all uploads');
    assert.equal(a.state === 'failed' || b.state === 'failed', false);
    signIn();
    await Promise.all([a.finished, b.finished]);
    assert.equal(a.state, 'done', a.error);
    assert.equal(b.state, 'done', b.error);
    assert.deepEqual(resentAfterAck(server), []);
    assert.deepEqual(server.files.map((f) => f.name).sort(), ['a.bin', 'b.bin']);
  });

  test('a 401 for a token already replaced is retried at once, not asked again', async () => {
    let token = 'old';
    let asked = 0;
    let signedIn;
    const afterSignIn = new Promise((r) => { signedIn = r; });
    const server = new FakeServer({ chunkSize: 10 });
    // Part 2's request, sent with the old token, is answered only after the user signed in.
    const fetch = async (url, init) => {
      if (init.method === 'PUT' && url.endsWith('/parts/2') && init.headers.Authorization === 'Bearer old') await afterSignIn;
      return server.fetch(url, init);
    };
    const up = uploader(server, {
      fetch,
      parallel: 2,
      token: () => token,
      reauthenticate: async () => {
        asked++;
        token = 'T';
        signedIn();
      },
    });
    // The session itself is made with a good token; the parts go with the old one.
    token = 'T';
    const u = up.add(makeFile('stale.bin', 20));
    await until(() => u.state === 'uploading');
    token = 'old';
    await u.finished;
    assert.equal(u.state, 'done', u.error);
    assert.equal(asked, 1, 'one sign-in');
  });

  test('a file the browser can no longer read fails at once instead of waiting for the server', async () => {
    let broken = false;
    const real = makeFile('moved.bin', 30);
    const file = {
      name: real.name,
      size: real.size,
      lastModified: real.lastModified,
      arrayBuffer: () => real.arrayBuffer(),
      slice: (a, b) => (broken ? { arrayBuffer: () => Promise.reject(new Error('NotReadableError')) } : real.slice(a, b)),
    };
    const server = new FakeServer({ chunkSize: 10, fault: (req) => (req.method === 'PUT' && broken ? 'network' : null) });
    const up = uploader(server, { parallel: 1 });
    const u = up.add(file);
    await until(() => u.state === 'uploading');
    broken = true;
    await u.finished;
    assert.equal(u.state, 'failed');
    assert.match(u.error, /can no longer be read/);
  });

  test('without reauthenticate a refused token fails the upload', async () => {
    const server = new FakeServer({ chunkSize: 10 });
    const up = uploader(server, { token: () => 'expired' });
    const u = up.add(makeFile('x.bin', 10));
    await u.finished;
    assert.equal(u.state, 'failed');
    assert.match(u.error, /token/);
  });

  test('the speed starts anew after a resume and after the server decided', async () => {
    const server = new FakeServer({ chunkSize: 10, fault: (req) => (req.method === 'PUT' && req.part > 2 ? 'hang' : null) });
    let now = 0;
    const up = uploader(server, { parallel: 1, now: () => now });
    const u = up.add(makeFile('speed.bin', 50));
    const states = [];
    u.addEventListener('change', () => states.push(u.state));
    await until(() => u.plan?.acked.size === 2 && server.inFlight === 1);
    assert.ok(states.includes('verifying'), states.join(' '));
    u.pause();
    assert.equal(u.speed(), 0);
    server.fault = () => null;
    now += 1000;
    u.resume();
    await u.finished;
    assert.equal(u.state, 'done', u.error);
    // Measured only over the stretch since the resume: starting at the 20 bytes held, not at 0.
    assert.ok(u.samples.every(([, b]) => b >= 20), JSON.stringify(u.samples));
  });

  test('content the server holds is instant: no part sent', async () => {
    const server = new FakeServer();
    const up = uploader(server);
    const first = up.add(makeFile('one.bin', 50));
    await first.finished;
    const copy = up.add(makeFile('two.bin', 50));
    await copy.finished;
    assert.equal(copy.state, 'instant', copy.error);
    assert.equal(server.puts().length, 5, 'only the first upload sent parts');
    assert.equal(copy.progress(), 1);
    assert.deepEqual(copy.result, { name: 'two.bin', sha1: first.sha1, size: 50 });
    assert.equal(server.proofs.length, 1, 'one proof of ownership');
    assert.deepEqual(up.resumeStore.all(), {});
  });

  test('the proof carries the SHA-256 of each challenged range, in order, with the token', async () => {
    const ranges = [[95, 100], [0, 1], [40, 73]];
    const server = new FakeServer({ ranges: () => ranges });
    const file = makeFile('a.bin', 100);
    const bytes = Buffer.from(await file.arrayBuffer());
    const seen = [];
    const up = uploader(server, {
      digest: async (algorithm, data) => {
        seen.push([algorithm, data.byteLength]);
        return globalThis.crypto.subtle.digest(algorithm, data);
      },
    });
    await up.add(file).finished;
    const copy = up.add(makeFile('b.bin', 100));
    await copy.finished;
    assert.equal(copy.state, 'instant', copy.error);
    const proofs = server.requests.filter((r) => r.path === '/uploads/proof');
    assert.equal(proofs.length, 1);
    assert.equal(proofs[0].method, 'POST');
    assert.equal(proofs[0].headers.Authorization, 'Bearer T');
    assert.equal(proofs[0].headers['Content-Type'], 'application/json');
    const [challengeId] = [...server.proofs.map((p) => p.challenge)];
    assert.match(challengeId, /^[0-9a-f]{32}$/);
    assert.deepEqual(server.proofs[0].digests, ranges.map(([s, e]) => createHash('sha256').update(bytes.subarray(s, e)).digest('hex')));
    assert.deepEqual(seen, [['SHA-256', 5], ['SHA-256', 1], ['SHA-256', 33]], 'only the challenged bytes are read');
  });

  test('answerChallenge: hex SHA-256 of each [start, end) range; malformed challenges refused', async () => {
    const file = new Blob([new Uint8Array([0, 1, 2, 3, 4, 5, 6, 7, 8, 9])]);
    const digests = await answerChallenge(file, { id: 'x', ranges: [[2, 5], [0, 0], [9, 10]], algorithm: 'sha256' });
    const sha256 = (b) => createHash('sha256').update(Buffer.from(b)).digest('hex');
    assert.deepEqual(digests, [sha256([2, 3, 4]), sha256([]), sha256([9])]);
    assert.equal(toHex(new Uint8Array([0, 15, 255])), '000fff');
    await assert.rejects(answerChallenge(file, { ranges: [[0, 11]], algorithm: 'sha256' }), /malformed challenge range/);
    await assert.rejects(answerChallenge(file, { ranges: [[5, 4]], algorithm: 'sha256' }), /malformed challenge range/);
    await assert.rejects(answerChallenge(file, { ranges: [[0, 1]], algorithm: 'md5' }), /unsupported challenge algorithm/);
  });

  test('a wrong answer: the session the server answers the proof with is uploaded', async () => {
    const server = new FakeServer({ chunkSize: 10 });
    const up = uploader(server, { digest: async () => new Uint8Array(32).buffer }); // wrong digests
    const first = up.add(makeFile('one.bin', 45));
    await first.finished;
    assert.equal(first.state, 'done', first.error);
    assert.equal(server.proofs.length, 0, 'content the server lacks is not challenged');
    const copy = up.add(makeFile('two.bin', 45));
    await copy.finished;
    assert.equal(copy.state, 'done', copy.error);
    assert.equal(server.proofs.length, 1);
    assert.deepEqual(server.proofs[0].digests, Array(3).fill('0'.repeat(64)));
    const parts = server.puts(copy.uploadId).map((r) => r.part).sort((a, b) => a - b);
    assert.deepEqual(parts, [1, 2, 3, 4, 5], 'every part of the session sent');
    assert.equal(copy.chunkCount, 5);
    assert.ok(server.requests.some((r) => r.path === `/uploads/${copy.uploadId}/complete`));
    assert.deepEqual(server.files.at(-1), { name: 'two.bin', sha1: first.sha1, size: 45 });
  });

  test('a session answer to the proof is remembered and resumes after a reload', async () => {
    const storage = memoryStorage();
    const server = new FakeServer({ chunkSize: 10 });
    const wrong = { digest: async () => new Uint8Array(32).buffer, storage };
    await uploader(server, wrong).add(makeFile('one.bin', 50)).finished;
    server.fault = (req) => (req.method === 'PUT' && req.part > 2 ? 'hang' : null);
    const before = uploader(server, { ...wrong, parallel: 1 });
    const file = makeFile('two.bin', 50);
    const u1 = before.add(file);
    await until(() => u1.plan?.acked.size === 2 && server.inFlight === 1);
    u1.abort.abort();
    server.fault = () => null;
    assert.equal(before.resumeStore.get(u1.key).uploadId, u1.uploadId);

    // After the reload: challenged again, refused again, and the server's answer is the open
    // session, which goes on from the parts it has.
    const after = uploader(server, { ...wrong, parallel: 1 });
    assert.equal(after.remembered().length, 1);
    const putsBefore = server.puts().length;
    const u2 = after.add(new File([file], file.name, { lastModified: file.lastModified }));
    await u2.finished;
    assert.equal(u2.state, 'done', u2.error);
    assert.ok(u2.resumed);
    assert.equal(u2.uploadId, u1.uploadId);
    assert.equal(server.proofs.length, 2);
    assert.deepEqual(server.puts().slice(putsBefore).map((r) => r.part), [3, 4, 5]);
    assert.deepEqual(resentAfterAck(server), []);
    assert.deepEqual(storage.getItem('chunkvault.uploads.v1'), '{}');
  });

  test('a remembered session whose content the server got meanwhile: proven, instant', async () => {
    const storage = memoryStorage();
    const server = new FakeServer({ chunkSize: 10, fault: (req) => (req.method === 'PUT' && req.part > 1 ? 'hang' : null) });
    const before = uploader(server, { storage, parallel: 1 });
    const file = makeFile('r.bin', 30);
    const u1 = before.add(file);
    await until(() => u1.plan?.acked.size === 1 && server.inFlight === 1);
    u1.abort.abort();
    server.fault = () => null;
    await uploader(server).add(makeFile('other tab.bin', 30)).finished; // same bytes, stored now

    const after = uploader(server, { storage });
    const u2 = after.add(new File([file], file.name, { lastModified: file.lastModified }));
    assert.ok(u2.remembered);
    await u2.finished;
    assert.equal(u2.state, 'instant', u2.error);
    assert.equal(server.proofs.length, 1);
    assert.deepEqual(storage.getItem('chunkvault.uploads.v1'), '{}');
  });

  test('a used or expired challenge is asked for again; 429 waits its Retry-After', async () => {
    let lost = 1;
    let limited = 1;
    const server = new FakeServer({
      fault: (req) => {
        if (req.path !== '/uploads/proof') return null;
        if (limited-- > 0) return { status: 429, code: 14291, msg: 'too many', headers: { 'retry-after': '9' } };
        return lost-- > 0 ? 'store-then-network' : null; // the challenge is used, its answer lost
      },
    });
    const up = uploader(server);
    await up.add(makeFile('one.bin', 30)).finished;
    const copy = up.add(makeFile('two.bin', 30));
    await copy.finished;
    assert.equal(copy.state, 'instant', copy.error);
    assert.ok(up.timers$.delays.includes(9000), `${up.timers$.delays}`);
    const asked = server.requests.filter((r) => r.path === '/uploads' && r.method === 'POST').length;
    assert.equal(asked, 3, 'the first upload, then two challenges for the copy');
    assert.equal(server.proofs.length, 3, 'the same challenge after 429, then a fresh one after 404');
    assert.equal(server.puts().length, 3);
  });

  test('after a reload, the same file resumes from the parts the server has', async () => {
    const storage = memoryStorage();
    let hang = true;
    const server = new FakeServer({
      chunkSize: 10,
      fault: (req) => (hang && req.method === 'PUT' && req.part > 3 ? 'hang' : null),
    });
    const before = uploader(server, { storage, parallel: 2 });
    const file = makeFile('续传.bin', 100);
    const u1 = before.add(file);
    await until(() => u1.plan?.acked.size === 3 && server.inFlight === 2);
    assert.equal(u1.progress(), 0.3);
    // The page goes away: requests in flight are cut.
    u1.abort.abort();
    hang = false;

    const after = uploader(server, { storage });
    const offers = after.remembered();
    assert.equal(offers.length, 1);
    assert.equal(offers[0].name, '续传.bin');
    const putsBefore = server.puts().length;
    const u2 = after.add(new File([file], file.name, { lastModified: file.lastModified }));
    assert.ok(u2.remembered, 'recognised by name, size and date');
    assert.equal(after.remembered().length, 0, 'no longer offered while it runs');
    await u2.finished;
    assert.equal(u2.state, 'done', u2.error);
    assert.ok(u2.resumed);
    const resent = server.puts().slice(putsBefore).map((r) => r.part).sort((a, b) => a - b);
    assert.deepEqual(resent, [4, 5, 6, 7, 8, 9, 10]);
    assert.deepEqual(resentAfterAck(server), []);
    assert.equal(server.sessions.size, 0);
    assert.deepEqual(storage.getItem('chunkvault.uploads.v1'), '{}');
  });

  test('a remembered file whose bytes changed is not resumed into the old session', async () => {
    const storage = memoryStorage();
    const server = new FakeServer({ chunkSize: 10, fault: (req) => (req.method === 'PUT' ? 'hang' : null) });
    const first = uploader(server, { storage });
    const u1 = first.add(makeFile('doc.bin', 40, { seed: 1 }));
    await until(() => u1.uploadId && server.inFlight > 0);
    u1.abort.abort();
    server.fault = () => null;

    const second = uploader(server, { storage });
    const u2 = second.add(makeFile('doc.bin', 40, { seed: 2 })); // same name, size, date
    assert.ok(u2.remembered);
    await u2.finished;
    assert.equal(u2.state, 'done');
    assert.notEqual(u2.uploadId, u1.uploadId);
    assert.ok(!u2.resumed);
  });

  test('pause aborts the parts in flight; resume asks the server and skips what it stored', async () => {
    let mode = 'store-then-hang';
    const server = new FakeServer({
      chunkSize: 10,
      fault: (req) => (req.method === 'PUT' && req.part === 2 ? mode : null),
    });
    const up = uploader(server, { parallel: 1 });
    const u = up.add(makeFile('p.bin', 40));
    await until(() => server.puts().length === 2 && server.inFlight === 1);
    u.pause();
    assert.equal(u.state, 'paused');
    await new Promise((r) => setImmediate(r));
    const sent = server.puts().length;
    mode = null;
    u.resume();
    await u.finished;
    assert.equal(u.state, 'done');
    const after = server.puts().slice(sent).map((r) => r.part);
    assert.deepEqual(after, [3, 4], 'part 2 was stored before the pause: not sent again');
    assert.ok(server.requests.some((r) => r.method === 'GET' && r.upload === u.uploadId));
  });

  test('cancel aborts and deletes the session', async () => {
    const server = new FakeServer({ chunkSize: 10, fault: (req) => (req.method === 'PUT' ? 'hang' : null) });
    const up = uploader(server);
    const u = up.add(makeFile('c.bin', 40));
    await until(() => server.inFlight === 4);
    await u.cancel();
    assert.equal(u.state, 'cancelled');
    assert.equal(server.sessions.size, 0);
    assert.deepEqual(up.resumeStore.all(), {});
  });

  test('complete answering "missing" sends those parts again', async () => {
    const server = new FakeServer({ chunkSize: 10 });
    let dropped = false;
    const realHandle = server.handle.bind(server);
    server.handle = async (req, body) => {
      if (!dropped && req.path.endsWith('/complete')) {
        dropped = true; // the server lost part 3's staging
        server.sessions.get(req.upload).received.delete(3);
      }
      return realHandle(req, body);
    };
    const up = uploader(server);
    const u = up.add(makeFile('m.bin', 50));
    await u.finished;
    assert.equal(u.state, 'done', u.error);
    assert.equal(server.puts().filter((r) => r.part === 3).length, 2);
    assert.equal(server.requests.filter((r) => r.path.endsWith('/complete')).length, 2);
  });

  test('an expired token fails with the server message', async () => {
    const server = new FakeServer();
    const up = uploader(server, { token: () => 'expired' });
    const u = up.add(makeFile('t.bin', 5));
    await u.finished;
    assert.equal(u.state, 'failed');
    assert.match(u.error, /token/);
  });
});
