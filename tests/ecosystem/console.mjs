// The admin console in a real browser (Debian's Chromium driven by
// playwright-core, no network but 127.0.0.1), walking the tutorial's four
// stories as a person would, and checking after each step both what the page
// shows and what the database holds (psql). axe-core runs on every page: no
// serious or critical violation. Screenshots go to OUT_DIR.
//
// It starts its own `memberdesk serve --demo` on a fresh database, so the
// demo server of run.sh keeps its untouched data for the stories after it.
// Usage: node console.mjs path/to/memberdesk OUT_DIR
import { chromium } from 'playwright-core';
import { spawn, execFileSync } from 'node:child_process';
import { createRequire } from 'node:module';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';

const [bin, outDir] = process.argv.slice(2);
if (!bin || !outDir) throw new Error('usage: node console.mjs MEMBERDESK_BINARY OUT_DIR');
fs.mkdirSync(outDir, { recursive: true });
const require = createRequire(import.meta.url);
const axeSource = fs.readFileSync(require.resolve('axe-core/axe.min.js'), 'utf8');

const baseDb = process.env.MEMBERDESK_TEST_DATABASE_URL || 'postgres://postgres@127.0.0.1:5432/postgres';
const dbName = `memberdesk_console_${process.pid}`;
const dbUrl = baseDb.replace(/\/[^/]*$/, `/${dbName}`);
const DEMO_PASSWORD = 'memberdesk-demo';
const NEW_PASSWORD = 'violet-harbour-lantern-1987';

function freePort() {
  return new Promise((resolve) => {
    const srv = net.createServer().listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

function sql(query) {
  return execFileSync('psql', [dbUrl, '-tAqc', query], { encoding: 'utf8' }).trim();
}

function check(condition, message) {
  if (!condition) throw new Error(`console story failed: ${message}`);
  console.log(`  ok: ${message}`);
}

const port = await freePort();
const base = `http://127.0.0.1:${port}`;
const log = fs.openSync(path.join(outDir, 'server.log'), 'w');
const server = spawn(bin, ['serve', '--demo', '--bind', `127.0.0.1:${port}`], {
  env: { ...process.env, DATABASE_URL: dbUrl },
  stdio: ['ignore', log, log],
});
let browser;
async function cleanup() {
  if (browser) await browser.close().catch(() => {});
  server.kill('SIGTERM');
  await new Promise((resolve) => (server.exitCode !== null ? resolve() : server.once('exit', resolve)));
  try {
    execFileSync('psql', [baseDb, '-qc', `DROP DATABASE IF EXISTS "${dbName}" WITH (FORCE)`], { stdio: 'ignore' });
  } catch {
    // Left for the next run's operator to drop; not a failure of the console.
  }
}

async function ready() {
  for (let i = 0; i < 300; i += 1) {
    try {
      if ((await fetch(`${base}/readyz`)).ok) return;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error('memberdesk did not become ready');
}

// A direct API call, for the setup the stories assume (accounts that exist
// before the story starts), never for the steps the stories check.
async function api(query, variables = {}, token = null) {
  const headers = { 'Content-Type': 'application/json' };
  if (token) headers.Authorization = `Bearer ${token}`;
  const resp = await fetch(`${base}/graphql`, { method: 'POST', headers, body: JSON.stringify({ query, variables }) });
  const body = await resp.json();
  if (body.errors) throw new Error(`${query}: ${JSON.stringify(body.errors)}`);
  return body.data;
}

async function apiLogin(username, password) {
  return (await api('mutation L($u: String!, $p: String!) { login(username: $u, password: $p) { token } }', { u: username, p: password })).login.token;
}

const problems = [];

async function newPage(viewport = { width: 1280, height: 800 }) {
  const context = await browser.newContext({ viewport, acceptDownloads: true });
  const page = await context.newPage();
  page.on('request', (req) => {
    const url = new URL(req.url());
    if (url.hostname !== '127.0.0.1' && !['data:', 'blob:'].includes(url.protocol)) problems.push(`offsite request ${req.url()}`);
  });
  page.on('pageerror', (err) => problems.push(`page error: ${err}`));
  page.on('console', (msg) => {
    if (msg.type() === 'error' && !/status of 4\d\d/.test(msg.text())) problems.push(`console error: ${msg.text()}`);
  });
  return page;
}

let shots = 0;
async function shot(page, name) {
  shots += 1;
  const file = path.join(outDir, `${String(shots).padStart(2, '0')}-${name}.png`);
  await page.screenshot({ path: file, fullPage: true });
  return file;
}

const axeChecked = new Set();
async function axe(page, name) {
  await page.evaluate(axeSource);
  const result = await page.evaluate(() => window.axe.run(document, { resultTypes: ['violations'] }));
  const bad = result.violations.filter((v) => ['serious', 'critical'].includes(v.impact));
  for (const v of bad) problems.push(`axe ${name}: ${v.id} (${v.impact}) ${v.help}: ${v.nodes.map((n) => n.target.join(' ')).join('; ')}`);
  axeChecked.add(name);
}

async function open(page, hash) {
  await page.goto(`${base}/admin${hash}`);
  await page.waitForSelector('main h1');
}

async function logIn(page, username, password) {
  await open(page, '#/login');
  await page.getByLabel('Username').fill(username);
  await page.getByLabel('Password', { exact: true }).fill(password);
  await page.getByRole('button', { name: 'Log in' }).click();
}

async function loggedIn(page, username) {
  await page.waitForSelector(`#whoami a:text-is("${username}")`);
}

async function statusText(page, pattern) {
  await page.waitForFunction((source) => new RegExp(source).test(document.getElementById('status').textContent), pattern.source);
  return page.locator('#status').textContent();
}

async function searchUser(page, username) {
  await open(page, '#/users');
  await page.getByLabel('Search').fill(username);
  await page.getByLabel('Search').press('Enter');
  await page.waitForSelector(`tr[data-username="${username}"]`);
  await page.getByRole('link', { name: username, exact: true }).click();
  await page.waitForSelector(`main h1:text-is("${username}")`);
}

const userId = (username) => sql(`SELECT id FROM users WHERE username = '${username}'`);
const tally = async (page, question) => Number(await page.locator(`section[data-question="${question}"] .total-votes`).textContent());

async function employeeResigned(admin) {
  console.log('story 1: employee resigned');
  await open(admin, '#/users');
  await admin.waitForSelector('tr[data-username="rani-editor"]');
  await axe(admin, 'users');
  fs.copyFileSync(await shot(admin, 'users-list'), path.join(outDir, 'console-users.png'));
  await searchUser(admin, 'rani-editor');
  await axe(admin, 'user');
  await admin.getByLabel('Remove from groups').check();
  await admin.locator('[name="deactivateReason"]').fill('Resigned, last day today');
  await admin.getByRole('button', { name: 'Deactivate', exact: true }).click();
  const said = await statusText(admin, /is deactivated/);
  check(/group Editors/.test(said), `the page says what was taken: "${said}"`);
  await shot(admin, 'rani-deactivated');
  check(sql("SELECT is_active FROM users WHERE username = 'rani-editor'") === 'f', 'rani-editor is inactive in the database');
  check(sql(`SELECT count(*) FROM user_groups WHERE user_id = ${userId('rani-editor')}`) === '0', 'rani-editor is in no group any more');

  const incognito = await newPage();
  await logIn(incognito, 'rani-editor', DEMO_PASSWORD);
  const refusal = await incognito.locator('form .notice.error').textContent();
  check(/deactivated/.test(refusal), `rani-editor cannot log in and sees why: "${refusal}"`);
  await axe(incognito, 'login');
  await shot(incognito, 'rani-refused');

  await admin.reload();
  await admin.waitForSelector('main h1:text-is("rani-editor")');
  const preview = await admin.locator('.comes-back').textContent();
  check(/group Editors/.test(preview), `reactivation says what comes back: "${preview}"`);
  await admin.getByLabel(/Restore access/).check();
  await admin.getByRole('button', { name: 'Reactivate', exact: true }).click();
  const back = await statusText(admin, /can log in again/);
  check(/group Editors/.test(back), `the page says Editors came back: "${back}"`);
  check(sql("SELECT is_active FROM users WHERE username = 'rani-editor'") === 't', 'rani-editor is active again');
  check(sql(`SELECT count(*) FROM user_groups ug JOIN groups g ON g.id = ug.group_id WHERE ug.user_id = ${userId('rani-editor')} AND g.name = 'Editors'`) === '1', 'rani-editor is back in Editors');

  await logIn(incognito, 'rani-editor', DEMO_PASSWORD);
  await loggedIn(incognito, 'rani-editor');
  await open(incognito, '#/account');
  await incognito.waitForSelector('main h1:has-text("My account")');
  const access = await incognito.locator('main').textContent();
  check(/Groups: Editors/.test(access), 'rani-editor logs in again and has her group back');
  await axe(incognito, 'account');
  await shot(incognito, 'rani-back');
  await incognito.context().close();
}

async function spamAccount(admin, adminToken) {
  console.log('story 2: spam account');
  const questions = (await api('{ questions { id text choices { id } } }', {}, adminToken)).questions;
  await api(`mutation { createUser(input: { username: "spammer", email: "spam@example.net", password: "${NEW_PASSWORD}" }) { id } }`, {}, adminToken);
  const spammerToken = await apiLogin('spammer', NEW_PASSWORD);
  const first = questions.find((q) => q.text === "What's up?");
  const second = questions.find((q) => q.text !== "What's up?");
  await api('mutation V($c: ID!) { castVote(choiceId: $c) { id } }', { c: first.choices[0].id }, spammerToken);

  await open(admin, '#/questions');
  await admin.waitForSelector('.total-votes');
  const before = [await tally(admin, first.text), await tally(admin, second.text)];
  await axe(admin, 'questions');

  await searchUser(admin, 'spammer');
  await admin.getByRole('link', { name: 'Delete spammer…' }).click();
  await admin.waitForSelector('.plan[data-policy="PROTECT"]');
  const refused = await admin.locator('.plan').textContent();
  check(/Refused under PROTECT/.test(refused) && /1 votes/.test(refused), `PROTECT refuses and counts the vote: "${refused.slice(0, 120)}…"`);
  check(!(await admin.getByRole('button', { name: 'Delete spammer' }).isVisible()), 'no confirm button on a refused plan');
  await axe(admin, 'delete-protect');
  await shot(admin, 'delete-protect');
  await admin.getByLabel(/^CASCADE/).check();
  await admin.waitForSelector('.plan[data-policy="CASCADE"]');
  const cascade = await admin.locator('.plan').textContent();
  check(/Deleted with it/.test(cascade) && /1 votes/.test(cascade), 'the CASCADE plan deletes the one vote');
  await axe(admin, 'delete-cascade');
  fs.copyFileSync(await shot(admin, 'delete-cascade'), path.join(outDir, 'console-delete.png'));

  // The spammer, in their own browser, votes again after the admin looked.
  const spam = await newPage();
  await logIn(spam, 'spammer', NEW_PASSWORD);
  await loggedIn(spam, 'spammer');
  const voted = await spam.evaluate(async (choiceId) => {
    const resp = await fetch('/graphql', {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${sessionStorage.getItem('memberdesk.console.token')}` },
      body: JSON.stringify({ query: 'mutation V($c: ID!) { castVote(choiceId: $c) { id } }', variables: { c: choiceId } }),
    });
    return resp.json();
  }, second.choices[1].id);
  check(Boolean(voted.data?.castVote?.id), 'a second vote is cast from another browser');
  await spam.context().close();

  await admin.getByLabel(/^Reason/).fill('Spam account');
  await admin.getByRole('button', { name: 'Delete spammer' }).click();
  await admin.waitForSelector('.changed');
  await admin.waitForFunction(() => /2 votes/.test(document.querySelector('.plan')?.textContent || ''));
  const changed = await admin.locator('main').textContent();
  check(/changed since you looked/.test(changed), 'the confirmation answers "the data changed since you looked" with the new plan (2 votes)');
  check(sql("SELECT count(*) FROM users WHERE username = 'spammer'") === '1', 'nothing was deleted on a changed plan');
  await shot(admin, 'delete-plan-changed');
  await admin.getByRole('button', { name: 'Delete spammer' }).click();
  await admin.waitForSelector('.result .notice.ok');
  check(/spammer is deleted/.test(await admin.locator('.result .notice.ok').textContent()), 'the page confirms the deletion');
  check(sql("SELECT count(*) FROM users WHERE username = 'spammer'") === '0', 'spammer is gone from the database');
  check(sql("SELECT count(*) FROM audit_entries WHERE action = 'USER_DELETED' AND reason = 'Spam account'") === '1', 'the deletion is audited with its reason');

  await open(admin, '#/questions');
  await admin.waitForSelector('.total-votes');
  const after = [await tally(admin, first.text), await tally(admin, second.text)];
  check(after[0] === before[0] - 1 && after[1] === before[1], `the tallies dropped (${before} then one more vote, now ${after})`);
  await shot(admin, 'questions-after');
}

async function gdprErasure(admin) {
  console.log('story 3: GDPR erasure');
  await searchUser(admin, 'carol');
  const carolId = userId('carol');
  const [download] = await Promise.all([
    admin.waitForEvent('download'),
    admin.getByRole('button', { name: 'Export data (JSON)' }).first().click(),
  ]);
  const file = path.join(outDir, 'carol-export.json');
  await download.saveAs(file);
  const exported = fs.readFileSync(file, 'utf8');
  JSON.parse(exported);
  check(exported.includes('carol@example.org') && exported.includes('"carol"'), `the export downloads a JSON file holding the person (${download.suggestedFilename()})`);
  await admin.getByLabel(/Type the username/).fill('carol');
  await admin.getByRole('button', { name: 'Anonymize for good' }).click();
  const erased = await statusText(admin, /Erased/);
  const pseudonym = sql(`SELECT username FROM users WHERE id = ${carolId}`);
  check(/^deleted-user-/.test(pseudonym) && erased.includes(pseudonym), `the page names the pseudonym ${pseudonym}`);
  await admin.waitForSelector(`main h1:text-is("${pseudonym}")`);
  const voters = await admin.locator('td.voter').allTextContents();
  check(voters.length > 0 && voters.every((v) => v === 'Deleted user'), `the person's votes show "Deleted user" (${voters.length})`);
  check(sql(`SELECT email = '' AND anonymized_at IS NOT NULL AND NOT is_active FROM users WHERE id = ${carolId}`) === 't', 'the database holds no email and the erasure time');
  check(sql("SELECT count(*) FROM users WHERE username = 'carol'") === '0', 'the username carol is gone');
  await axe(admin, 'user-anonymized');
  await shot(admin, 'carol-anonymized');
}

async function otherPages(admin) {
  for (const [hash, name] of [['#/groups', 'groups'], ['#/audit', 'audit'], ['#/account', 'account-admin']]) {
    await open(admin, hash);
    await admin.waitForSelector('main table, main section');
    await axe(admin, name);
    await shot(admin, name);
  }
  await open(admin, '#/groups');
  await admin.getByRole('link', { name: 'Editors' }).click();
  await admin.waitForSelector('.plan');
  await axe(admin, 'group');
  await shot(admin, 'group');
}

async function viewerOnly(adminToken) {
  console.log('story 4: a viewer sees, cannot act');
  const created = await api(`mutation { createUser(input: { username: "vera-viewer", password: "${NEW_PASSWORD}", isStaff: true }) { id } }`, {}, adminToken);
  await api('mutation G($u: ID!) { grantPermission(userId: $u, permission: "auth.view_user") { id } }', { u: created.createUser.id }, adminToken);
  const viewer = await newPage({ width: 390, height: 844 });
  // By keyboard only: the login form takes focus, Tab moves on, Enter sends.
  await open(viewer, '#/login');
  await viewer.keyboard.type('vera-viewer');
  await viewer.keyboard.press('Tab');
  await viewer.keyboard.type(NEW_PASSWORD);
  await viewer.keyboard.press('Enter');
  await loggedIn(viewer, 'vera-viewer');
  await viewer.waitForSelector('tr[data-username="alice"]');
  check(await viewer.locator('tbody input[type="checkbox"]').count() === 0, 'no row selection for someone who may not act');
  check(!(await viewer.getByRole('button', { name: /Deactivate selected|Delete selected/ }).count()), 'no bulk action buttons');
  const nav = await viewer.locator('#nav').textContent();
  check(!/Groups|Audit/.test(nav), `the navigation offers only what she may see (${nav.trim()})`);
  await axe(viewer, 'users-mobile');
  await shot(viewer, 'viewer-users-mobile');
  await viewer.getByRole('link', { name: 'alice', exact: true }).click();
  await viewer.waitForSelector('main h1:text-is("alice")');
  const actions = await viewer.getByRole('button', { name: /Save|Deactivate|Reactivate|Delete|Anonymize|Export|Add|Remove/ }).count();
  check(actions === 0, 'alice\'s page offers no action button');
  await axe(viewer, 'user-mobile');
  await shot(viewer, 'viewer-user-mobile');
  const forged = await viewer.evaluate(async (id) => {
    const resp = await fetch('/graphql', {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${sessionStorage.getItem('memberdesk.console.token')}` },
      body: JSON.stringify({ query: 'mutation F($id: ID!) { deactivateUser(id: $id) { user { isActive } } }', variables: { id } }),
    });
    return resp.json();
  }, await viewer.evaluate(() => location.hash.split('/')[2]));
  check(forged.errors?.[0]?.extensions?.code === 'FORBIDDEN', 'a forged deactivation from the browser console is FORBIDDEN');
  check(sql("SELECT is_active FROM users WHERE username = 'alice'") === 't', 'alice is still active');
  check(sql("SELECT count(*) FROM audit_entries WHERE action = 'USER_DEACTIVATED' AND target_repr = 'alice'") === '0', 'nothing was audited for alice');

  await viewer.context().close();
}

async function sessionReturn() {
  // Expiry while on a page: the token is revoked server-side, the next
  // action lands on the login page, and logging in brings her back.
  const page = await newPage();
  await logIn(page, 'vera-viewer', NEW_PASSWORD);
  await loggedIn(page, 'vera-viewer');
  await searchUser(page, 'bob');
  const bobHash = await page.evaluate(() => location.hash);
  const token = await page.evaluate(() => sessionStorage.getItem('memberdesk.console.token'));
  await api('mutation { logout }', {}, token);
  await page.reload();
  await statusText(page, /session has ended/);
  await page.waitForSelector('main h1:text-is("Log in")');
  await page.getByLabel('Username').fill('vera-viewer');
  await page.getByLabel('Password', { exact: true }).fill(NEW_PASSWORD);
  await page.getByRole('button', { name: 'Log in' }).click();
  await page.waitForSelector('main h1:text-is("bob")');
  check(await page.evaluate(() => location.hash) === bobHash, `an expired session leads to log in and back to ${bobHash}`);
  check(await page.evaluate(() => Object.keys(localStorage).length) === 0, 'nothing is kept in localStorage');
  await page.context().close();
}

let failed = false;
try {
  await ready();
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    args: ['--no-sandbox', '--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1'],
  });
  const adminToken = await apiLogin('admin', DEMO_PASSWORD);
  const admin = await newPage();
  const response = await admin.goto(`${base}/admin`);
  const csp = response.headers()['content-security-policy'] || '';
  check(/script-src 'self'/.test(csp) && !/unsafe-inline/.test(csp), 'the page comes with a strict Content-Security-Policy');
  await logIn(admin, 'admin', DEMO_PASSWORD);
  await loggedIn(admin, 'admin');
  await employeeResigned(admin);
  await spamAccount(admin, adminToken);
  await gdprErasure(admin);
  await otherPages(admin);
  await viewerOnly(adminToken);
  await sessionReturn();
  check(problems.length === 0, `no offsite request, page error or serious accessibility violation on ${[...axeChecked].join(', ')}${problems.length ? `:\n${problems.join('\n')}` : ''}`);
  console.log(`console: the four stories pass; screenshots in ${outDir}`);
} catch (error) {
  failed = true;
  console.error(error.stack || String(error));
  if (problems.length) console.error(problems.join('\n'));
} finally {
  await cleanup();
}
process.exit(failed ? 1 : 0);
