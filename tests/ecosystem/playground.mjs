// The playground in a real browser with no internet: headless Chromium (the
// distribution's package) loads memberdesk's GraphiQL, logs in, runs a query
// with the token and reads the result from the page; then checks the tab
// keeps the token across a reload (sessionStorage, never localStorage) and
// forgets it on logout. Any request that leaves 127.0.0.1 fails the test. Usage: node playground.mjs http://127.0.0.1:PORT SCREENSHOT.png
import { chromium } from 'playwright-core';

const [base, screenshot] = process.argv.slice(2);
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--no-sandbox', '--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1'],
});
const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
const offsite = [];
page.on('request', (req) => {
  const host = new URL(req.url()).hostname;
  if (host !== '127.0.0.1' && !req.url().startsWith('data:')) offsite.push(req.url());
});
const errors = [];
page.on('pageerror', (err) => errors.push(String(err)));
// Anything the page's Content-Security-Policy blocks is a failure: the page
// must work with the policy memberdesk sends.
await page.addInitScript(() => {
  window.__cspViolations = [];
  document.addEventListener('securitypolicyviolation', (e) => {
    window.__cspViolations.push(`${e.violatedDirective} blocked ${e.blockedURI || 'inline'}`);
  });
});
page.on('console', (msg) => {
  if (msg.type() === 'error' && /Content Security Policy/i.test(msg.text())) errors.push(msg.text());
});

async function run(query, headers) {
  // GraphiQL's editors are CodeMirror 5 instances: set them through their API,
  // give GraphiQL a moment to re-read the operation, then run it (Ctrl-Enter).
  await page.evaluate(({ query, headers }) => {
    const editor = (selector) => document.querySelector(selector).CodeMirror;
    editor('.graphiql-query-editor .CodeMirror').setValue(query);
    if (headers) {
      const tools = [...document.querySelectorAll('.graphiql-editor-tool .graphiql-editor .CodeMirror')];
      tools[tools.length - 1].CodeMirror.setValue(headers);
    }
  }, { query, headers });
  await page.waitForTimeout(500);
  await page.evaluate(() => document.querySelector('.result-window .CodeMirror').CodeMirror.setValue(''));
  await page.click('.graphiql-query-editor .CodeMirror');
  await page.keyboard.press('Control+Enter');
  await page.waitForFunction(
    () => document.querySelector('.result-window .CodeMirror')?.CodeMirror.getValue().includes('"data"'),
    null,
    { timeout: 15000 },
  );
  return JSON.parse(await page.evaluate(() => document.querySelector('.result-window .CodeMirror').CodeMirror.getValue()));
}

const response = await page.goto(`${base}/`, { waitUntil: 'networkidle' });
if (!response.headers()['content-security-policy']) throw new Error('the playground has no Content-Security-Policy');
await page.waitForSelector('.graphiql-query-editor .CodeMirror');
const login = await run('mutation Login { login(username: "admin", password: "memberdesk-demo") { token } }');
const token = login.data.login.token;
if (!token) throw new Error(`no token: ${JSON.stringify(login)}`);
const me = await run('query Me { me { username isSuperuser } }', JSON.stringify({ Authorization: `Bearer ${token}` }));
// A dialog too (the settings): GraphiQL's dialogs lock scrolling with styles of their own.
await page.click('button[aria-label="Open settings dialog"]');
await page.waitForSelector('[role="dialog"]');
await page.keyboard.press('Escape');
await page.screenshot({ path: screenshot });
errors.push(...(await page.evaluate(() => window.__cspViolations)));

// The tab keeps the token from `login`: no Headers needed, also after a
// reload (GraphiQL does not keep the Headers editor), and it is in
// sessionStorage only, never in localStorage.
const kept = await run('query Kept { me { username } }', '{}');
await page.reload({ waitUntil: 'networkidle' });
await page.waitForSelector('.graphiql-query-editor .CodeMirror');
const reloaded = await run('query Reloaded { me { username } }');
const storage = await page.evaluate((token) => ({
  session: sessionStorage.getItem('memberdesk.sessionToken') === token,
  local: Object.keys(localStorage).filter((k) => (localStorage.getItem(k) || '').includes(token)),
}), token);
// Logging out ends the session and the tab forgets the token.
const logout = await run('mutation Logout { logout }');
const forgotten = await page.evaluate(() => sessionStorage.getItem('memberdesk.sessionToken'));
const after = await run('query After { me { username } }');
errors.push(...(await page.evaluate(() => window.__cspViolations)));
await browser.close();

if (me.data?.me?.username !== 'admin') throw new Error(`unexpected result: ${JSON.stringify(me)}`);
if (kept.data?.me?.username !== 'admin') throw new Error(`the kept token was not sent: ${JSON.stringify(kept)}`);
if (reloaded.data?.me?.username !== 'admin') throw new Error(`a reload lost the login: ${JSON.stringify(reloaded)}`);
if (!storage.session) throw new Error('the token is not in sessionStorage');
if (storage.local.length) throw new Error(`the token is in localStorage: ${storage.local.join(', ')}`);
if (logout.data?.logout !== true) throw new Error(`logout failed: ${JSON.stringify(logout)}`);
if (forgotten !== null) throw new Error('the tab kept the token after logout');
if (after.errors?.[0]?.extensions?.code !== 'UNAUTHENTICATED') throw new Error(`still logged in after logout: ${JSON.stringify(after)}`);
if (offsite.length) throw new Error(`requests left the machine: ${offsite.join(', ')}`);
if (errors.length) throw new Error(`page errors: ${errors.join('; ')}`);
console.log('playground: logged in as admin and ran a query in Chromium, offline; the tab kept the token across a reload (sessionStorage only) and forgot it on logout; screenshot at', screenshot);
