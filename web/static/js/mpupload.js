// mpupload.html: the tutorial's multipart upload. SHA1 of the whole file, then
// /file/mpupload/init (code 10006: the user already holds it), each chunk the server lacks as the
// raw body of /file/mpupload/uppart (1-based index, with the chunk's SHA1), then
// /file/mpupload/complete, and the file list.
const mpForm = document.getElementById('mpupload-form');
const mpBar = document.getElementById('bar');

function showProgress(text, fraction = null) {
  document.getElementById('progress').textContent = text;
  if (fraction !== null) {
    mpBar.hidden = false;
    mpBar.value = Math.round(fraction * 1000);
  }
}

function hex(buffer) {
  return [...new Uint8Array(buffer)].map((b) => b.toString(16).padStart(2, '0')).join('');
}

/** SHA1 (hex) of a Blob, read whole: fine for the sizes this page is meant for. */
async function sha1Hex(blob) {
  const bytes = await blob.arrayBuffer();
  // crypto.subtle exists only in secure contexts (https, localhost); elsewhere hash-wasm does it.
  if (window.crypto?.subtle) return hex(await crypto.subtle.digest('SHA-1', bytes));
  return hashwasm.sha1(new Uint8Array(bytes));
}

/** A classic mpupload call: its data when code is 0, else an Error with the server's message. */
async function mpCall(route, fields, body = null) {
  const resp = await postJSON(`/file/mpupload/${route}?${withParams(fields)}`, body);
  if (resp.code !== 0) {
    const err = new Error(resp.msg || `code ${resp.code}`);
    err.code = resp.code;
    throw err;
  }
  return resp.data;
}

async function upload(file) {
  showProgress(`Computing the SHA1 of ${file.name}…`, 0);
  const filehash = await sha1Hex(file);
  const filesize = file.size;
  const filename = file.name;
  let init;
  try {
    init = await mpCall('init', { filehash, filesize, filename });
  } catch (err) {
    if (err.code !== 10006) throw err;
    showProgress(`${filename} is already stored in your files: nothing to send.`, 1);
    return;
  }
  const { UploadID: uploadid, ChunkSize: chunkSize, ChunkCount: chunkCount } = init;
  const stored = new Set(init.ChunkExists ?? []);
  let sentBytes = 0;
  const chunkBytes = (index) => Math.min(index * chunkSize, filesize) - (index - 1) * chunkSize;
  for (const index of stored) sentBytes += chunkBytes(index);
  const fraction = () => (filesize === 0 ? 1 : sentBytes / filesize);
  if (stored.size > 0) {
    showProgress(`Resuming: ${stored.size} of ${chunkCount} chunks are already on the server.`, fraction());
  }
  for (let index = 1; index <= chunkCount; index++) {
    if (stored.has(index)) continue;
    const chunk = file.slice((index - 1) * chunkSize, index * chunkSize);
    const chkhash = await sha1Hex(chunk);
    showProgress(`Sending chunk ${index} of ${chunkCount}… (${Math.floor(fraction() * 100)}%)`, fraction());
    await mpCall('uppart', { uploadid, index, chkhash }, chunk);
    sentBytes += chunk.size;
  }
  showProgress(`All ${chunkCount} chunks sent; finishing…`, 1);
  await mpCall('complete', { uploadid, filename, filehash, filesize });
  showProgress(`${filename} is stored. Taking you to your files…`, 1);
  window.location.href = '/static/view/home.html';
}

mpForm.addEventListener('submit', async (e) => {
  e.preventDefault();
  const file = mpForm.file.files[0];
  const message = document.getElementById('message');
  message.textContent = '';
  if (!file) {
    message.textContent = 'Choose a file first.';
    return;
  }
  const button = mpForm.querySelector('button');
  button.disabled = true;
  try {
    await upload(file);
  } catch (err) {
    message.textContent = `Upload failed: ${err.message}. Choose the file again to continue.`;
  } finally {
    button.disabled = false;
  }
});

requireToken();
