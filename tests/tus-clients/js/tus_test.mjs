// Drives ChunkVault's tus endpoint with tus-js-client in Node.
//   node tus_test.mjs <base-url> <token> <file> <scenario>
// Scenarios: upload | parallel | resume | terminate. Prints one JSON line with what happened.
// TUS_PROTOCOL=ietf-draft-03|ietf-draft-05 speaks the IETF resumable-upload draft instead of tus.
import fs from 'node:fs';
import * as tus from 'tus-js-client';

const [base, token, file, scenario] = process.argv.slice(2);
const size = fs.statSync(file).size;
const headers = { Authorization: `Bearer ${token}` };
const protocol = process.env.TUS_PROTOCOL || 'tus-v1';
const interop = { 'ietf-draft-03': '5', 'ietf-draft-05': '6' }[protocol];

function start(options) {
  return new Promise((resolve, reject) => {
    const upload = new tus.Upload(fs.createReadStream(file), {
      endpoint: `${base}/files/`,
      headers,
      chunkSize: 256 * 1024,
      uploadSize: size,
      metadata: { filename: `js-${scenario}${interop ? `-ietf${interop}` : ''}.bin`, filetype: 'application/octet-stream' },
      retryDelays: [0, 100, 500],
      protocol,
      ...options,
      onSuccess: () => resolve(upload),
      onError: reject,
    });
    upload.start();
    if (options.onStarted) options.onStarted(upload, resolve);
  });
}

async function main() {
  if (scenario === 'upload') {
    const u = await start({});
    return { url: u.url };
  }
  if (scenario === 'parallel') {
    // parallelUploads: partial uploads sent side by side, then one final upload (concatenation).
    const u = await start({ parallelUploads: 3, uploadSize: undefined });
    return { url: u.url };
  }
  if (scenario === 'resume') {
    // Stop after some chunks, then a fresh client continues from the server's offset.
    let firstUrl = null;
    let stoppedAt = 0;
    await start({
      onProgress: () => {},
      onChunkComplete: (_chunk, accepted) => {},
      onStarted: (upload, resolve) => {
        upload.options.onChunkComplete = (_c, accepted) => {
          if (accepted >= size / 3 && !firstUrl) {
            firstUrl = upload.url;
            stoppedAt = accepted;
            upload.abort(false).then(() => resolve(upload));
          }
        };
      },
    });
    // The second client asks the server for the offset (HEAD) and goes on from there.
    let firstProgress = null;
    const u = await start({
      uploadUrl: firstUrl,
      onProgress: (sent) => {
        if (firstProgress === null) firstProgress = sent;
      },
    });
    return { url: u.url, firstUrl, stoppedAt, firstProgress };
  }
  if (scenario === 'terminate') {
    let url = null;
    await start({
      onStarted: (upload, resolve) => {
        upload.options.onChunkComplete = (_c, accepted) => {
          if (!url) {
            url = upload.url;
            upload.abort(true).then(() => resolve(upload));
          }
        };
      },
    });
    const version = interop ? { 'Upload-Draft-Interop-Version': interop } : { 'Tus-Resumable': '1.0.0' };
    const res = await fetch(url, { method: 'HEAD', headers: { ...headers, ...version } });
    return { url, headStatus: res.status };
  }
  throw new Error(`unknown scenario ${scenario}`);
}

main().then(
  (r) => console.log(JSON.stringify({ ok: true, ...r })),
  (e) => { console.log(JSON.stringify({ ok: false, error: String(e) })); process.exit(1); },
);
