// The playground's own script, served as a file (not inline) so the page's
// Content-Security-Policy can allow scripts from memberdesk itself only.
// Everything this page needs is served by memberdesk itself, so the
// playground works on a machine without internet access.
// GraphiQL's dialogs lock page scrolling with a <style> element they create;
// they give it the nonce found here, which this response's policy allows.
window.__webpack_nonce__ = document.querySelector('meta[name="memberdesk-style-nonce"]').content;

// The session token from `login`, kept for this browser tab only: in
// sessionStorage (gone when the tab closes, never shared with other tabs),
// never in localStorage, and never in GraphiQL's Headers editor (whose
// contents GraphiQL may save). A reload keeps you logged in; `logout`, a
// token the server no longer accepts, or closing the tab forgets it.
const TOKEN_KEY = 'memberdesk.sessionToken';

const tokenStore = {
  get() {
    try { return window.sessionStorage.getItem(TOKEN_KEY); } catch (_) { return null; }
  },
  set(token) {
    try { window.sessionStorage.setItem(TOKEN_KEY, token); } catch (_) { /* storage off: log in per page */ }
  },
  forget() {
    try { window.sessionStorage.removeItem(TOKEN_KEY); } catch (_) { /* nothing kept */ }
  },
};

const defaultQuery = `# Welcome to memberdesk.
#
# 1. Log in (demo data: username "admin", password "memberdesk-demo").
#    This tab keeps the token (also across reloads) and sends it with
#    every request; a Bearer token of your own in the Headers tab wins.
mutation Login {
  login(username: "admin", password: "memberdesk-demo") { token user { username } }
}
# 2. Then explore:
query Members {
  users(first: 10) { totalCount edges { node { id username isActive isStaff groups { name } } } }
}
# 3. Log out (the token stops working and this tab forgets it),
#    or just close the tab:
mutation Logout { logout }
`;

function hasAuthorization(headers) {
  return Object.keys(headers || {}).some((name) => name.toLowerCase() === 'authorization');
}

// The request options with the kept token added, unless the Headers tab
// sets its own Authorization; and whether the kept token was used.
function withKeptToken(options) {
  const token = tokenStore.get();
  const headers = (options && options.headers) || {};
  if (!token || hasAuthorization(headers)) return { options, usedKept: false };
  return {
    options: { ...options, headers: { ...headers, Authorization: `Bearer ${token}` } },
    usedKept: true,
  };
}

function remember(result, usedKept) {
  const data = result && result.data;
  const token = data && data.login && data.login.token;
  if (typeof token === 'string' && token) tokenStore.set(token);
  else if (data && data.logout === true) tokenStore.forget();
  const codes = ((result && result.errors) || []).map((e) => e.extensions && e.extensions.code);
  if (usedKept && codes.includes('UNAUTHENTICATED')) tokenStore.forget();
}

// GraphiQL's own storage (tabs, history, favourites, settings) stays in
// localStorage, minus every `headers` entry: a header may carry a token, and
// GraphiQL 3 saves each query's headers in its history. Entries saved by an
// earlier playground are cleaned the same way when the page loads.
const GRAPHIQL_PREFIX = 'graphiql:';

function withoutHeaders(value) {
  if (Array.isArray(value)) return value.map(withoutHeaders);
  if (value && typeof value === 'object') {
    const kept = {};
    for (const [key, inner] of Object.entries(value)) {
      if (key !== 'headers') kept[key] = withoutHeaders(inner);
    }
    return kept;
  }
  return value;
}

function graphiqlKeys() {
  return Object.keys(window.localStorage).filter((key) => key.startsWith(GRAPHIQL_PREFIX));
}

const storage = {
  getItem: (key) => window.localStorage.getItem(key),
  setItem(key, value) {
    let safe = value;
    try {
      safe = JSON.stringify(withoutHeaders(JSON.parse(value)));
    } catch (_) { /* not JSON (a theme name): nothing to strip */ }
    // A full storage throws here; GraphiQL handles that itself.
    window.localStorage.setItem(key, safe);
  },
  removeItem: (key) => window.localStorage.removeItem(key),
  clear() {
    graphiqlKeys().forEach((key) => window.localStorage.removeItem(key));
  },
  get length() {
    return graphiqlKeys().length;
  },
};

try {
  graphiqlKeys().forEach((key) => storage.setItem(key, window.localStorage.getItem(key)));
} catch (_) { /* storage unavailable or full: GraphiQL copes */ }

// memberdesk answers plain JSON (no incremental delivery), so each request
// yields one result the token logic can read.
const http = GraphiQL.createFetcher({ url: '/graphql', enableIncrementalDelivery: false });
async function fetcher(params, opts) {
  const { options, usedKept } = withKeptToken(opts);
  const result = await http(params, options);
  remember(result, usedKept);
  return result;
}

ReactDOM.createRoot(document.getElementById('graphiql')).render(
  React.createElement(GraphiQL, {
    fetcher,
    defaultQuery,
    defaultEditorToolsVisibility: true,
    shouldPersistHeaders: false,
    storage,
  }),
);
