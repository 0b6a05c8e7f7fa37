// The console's only way to the server: POST /graphql with the session
// token from sessionStorage (gone when the tab closes, never in a URL or a
// cookie). A request refused as UNAUTHENTICATED while we held a token means
// the session ended: the token is dropped and the app is told, so it can
// send the person to log in and bring them back where they were.

const TOKEN_KEY = 'memberdesk.console.token';

export class ApiError extends Error {
  constructor(code, message, extensions = {}) {
    super(message);
    this.code = code;
    this.extensions = extensions;
  }
}

export const session = {
  token: () => sessionStorage.getItem(TOKEN_KEY),
  set: (token) => sessionStorage.setItem(TOKEN_KEY, token),
  clear: () => sessionStorage.removeItem(TOKEN_KEY),
};

async function post(query, variables) {
  const headers = { 'Content-Type': 'application/json', Accept: 'application/graphql-response+json, application/json' };
  const token = session.token();
  if (token) headers.Authorization = `Bearer ${token}`;
  let response;
  try {
    response = await fetch('/graphql', { method: 'POST', headers, body: JSON.stringify({ query, variables }) });
  } catch {
    throw new ApiError('NETWORK', 'The server cannot be reached.');
  }
  try {
    return await response.json();
  } catch {
    throw new ApiError('INTERNAL', `The server answered ${response.status} without a GraphQL body.`);
  }
}

function refusal(error) {
  const ext = error.extensions || {};
  return new ApiError(ext.code || 'INTERNAL', error.message, ext);
}

// Runs one operation. Any error throws, unless `partial` is set: then the
// data comes back with the errors beside it (a field the caller may not
// see is null, the rest of the page still shows).
export async function gql(query, variables = {}, { partial = false } = {}) {
  const body = await post(query, variables);
  const errors = body.errors || [];
  const expired = errors.find((e) => e.extensions?.code === 'UNAUTHENTICATED');
  if (expired && session.token()) {
    session.clear();
    window.dispatchEvent(new CustomEvent('memberdesk:session-expired'));
  }
  if (errors.length && (!partial || !body.data)) throw refusal(errors[0]);
  return partial ? { data: body.data, errors: errors.map(refusal) } : body.data;
}
