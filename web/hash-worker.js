// Hashes Blobs for uploader.js off the page's thread: SHA1 of a whole file, MD5 of one part.
// Reads one slice at a time (Blob.slice), so memory stays at one slice whatever the file's size.
// Messages in:  {id, op: 'sha1' | 'md5', blob, sliceSize} and {id, op: 'cancel'}.
// Messages out: {id, progress: bytesHashed}, then {id, result} | {id, error} | {id, cancelled: true}.
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

async function run({ id, op, blob, sliceSize }) {
  const hasher = op === 'sha1' ? await hashwasm.createSHA1() : await hashwasm.createMD5();
  hasher.init();
  let progressAt = 0;
  for (let offset = 0; offset < blob.size; offset += sliceSize) {
    if (cancelled.delete(id)) {
      self.postMessage({ id, cancelled: true });
      return;
    }
    const end = Math.min(offset + sliceSize, blob.size);
    hasher.update(new Uint8Array(await blob.slice(offset, end).arrayBuffer()));
    const now = Date.now();
    if (op === 'sha1' && (now - progressAt > 100 || end === blob.size)) {
      progressAt = now;
      self.postMessage({ id, progress: end });
    }
  }
  cancelled.delete(id);
  if (op === 'sha1') {
    self.postMessage({ id, result: hasher.digest('hex') });
  } else {
    const digest = hasher.digest('binary');
    self.postMessage({ id, result: btoa(String.fromCharCode(...digest)) });
  }
}
