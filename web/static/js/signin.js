// signin.html: POST /user/signin; the JSON answer (sent as text) carries the token, kept in
// localStorage for queryParams(), and the page to go to.
const signinForm = document.getElementById('signin-form');
const signinMessage = document.getElementById('message');

// Coming from the sign-up page: the new username is already filled in.
const signedUpAs = new URLSearchParams(window.location.search).get('username');
if (signedUpAs) {
  signinForm.username.value = signedUpAs;
  signinForm.password.focus();
}

signinForm.addEventListener('submit', async (e) => {
  e.preventDefault();
  const username = signinForm.username.value.trim();
  const password = signinForm.password.value;
  signinMessage.textContent = '';
  if (!username || !password) {
    signinMessage.textContent = 'Enter your username and password.';
    return;
  }
  const button = signinForm.querySelector('button');
  button.disabled = true;
  try {
    const resp = await postJSON('/user/signin', { username, password }, { signInOn401: false });
    if (resp.code !== 0 || !resp.data?.Token) throw new Error(resp.msg || 'no token in the answer');
    localStorage.setItem('token', resp.data.Token);
    localStorage.setItem('username', resp.data.Username);
    window.location.href = resp.data.Location || '/static/view/home.html';
  } catch (err) {
    signinMessage.textContent = `Sign-in failed: ${err.message}`;
    button.disabled = false;
  }
});
