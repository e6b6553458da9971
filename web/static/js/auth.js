// Shared by the classic pages (the tutorial's static/js/auth.js): who is signed in, and how a
// page calls the classic routes. A plain script, so these functions are globals of each page.

const SIGNIN_PAGE = '/static/view/signin.html';

/** `username=..&token=..` of the signed-in user, for the query string of every classic call. */
function queryParams() {
  const username = localStorage.getItem('username') ?? '';
  const token = localStorage.getItem('token') ?? '';
  return `username=${encodeURIComponent(username)}&token=${encodeURIComponent(token)}`;
}

/** `queryParams()` followed by `fields`, URL-encoded. */
function withParams(fields) {
  return `${queryParams()}&${new URLSearchParams(fields)}`;
}

function toSignIn() {
  window.location.href = SIGNIN_PAGE;
}

/** Sends a visitor who never signed in to the sign-in page; true when there is a token. */
function requireToken() {
  if (localStorage.getItem('token')) return true;
  toSignIn();
  return false;
}

/** The server's message in an error answer (`{"code","msg",..}`), else the status. */
function errorMessage(text, status) {
  try {
    const body = JSON.parse(text);
    if (body && body.msg) return body.msg;
  } catch {
    // Not JSON: the text itself, if short enough to be a message.
  }
  return text && text.length < 200 ? text : `HTTP ${status}`;
}

/**
 * POSTs to a classic route and resolves to the answer's text. `body` is an object (sent as a
 * urlencoded form), a Blob (sent as it is) or nothing. A refused token (401) forgets the token
 * and goes to the sign-in page, unless `signInOn401` is false (the sign-in form itself); any
 * other failure rejects with the server's message.
 */
async function post(url, body = null, { signInOn401 = true } = {}) {
  const init = { method: 'POST' };
  if (body instanceof Blob) init.body = body;
  else if (body) init.body = new URLSearchParams(body);
  let res;
  try {
    res = await fetch(url, init);
  } catch {
    throw new Error('The server cannot be reached. Check the connection and try again.');
  }
  const text = await res.text();
  if (res.ok) return text;
  if (res.status === 401 && signInOn401) {
    localStorage.removeItem('token');
    toSignIn();
    throw new Error('Your session has ended: taking you to the sign-in page.');
  }
  throw new Error(errorMessage(text, res.status));
}

/** `post()` of a route that answers JSON (sent as text, as the tutorial's server did). */
async function postJSON(url, body = null, options = {}) {
  return JSON.parse(await post(url, body, options));
}

/** Revokes the token on the server (if it can), forgets it here, and goes to the sign-in page. */
async function signOut() {
  try {
    await post(`/user/signout?${queryParams()}`, null, { signInOn401: false });
  } catch {
    // Signed out here either way.
  }
  localStorage.removeItem('token');
  localStorage.removeItem('username');
  toSignIn();
}

const SIZE_UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];

/** `1536` → `1.5 KiB`, as the main page shows sizes. */
function formatSize(n) {
  let i = 0;
  while (n >= 1024 && i < SIZE_UNITS.length - 1) {
    n /= 1024;
    i++;
  }
  return `${i === 0 ? n : n.toFixed(n < 10 ? 1 : 0)} ${SIZE_UNITS[i]}`;
}

/**
 * Downloads a file by its SHA1: /file/downloadurl answers a link that needs no token, which the
 * browser then fetches as a download of its own.
 */
async function downloadFile(filehash, name) {
  const url = (await post(`/file/downloadurl?${withParams({ filehash })}`)).trim();
  const a = document.createElement('a');
  a.href = url;
  a.download = name;
  document.body.append(a);
  a.click();
  a.remove();
}

/** Wires the "Sign out" button of a page's header, if it has one. */
document.addEventListener('DOMContentLoaded', () => {
  const button = document.getElementById('signout');
  if (button) button.addEventListener('click', signOut);
});
