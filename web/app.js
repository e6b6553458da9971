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
 * with the server's message. `json` is sent as the request body. A refused token while signed in
 * asks for the password in place (`reauth`), then makes the call again.
 */
async function call(method, path, json = undefined, { reauth = true, token = true } = {}) {
  const headers = {};
  const sentToken = token ? session?.token : undefined;
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
  if (res.status === 401 && sentToken) {
    if (reauth && session) {
      if (session.token === sentToken) await reauthenticate();
      return call(method, path, json, { reauth: false });
    }
    if (session?.token === sentToken) signedOut('Your session has expired. Please sign in again.');
  }
  throw new Error(body?.msg || `HTTP ${res.status}`);
}

// ---------------------------------------------------------------- signing in again in place

let reauthPending = null;

/**
 * Resolves once the user has signed in again (a new token in `session`); every upload and call
 * held up by the refused token waits for this one dialog. Rejects if the user signs out instead.
 */
function reauthenticate() {
  if (!reauthPending) {
    reauthPending = askPassword().finally(() => {
      reauthPending = null;
    });
  }
  return reauthPending;
}

function askPassword() {
  if (!session) return Promise.reject(new Error('signed out'));
  const username = session.username;
  const dialog = document.createElement('dialog');
  dialog.id = 'reauth';
  dialog.setAttribute('aria-labelledby', 'reauth-title');
  dialog.innerHTML = `
    <form method="dialog">
      <h2 id="reauth-title">Sign in again</h2>
      <p>Your session has expired. Your uploads are waiting: they go on where they stopped once you
        have signed in.</p>
      <p><label for="reauth-password"></label>
        <input id="reauth-password" type="password" autocomplete="current-password" required></p>
      <p class="actions"><button type="submit" id="reauth-signin">Sign in</button>
        <button type="button" id="reauth-signout">Sign out</button></p>
      <p class="error" id="reauth-error" role="alert"></p>
    </form>`;
  $('label', dialog).textContent = `Password for ${username}`;
  document.body.append(dialog);
  return new Promise((resolve, reject) => {
    const form = $('form', dialog);
    const input = $('#reauth-password', dialog);
    const done = () => {
      settled = true;
      dialog.close();
      dialog.remove();
    };
    // Escape would close the dialog and leave the uploads waiting with no way to answer
    // (Chromium lets Escape close a modal dialog when the page had no user activation, in
    // spite of preventDefault): it comes back until the user signs in or out.
    let settled = false;
    dialog.addEventListener('cancel', (e) => e.preventDefault());
    dialog.addEventListener('close', () => {
      if (!settled && dialog.isConnected) dialog.showModal();
    });
    form.addEventListener('submit', async (e) => {
      e.preventDefault();
      $('#reauth-error', dialog).textContent = '';
      for (const b of form.querySelectorAll('button')) b.disabled = true;
      try {
        // Without the refused token: a wrong password is a 401 about the password only.
        const data = await call('POST', '/api/sessions', { username, password: input.value }, { reauth: false, token: false });
        session = { username: data.username ?? username, token: data.token };
        localStorage.setItem(SESSION_KEY, JSON.stringify(session));
        done();
        resolve();
      } catch (err) {
        $('#reauth-error', dialog).textContent = err.message;
        input.select();
      } finally {
        for (const b of form.querySelectorAll('button')) b.disabled = false;
      }
    });
    $('#reauth-signout', dialog).addEventListener('click', () => {
      done();
      reject(new Error('signed out'));
      signedOut();
    });
    dialog.showModal();
    input.focus();
  });
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

/** "30 of 100 MiB": both in the unit of the larger. */
function formatOf(part, whole) {
  let i = 0;
  let w = whole;
  while (w >= 1024 && i < UNITS.length - 1) {
    w /= 1024;
    i++;
  }
  const unit = 1024 ** i;
  const digits = i > 0 && w < 10 ? 1 : 0;
  return `${(part / unit).toFixed(digits)} of ${(whole / unit).toFixed(digits)} ${UNITS[i]}`;
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
  verifying: 'verifying on the server',
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
      reauthenticate,
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
  renderFinished();
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
    const wrong = [];
    if (!form.username.checkValidity()) {
      wrong.push(username ? 'The username must be 3 to 64 characters: letters, digits, “_”, “.” and “-”.' : 'Enter a username.');
    }
    if (!form.password.checkValidity()) {
      wrong.push(password ? 'The password must be at least 8 characters.' : 'Enter a password.');
    }
    $('#auth-error').textContent = wrong.join(' ');
    (form.username.checkValidity() ? form.password : form.username).focus();
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
    await call('DELETE', '/api/sessions/current', undefined, { reauth: false });
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

// Files dropped anywhere on the page are uploaded (a drop outside the box would otherwise make
// the browser open the file in place of the page).
const dropzone = $('#dropzone');
const carriesFiles = (e) => [...(e.dataTransfer?.types ?? [])].includes('Files');
document.addEventListener('dragover', (e) => {
  if (!carriesFiles(e)) return;
  e.preventDefault();
  if (e.dataTransfer) e.dataTransfer.dropEffect = uploader ? 'copy' : 'none';
  dropzone.classList.add('over');
});
document.addEventListener('dragleave', (e) => {
  if (!e.relatedTarget) dropzone.classList.remove('over');
});
document.addEventListener('drop', (e) => {
  if (!carriesFiles(e)) return;
  e.preventDefault();
  dropzone.classList.remove('over');
  const files = [...(e.dataTransfer?.files ?? [])];
  if (files.length && uploader) addFiles(files);
});

// Back online: every upload waiting for the server tries again now.
window.addEventListener('online', () => uploader?.wake());

function renderUpload(u) {
  const li = $('#upload-item').content.firstElementChild.cloneNode(true);
  li.dataset.name = u.name;
  $('.name', li).textContent = u.name;
  $('.size', li).textContent = formatBytes(u.size);
  $('progress.send', li).setAttribute('aria-label', `Sending ${u.name}`);
  $('progress.hash', li).setAttribute('aria-label', `Hashing ${u.name}`);
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
    const sending = !['queued', 'hashing'].includes(u.state);
    li.dataset.state = u.state;
    li.dataset.resumed = String(u.resumed);
    li.dataset.waiting = u.waiting ?? '';
    $('.state', li).textContent = u.waiting === 'server' ? 'waiting for the server'
      : u.waiting === 'signin' ? 'waiting for you to sign in' : STATE_LABELS[u.state] ?? u.state;
    $('progress.send', li).value = Math.round((sending ? u.progress() : 0) * 1000);
    $('progress.hash', li).value = Math.round(u.hashProgress() * 1000);
    // The hash bar is step 1 of 2, shown while it runs; the send bar (step 2) below it stays
    // at zero until then, so neither ever jumps back.
    const final = ['done', 'instant', 'cancelled'].includes(u.state);
    $('progress.hash', li).hidden = u.state !== 'hashing';
    $('progress.send', li).hidden = u.state === 'cancelled';
    const speed = u.speed();
    const figures = [];
    if (u.state === 'hashing') {
      const what = u.remembered ? 'checking the file before resuming' : 'step 1 of 2: hashing';
      figures.push(`${what} ${formatOf(u.hashed, u.size)}`);
    } else if (u.state === 'verifying') {
      figures.push('verifying on the server: is this content stored already?');
    } else if (u.state === 'instant') {
      figures.push('already stored: nothing to send');
    } else if (u.state !== 'queued' && u.state !== 'cancelled') {
      const pct = Math.floor(u.progress() * 100);
      figures.push(`${pct}%`, `${formatOf(u.sent(), u.size)} sent`);
    }
    if (u.resumed && !final) figures.push('resumed');
    if (u.waiting === 'server') figures.push('the server cannot be reached: trying again');
    if (u.waiting === 'signin') figures.push('sign in again to go on');
    if (!u.waiting && ['hashing', 'uploading', 'retrying'].includes(u.state) && speed > 0) {
      figures.push(`${formatBytes(speed)}/s`);
      if (u.state !== 'hashing') figures.push(formatDuration(u.eta()));
    }
    $('.figures', li).textContent = figures.filter(Boolean).join(' · ');
    $('.message', li).textContent = u.state === 'failed' ? u.error : '';
    $('.pause', li).hidden = !u.active || u.state === 'completing';
    $('.resume', li).hidden = !(u.state === 'paused' || u.state === 'failed');
    $('.cancel', li).hidden = final;
    if (final && !wasFinal) {
      wasFinal = true;
      // The card folds away: focus on one of its buttons goes to the line it folds into.
      const hadFocus = li.contains(document.activeElement);
      li.classList.add('finished');
      renderFinished();
      if (hadFocus) $('#finished-toggle').focus();
      renderResumeOffers();
      if (u.state !== 'cancelled') {
        fresh = u.result?.id ?? null;
        const how = u.state === 'instant' ? 'already stored, nothing was sent' : 'uploaded';
        status(`${u.name}: ${how}.`);
        loadFiles();
      }
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

/** One line for every finished upload (done, instant or cancelled), with Show and Clear. */
function renderFinished() {
  const cards = [...$('#uploads').querySelectorAll('li.finished')];
  // The line stays in the page (a live region is announced only if it was there before its
  // text changed); its buttons come with the first finished upload.
  $('#finished-toggle').hidden = cards.length === 0;
  $('#finished-clear').hidden = cards.length === 0;
  if (!cards.length) {
    $('#finished-text').textContent = '';
    setFinishedShown(false);
    return;
  }
  const count = (st) => cards.filter((li) => li.dataset.state === st).length;
  const parts = [];
  if (count('done')) parts.push(`${count('done')} uploaded`);
  if (count('instant')) parts.push(`${count('instant')} already stored`);
  if (count('cancelled')) parts.push(`${count('cancelled')} cancelled`);
  $('#finished-text').textContent = `${cards.length} finished: ${parts.join(', ')}.`;
}

function setFinishedShown(shown) {
  $('#uploads').classList.toggle('collapsed', !shown);
  $('#finished-toggle').textContent = shown ? 'Hide' : 'Show';
  $('#finished-toggle').setAttribute('aria-expanded', String(shown));
  $('#finished-toggle').setAttribute('aria-label', shown ? 'Hide finished uploads' : 'Show finished uploads');
}

$('#finished-toggle').addEventListener('click', () => {
  setFinishedShown($('#uploads').classList.contains('collapsed'));
});
$('#finished-clear').addEventListener('click', () => {
  for (const li of $('#uploads').querySelectorAll('li.finished')) li.remove();
  uploader?.forgetFinished();
  renderFinished();
  $('#file-input').focus();
});

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

/** The listing's order: the `sort` of GET /api/files, set by the column headers. */
let sort = 'newest';
/** The search box's text, as last listed. */
let search = '';
/** The id of a file just uploaded: its row is marked when the list shows it. */
let fresh = null;
/** The file the share box shows a link to. */
let sharing = null;

const SORTS = {
  name: ['name', 'name-desc'],
  size: ['smallest', 'largest'],
  uploaded: ['oldest', 'newest'],
};
const ORDER_WORDS = {
  newest: 'newest first', oldest: 'oldest first', name: 'by name, A to Z', 'name-desc': 'by name, Z to A',
  largest: 'largest first', smallest: 'smallest first',
};

let listing = 0;

async function loadFiles() {
  let files;
  const q = search ? `&q=${encodeURIComponent(search)}` : '';
  // Searches, sorts, pages and finished uploads overlap: only the latest request's answer shows.
  const mine = ++listing;
  try {
    files = await call('GET', `/api/files?limit=${PAGE_SIZE + 1}&offset=${page * PAGE_SIZE}&sort=${sort}${q}`);
  } catch (err) {
    if (mine === listing) status(`Could not list files: ${err.message}`);
    return;
  }
  if (mine !== listing) return;
  if (files.length === 0 && page > 0) {
    page--;
    return loadFiles();
  }
  const more = files.length > PAGE_SIZE;
  // A share box from before names a file of the old list: it goes with it.
  $('#share').hidden = true;
  sharing = null;
  const rows = files.slice(0, PAGE_SIZE).map(fileRow);
  $('#file-rows').replaceChildren(...rows);
  const empty = rows.length === 0;
  $('#files-empty').hidden = !empty;
  $('#files-empty').textContent = search ? `No file name contains “${search}”.` : 'No files yet.';
  $('#file-table').hidden = empty;
  // The search box is for an account with files (or one searched already).
  $('.search').hidden = empty && !search && page === 0;
  $('#prev-page').disabled = page === 0;
  $('#next-page').disabled = !more;
  $('#page-label').textContent = `Page ${page + 1}`;
  // One page needs no pager (and an empty account shows none).
  $('.pager').hidden = page === 0 && !more;
  $('#file-caption').textContent = `Your files, ${ORDER_WORDS[sort]}`;
  for (const th of document.querySelectorAll('#file-table th[data-sort]')) {
    const [asc, desc] = SORTS[th.dataset.sort];
    if (sort === asc) th.setAttribute('aria-sort', 'ascending');
    else if (sort === desc) th.setAttribute('aria-sort', 'descending');
    else th.removeAttribute('aria-sort');
  }
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

// Column headers sort: the first click on a column takes its natural order (names A to Z,
// largest first, newest first), the next one reverses it.
for (const th of document.querySelectorAll('#file-table th[data-sort]')) {
  $('button', th).addEventListener('click', () => {
    const [asc, desc] = SORTS[th.dataset.sort];
    const natural = th.dataset.sort === 'name' ? asc : desc;
    sort = sort === natural ? (natural === asc ? desc : asc) : natural;
    page = 0;
    loadFiles();
  });
}

let searchTimer = null;
$('#file-search').addEventListener('input', (e) => {
  clearTimeout(searchTimer);
  // Listed once the user pauses typing, not once per key.
  searchTimer = setTimeout(() => {
    const text = e.target.value.trim();
    if (text === search) return;
    search = text;
    page = 0;
    loadFiles();
  }, 250);
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
  if (f.id === fresh) {
    tr.classList.add('fresh');
    fresh = null;
  }
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
    button('Rename', `Rename ${f.name}`, () => startRename(tr, f)),
    button('Copy link', `Copy link to ${f.name}`, () => share(f)),
    button('Delete', `Delete ${f.name}`, () => remove(f)),
  );
  tr.append(name, cell(formatBytes(f.size), 'num', 'Size'), date, actions);
  return tr;
}

/** A signed link to `f` that works for `seconds` (the server's default when absent): `{url, expires_at}`. */
async function signedLink(f, seconds) {
  return call('POST', `${filePath(f)}/links${seconds ? `?expires_in=${seconds}` : ''}`);
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
    const { url, expires_at: expires } = await signedLink(f, Number($('#share-ttl').value));
    const until = new Date(expires).toLocaleString();
    sharing = f;
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
      status(`Share link to ${f.name} is in the box above the list; copy it from there.`);
    }
  } catch (err) {
    status(`Could not make a share link: ${err.message}`);
  }
}

// Another lifetime: a new link for the same file (the old one keeps working until it expires).
$('#share-ttl').addEventListener('change', () => {
  if (sharing) share(sharing);
});

/**
 * Renames in the row itself: the name cell becomes the input (with its errors under it), the
 * actions become Save and Cancel, so the row keeps its place and its columns.
 */
function startRename(tr, f) {
  const nameCell = $('td.name', tr);
  const actions = $('td.actions', tr);
  const formId = `rename-${f.id}`;
  const form = document.createElement('form');
  form.id = formId;
  form.className = 'rename';
  const input = document.createElement('input');
  input.value = f.name;
  input.required = true;
  input.maxLength = 255;
  input.size = 1; // its width is the cell's (CSS), never more
  input.setAttribute('aria-label', `New name for ${f.name}`);
  const error = document.createElement('p');
  error.className = 'error';
  error.id = `${formId}-error`;
  error.setAttribute('role', 'alert');
  input.setAttribute('aria-describedby', error.id);
  form.append(input, error);
  const save = document.createElement('button');
  save.type = 'submit';
  save.textContent = 'Save';
  save.setAttribute('form', formId);
  save.setAttribute('aria-label', `Save the new name of ${f.name}`);
  const cancel = button('Cancel', `Cancel renaming ${f.name}`, () => loadFiles());
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const filename = input.value.trim();
    if (!filename || filename === f.name) return loadFiles();
    error.textContent = '';
    try {
      await call('PATCH', filePath(f), { name: filename });
      status(`Renamed ${f.name} to ${filename}.`);
      await loadFiles();
    } catch (err) {
      error.textContent = `Not renamed: ${err.message}`;
      input.focus();
    }
  });
  input.addEventListener('keydown', (e) => {
    if (e.key === 'Escape') loadFiles();
  });
  nameCell.replaceChildren(form);
  actions.replaceChildren(save, cancel);
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
      await call('GET', '/api/account', undefined, { reauth: false });
      showSignedIn();
      return;
    } catch {
      // Expired or revoked: fall through to the form (call() already cleared it on 401).
    }
  }
  signedOut($('#auth-error').textContent);
}

start();
