// download.html?filehash=..: the file's meta (POST /file/meta) and a Download button
// (/file/downloadurl, as on home.html).
const downloadStatus = document.getElementById('status');
const filehash = new URLSearchParams(window.location.search).get('filehash');

async function showMeta() {
  const meta = await postJSON(`/file/meta?${withParams({ filehash })}`);
  document.getElementById('title').textContent = `Download ${meta.FileName}`;
  document.getElementById('meta-name').textContent = meta.FileName;
  document.getElementById('meta-size').textContent = `${formatSize(meta.FileSize)} (${meta.FileSize} bytes)`;
  document.getElementById('meta-uploaded').textContent = meta.UploadAt;
  document.getElementById('meta-sha1').textContent = meta.FileSha1;
  document.getElementById('meta-location').textContent = meta.Location;
  document.getElementById('meta').hidden = false;
  const button = document.getElementById('download');
  button.hidden = false;
  button.setAttribute('aria-label', `Download ${meta.FileName}`);
  button.addEventListener('click', async () => {
    try {
      await downloadFile(meta.FileSha1, meta.FileName);
      downloadStatus.textContent = `Downloading ${meta.FileName}.`;
    } catch (err) {
      downloadStatus.textContent = `Download failed: ${err.message}`;
    }
  });
}

if (!filehash) {
  downloadStatus.textContent = 'No file chosen: pick one from your files.';
} else if (requireToken()) {
  showMeta().catch((err) => {
    downloadStatus.textContent = `Could not find the file: ${err.message}`;
  });
}
