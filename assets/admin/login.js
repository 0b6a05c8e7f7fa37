// Logging in and out, and the caller's own account: their groups and
// permissions, and changing their password (the current one is asked for,
// as the API requires).

import { gql, session } from './api.js';
import { h, show, field, notice, busy, status, fail, section } from './ui.js';
import { describe } from './messages.js';
import { caller, loadMe, afterLogin, forgetCaller } from './app.js';

const LOGIN = `mutation ConsoleLogin($username: String!, $password: String!) {
  login(username: $username, password: $password) { token expiresAt }
}`;

export function loginPage() {
  const username = field('Username', { name: 'username', autocomplete: 'username', required: true });
  const password = field('Password', { name: 'password', type: 'password', autocomplete: 'current-password', required: true });
  const submit = h('button', { type: 'submit', class: 'primary' }, 'Log in');
  const result = h('div', { class: 'result' });
  const form = h('form', { class: 'card narrow', 'aria-label': 'Log in' }, username.el, password.el, submit, result);
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    result.replaceChildren();
    try {
      const data = await busy(submit, () => gql(LOGIN, { username: username.input.value, password: password.input.value }));
      session.set(data.login.token);
      await loadMe();
      status(`Logged in as ${caller.me.username}.`, 'ok');
      afterLogin();
    } catch (error) {
      result.replaceChildren(notice('error', describe(error)));
      password.input.value = '';
      password.input.focus();
    }
  });
  show('Log in', form);
  username.input.focus();
}

export async function logout() {
  try {
    await gql('mutation ConsoleLogout { logout }');
  } catch {
    // The session may already be over; the token goes either way.
  }
  session.clear();
  forgetCaller();
  // No hashchange: the route would clear the message below.
  history.replaceState(null, '', '#/login');
  loginPage();
  status('You are logged out.', 'ok');
}

// A rough guide while typing; the server's zxcvbn check has the last word
// and its explanation is shown if it refuses.
function strengthOf(password) {
  const classes = [/[a-z]/, /[A-Z]/, /[0-9]/, /[^A-Za-z0-9]/].filter((re) => re.test(password)).length;
  const words = password.split(/[\s\-_.]+/).filter((w) => w.length >= 3).length;
  let score = 0;
  if (password.length >= 12) score += 1;
  if (password.length >= 16) score += 1;
  if (classes >= 3 || words >= 3) score += 1;
  if (password.length >= 20 && (classes >= 2 || words >= 4)) score += 1;
  return score;
}

const STRENGTH = ['Too short', 'Weak', 'Fair', 'Good', 'Strong'];

const SET_PASSWORD = `mutation ConsoleSetPassword($userId: ID!, $password: String!, $currentPassword: String) {
  setPassword(userId: $userId, password: $password, currentPassword: $currentPassword)
}`;

function passwordForm() {
  const current = field('Current password', { type: 'password', autocomplete: 'current-password', required: true });
  const next = field('New password', { type: 'password', autocomplete: 'new-password', required: true, 'aria-describedby': 'strength' });
  const meter = h('meter', { min: '0', max: '4', value: '0', 'aria-hidden': 'true' });
  const words = h('span', { id: 'strength' }, 'At least 12 characters, hard to guess (a few unrelated words work well).');
  next.input.addEventListener('input', () => {
    const score = strengthOf(next.input.value);
    meter.value = score;
    words.textContent = `Strength: ${STRENGTH[score]}. At least 12 characters, hard to guess.`;
  });
  const submit = h('button', { type: 'submit', class: 'primary' }, 'Change my password');
  const result = h('div', { class: 'result' });
  const form = h('form', { 'aria-label': 'Change my password' }, current.el, next.el, h('p', { class: 'hint' }, meter, ' ', words), submit, result);
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    try {
      await busy(submit, () => gql(SET_PASSWORD, { userId: caller.me.id, password: next.input.value, currentPassword: current.input.value }));
      result.replaceChildren(notice('ok', 'Your password is changed. Your other sessions were ended.'));
      current.input.value = '';
      next.input.value = '';
    } catch (error) {
      result.replaceChildren(notice('error', describe(error)));
    }
  });
  return form;
}

export async function accountPage() {
  try {
    await loadMe();
  } catch (error) {
    fail(error);
    return;
  }
  const me = caller.me;
  const groups = me.groups.length ? me.groups.map((g) => g.name).join(', ') : 'none';
  show(`My account: ${me.username}`,
    section('Access',
      h('p', {}, `Groups: ${groups}.`),
      h('p', {}, me.isSuperuser ? 'Superuser: you hold every permission.' : `Permissions: ${me.allPermissions.join(', ') || 'none'}.`)),
    section('Change my password', passwordForm()));
}
