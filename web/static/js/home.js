// home.html: the account (POST /user/info) and the file list (POST /file/query), with each
// file's Download (/file/downloadurl), Rename (/file/update op=0) and Delete (/file/delete).
const PAGE_SIZE = 20;
let filesPage = 0;

const byId = (id) => document.getElementById(id);

function setStatus(text) {
  byId('status').textContent = text;
}

async function showAccount() {
  const resp = await postJSON(`/user/info?${queryParams()}`);
  byId('username').textContent = resp.data.Username;
  byId('signup-at').textContent = resp.data.SignupAt;
}

async function loadFiles() {
  // One more than a page: whether there is a next page.
  const files = await postJSON(`/file/query?${queryParams()}`, {
    limit: PAGE_SIZE + 1,
    offset: filesPage * PAGE_SIZE,
  }) ?? [];
  if (files.length === 0 && filesPage > 0) {
    filesPage--;
    return loadFiles();
  }
  const rows = files.slice(0, PAGE_SIZE).map(fileRow);
  byId('file-rows').replaceChildren(...rows);
  byId('file-table').hidden = rows.length === 0;
  byId('files-empty').hidden = rows.length > 0;
  byId('pager').hidden = filesPage === 0 && files.length <= PAGE_SIZE;
  byId('prev-page').disabled = filesPage === 0;
  byId('next-page').disabled = files.length <= PAGE_SIZE;
  byId('page-label').textContent = `Page ${filesPage + 1}`;
}

function cell(text, label) {
  const td = document.createElement('td');
  td.textContent = text;
  if (label) td.dataset.label = label;
  return td;
}

function button(text, label, onClick) {
  const b = document.createElement('button');
  b.type = 'button';
  b.textContent = text;
  b.setAttribute('aria-label', label);
  b.addEventListener('click', onClick);
  return b;
}

function fileRow(f) {
  const tr = document.createElement('tr');
  tr.dataset.name = f.FileName;
  tr.dataset.hash = f.FileHash;
  const name = cell('');
  name.className = 'name';
  const details = document.createElement('a');
  details.href = `/static/view/download.html?${new URLSearchParams({ filehash: f.FileHash })}`;
  details.textContent = f.FileName;
  details.title = `SHA1 ${f.FileHash}`;
  name.append(details);
  const size = cell(formatSize(f.FileSize), 'Size');
  size.className = 'num';
  size.title = `${f.FileSize} bytes`;
  const actions = document.createElement('td');
  actions.className = 'actions';
  actions.append(
    button('Download', `Download ${f.FileName}`, () => download(f)),
    button('Rename', `Rename ${f.FileName}`, () => rename(f)),
    button('Delete', `Delete ${f.FileName}`, () => remove(f)),
  );
  tr.append(name, size, cell(f.UploadAt, 'Uploaded'), cell(f.LastUpdated, 'Last updated'), actions);
  return tr;
}

async function download(f) {
  try {
    await downloadFile(f.FileHash, f.FileName);
    setStatus(`Downloading ${f.FileName}.`);
  } catch (err) {
    setStatus(`Download failed: ${err.message}`);
  }
}

async function rename(f) {
  const filename = window.prompt(`New name for ${f.FileName}`, f.FileName)?.trim();
  if (!filename || filename === f.FileName) return;
  try {
    await post(`/file/update?${queryParams()}`, { op: '0', filehash: f.FileHash, filename });
    setStatus(`Renamed ${f.FileName} to ${filename}.`);
    await loadFiles();
  } catch (err) {
    setStatus(`Rename failed: ${err.message}`);
  }
}

async function remove(f) {
  if (!window.confirm(`Delete ${f.FileName}?`)) return;
  try {
    await post(`/file/delete?${queryParams()}`, { filehash: f.FileHash });
    setStatus(`Deleted ${f.FileName}.`);
    await loadFiles();
  } catch (err) {
    setStatus(`Delete failed: ${err.message}`);
  }
}

function turnPage(by) {
  filesPage += by;
  loadFiles().catch((err) => setStatus(`Could not list your files: ${err.message}`));
}
byId('prev-page').addEventListener('click', () => turnPage(-1));
byId('next-page').addEventListener('click', () => turnPage(1));

if (requireToken()) {
  showAccount()
    .then(loadFiles)
    .catch((err) => setStatus(`Could not load your files: ${err.message}`));
}
