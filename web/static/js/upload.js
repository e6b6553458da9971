// upload.html: a native multipart form post to /file/upload; the server answers a browser with a
// redirect to home.html. This script only puts the token into the form and says what is going on.
const uploadForm = document.getElementById('upload-form');

if (requireToken()) {
  uploadForm.token.value = localStorage.getItem('token');
  // A stale token would make the post end on a JSON error page: find out first (401 → sign-in).
  post(`/user/info?${queryParams()}`).catch((err) => {
    document.getElementById('message').textContent = err.message;
  });
}

uploadForm.addEventListener('submit', (e) => {
  const file = uploadForm.file.files[0];
  if (!file) {
    e.preventDefault();
    document.getElementById('message').textContent = 'Choose a file first.';
    return;
  }
  uploadForm.token.value = localStorage.getItem('token') ?? '';
  document.getElementById('message').textContent = '';
  document.getElementById('progress').textContent = `Uploading ${file.name} (${formatSize(file.size)})…`;
  // Disabled after this event, so the form is still sent, but only once.
  setTimeout(() => { uploadForm.querySelector('button').disabled = true; });
});

// Back from the next page (the browser's page cache keeps this one as it was): ready again.
window.addEventListener('pageshow', () => {
  uploadForm.querySelector('button').disabled = false;
  document.getElementById('progress').textContent = '';
});
