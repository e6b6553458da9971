// ChunkVault browser uploader: resumable, parallel part uploads over the REST resource `/uploads`.
//
// Usable on its own by any page:
//
//   import { Uploader, WorkerHasher } from '/uploader.js';
//   const up = new Uploader({ token: () => myToken, hasher: new WorkerHasher() });
//   const u = up.add(file);             // hashes, asks POST /uploads (answering its proof-of-ownership
//                                       // challenge for stored content), sends parts, completes
//   u.addEventListener('change', () => console.log(u.state, u.progress()));
//
// Everything that decides (scheduling, retry, backoff, resume bookkeeping) takes its clock, timers,
// randomness, fetch and storage as arguments, so it runs in node's test runner as well.

/** Upload states, in the order a normal upload goes through them. */
export const STATES = Object.freeze([
  'queued', 'hashing', 'verifying', 'instant', 'uploading', 'retrying', 'paused', 'completing', 'done',
  'failed', 'cancelled',
]);

export const DEFAULTS = Object.freeze({
  parallel: 4,
  maxAttempts: 10,
  baseDelayMs: 300,
  maxDelayMs: 20_000,
});

/**
 * Delay before retry number `attempt` (0 for the first retry): exponential, capped, with "equal
 * jitter" so that clients cut off together do not come back together.
 */
export function backoffDelay(attempt, { baseDelayMs = DEFAULTS.baseDelayMs, maxDelayMs = DEFAULTS.maxDelayMs, random = Math.random } = {}) {
  const ceiling = Math.min(maxDelayMs, baseDelayMs * 2 ** Math.min(attempt, 30));
  return Math.round(ceiling / 2 + random() * (ceiling / 2));
}

/**
 * What to do about a failed request: 'retry' for network errors (status 0), 5xx, 408, 409
 * (busy) and 429; 'fatal' for everything else.
 */
export function classifyStatus(status) {
  if (status === 0 || status >= 500 || status === 408 || status === 409 || status === 429) return 'retry';
  return 'fatal';
}

/**
 * The server is out of reach (no answer, or a proxy's 502/503/504): waited out for as long as the
 * page is open, not counted against `maxAttempts`.
 */
export function isOutage(status) {
  return status === 0 || status === 502 || status === 503 || status === 504;
}

/** `Retry-After` in milliseconds (seconds form only), or 0. */
export function retryAfterMs(headers) {
  const v = headers?.get?.('retry-after');
  const s = v == null ? NaN : Number(v);
  return Number.isFinite(s) && s >= 0 ? Math.min(s * 1000, 5 * 60_000) : 0;
}

/** Byte range `[start, end)` of part n (1-based). */
export function partRange(n, chunkSize, size) {
  const start = (n - 1) * chunkSize;
  return [start, Math.min(start + chunkSize, size)];
}

/**
 * Which parts still have to be sent. A part the server acknowledged is never handed out again;
 * a part whose request failed goes back to the front of the queue.
 */
export class PartPlan {
  constructor(chunkCount, received = []) {
    this.chunkCount = chunkCount;
    this.acked = new Set();
    this.inFlight = new Set();
    this.queue = [];
    for (const n of received) this.acked.add(n);
    for (let n = 1; n <= chunkCount; n++) if (!this.acked.has(n)) this.queue.push(n);
  }

  /** The next part to send, or null. */
  take() {
    while (this.queue.length) {
      const n = this.queue.shift();
      if (!this.acked.has(n) && !this.inFlight.has(n)) {
        this.inFlight.add(n);
        return n;
      }
    }
    return null;
  }

  /** The server stored part n. */
  ack(n) {
    this.inFlight.delete(n);
    this.acked.add(n);
  }

  /** Part n was not stored (failed, aborted): send it again later. */
  release(n) {
    if (!this.inFlight.delete(n)) return;
    if (!this.acked.has(n)) this.queue.unshift(n);
  }

  /** Parts the server reports as received (another tab, a response lost on the way). */
  merge(received) {
    for (const n of received) this.acked.add(n);
  }

  /** The server says these are missing after all (its staging was lost): send them again. */
  reopen(missing) {
    for (const n of missing) {
      if (this.acked.delete(n) && !this.inFlight.has(n)) this.queue.push(n);
    }
  }

  get done() {
    return this.acked.size >= this.chunkCount;
  }

  ackedBytes(chunkSize, size) {
    let bytes = 0;
    for (const n of this.acked) {
      const [s, e] = partRange(n, chunkSize, size);
      bytes += e - s;
    }
    return bytes;
  }
}

/** Bytes per second over the last `windowMs` of (time, bytes) samples. */
export function rate(samples, now, windowMs = 5000) {
  const recent = samples.filter(([t]) => now - t <= windowMs);
  if (recent.length < 2) return 0;
  const [t0, b0] = recent[0];
  const [t1, b1] = recent[recent.length - 1];
  return t1 > t0 ? ((b1 - b0) * 1000) / (t1 - t0) : 0;
}

/**
 * Unfinished uploads remembered across reloads (localStorage by default), so the page can offer
 * to resume them. Keyed by owner + name + size + lastModified; the SHA1 confirms it.
 */
export class ResumeStore {
  constructor(storage, key = 'chunkvault.uploads.v1') {
    this.storage = storage;
    this.key = key;
  }

  static fileKey(owner, file) {
    return JSON.stringify([owner ?? '', file.name, file.size, file.lastModified ?? 0]);
  }

  all() {
    if (!this.storage) return {};
    try {
      const v = JSON.parse(this.storage.getItem(this.key) ?? '{}');
      return v && typeof v === 'object' ? v : {};
    } catch {
      return {};
    }
  }

  get(k) {
    return this.all()[k] ?? null;
  }

  put(k, entry) {
    const all = this.all();
    all[k] = entry;
    this.storage?.setItem(this.key, JSON.stringify(all));
  }

  remove(k) {
    const all = this.all();
    if (!(k in all)) return;
    delete all[k];
    this.storage?.setItem(this.key, JSON.stringify(all));
  }

  /** This owner's entries as [key, entry] pairs. */
  forOwner(owner) {
    return Object.entries(this.all()).filter(([, e]) => e.owner === owner);
  }
}

/** A counting semaphore: at most `n` parts in flight across every upload of one Uploader. */
export class Slots {
  constructor(n) {
    this.free = n;
    this.waiting = [];
  }

  acquire(signal) {
    if (signal?.aborted) return Promise.reject(stopped());
    if (this.free > 0) {
      this.free--;
      return Promise.resolve();
    }
    return new Promise((resolve, reject) => {
      const onAbort = () => {
        const i = this.waiting.indexOf(entry);
        if (i >= 0) {
          this.waiting.splice(i, 1);
          reject(stopped());
        }
      };
      const entry = {
        resolve: () => {
          signal?.removeEventListener('abort', onAbort);
          resolve();
        },
      };
      this.waiting.push(entry);
      signal?.addEventListener('abort', onAbort, { once: true });
    });
  }

  release() {
    const next = this.waiting.shift();
    if (next) next.resolve();
    else this.free++;
  }
}

class Stopped extends Error {
  constructor() {
    super('stopped');
    this.name = 'Stopped';
  }
}
const stopped = () => new Stopped();

/** A failure shown to the user: the server's message when it sent one. */
export class UploadError extends Error {
  constructor(message, { status = 0, code = 0 } = {}) {
    super(message);
    this.name = 'UploadError';
    this.status = status;
    this.code = code;
  }
}

/** Sleeps `ms` with the injected timers; rejects with Stopped when `signal` aborts. */
export function sleep(ms, { setTimeout: st = globalThis.setTimeout, clearTimeout: ct = globalThis.clearTimeout, signal } = {}) {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(stopped());
    const onAbort = () => {
      ct(timer);
      reject(stopped());
    };
    const timer = st(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

let nextLocalId = 1;

/** One file's upload. Fires 'change' whenever anything shown about it changes. */
export class Upload extends EventTarget {
  constructor(uploader, file) {
    super();
    this.uploader = uploader;
    this.file = file;
    this.localId = nextLocalId++;
    this.name = file.name;
    this.size = file.size;
    this.state = 'queued';
    this.hashed = 0;
    this.sha1 = null;
    this.uploadId = null;
    this.chunkSize = 0;
    this.chunkCount = 0;
    this.plan = null;
    this.error = null;
    this.result = null;
    this.resumed = false;
    this.retrying = 0;
    /** Why the upload is held up: null, 'server' (out of reach) or 'signin' (token refused). */
    this.waiting = null;
    this.waits = { server: 0, signin: 0 };
    this.samples = [];
    this.abort = null;
    this.key = ResumeStore.fileKey(uploader.owner(), file);
    this.remembered = uploader.resumeStore.get(this.key);
    this.finished = new Promise((resolve) => {
      this._settle = resolve;
    });
  }

  /** Bytes the server acknowledged (or, while hashing, bytes hashed). */
  loaded() {
    if (this.state === 'hashing' || this.state === 'queued') return this.hashed;
    if (this.state === 'done' || this.state === 'instant') return this.size;
    return this.plan ? this.plan.ackedBytes(this.chunkSize, this.size) : 0;
  }

  /** Fraction in [0, 1] of the current phase (hashing, then sending). */
  progress() {
    return this.size === 0 ? (this.state === 'done' || this.state === 'instant' ? 1 : 0) : this.loaded() / this.size;
  }

  /** Fraction in [0, 1] of the file hashed (it stays 1 once hashing is over). */
  hashProgress() {
    if (this.sha1) return 1;
    return this.size === 0 ? 0 : this.hashed / this.size;
  }

  /** Bytes the server holds (acknowledged parts; all of them once done or instant). */
  sent() {
    if (this.state === 'done' || this.state === 'instant') return this.size;
    return this.plan ? this.plan.ackedBytes(this.chunkSize, this.size) : 0;
  }

  /** Bytes per second over the last few seconds of the current phase. */
  speed() {
    return rate(this.samples, this.uploader.now());
  }

  /** Seconds left at the current speed, or null when unknown. */
  eta() {
    const s = this.speed();
    return s > 0 ? (this.size - this.loaded()) / s : null;
  }

  get active() {
    return !['done', 'instant', 'failed', 'cancelled', 'paused'].includes(this.state);
  }

  pause() {
    if (!this.active || this.state === 'completing') return;
    this._setState('paused');
    this.abort?.abort();
  }

  resume() {
    if (this.state !== 'paused' && this.state !== 'failed') return;
    this.error = null;
    // Going again from here on (asking the server what it has): Pause works, Resume is gone.
    this._setState(this.sha1 ? 'verifying' : 'queued');
    this.start();
  }

  /** Whether the browser can still read the file (a changed or deleted file cannot be). */
  async _readable() {
    try {
      await this.file.slice(0, Math.min(1, this.size)).arrayBuffer();
      return true;
    } catch {
      return false;
    }
  }

  async cancel() {
    if (['done', 'instant', 'cancelled'].includes(this.state)) return;
    this._setState('cancelled');
    this.abort?.abort();
    this.uploader.resumeStore.remove(this.key);
    if (this.uploadId) {
      try {
        await this.uploader.api('DELETE', `/uploads/${encodeURIComponent(this.uploadId)}`);
      } catch {
        // The session expires on its own; nothing to show.
      }
    }
    this._settle(this);
  }

  start() {
    const controller = new AbortController();
    this.abort = controller;
    this._run(controller.signal).catch((e) => {
      if (controller.signal.aborted || e instanceof Stopped) return; // paused or cancelled
      this.error = e instanceof UploadError ? e.message : String(e?.message ?? e);
      this._setState('failed');
      this._settle(this);
    });
  }

  _setState(state) {
    // The speed is measured over one stretch of one phase: a resume (whose first answer may jump
    // by the parts acknowledged meanwhile) or a phase change starts a new measurement.
    const continues = this.state === state
      || (this.state === 'uploading' && state === 'retrying')
      || (this.state === 'retrying' && state === 'uploading');
    if (!continues) this.samples = [];
    this.state = state;
    this._changed();
  }

  /** One more (`delta` 1) or one fewer (-1) request held up for `why` ('server', 'signin'). */
  _waiting(why, delta) {
    this.waits[why] += delta;
    // Signing in is what the user must do; it says so even while other parts wait for the server.
    const now = this.waits.signin > 0 ? 'signin' : this.waits.server > 0 ? 'server' : null;
    if (this.waiting === now) return;
    this.waiting = now;
    this.samples = [];
    this._changed();
  }

  _changed() {
    const now = this.uploader.now();
    this.samples.push([now, this.loaded()]);
    if (this.samples.length > 200) this.samples.splice(0, this.samples.length - 200);
    this.dispatchEvent(new Event('change'));
  }

  _check(signal) {
    if (signal.aborted) throw stopped();
  }

  async _run(signal) {
    const up = this.uploader;
    if (!this.sha1) {
      this._setState('hashing');
      this.sha1 = await up.hasher.sha1(this.file, {
        signal,
        onProgress: (n) => {
          this.hashed = n;
          this._changed();
        },
      });
      this._check(signal);
      if (this.remembered && this.remembered.sha1 !== this.sha1) {
        // Same name, size and date but other bytes: the old session is not this file's.
        up.resumeStore.remove(this.key);
        this.remembered = null;
      }
    }
    if (!this.uploadId || !this.plan) {
      await this._init(signal);
      if (this.state === 'instant') return;
    } else {
      // Back from a pause or a failure: the server says what it has (some answers may have been
      // lost when the requests were cut).
      await this._refresh(signal);
    }
    for (;;) {
      this._setState('uploading');
      await this._sendParts(signal);
      this._check(signal);
      this._setState('completing');
      const file = await this._complete(signal);
      if (file) {
        this.result = file;
        up.resumeStore.remove(this.key);
        this._setState('done');
        this._settle(this);
        return;
      }
    }
  }

  async _init(signal) {
    const up = this.uploader;
    // The server decides between a session and an instant file (after a proof of ownership for
    // content it holds); on a large file that can take a moment.
    this._setState('verifying');
    const body = { filename: this.name, size: this.size, sha1: this.sha1 };
    if (up.chunkSize) body.chunk_size = up.chunkSize;
    const create = () => up.retrying(() => up.api('POST', '/uploads', { json: body, signal }), signal, this);
    let data = await create();
    // Stored content: the server asks for proof that we hold the bytes (秒传 with proof of
    // ownership). Its answer to the proof is an instant file or a session, like POST /uploads.
    for (let asked = 1; data?.challenge; asked++) {
      if (asked > MAX_CHALLENGES) throw new UploadError('the server kept asking for proof of ownership', { status: 0 });
      try {
        data = await this._prove(data.challenge, signal);
      } catch (e) {
        // Expired, or already used (our answer was lost on the way): ask for a new challenge.
        if (!(e instanceof UploadError) || e.status !== 404) throw e;
        data = await create();
      }
    }
    if (data.instant) {
      this.result = data.file;
      up.resumeStore.remove(this.key);
      this._setState('instant');
      this._settle(this);
      return;
    }
    this.uploadId = data.upload_id;
    this.chunkSize = data.chunk_size;
    this.chunkCount = data.chunk_count;
    this.resumed = data.received.length > 0;
    this.plan = new PartPlan(data.chunk_count, data.received);
    up.resumeStore.put(this.key, {
      owner: up.owner(),
      name: this.name,
      size: this.size,
      lastModified: this.file.lastModified ?? 0,
      sha1: this.sha1,
      uploadId: this.uploadId,
      chunkCount: this.chunkCount,
      savedAt: new Date(up.now()).toISOString(),
    });
  }

  /** Answers a proof-of-ownership challenge; resolves to the server's answer (instant or session). */
  async _prove(challenge, signal) {
    const up = this.uploader;
    const digests = await answerChallenge(this.file, challenge, up.digest);
    this._check(signal);
    const json = { challenge: challenge.id, digests };
    return up.retrying(() => up.api('POST', '/uploads/proof', { json, signal }), signal, this);
  }

  async _refresh(signal) {
    const up = this.uploader;
    try {
      const data = await up.retrying(
        () => up.api('GET', `/uploads/${encodeURIComponent(this.uploadId)}`, { signal }), signal, this);
      this.plan.merge(data.received);
    } catch (e) {
      if (!(e instanceof UploadError) || e.status !== 404) throw e;
      // The session expired: start a new one (the server may even hold the content by now).
      this.uploadId = null;
      this.plan = null;
      await this._init(signal);
    }
  }

  async _sendParts(signal) {
    // One part failing for good stops its siblings (they would only take more parts).
    const inner = new AbortController();
    const onAbort = () => inner.abort();
    signal.addEventListener('abort', onAbort, { once: true });
    try {
      const workers = [];
      for (let i = 0; i < this.uploader.parallel; i++) {
        workers.push(this._worker(inner.signal).catch((e) => {
          inner.abort();
          throw e;
        }));
      }
      const results = await Promise.allSettled(workers);
      const failures = results.filter((r) => r.status === 'rejected').map((r) => r.reason);
      const real = failures.find((e) => !(e instanceof Stopped));
      if (real || failures.length) throw real ?? failures[0];
    } finally {
      signal.removeEventListener('abort', onAbort);
    }
  }

  async _worker(signal) {
    const up = this.uploader;
    for (;;) {
      this._check(signal);
      await up.slots.acquire(signal);
      const n = this.plan.take();
      if (n === null) {
        up.slots.release();
        return;
      }
      try {
        await this._sendPart(n, signal);
      } catch (e) {
        this.plan.release(n);
        throw e;
      } finally {
        up.slots.release();
      }
    }
  }

  async _sendPart(n, signal) {
    const up = this.uploader;
    const [start, end] = partRange(n, this.chunkSize, this.size);
    const blob = this.file.slice(start, end);
    const md5 = await up.hasher.md5(blob, { signal });
    const path = `/uploads/${encodeURIComponent(this.uploadId)}/parts/${n}`;
    const data = await up.retrying(
      () => up.api('PUT', path, { body: blob, headers: { 'Content-MD5': md5 }, signal }), signal, this);
    this.plan.ack(n);
    if (Array.isArray(data?.received)) this.plan.merge(data.received);
    this._changed();
  }

  async _complete(signal) {
    const up = this.uploader;
    try {
      return await up.retrying(
        () => up.api('POST', `/uploads/${encodeURIComponent(this.uploadId)}/complete`, { signal }),
        signal, this, (e) => e.code === MISSING_PARTS);
    } catch (e) {
      if (e instanceof UploadError && e.code === MISSING_PARTS && Array.isArray(e.data?.missing)) {
        this.plan.reopen(e.data.missing);
        return null;
      }
      throw e;
    }
  }

  _retrying(delta, why = null) {
    this.retrying += delta;
    if (why) this._waiting(why, delta);
    if (this.state === 'uploading' && this.retrying > 0) this._setState('retrying');
    else if (this.state === 'retrying' && this.retrying === 0) this._setState('uploading');
  }
}

/** `complete` before every part arrived: the answer lists the missing ones. */
const MISSING_PARTS = 10903;

/** Fresh challenges asked for in a row (each one expired or used) before giving up. */
const MAX_CHALLENGES = 3;

const HEX = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, '0'));

/** Lower-case hex of an ArrayBuffer or typed array. */
export function toHex(buf) {
  const bytes = ArrayBuffer.isView(buf) ? new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength) : new Uint8Array(buf);
  let out = '';
  for (const b of bytes) out += HEX[b];
  return out;
}

/** `crypto.subtle.digest`, looked up when used (it only exists in secure contexts). */
export function subtleDigest(algorithm, data) {
  const subtle = globalThis.crypto?.subtle;
  if (!subtle) {
    throw new UploadError('proof of ownership needs crypto.subtle: open the page over HTTPS or on localhost', { status: 0 });
  }
  return subtle.digest(algorithm, data);
}

/**
 * The answer to a proof-of-ownership challenge `{id, ranges: [[start, end), …], algorithm}`:
 * the hex SHA-256 of each byte range of `file`, in order. `digest(algorithm, arrayBuffer)` has
 * the signature of `crypto.subtle.digest`.
 */
export async function answerChallenge(file, challenge, digest = subtleDigest) {
  const algorithm = String(challenge?.algorithm ?? 'sha256').toLowerCase().replace('-', '');
  if (algorithm !== 'sha256') throw new UploadError(`unsupported challenge algorithm ${challenge.algorithm}`, { status: 0 });
  if (!Array.isArray(challenge.ranges)) throw new UploadError('malformed challenge: no ranges', { status: 0 });
  const digests = [];
  for (const r of challenge.ranges) {
    const [start, end] = Array.isArray(r) ? r : [];
    if (!Number.isSafeInteger(start) || !Number.isSafeInteger(end) || start < 0 || end < start || end > file.size) {
      throw new UploadError(`malformed challenge range ${JSON.stringify(r)}`, { status: 0 });
    }
    const bytes = await file.slice(start, end).arrayBuffer();
    digests.push(toHex(await digest('SHA-256', bytes)));
  }
  return digests;
}

/**
 * Uploads files to a ChunkVault server. Options (all but `token` and `hasher` have defaults):
 * `baseUrl`, `token()`, `owner()` (whose uploads the resume store holds), `hasher`
 * (`{ sha1(file, {onProgress, signal}), md5(blob, {signal}) }`), `fetch`, `storage`,
 * `setTimeout`/`clearTimeout`, `random`, `now`, `parallel`, `maxAttempts`, `baseDelayMs`,
 * `maxDelayMs`, `chunkSize` (asked of the server; it may raise it), `digest(algorithm, data)`
 * (`crypto.subtle.digest` by default; answers proof-of-ownership challenges), `outageAttempts`
 * (tries while the server is out of reach: no limit by default, `maxAttempts` counts the other
 * failures), `reauthenticate()` (a promise settled once the user signed in again after a refused
 * token: uploads wait for it, then go on; without it a refused token fails the upload).
 */
export class Uploader extends EventTarget {
  constructor(opts = {}) {
    super();
    this.baseUrl = opts.baseUrl ?? '';
    this.token = opts.token ?? (() => null);
    this.owner = opts.owner ?? (() => '');
    this.hasher = opts.hasher;
    this.digest = opts.digest ?? subtleDigest;
    this.fetch = opts.fetch ?? globalThis.fetch.bind(globalThis);
    this.timers = {
      setTimeout: opts.setTimeout ?? globalThis.setTimeout.bind(globalThis),
      clearTimeout: opts.clearTimeout ?? globalThis.clearTimeout.bind(globalThis),
    };
    this.random = opts.random ?? Math.random;
    this.now = opts.now ?? (() => Date.now());
    this.parallel = opts.parallel ?? DEFAULTS.parallel;
    this.maxAttempts = opts.maxAttempts ?? DEFAULTS.maxAttempts;
    this.outageAttempts = opts.outageAttempts ?? Infinity;
    this.reauthenticate = opts.reauthenticate ?? null;
    this.signingIn = null;
    this.wakers = new Set();
    this.baseDelayMs = opts.baseDelayMs ?? DEFAULTS.baseDelayMs;
    this.maxDelayMs = opts.maxDelayMs ?? DEFAULTS.maxDelayMs;
    this.chunkSize = opts.chunkSize ?? null;
    this.resumeStore = new ResumeStore(opts.storage === undefined ? globalThis.localStorage : opts.storage);
    this.slots = new Slots(this.parallel);
    this.uploads = [];
  }

  /** Starts uploading `file` (a File or Blob with a name); returns its Upload. */
  add(file) {
    const u = new Upload(this, file);
    this.uploads.push(u);
    this.dispatchEvent(new CustomEvent('add', { detail: u }));
    u.start();
    return u;
  }

  /** Drops finished uploads (done, instant, cancelled) from `uploads`. */
  forgetFinished() {
    this.uploads = this.uploads.filter((u) => !['done', 'instant', 'cancelled'].includes(u.state));
  }

  /** Unfinished uploads of the current owner remembered from earlier visits. */
  remembered() {
    const live = new Set(this.uploads.filter((u) => u.state !== 'cancelled').map((u) => u.key));
    return this.resumeStore.forOwner(this.owner()).filter(([k]) => !live.has(k)).map(([key, e]) => ({ key, ...e }));
  }

  /** Drops a remembered upload and its session on the server. */
  async discard(key) {
    const e = this.resumeStore.get(key);
    this.resumeStore.remove(key);
    if (e?.uploadId) {
      try {
        await this.api('DELETE', `/uploads/${encodeURIComponent(e.uploadId)}`);
      } catch {
        // Already gone or expired.
      }
    }
  }

  /**
   * One API call: the envelope's `data` on success; UploadError otherwise (status 0 for a network
   * error), carrying the server's message, code and data.
   */
  async api(method, path, { json, body, headers = {}, signal } = {}) {
    const h = { ...headers };
    const token = this.token();
    if (token) h.Authorization = `Bearer ${token}`;
    let payload = body;
    if (json !== undefined) {
      h['Content-Type'] = 'application/json';
      payload = JSON.stringify(json);
    } else if (body !== undefined) {
      h['Content-Type'] = 'application/octet-stream';
    }
    let res;
    try {
      res = await this.fetch(this.baseUrl + path, { method, headers: h, body: payload, signal });
    } catch (e) {
      if (signal?.aborted) throw stopped();
      throw new UploadError(`network error: ${e?.message ?? e}`, { status: 0 });
    }
    let envelope = null;
    try {
      envelope = await res.json();
    } catch {
      if (signal?.aborted) throw stopped();
    }
    if (res.ok && envelope && envelope.code === 0) return envelope.data;
    const err = new UploadError(envelope?.msg || `HTTP ${res.status}`, { status: res.status, code: envelope?.code ?? 0 });
    err.data = envelope?.data;
    err.token = token; // the token this request carried (a 401 for an old one is not news)
    err.retryAfterMs = retryAfterMs(res.headers);
    throw err;
  }

  /**
   * Runs `call` until it succeeds, retrying what `classifyStatus` calls retryable with backoff;
   * `upload` (optional) shows 'retrying' meanwhile. `isFinal(err)` stops early on a known answer.
   */
  async retrying(call, signal, upload = null, isFinal = () => false) {
    // `attempt` counts the failures in a row (it sets the backoff); `counted` only those that are
    // not an outage (they set the give-up).
    for (let attempt = 0, counted = 0; ; attempt++) {
      try {
        return await call();
      } catch (e) {
        if (e instanceof Stopped || signal?.aborted) throw stopped();
        if (e instanceof UploadError && e.status === 401 && this.reauthenticate && !isFinal(e)) {
          // The token was refused: the page asks the user to sign in again; then the same call.
          // Sent with a token that has been replaced meanwhile: again at once with the new one.
          if (e.token !== this.token()) {
            attempt = -1;
            continue;
          }
          upload?._retrying(1, 'signin');
          try {
            await this._signedInAgain(signal);
          } finally {
            upload?._retrying(-1, 'signin');
          }
          attempt = -1;
          continue;
        }
        if (!(e instanceof UploadError) || isFinal(e) || classifyStatus(e.status) !== 'retry') throw e;
        const outage = isOutage(e.status);
        if (e.status === 0 && upload && !(await upload._readable())) {
          // Not the network: the browser can no longer read the file (changed, moved, deleted).
          throw new UploadError('the file can no longer be read (changed, moved or deleted?): choose it again', { status: 0 });
        }
        if (!outage) counted++;
        if (counted >= this.maxAttempts || (outage && attempt + 1 >= this.outageAttempts)) {
          throw new UploadError(`${e.message} (gave up after ${attempt + 1} attempts)`, e);
        }
        const delay = Math.max(
          backoffDelay(attempt, { baseDelayMs: this.baseDelayMs, maxDelayMs: this.maxDelayMs, random: this.random }),
          e.retryAfterMs ?? 0,
        );
        const why = outage ? 'server' : null;
        upload?._retrying(1, why);
        try {
          await this._pause(delay, signal);
        } finally {
          upload?._retrying(-1, why);
        }
      }
    }
  }

  /**
   * Sleeps `ms` before a retry, or less: `wake()` (the page calls it on the browser's `online`
   * event) ends every such wait at once.
   */
  _pause(ms, signal) {
    const inner = new AbortController();
    const onAbort = () => inner.abort();
    signal?.addEventListener('abort', onAbort, { once: true });
    const wake = () => inner.abort();
    this.wakers.add(wake);
    return sleep(ms, { ...this.timers, signal: inner.signal })
      .catch((e) => {
        if (signal?.aborted) throw e;
      })
      .finally(() => {
        this.wakers.delete(wake);
        signal?.removeEventListener('abort', onAbort);
      });
  }

  /** Ends every backoff wait now (the network is back, or the user asked). */
  wake() {
    for (const w of [...this.wakers]) w();
  }

  /** One sign-in for every upload held up by a refused token. */
  _signedInAgain(signal) {
    if (!this.signingIn) {
      this.signingIn = Promise.resolve(this.reauthenticate()).finally(() => {
        this.signingIn = null;
      });
    }
    if (!signal) return this.signingIn;
    return new Promise((resolve, reject) => {
      if (signal.aborted) return reject(stopped());
      const onAbort = () => reject(stopped());
      signal.addEventListener('abort', onAbort, { once: true });
      this.signingIn.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort));
    });
  }
}

/**
 * SHA1 and per-part MD5 in Web Workers (`hash-worker.js`, hash-wasm), reading the file in slices:
 * a file of any size is hashed without being held in memory. One worker for SHA1, one for MD5, so
 * hashing a new file does not hold up the parts of one already uploading.
 */
export class WorkerHasher {
  constructor({ url = new URL('./hash-worker.js', import.meta.url), sliceSize = 4 << 20, slices = false } = {}) {
    this.url = url;
    this.sliceSize = sliceSize;
    this.slices = slices; // read with Blob.slice() even where a BYOB stream is available
    this.workers = {};
    this.jobs = new Map();
    this.nextId = 1;
  }

  _worker(kind) {
    if (!this.workers[kind]) {
      const w = new Worker(this.url);
      w.onmessage = (e) => {
        const m = e.data;
        const job = this.jobs.get(m.id);
        if (!job) return;
        if (m.progress !== undefined) return job.onProgress?.(m.progress);
        this.jobs.delete(m.id);
        if (m.error) job.reject(new Error(m.error));
        else if (m.cancelled) job.reject(stopped());
        else job.resolve(m.result);
      };
      w.onerror = (e) => {
        for (const [id, job] of this.jobs) {
          if (job.kind === kind) {
            this.jobs.delete(id);
            job.reject(new Error(`hash worker failed: ${e.message}`));
          }
        }
      };
      this.workers[kind] = w;
    }
    return this.workers[kind];
  }

  _run(kind, op, blob, { onProgress, signal } = {}) {
    if (signal?.aborted) return Promise.reject(stopped());
    const id = this.nextId++;
    const worker = this._worker(kind);
    const onAbort = () => worker.postMessage({ id, op: 'cancel' });
    signal?.addEventListener('abort', onAbort, { once: true });
    return new Promise((resolve, reject) => {
      this.jobs.set(id, { kind, resolve, reject, onProgress });
      worker.postMessage({ id, op, blob, sliceSize: this.sliceSize, slices: this.slices });
    }).finally(() => signal?.removeEventListener('abort', onAbort));
  }

  /** Lower-case hex SHA1 of the whole file. */
  sha1(file, opts) {
    return this._run('sha1', 'sha1', file, opts);
  }

  /** Base64 MD5 (for `Content-MD5`). */
  md5(blob, opts) {
    return this._run('md5', 'md5', blob, opts);
  }

  terminate() {
    for (const w of Object.values(this.workers)) w.terminate();
    this.workers = {};
  }
}
