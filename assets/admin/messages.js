// One human sentence per error code of the contract, so nobody reads a raw
// code. The server's own message is added where it says more than the code
// (which field is invalid and why, e.g. the password's weakness).

const SENTENCES = {
  UNAUTHENTICATED: 'Your session has ended. Please log in again.',
  FORBIDDEN: 'You do not have the permission to do this (or to do it to this account).',
  NOT_FOUND: 'This record no longer exists.',
  INVALID_INPUT: 'Some of what you entered is not accepted.',
  INVALID_CREDENTIALS: 'The username or the password is wrong.',
  ACCOUNT_INACTIVE: 'This account is deactivated: it cannot log in. Ask an administrator to reactivate it.',
  SELF_ACTION: 'You cannot do this to your own account.',
  LAST_SUPERUSER: 'This would leave no active superuser, so it was refused.',
  DELETE_PROTECTED: 'Deleting this is refused under PROTECT: other records still depend on it.',
  ANONYMIZED: 'This account was anonymized (erased): it can no longer be changed or reactivated.',
  PLAN_CHANGED: 'The data changed since you looked. Here is the new plan: review it and confirm again.',
  RATE_LIMITED: 'Too many failed attempts. Wait a few minutes before trying again.',
  INTERNAL: 'Something went wrong on the server. Try again; if it persists, tell the operator.',
  NETWORK: 'The server cannot be reached. Check your connection and try again.',
  LIMIT_EXCEEDED: 'This request asks for too much at once.',
};

export function sentence(code) {
  return SENTENCES[code] || `The server refused this (${code}).`;
}

// What to show for a failed operation.
export function describe(error) {
  const code = error.code || 'INTERNAL';
  const parts = [sentence(code)];
  if (code === 'INVALID_INPUT' && error.message) parts.push(error.message);
  if (code === 'DELETE_PROTECTED' && Array.isArray(error.extensions?.protected)) {
    parts.push(`Held: ${error.extensions.protected.map((r) => `${r.count} ${r.relation}`).join(', ')}.`);
  }
  return parts.join(' ');
}
