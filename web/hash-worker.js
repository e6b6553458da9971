// Hashes Blobs for uploader.js off the page's thread: SHA1 of a whole file, MD5 of one part.
// Messages in:  {id, op: 'sha1' | 'md5', blob, sliceSize, slices?} and {id, op: 'cancel'}.
// Messages out: {id, progress: bytesHashed}, then {id, result} | {id, error} | {id, cancelled: true}.
//
// The file is read into one reused buffer (a BYOB reader on Blob.stream()): reading a new
// ArrayBuffer per slice leaves garbage that V8 collects late (a 1 GiB file then peaks at ~150 MiB
// more), while the reused buffer keeps the worker's memory flat. Where BYOB reading of a Blob is
// not supported, it falls back to Blob.slice() + arrayBuffer() slice by slice.
/* global hashwasm, importScripts */
importScripts('/vendor/hash-wasm/sha1.umd.min.js', '/vendor/hash-wasm/md5.umd.min.js');

const cancelled = new Set();

self.onmessage = (e) => {
  const m = e.data;
  if (m.op === 'cancel') {
    cancelled.add(m.id);
    return;
  }
  run(m).catch((err) => self.postMessage({ id: m.id, error: String(err?.message ?? err) }));
};

class Cancelled extends Error {}

async function run({ id, op, blob, sliceSize, slices = false }) {
  const hasher = op === 'sha1' ? await hashwasm.createSHA1() : await hashwasm.createMD5();
  hasher.init();
  let progressAt = 0;
  const onBytes = (bytes, total) => {
    if (cancelled.has(id)) throw new Cancelled();
    hasher.update(bytes);
    const now = Date.now();
    if (op === 'sha1' && (now - progressAt > 100 || total === blob.size)) {
      progressAt = now;
      self.postMessage({ id, progress: total });
    }
  };
  try {
    await readBlob(blob, sliceSize, slices, onBytes);
  } catch (err) {
    if (!(err instanceof Cancelled)) throw err;
    cancelled.delete(id);
    self.postMessage({ id, cancelled: true });
    return;
  }
  cancelled.delete(id);
  if (op === 'sha1') {
    self.postMessage({ id, result: hasher.digest('hex') });
  } else {
    const digest = hasher.digest('binary');
    self.postMessage({ id, result: btoa(String.fromCharCode(...digest)) });
  }
}

/**
 * Calls `onBytes(view, bytesSoFar)` for consecutive pieces of `blob`, never holding more than one.
 * `slices` forces the fallback (tests check both paths).
 */
async function readBlob(blob, sliceSize, slices, onBytes) {
  let reader = null;
  try {
    if (!slices) reader = blob.stream().getReader({ mode: 'byob' });
  } catch {
    // No byte stream for Blobs here.
  }
  let total = 0;
  if (reader) {
    let buffer = new ArrayBuffer(Math.min(sliceSize, 1 << 20) || 1);
    try {
      for (;;) {
        const { done, value } = await reader.read(new Uint8Array(buffer));
        if (done) break;
        total += value.length;
        onBytes(value, total);
        buffer = value.buffer; // the read transferred it; it comes back with the data
      }
    } catch (err) {
      reader.cancel().catch(() => {});
      throw err;
    }
    return;
  }
  for (let offset = 0; offset < blob.size; offset += sliceSize) {
    const end = Math.min(offset + sliceSize, blob.size);
    const bytes = new Uint8Array(await blob.slice(offset, end).arrayBuffer());
    total = end;
    onBytes(bytes, total);
  }
}
