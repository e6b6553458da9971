// The ChunkVault page: sign in, upload (uploader.js does the work), manage files.
import { Uploader, WorkerHasher } from './uploader.js';

const $ = (sel, root = document) => root.querySelector(sel);
const SESSION_KEY = 'chunkvault.session';
const PAGE_SIZE = 20;

let session = loadSession();
let uploader = null;
let page = 0;

function loadSession() {
  try {
    const s = JSON.parse(localStorage.getItem(SESSION_KEY) ?? 'null');
    return s && s.token && s.username ? s : null;
  } catch {
    return null;
  }
}

/**
 * A call to ChunkVault's JSON API (`/api/…`): the envelope's data on any 2xx answer, or an Error
 * with the server's message. `json` is sent as the request body.
 */
async function call(method, path, json = undefined) {
  const headers = {};
  const sentToken = session?.token;
  if (sentToken) headers.Authorization = `Bearer ${sentToken}`;
  const init = { method, headers };
  if (json !== undefined) {
    headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(json);
  }
  let res;
  try {
    res = await fetch(path, init);
  } catch {
    throw new Error('The server cannot be reached. Check the connection and try again.');
  }
  if (res.status === 204) return null;
  const body = await res.json().catch(() => null);
  if (res.ok && body?.code === 0) return body.data;
  // Only a refused token means the session is over (a wrong password at sign-in is a 401 too).
  if (res.status === 401 && sentToken && session?.token === sentToken) {
    signedOut('Your session has expired. Please sign in again.');
  }
  throw new Error(body?.msg || `HTTP ${res.status}`);
}

// ---------------------------------------------------------------- formatting

const UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
function formatBytes(n) {
  let i = 0;
  while (n >= 1024 && i < UNITS.length - 1) {
    n /= 1024;
    i++;
  }
  return `${i === 0 ? n : n.toFixed(n < 10 ? 1 : 0)} ${UNITS[i]}`;
}

function formatDuration(s) {
  if (s == null || !Number.isFinite(s)) return '';
  s = Math.ceil(s);
  if (s < 60) return `${s} s left`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${s % 60} s left`;
  return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min left`;
}

const STATE_LABELS = {
  queued: 'queued',
  hashing: 'hashing',
  instant: 'instant (秒传)',
  uploading: 'uploading',
  retrying: 'retrying',
  paused: 'paused',
  completing: 'finishing',
  done: 'done',
  failed: 'failed',
  cancelled: 'cancelled',
};

// ---------------------------------------------------------------- sign in / out

function showSignedIn() {
  $('#auth').hidden = true;
  $('#app').hidden = false;
  $('#whoami').hidden = false;
  $('#username-shown').textContent = session.username;
  if (!uploader) {
    uploader = new Uploader({
      token: () => session?.token,
      owner: () => session?.username,
      hasher: new WorkerHasher(),
    });
    uploader.addEventListener('add', (e) => renderUpload(e.detail));
  }
  renderResumeOffers();
  loadFiles();
}

function signedOut(message = '') {
  for (const u of uploader?.uploads ?? []) u.pause();
  session = null;
  localStorage.removeItem(SESSION_KEY);
  $('#app').hidden = true;
  $('#whoami').hidden = true;
  $('#auth').hidden = false;
  $('#auth-error').textContent = message;
  $('#uploads').replaceChildren();
  uploader = null;
  $('#auth-username').focus();
}

$('#auth-form').addEventListener('submit', async (e) => {
  e.preventDefault();
  const form = e.currentTarget;
  const action = e.submitter?.value ?? 'signin';
  const username = form.username.value.trim();
  const password = form.password.value;
  $('#auth-error').textContent = '';
  if (!form.checkValidity()) {
    $('#auth-error').textContent =
      'Username: 3 to 64 of A–Z, a–z, 0–9, “_”, “.”, “-”; password: at least 8 characters.';
    return;
  }
  for (const b of form.querySelectorAll('button')) b.disabled = true;
  try {
    if (action === 'signup') await call('POST', '/api/account', { username, password });
    const data = await call('POST', '/api/sessions', { username, password });
    session = { username: data.username ?? username, token: data.token };
    localStorage.setItem(SESSION_KEY, JSON.stringify(session));
    form.password.value = '';
    showSignedIn();
  } catch (err) {
    $('#auth-error').textContent = err.message;
  } finally {
    for (const b of form.querySelectorAll('button')) b.disabled = false;
  }
});

$('#signout').addEventListener('click', async () => {
  try {
    await call('DELETE', '/api/sessions/current');
  } catch {
    // Signed out locally either way.
  }
  signedOut();
});

// ---------------------------------------------------------------- uploads

function addFiles(files) {
  for (const file of files) uploader.add(file);
  renderResumeOffers();
}

$('#file-input').addEventListener('change', (e) => {
  addFiles([...e.target.files]);
  e.target.value = '';
});

const dropzone = $('#dropzone');
dropzone.addEventListener('dragover', (e) => {
  e.preventDefault();
  dropzone.classList.add('over');
});
dropzone.addEventListener('dragleave', () => dropzone.classList.remove('over'));
dropzone.addEventListener('drop', (e) => {
  e.preventDefault();
  dropzone.classList.remove('over');
  const files = [...(e.dataTransfer?.files ?? [])];
  if (files.length) addFiles(files);
});

function renderUpload(u) {
  const li = $('#upload-item').content.firstElementChild.cloneNode(true);
  li.dataset.name = u.name;
  $('.name', li).textContent = u.name;
  $('.size', li).textContent = formatBytes(u.size);
  $('progress', li).setAttribute('aria-label', `Progress of ${u.name}`);
  $('.pause', li).setAttribute('aria-label', `Pause ${u.name}`);
  $('.resume', li).setAttribute('aria-label', `Resume ${u.name}`);
  $('.cancel', li).setAttribute('aria-label', `Cancel ${u.name}`);
  $('.pause', li).addEventListener('click', () => u.pause());
  $('.resume', li).addEventListener('click', () => u.resume());
  $('.cancel', li).addEventListener('click', () => u.cancel());
  $('#uploads').prepend(li);

  let scheduled = false;
  let wasFinal = false;
  const update = () => {
    scheduled = false;
    const pct = Math.floor(u.progress() * 100);
    li.dataset.state = u.state;
    li.dataset.resumed = String(u.resumed);
    $('.state', li).textContent = STATE_LABELS[u.state] ?? u.state;
    $('progress', li).value = Math.round(u.progress() * 1000);
    const speed = u.speed();
    const figures = [];
    if (u.state === 'hashing') figures.push(u.remembered ? `checking the file before resuming ${pct}%` : `hashing ${pct}%`);
    else if (u.state !== 'instant') figures.push(`${pct}%`);
    if (u.resumed && u.state !== 'done') figures.push('resumed');
    if (['hashing', 'uploading', 'retrying'].includes(u.state) && speed > 0) {
      figures.push(`${formatBytes(speed)}/s`);
      if (u.state !== 'hashing') figures.push(formatDuration(u.eta()));
    }
    if (u.state === 'instant') figures.push('already stored: nothing to send');
    $('.figures', li).textContent = figures.filter(Boolean).join(' · ');
    $('.message', li).textContent = u.state === 'failed' ? u.error : '';
    const final = ['done', 'instant', 'cancelled'].includes(u.state);
    $('.pause', li).hidden = !u.active || u.state === 'completing';
    $('.resume', li).hidden = !(u.state === 'paused' || u.state === 'failed');
    $('.cancel', li).hidden = final;
    if (final && !wasFinal) {
      wasFinal = true;
      renderResumeOffers();
      if (u.state !== 'cancelled') loadFiles();
    }
  };
  u.addEventListener('change', () => {
    if (!scheduled) {
      scheduled = true;
      requestAnimationFrame(update);
    }
  });
  update();
}

async function renderResumeOffers() {
  if (!uploader) return;
  let entries = uploader.remembered();
  if (entries.length) {
    // Sessions the server no longer has (expired, completed elsewhere) are not worth offering.
    try {
      const open = await uploader.api('GET', '/uploads');
      const byId = new Map(open.map((s) => [s.upload_id, s]));
      for (const e of entries) {
        if (!byId.has(e.uploadId)) uploader.resumeStore.remove(e.key);
      }
      entries = uploader.remembered().map((e) => ({ ...e, server: byId.get(e.uploadId) }));
    } catch {
      // Offline: offer what we remember.
    }
  }
  const list = $('#resume-list');
  list.replaceChildren();
  for (const e of entries) {
    const li = document.createElement('li');
    li.dataset.name = e.name;
    const sent = e.server ? ` — ${Math.floor((e.server.bytes_received / Math.max(e.size, 1)) * 100)}% sent` : '';
    const text = document.createElement('span');
    text.textContent = `${e.name} (${formatBytes(e.size)})${sent} `;
    const discard = document.createElement('button');
    discard.type = 'button';
    discard.textContent = 'Discard';
    discard.setAttribute('aria-label', `Discard the unfinished upload of ${e.name}`);
    discard.addEventListener('click', async () => {
      await uploader.discard(e.key);
      renderResumeOffers();
    });
    li.append(text, discard);
    list.append(li);
  }
  $('#resume-offers').hidden = entries.length === 0;
}

// ---------------------------------------------------------------- file manager

function status(text) {
  $('#files-status').textContent = text;
}

async function loadFiles() {
  let files;
  try {
    files = await call('GET', `/api/files?limit=${PAGE_SIZE + 1}&offset=${page * PAGE_SIZE}`);
  } catch (err) {
    status(`Could not list files: ${err.message}`);
    return;
  }
  if (files.length === 0 && page > 0) {
    page--;
    return loadFiles();
  }
  const more = files.length > PAGE_SIZE;
  // A share box from before names a file of the old list: it goes with it.
  $('#share').hidden = true;
  const rows = files.slice(0, PAGE_SIZE).map(fileRow);
  $('#file-rows').replaceChildren(...rows);
  $('#files-empty').hidden = rows.length > 0;
  $('#file-table').hidden = rows.length === 0;
  $('#prev-page').disabled = page === 0;
  $('#next-page').disabled = !more;
  $('#page-label').textContent = `Page ${page + 1}`;
  // One page needs no pager (and an empty account shows none).
  $('.pager').hidden = page === 0 && !more;
}

$('#prev-page').addEventListener('click', () => {
  if (page > 0) {
    page--;
    loadFiles();
  }
});
$('#next-page').addEventListener('click', () => {
  page++;
  loadFiles();
});

function button(text, label, onClick) {
  const b = document.createElement('button');
  b.type = 'button';
  b.textContent = text;
  b.setAttribute('aria-label', label);
  b.addEventListener('click', onClick);
  return b;
}

function cell(text, className, label) {
  const td = document.createElement('td');
  td.className = className;
  td.textContent = text;
  if (label) td.dataset.label = label;
  return td;
}

const filePath = (f) => `/api/files/${encodeURIComponent(f.id)}`;

function fileRow(f) {
  const tr = document.createElement('tr');
  tr.dataset.name = f.name;
  tr.dataset.id = f.id;
  tr.dataset.sha1 = f.sha1;
  const name = cell(f.name, 'name');
  const when = new Date(f.uploaded_at);
  const date = cell(when.toLocaleString(), 'num', 'Uploaded');
  const time = document.createElement('time');
  time.dateTime = f.uploaded_at;
  time.textContent = date.textContent;
  date.replaceChildren(time);
  const actions = document.createElement('td');
  actions.className = 'actions';
  actions.append(
    button('Download', `Download ${f.name}`, () => download(f)),
    button('Rename', `Rename ${f.name}`, () => startRename(tr, name, f)),
    button('Copy link', `Copy link to ${f.name}`, () => share(f)),
    button('Delete', `Delete ${f.name}`, () => remove(f)),
  );
  tr.append(name, cell(formatBytes(f.size), 'num', 'Size'), date, actions);
  return tr;
}

/** A link that downloads `f` without a token (so the browser's own download manager can fetch it). */
/** A signed link to `f`: `{url, expires_at}`. */
async function signedLink(f) {
  return call('POST', `${filePath(f)}/links`);
}

async function download(f) {
  try {
    const { url } = await signedLink(f);
    const a = document.createElement('a');
    a.href = url;
    a.download = f.name;
    document.body.append(a);
    a.click();
    a.remove();
  } catch (err) {
    status(`Download failed: ${err.message}`);
  }
}

async function share(f) {
  try {
    const { url, expires_at: expires } = await signedLink(f);
    const until = new Date(expires).toLocaleString();
    $('#share').hidden = false;
    $('#share-label').textContent = `Share link to ${f.name}: anyone with it can download the file until ${until}`;
    const box = $('#share-link');
    box.value = url;
    try {
      await navigator.clipboard.writeText(url);
      status(`Share link to ${f.name} copied; it works until ${until}.`);
    } catch {
      box.focus();
      box.select();
      status(`Share link to ${f.name} is in the box below the list; copy it from there.`);
    }
  } catch (err) {
    status(`Could not make a share link: ${err.message}`);
  }
}

function startRename(tr, nameCell, f) {
  const form = document.createElement('form');
  const input = document.createElement('input');
  input.value = f.name;
  input.required = true;
  input.setAttribute('aria-label', `New name for ${f.name}`);
  const save = document.createElement('button');
  save.type = 'submit';
  save.textContent = 'Save';
  const cancel = button('Cancel', 'Cancel renaming', () => loadFiles());
  form.append(input, save, cancel);
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const filename = input.value.trim();
    if (!filename || filename === f.name) return loadFiles();
    try {
      await call('PATCH', filePath(f), { name: filename });
      status(`Renamed ${f.name} to ${filename}.`);
      await loadFiles();
    } catch (err) {
      status(`Rename failed: ${err.message}`);
      input.focus();
    }
  });
  input.addEventListener('keydown', (e) => {
    if (e.key === 'Escape') loadFiles();
  });
  nameCell.replaceChildren(form);
  input.focus();
  input.select();
}

async function remove(f) {
  if (!window.confirm(`Delete ${f.name}?`)) return;
  try {
    await call('DELETE', filePath(f));
    status(`Deleted ${f.name}.`);
    await loadFiles();
  } catch (err) {
    status(`Delete failed: ${err.message}`);
  }
}

// ---------------------------------------------------------------- start

async function start() {
  if (session) {
    try {
      await call('GET', '/api/account');
      showSignedIn();
      return;
    } catch {
      // Expired or revoked: fall through to the form (call() already cleared it on 401).
    }
  }
  signedOut($('#auth-error').textContent);
}

start();
