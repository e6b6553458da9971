// An in-memory ChunkVault `/uploads` API, a hasher on node's crypto, virtual timers: enough to run
// web/uploader.js in node.
import { createHash } from 'node:crypto';

/** SHA1 and MD5 as the browser's WorkerHasher answers them. */
export const nodeHasher = {
  async sha1(file, { onProgress } = {}) {
    const bytes = Buffer.from(await file.arrayBuffer());
    onProgress?.(bytes.length);
    return createHash('sha1').update(bytes).digest('hex');
  },
  async md5(blob) {
    return createHash('md5').update(Buffer.from(await blob.arrayBuffer())).digest('base64');
  },
};

/** localStorage's interface over a Map. */
export function memoryStorage() {
  const m = new Map();
  return {
    getItem: (k) => (m.has(k) ? m.get(k) : null),
    setItem: (k, v) => m.set(k, String(v)),
    removeItem: (k) => m.delete(k),
  };
}

/**
 * Timers that fire on the next turn of the event loop whatever the delay, recording each delay:
 * backoff is asserted on the recorded delays, and tests do not wait for real time.
 */
export function virtualTimers() {
  const delays = [];
  return {
    delays,
    setTimeout(fn, ms) {
      delays.push(ms);
      return setImmediate(fn);
    },
    clearTimeout(handle) {
      clearImmediate(handle);
    },
  };
}

/** A deterministic random() (mulberry32). */
export function seeded(seed = 1) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const envelope = (status, code, msg, data, headers = {}) =>
  new Response(JSON.stringify({ code, msg, data }), { status, headers: { 'content-type': 'application/json', ...headers } });

/**
 * The REST upload resource in memory. `fault(req)` may answer a request instead of the server:
 * return `{status, code?, msg?, headers?}`, `'network'` (fetch rejects), `'hang'` (never answers
 * until aborted), `'store-then-network'` (the part is stored, the answer is lost) or
 * `'store-then-hang'` (stored, and the answer never comes).
 */
export class FakeServer {
  constructor({ chunkSize = 10, fault = () => null, instantMode = 'proof', ranges = defaultRanges, maxProofFailures = 5 } = {}) {
    this.chunkSize = chunkSize;
    this.fault = fault;
    this.instantMode = instantMode; // 'proof' (challenge first) or 'trusted' (instant at once)
    this.ranges = ranges; // size -> [[start, end), …] of a challenge
    this.maxProofFailures = maxProofFailures;
    this.challenges = new Map(); // id -> {filename, size, sha1, ranges, expected}
    this.proofs = []; // bodies of POST /uploads/proof, in order
    this.proofFailures = 0;
    this.sessions = new Map();
    this.blobs = new Map(); // sha1 -> bytes
    this.files = [];
    this.requests = []; // {method, path, part?, outcome}
    this.stored = []; // {upload, part}: every time a part was stored (a re-send counts again)
    this.inFlight = 0; // part requests
    this.maxInFlight = 0;
    this.nextId = 1;
    this.fetch = this.fetch.bind(this);
  }

  /** Parts requests of one upload, in order. */
  puts(upload) {
    return this.requests.filter((r) => r.method === 'PUT' && (!upload || r.upload === upload));
  }

  async fetch(url, { method = 'GET', headers = {}, body, signal } = {}) {
    const path = new URL(url, 'http://fake').pathname;
    const m = /^\/uploads(?:\/([^/]+))?(?:\/(parts\/(\d+)|complete))?$/.exec(path);
    const req = { method, path, upload: m?.[1], part: m?.[3] ? Number(m[3]) : undefined, headers, outcome: null };
    this.requests.push(req);
    if (headers.Authorization !== 'Bearer T') return envelope(401, 10101, 'missing, malformed, expired or revoked token', null);
    const isPut = method === 'PUT';
    if (isPut) this.inFlight++;
    this.maxInFlight = Math.max(this.maxInFlight, this.inFlight);
    try {
      await new Promise((r) => setImmediate(r));
      let f = this.fault(req);
      if (f === 'store-then-hang') {
        await this.handle(req, body);
        f = 'hang';
      }
      if (f === 'hang') {
        req.outcome = 'hang';
        await new Promise((_, reject) => {
          if (signal?.aborted) reject(new DOMException('aborted', 'AbortError'));
          signal?.addEventListener('abort', () => reject(new DOMException('aborted', 'AbortError')));
        });
      }
      if (f === 'network') {
        req.outcome = 'network';
        throw new TypeError('Failed to fetch');
      }
      if (f && typeof f === 'object') {
        req.outcome = f.status;
        return envelope(f.status, f.code ?? 15001, f.msg ?? 'injected', f.data ?? null, f.headers);
      }
      if (signal?.aborted) throw new DOMException('aborted', 'AbortError');
      const res = await this.handle(req, body);
      if (f === 'store-then-network') {
        req.outcome = 'lost';
        throw new TypeError('Failed to fetch');
      }
      req.outcome = res.status;
      return res;
    } finally {
      if (isPut) this.inFlight--;
    }
  }

  view(id, s) {
    return {
      upload_id: id, filename: s.filename, size: s.size, sha1: s.sha1, chunk_size: s.chunkSize,
      chunk_count: s.chunkCount, received: [...s.received].sort((a, b) => a - b),
      missing: s.chunkCount - s.received.size, bytes_received: 0,
    };
  }

  link(name, sha1, size) {
    const file = { name, sha1, size };
    this.files.push(file);
    return file;
  }

  /** An existing session of this content, else a new one (201). */
  session(filename, size, sha1) {
    for (const [id, s] of this.sessions) {
      if (s.sha1 === sha1 && s.size === size) return envelope(200, 0, 'OK', this.view(id, s));
    }
    const id = `u${this.nextId++}`;
    const s = { filename, size, sha1, chunkSize: this.chunkSize, chunkCount: Math.max(1, Math.ceil(size / this.chunkSize)), received: new Set(), parts: new Map() };
    this.sessions.set(id, s);
    return envelope(201, 0, 'OK', this.view(id, s));
  }

  /** A proof-of-ownership challenge over the stored bytes of `sha1`. */
  challenge(filename, size, sha1) {
    const bytes = this.blobs.get(sha1);
    const ranges = this.ranges(size);
    const expected = ranges.map(([s, e]) => createHash('sha256').update(bytes.subarray(s, e)).digest('hex'));
    const id = createHash('md5').update(`challenge ${this.nextId++}`).digest('hex');
    this.challenges.set(id, { filename, size, sha1, ranges, expected });
    return { id, ranges, algorithm: 'sha256', expires_at: '2030-01-01T00:00:00Z' };
  }

  async handle(req, body) {
    const { method, upload, part } = req;
    if (method === 'POST' && req.path === '/uploads') {
      const { filename, size, sha1 } = JSON.parse(body);
      if (this.blobs.has(sha1) && this.blobs.get(sha1).length === size) {
        if (this.instantMode === 'proof' && size > 0) return envelope(200, 0, 'OK', { instant: false, challenge: this.challenge(filename, size, sha1) });
        return envelope(200, 0, 'OK', { instant: true, file: this.link(filename, sha1, size) });
      }
      return this.session(filename, size, sha1);
    }
    if (method === 'POST' && req.path === '/uploads/proof') {
      const { challenge, digests } = JSON.parse(body);
      this.proofs.push({ challenge, digests });
      if (this.proofFailures >= this.maxProofFailures) {
        return envelope(429, 14291, 'too many wrong proofs of ownership', null, { 'retry-after': '60' });
      }
      const c = this.challenges.get(challenge);
      if (!c) return envelope(404, 10404, 'no such challenge', null);
      this.challenges.delete(challenge);
      const right = Array.isArray(digests) && digests.length === c.expected.length && c.expected.every((d, i) => d === digests[i]);
      if (!right) {
        this.proofFailures++;
        return this.session(c.filename, c.size, c.sha1);
      }
      return envelope(200, 0, 'OK', { instant: true, file: this.link(c.filename, c.sha1, c.size) });
    }
    const s = this.sessions.get(upload);
    if (!s) return envelope(404, 10401, 'no such upload', null);
    if (method === 'GET') return envelope(200, 0, 'OK', this.view(upload, s));
    if (method === 'DELETE') {
      this.sessions.delete(upload);
      return envelope(200, 0, 'OK', null);
    }
    if (method === 'PUT') {
      const bytes = Buffer.from(await body.arrayBuffer());
      const md5 = createHash('md5').update(bytes).digest('base64');
      if (req.headers['Content-MD5'] !== md5) return envelope(400, 10005, 'Content-MD5 does not match the part', null);
      const expected = Math.min(s.chunkSize, s.size - (part - 1) * s.chunkSize);
      if (bytes.length !== expected) return envelope(400, 10001, 'wrong part length', null);
      s.parts.set(part, bytes);
      s.received.add(part);
      this.stored.push({ upload, part });
      return envelope(200, 0, 'OK', this.view(upload, s));
    }
    if (method === 'POST' && req.path.endsWith('/complete')) {
      const missing = [];
      for (let n = 1; n <= s.chunkCount; n++) if (!s.received.has(n)) missing.push(n);
      if (missing.length) return envelope(409, 10903, 'complete before every part arrived', { missing });
      const bytes = Buffer.concat([...Array(s.chunkCount).keys()].map((i) => s.parts.get(i + 1)));
      if (createHash('sha1').update(bytes).digest('hex') !== s.sha1) return envelope(422, 12201, 'content does not match its SHA1', null);
      this.blobs.set(s.sha1, bytes);
      this.sessions.delete(upload);
      const file = { name: s.filename, sha1: s.sha1, size: s.size };
      this.files.push(file);
      return envelope(201, 0, 'OK', file);
    }
    return envelope(404, 10402, 'no such route', null);
  }
}

/** Three ranges of a challenge: the start, the middle and the end of the file. */
export function defaultRanges(size) {
  const len = Math.max(1, Math.min(7, Math.floor(size / 3)));
  const mid = Math.floor((size - len) / 2);
  return [[0, Math.min(len, size)], [mid, mid + len], [size - len, size]];
}

/** A File of `size` pseudo-random bytes. */
export function makeFile(name, size, { seed = 7, lastModified = 1_700_000_000_000 } = {}) {
  const random = seeded(seed);
  const bytes = new Uint8Array(size);
  for (let i = 0; i < size; i++) bytes[i] = Math.floor(random() * 256);
  return new File([bytes], name, { lastModified });
}

/**
 * Resolves once `pred()` holds, checking after each turn of the event loop (the fake server and
 * the virtual timers advance one turn at a time); fails after `turns` turns.
 */
export async function until(pred, turns = 10_000) {
  for (let i = 0; i < turns; i++) {
    if (pred()) return;
    await new Promise((r) => setImmediate(r));
  }
  throw new Error(`condition not reached after ${turns} turns: ${pred}`);
}
