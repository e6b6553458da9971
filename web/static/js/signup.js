// signup.html: POST /user/signup (urlencoded username, password); the body `SUCCESS` means the
// account exists, and the sign-in page comes next.
const signupForm = document.getElementById('signup-form');
const signupMessage = document.getElementById('message');

signupForm.addEventListener('submit', async (e) => {
  e.preventDefault();
  const username = signupForm.username.value.trim();
  const password = signupForm.password.value;
  signupMessage.textContent = '';
  if (!signupForm.username.checkValidity()) {
    signupMessage.textContent = 'Choose a username of 3 to 64 of A–Z, a–z, 0–9, “_”, “.”, “-”.';
    return;
  }
  if (password.length < 8) {
    signupMessage.textContent = 'Choose a password of at least 8 characters.';
    return;
  }
  if (password !== signupForm.confirm.value) {
    signupMessage.textContent = 'The two passwords differ.';
    return;
  }
  const button = signupForm.querySelector('button');
  button.disabled = true;
  try {
    const answer = await post('/user/signup', { username, password }, { signInOn401: false });
    if (answer.trim() !== 'SUCCESS') throw new Error(errorMessage(answer, 200));
    window.location.href = `/static/view/signin.html?${new URLSearchParams({ username })}`;
  } catch (err) {
    signupMessage.textContent = `Sign-up failed: ${err.message}`;
    button.disabled = false;
  }
});
