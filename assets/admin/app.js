// The console's shell: who is logged in (`me`, whose permissions decide
// which pages and buttons are offered; the server still decides what is
// allowed), the navigation, and the routes (in the URL's fragment, so a
// page can be reloaded or bookmarked and the server serves one page).

import { gql, session } from './api.js';
import { h, main, clearStatus, status, fail } from './ui.js';
import { loginPage, accountPage, logout } from './login.js';
import { usersPage } from './users.js';
import { userPage, userDeletePage } from './user.js';
import { groupsPage, groupPage } from './groups.js';
import { questionsPage } from './questions.js';
import { auditPage } from './audit.js';

const RETURN_KEY = 'memberdesk.console.returnTo';

// The caller, as the server sees them; `can` asks about one permission.
export const caller = {
  me: null,
  can(permission) {
    return Boolean(this.me && (this.me.isSuperuser || this.me.allPermissions.includes(permission)));
  },
  // Whether the caller may act on `user` at all: a superuser's account
  // only by a superuser, never yourself (the server's scope rule, mirrored
  // so that refused buttons are not shown).
  mayActOn(user) {
    if (!this.me || user.id === this.me.id) return false;
    return this.me.isSuperuser || !user.isSuperuser;
  },
};

const ME = 'query ConsoleMe { me { id username isStaff isSuperuser allPermissions groups { id name } } }';

export async function loadMe() {
  caller.me = (await gql(ME)).me;
  renderChrome();
  return caller.me;
}

const SECTIONS = [
  ['#/users', 'Users', 'auth.view_user'],
  ['#/groups', 'Groups', 'auth.view_group'],
  ['#/questions', 'Questions', null],
  ['#/audit', 'Audit log', 'admin.view_logentry'],
];

function renderChrome() {
  const nav = document.getElementById('nav');
  const who = document.getElementById('whoami');
  if (!caller.me) {
    nav.hidden = true;
    who.replaceChildren();
    return;
  }
  const here = location.hash.split('/')[1] || 'users';
  nav.replaceChildren(...SECTIONS.filter(([, , perm]) => !perm || caller.can(perm)).map(([href, text]) =>
    h('a', { href, 'aria-current': href === `#/${here}` ? 'page' : null }, text)));
  nav.hidden = false;
  who.replaceChildren(
    h('a', { href: '#/account', title: 'My account and password' }, caller.me.username),
    h('button', { type: 'button', class: 'link', onclick: logout }, 'Log out'),
  );
}

const ROUTES = [
  [/^#\/users$/, usersPage],
  [/^#\/user\/([^/]+)$/, userPage],
  [/^#\/user\/([^/]+)\/delete$/, userDeletePage],
  [/^#\/groups$/, groupsPage],
  [/^#\/group\/([^/]+)$/, groupPage],
  [/^#\/questions$/, questionsPage],
  [/^#\/audit$/, auditPage],
  [/^#\/account$/, accountPage],
];

function landing() {
  return caller.can('auth.view_user') ? '#/users' : '#/questions';
}

async function route() {
  clearStatus();
  const hash = location.hash || '#/';
  if (!session.token()) {
    // A bookmarked page opens after logging in.
    if (hash !== '#/login' && hash !== '#/') sessionStorage.setItem(RETURN_KEY, hash);
    caller.me = null;
    renderChrome();
    return loginPage();
  }
  try {
    if (!caller.me) await loadMe();
  } catch (error) {
    if (!session.token()) return loginPage();
    return fail(error);
  }
  renderChrome();
  const found = ROUTES.find(([pattern]) => pattern.test(hash));
  if (!found) {
    location.replace(landing());
    return undefined;
  }
  const [, handler] = found;
  const args = hash.match(found[0]).slice(1).map(decodeURIComponent);
  try {
    await handler(...args);
  } catch (error) {
    fail(error);
  }
  return undefined;
}

// After logging in: back to where the session expired, or the landing page.
export function afterLogin() {
  const back = sessionStorage.getItem(RETURN_KEY);
  sessionStorage.removeItem(RETURN_KEY);
  const target = back && back !== '#/login' ? back : landing();
  if (location.hash === target) route();
  else location.hash = target;
}

export function forgetCaller() {
  caller.me = null;
  renderChrome();
}

window.addEventListener('memberdesk:session-expired', () => {
  sessionStorage.setItem(RETURN_KEY, location.hash);
  caller.me = null;
  renderChrome();
  loginPage();
  status('Your session has ended. Log in again to continue where you were.', 'error');
});
window.addEventListener('hashchange', route);
route().catch((error) => {
  main().replaceChildren(h('p', {}, 'The console could not start.'));
  fail(error);
});
