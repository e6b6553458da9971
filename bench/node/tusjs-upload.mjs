// Uploads one file with tus-js-client and prints the seconds it took.
//   node tusjs-upload.mjs <endpoint> <token|-> <file> <chunk-bytes> [protocol]
// protocol: tus-v1 (the default) or ietf-draft-05 (IETF resumable uploads, interop version 6).
import fs from 'node:fs';
import * as tus from 'tus-js-client';

const [endpoint, token, file, chunk, protocol = 'tus-v1'] = process.argv.slice(2);
const headers = token === '-' ? {} : { Authorization: `Bearer ${token}` };
const size = fs.statSync(file).size;
const start = process.hrtime.bigint();
new tus.Upload(fs.createReadStream(file), {
  endpoint, headers, chunkSize: Number(chunk), uploadSize: size, protocol,
  metadata: { filename: 'bench-js.bin' },
  onError: (e) => { console.error(String(e)); process.exit(1); },
  onSuccess: () => console.log((Number(process.hrtime.bigint() - start) / 1e9).toFixed(3)),
}).start();
