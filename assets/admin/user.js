// One user, Django admin's change page with memberdesk's safer ways out:
// edit (Save says what changed), groups and direct permissions, deactivate
// and reactivate, delete through a plan, export, anonymize, and the user's
// audit trail. Each action is offered only when the caller's permissions
// allow it; the server checks again.

import { gql } from './api.js';
import { h, show, field, checkbox, button, busy, notice, when, yesNo, table, section, status, download } from './ui.js';
import { describe } from './messages.js';
import { caller } from './app.js';
import { planPanel, PLAN_FIELDS } from './plan.js';

const USER = `query ConsoleUser($id: ID!) {
  user(id: $id) {
    id username email firstName lastName isActive isStaff isSuperuser dateJoined lastLogin
    deactivatedAt deactivationReason anonymizedAt erasureDueAt voteCount
    groups { id name } userPermissions { key name }
    votes(first: 20) { totalCount nodes { id createdAt voterName choice { text question { text } } } }
  }
}`;

async function loadUser(id) {
  const { data } = await gql(USER, { id }, { partial: true });
  if (!data.user) throw Object.assign(new Error('no such user'), { code: 'NOT_FOUND' });
  return data.user;
}

function badges(user) {
  return h('p', { class: 'badges' },
    h('span', { class: `badge ${user.isActive ? 'active' : 'inactive'}` }, user.isActive ? 'Active' : 'Inactive'),
    user.isStaff ? h('span', { class: 'badge' }, 'Staff') : null,
    user.isSuperuser ? h('span', { class: 'badge' }, 'Superuser') : null,
    user.anonymizedAt ? h('span', { class: 'badge anonymized' }, `Anonymized ${when(user.anonymizedAt)}`) : null,
    user.erasureDueAt ? h('span', { class: 'badge' }, `Erasure due ${when(user.erasureDueAt)}`) : null);
}

function facts(user) {
  const rows = [
    ['Email', user.email || '—'], ['Name', `${user.firstName || ''} ${user.lastName || ''}`.trim() || '—'],
    ['Date joined', when(user.dateJoined)], ['Last login', when(user.lastLogin)],
    ['Deactivated', user.deactivatedAt ? `${when(user.deactivatedAt)}${user.deactivationReason ? ` — “${user.deactivationReason}”` : ''}` : '—'],
    ['Groups', user.groups?.map((g) => g.name).join(', ') || 'none'],
    ['Direct permissions', user.userPermissions?.map((p) => p.key).join(', ') || 'none'],
    ['Votes', user.voteCount ?? '—'],
  ];
  return h('dl', { class: 'facts' }, rows.map(([k, v]) => [h('dt', {}, k), h('dd', {}, v)]));
}

const UPDATE = `mutation ConsoleUpdateUser($id: ID!, $input: UpdateUserInput!) {
  updateUser(id: $id, input: $input) { id username }
}`;

const EDITABLE = [['username', 'Username'], ['email', 'Email'], ['firstName', 'First name'], ['lastName', 'Last name']];

function editForm(user, reload) {
  const inputs = EDITABLE.map(([key, label]) => [key, label, field(label, { name: key, value: user[key] ?? '', type: key === 'email' ? 'email' : 'text' })]);
  const flagsEditable = caller.me.isSuperuser;
  const flags = [['isStaff', 'Staff status'], ['isSuperuser', 'Superuser status']].map(([key, label]) =>
    [key, label, checkbox(label, { checked: user[key], disabled: !flagsEditable })]);
  const submit = h('button', { type: 'submit', class: 'primary' }, 'Save');
  const result = h('div', { class: 'result' });
  const form = h('form', { 'aria-label': 'Edit user' }, inputs.map(([, , f]) => f.el),
    flags.map(([, , f]) => f.el), flagsEditable ? null : h('p', { class: 'hint' }, 'Only a superuser may change the flags.'), submit, result);
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    const input = {};
    const changed = [];
    for (const [key, label, f] of inputs) if (f.input.value !== (user[key] ?? '')) { input[key] = f.input.value; changed.push(label); }
    if (flagsEditable) for (const [key, label, f] of flags) if (f.input.checked !== user[key]) { input[key] = f.input.checked; changed.push(label); }
    if (!changed.length) { result.replaceChildren(notice('info', 'Nothing changed.')); return; }
    try {
      await busy(submit, () => gql(UPDATE, { id: user.id, input }));
      await reload(`Saved. Changed: ${changed.join(', ')}.`);
    } catch (error) {
      result.replaceChildren(notice('error', describe(error)));
    }
  });
  return section('Details', form);
}

const GROUP_OP = (op) => `mutation ConsoleGroup_${op}($userId: ID!, $groupId: ID!) { ${op}(userId: $userId, groupId: $groupId) { id } }`;
const PERM_OP = (op) => `mutation ConsolePerm_${op}($userId: ID!, $permission: String!) { ${op}(userId: $userId, permission: $permission) { id } }`;

// Two lists, Django's "available / chosen": one click moves an item.
function chooser(title, chosen, available, add, remove) {
  const item = (label, text, action) => h('li', {}, h('span', {}, label), button(text, action, { 'aria-label': `${text} ${label}` }));
  return section(title, h('div', { class: 'chooser' },
    h('div', {}, h('h3', {}, 'Chosen'), h('ul', {}, chosen.length ? chosen.map(([key, label]) => item(label, 'Remove', () => remove(key))) : h('li', {}, 'none'))),
    h('div', {}, h('h3', {}, 'Available'), h('ul', {}, available.length ? available.map(([key, label]) => item(label, 'Add', () => add(key))) : h('li', {}, 'none')))));
}

async function accessSections(user, reload) {
  const run = async (query, variables, done) => {
    try { await gql(query, variables); await reload(done); } catch (error) { status(describe(error), 'error'); }
  };
  const out = [];
  if (caller.can('auth.view_group')) {
    const { groups } = await gql('query ConsoleAllGroups { groups { id name } }');
    const mine = new Set(user.groups.map((g) => g.id));
    out.push(chooser('Groups', user.groups.map((g) => [g.id, g.name]), groups.filter((g) => !mine.has(g.id)).map((g) => [g.id, g.name]),
      (groupId) => run(GROUP_OP('addUserToGroup'), { userId: user.id, groupId }, 'Added to the group.'),
      (groupId) => run(GROUP_OP('removeUserFromGroup'), { userId: user.id, groupId }, 'Removed from the group.')));
  }
  const { permissions } = await gql('query ConsolePermissions { permissions { key name } }');
  const direct = new Set(user.userPermissions.map((p) => p.key));
  out.push(chooser('Direct permissions', user.userPermissions.map((p) => [p.key, `${p.key} (${p.name})`]),
    permissions.filter((p) => !direct.has(p.key) && caller.can(p.key)).map((p) => [p.key, `${p.key} (${p.name})`]),
    (permission) => run(PERM_OP('grantPermission'), { userId: user.id, permission }, 'Permission granted.'),
    (permission) => run(PERM_OP('revokePermission'), { userId: user.id, permission }, 'Permission revoked.')));
  return out;
}

const DEACTIVATE = `mutation ConsoleDeactivate($id: ID!, $input: DeactivateUserInput) {
  deactivateUser(id: $id, input: $input) { sessionsRevoked removedGroups { name } removedPermissions { key } staffRevoked }
}`;

function deactivateSection(user, reload) {
  const groups = checkbox('Remove from groups', { checked: true, name: 'removeFromGroups' });
  const perms = checkbox('Remove direct permissions', { checked: true, name: 'removePermissions' });
  const staff = checkbox('Revoke staff status', { name: 'revokeStaff' });
  const reason = field('Reason', { name: 'deactivateReason', maxlength: '500' });
  const result = h('div', { class: 'result' });
  const go = button('Deactivate', async () => {
    try {
      const input = { removeFromGroups: groups.input.checked, removePermissions: perms.input.checked, revokeStaff: staff.input.checked, reason: reason.input.value || null };
      const { deactivateUser: out } = await busy(go, () => gql(DEACTIVATE, { id: user.id, input }));
      const taken = [...out.removedGroups.map((g) => `group ${g.name}`), ...out.removedPermissions.map((p) => p.key), out.staffRevoked ? 'staff status' : null].filter(Boolean);
      await reload(`${user.username} is deactivated: ${out.sessionsRevoked} session(s) ended${taken.length ? `; removed (and remembered): ${taken.join(', ')}` : ''}.`);
    } catch (error) {
      result.replaceChildren(notice('error', describe(error)));
    }
  }, { class: 'warning' });
  return section('Deactivate', h('p', {}, 'Blocks the login at once and ends every session. Reversible: what you remove is remembered for reactivation.'),
    groups.el, perms.el, staff.el, reason.el, go, result);
}

const LAST_DEACTIVATION = `query ConsoleLastDeactivation($id: ID!) {
  auditLog(filter: { targetUserId: $id, action: USER_DEACTIVATED }, first: 1) { nodes { at details } }
}`;

const REACTIVATE = `mutation ConsoleReactivate($id: ID!, $restoreAccess: Boolean, $reason: String) {
  reactivateUser(id: $id, restoreAccess: $restoreAccess, reason: $reason) { restoredGroups { name } restoredPermissions { key } staffRestored missingGroupIds }
}`;

async function reactivateSection(user, reload) {
  const restore = checkbox('Restore access (groups, permissions and staff status the deactivation took)', { checked: true, name: 'restoreAccess' });
  const reason = field('Reason', { name: 'reactivateReason', maxlength: '500' });
  const preview = h('div', { class: 'comes-back' });
  if (caller.can('admin.view_logentry')) {
    const last = (await gql(LAST_DEACTIVATION, { id: user.id })).auditLog.nodes[0];
    const d = last?.details || {};
    const back = [...(d.removedGroups || []).map((g) => `group ${g}`), ...(d.removedPermissions || []), d.staffRevoked ? 'staff status' : null].filter(Boolean);
    const bulk = d.bulk ? `${(d.removedGroupIds || []).length} group(s), ${(d.removedPermissionIds || []).length} permission(s)${d.staffRevoked ? ', staff status' : ''}` : '';
    preview.append(h('p', {}, bulk ? `Restoring access gives back what the bulk deactivation took: ${bulk}.`
      : back.length ? `Restoring access gives back: ${back.join(', ')}.` : 'The last deactivation took nothing to give back.'));
  }
  const result = h('div', { class: 'result' });
  const go = button('Reactivate', async () => {
    try {
      const { reactivateUser: out } = await busy(go, () => gql(REACTIVATE, { id: user.id, restoreAccess: restore.input.checked, reason: reason.input.value || null }));
      const back = [...out.restoredGroups.map((g) => `group ${g.name}`), ...out.restoredPermissions.map((p) => p.key), out.staffRestored ? 'staff status' : null].filter(Boolean);
      await reload(`${user.username} can log in again${back.length ? `; given back: ${back.join(', ')}` : ''}${out.missingGroupIds.length ? ` (${out.missingGroupIds.length} group(s) no longer exist)` : ''}.`);
    } catch (error) {
      result.replaceChildren(notice('error', describe(error)));
    }
  }, { class: 'primary' });
  return section('Reactivate', restore.el, preview, reason.el, go, result);
}

const EXPORT = 'query ConsoleExport($userId: ID!) { exportUserData(userId: $userId) }';

function exportButton(user) {
  const go = button('Export data (JSON)', async () => {
    try {
      const data = await busy(go, () => gql(EXPORT, { userId: user.id }));
      download(`memberdesk-export-${user.username}.json`, data.exportUserData);
      status(`The export of ${user.username} is downloaded.`, 'ok');
    } catch (error) {
      status(describe(error), 'error');
    }
  });
  return go;
}

const canExport = () => ['auth.view_user', 'polls.view_vote', 'admin.view_logentry'].every((p) => caller.can(p));

const ANONYMIZE = `mutation ConsoleAnonymize($id: ID!, $reason: String) {
  anonymizeUser(id: $id, reason: $reason) { user { username } sessionsRevoked }
}`;

function anonymizeSection(user, reload) {
  const typed = field(`Type the username (${user.username}) to confirm`, { name: 'confirmUsername', autocomplete: 'off' });
  const reason = field('Reason (must not name the person)', { name: 'anonymizeReason', maxlength: '500' });
  const result = h('div', { class: 'result' });
  const go = button('Anonymize for good', async () => {
    try {
      const { anonymizeUser: out } = await busy(go, () => gql(ANONYMIZE, { id: user.id, reason: reason.input.value || null }));
      await reload(`Erased: the account is now ${out.user.username}. Its history stays, under the pseudonym.`);
    } catch (error) {
      result.replaceChildren(notice('error', describe(error)));
    }
  }, { class: 'danger', disabled: true });
  typed.input.addEventListener('input', () => { go.disabled = typed.input.value !== user.username; });
  return section('Anonymize (erasure)',
    h('p', {}, 'Replaces the username with a pseudonym, removes email, names and password, ends access; votes and history stay. This cannot be undone.'),
    canExport() ? h('p', {}, 'Give the person their data first: ', exportButton(user)) : null,
    typed.el, reason.el, go, result);
}

const TRAIL = `query ConsoleTrail($id: ID!) {
  auditLog(filter: { targetUserId: $id }, first: 20) { totalCount nodes { id at action actorUsername reason details } }
}`;

export function auditRows(entries) {
  return entries.map((e) => h('tr', {},
    h('td', {}, when(e.at)), h('td', {}, h('code', {}, e.action)), h('td', {}, e.actorUsername || '—'),
    e.targetRepr !== undefined ? h('td', {}, e.targetRepr) : null,
    h('td', {}, e.reason || '—'),
    h('td', {}, e.details ? h('details', {}, h('summary', {}, 'Details'), h('pre', {}, JSON.stringify(e.details, null, 2))) : '—')));
}

async function trailSection(user) {
  const { auditLog } = await gql(TRAIL, { id: user.id });
  return section(`Audit trail (${auditLog.totalCount})`,
    auditLog.nodes.length ? table('Audit trail', ['When', 'Action', 'By', 'Reason', 'Details'], auditRows(auditLog.nodes)) : h('p', {}, 'No entry.'),
    h('p', {}, h('a', { href: '#/audit' }, 'Search the whole audit log')));
}

function votesSection(user) {
  if (!user.votes) return null;
  return section(`Votes (${user.votes.totalCount})`, user.votes.nodes.length
    ? table('Votes', ['Question', 'Choice', 'Voter', 'When'], user.votes.nodes.map((v) => h('tr', {},
      h('td', {}, v.choice.question.text), h('td', {}, v.choice.text), h('td', { class: 'voter' }, v.voterName), h('td', {}, when(v.createdAt)))))
    : h('p', {}, 'No vote.'));
}

function actionsSection(user, reload) {
  const mayAct = caller.mayActOn(user) && !user.anonymizedAt;
  const out = [];
  if (mayAct && caller.can('auth.change_user')) out.push(user.isActive ? deactivateSection(user, reload) : null);
  if (mayAct && caller.can('auth.delete_user')) {
    out.push(section('Delete', h('p', {}, 'Shows what the deletion would remove or keep, under the policy you choose, before anything happens.'),
      h('a', { class: 'button danger-outline', href: `#/user/${encodeURIComponent(user.id)}/delete` }, `Delete ${user.username}…`)));
  }
  if (canExport()) out.push(section('Export', h('p', {}, 'Everything memberdesk holds about the person, as one JSON file (audited).'), exportButton(user)));
  if (mayAct && caller.me.isSuperuser) out.push(anonymizeSection(user, reload));
  return out.filter(Boolean);
}

export async function userPage(id) {
  const reload = async (message) => { await userPage(id); if (message) status(message, 'ok'); };
  const user = await loadUser(id);
  const mayEdit = caller.mayActOn(user) && !user.anonymizedAt && caller.can('auth.change_user');
  const parts = [badges(user), facts(user)];
  if (mayEdit) {
    parts.push(editForm(user, reload), ...(await accessSections(user, reload)));
    if (!user.isActive) parts.push(await reactivateSection(user, reload));
  }
  parts.push(...actionsSection(user, reload), votesSection(user));
  if (caller.can('admin.view_logentry')) parts.push(await trailSection(user));
  show(user.username, h('p', {}, h('a', { href: '#/users' }, '← All users')), ...parts);
}

const DELETION_PLAN = `query ConsoleUserPlan($userId: ID!, $policy: DeletePolicy) { deletionPlan(userId: $userId, policy: $policy) { ${PLAN_FIELDS} } }`;
const DELETE = `mutation ConsoleDeleteUser($id: ID!, $policy: DeletePolicy, $planToken: String, $reason: String) {
  deleteUser(id: $id, policy: $policy, planToken: $planToken, reason: $reason) { deleted plan { policy } }
}`;

export async function userDeletePage(id) {
  const user = await loadUser(id);
  const panel = planPanel({
    noun: user.username,
    policies: ['PROTECT', 'SET_NULL', 'CASCADE'],
    preview: async (policy) => (await gql(DELETION_PLAN, { userId: id, policy })).deletionPlan,
    execute: async (policy, planToken, reason) => (await gql(DELETE, { id, policy, planToken, reason })).deleteUser,
    done: (_out, box) => box.replaceChildren(notice('ok', `${user.username} is deleted. `, h('a', { href: '#/users' }, 'Back to the users'))),
  });
  show(`Delete ${user.username}?`, h('p', {}, h('a', { href: `#/user/${encodeURIComponent(id)}` }, `← Back to ${user.username}`)),
    badges(user), section('Deletion plan', panel));
}
