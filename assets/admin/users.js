// The users list, Django admin's changelist: search, filters, sortable
// columns, cursor pages with the total count (never loading everyone), and
// bulk actions on the selected rows (deactivate; delete through the bulk
// plan).

import { gql } from './api.js';
import { h, show, field, select, checkbox, button, busy, notice, when, yesNo, table, section, loading } from './ui.js';
import { describe } from './messages.js';
import { caller } from './app.js';
import { planPanel, PLAN_FIELDS } from './plan.js';

const PAGE_SIZE = 25;

const USERS = `query ConsoleUsers($filter: UserFilter, $orderBy: UserOrderBy!, $first: Int, $after: String) {
  users(filter: $filter, orderBy: $orderBy, first: $first, after: $after) {
    totalCount
    pageInfo { hasNextPage endCursor }
    nodes { id username email firstName lastName isStaff isActive isSuperuser dateJoined lastLogin deactivatedAt anonymizedAt }
  }
}`;

const GROUPS = 'query ConsoleGroupNames { groups { id name } }';

// Sortable columns and their orders (ascending, descending).
const SORTS = { username: ['USERNAME_ASC', 'USERNAME_DESC'], dateJoined: ['DATE_JOINED_ASC', 'DATE_JOINED_DESC'], lastLogin: ['LAST_LOGIN_ASC', 'LAST_LOGIN_DESC'] };

const TRI = [['', 'Any'], ['true', 'Yes'], ['false', 'No']];

const state = { orderBy: 'ID_ASC', cursors: [null], page: 0, selected: new Set() };

function tri(value) {
  return value === '' ? undefined : value === 'true';
}

function filterForm(onChange, groups) {
  const search = field('Search', { type: 'search', name: 'search', placeholder: 'username, email or name' });
  const active = select('Active', TRI, { name: 'isActive' });
  const staff = select('Staff', TRI, { name: 'isStaff' });
  const superuser = select('Superuser', TRI, { name: 'isSuperuser' });
  const deactivated = select('Deactivated', TRI, { name: 'deactivated' });
  const group = select('Group', [['', 'Any'], ...groups.map((g) => [g.id, g.name])], { name: 'groupId' });
  const dormant = field('Dormant since', { type: 'date', name: 'lastLoginBefore' });
  const form = h('form', { class: 'filters', role: 'search', 'aria-label': 'Filter users' },
    search.el, active.el, staff.el, superuser.el, deactivated.el, groups.length ? group.el : null, dormant.el,
    h('button', { type: 'submit' }, 'Search'));
  const read = () => {
    const filter = {
      search: search.input.value.trim() || undefined,
      isActive: tri(active.input.value),
      isStaff: tri(staff.input.value),
      isSuperuser: tri(superuser.input.value),
      deactivated: tri(deactivated.input.value),
      groupId: group.input.value || undefined,
      lastLoginBefore: dormant.input.value ? new Date(`${dormant.input.value}T00:00:00Z`).toISOString() : undefined,
    };
    return Object.fromEntries(Object.entries(filter).filter(([, v]) => v !== undefined));
  };
  form.addEventListener('submit', (event) => { event.preventDefault(); onChange(read()); });
  for (const s of [active, staff, superuser, deactivated, group, dormant]) s.input.addEventListener('change', () => onChange(read()));
  return form;
}

function sortHeader(label, key, reload) {
  const orders = SORTS[key];
  const direction = state.orderBy === orders[0] ? 'ascending' : state.orderBy === orders[1] ? 'descending' : 'none';
  const next = direction === 'ascending' ? orders[1] : orders[0];
  const arrow = direction === 'ascending' ? ' ▲' : direction === 'descending' ? ' ▼' : '';
  return h('th', { scope: 'col', 'aria-sort': direction },
    button(`${label}${arrow}`, () => { state.orderBy = next; reload(true); }, { class: 'sort', title: `Sort by ${label.toLowerCase()}` }));
}

function row(user, bulk, onSelect) {
  const box = bulk ? h('input', {
    type: 'checkbox', 'aria-label': `Select ${user.username}`, checked: state.selected.has(user.id),
    onchange: (e) => { if (e.target.checked) state.selected.add(user.id); else state.selected.delete(user.id); onSelect(); },
  }) : null;
  return h('tr', { class: user.isActive ? '' : 'inactive', dataset: { username: user.username } },
    bulk ? h('td', {}, box) : null,
    h('th', { scope: 'row' }, h('a', { href: `#/user/${encodeURIComponent(user.id)}` }, user.username),
      user.anonymizedAt ? h('span', { class: 'badge anonymized' }, 'anonymized') : null),
    h('td', {}, user.email || '—'), h('td', {}, user.firstName || ''), h('td', {}, user.lastName || ''),
    h('td', {}, yesNo(user.isStaff)), h('td', {}, yesNo(user.isActive)), h('td', {}, yesNo(user.isSuperuser)),
    h('td', {}, when(user.dateJoined)), h('td', {}, when(user.lastLogin)), h('td', {}, when(user.deactivatedAt)));
}

export async function usersPage() {
  const groups = caller.can('auth.view_group') ? (await gql(GROUPS)).groups : [];
  const canDeactivate = caller.can('auth.change_user');
  const canDelete = caller.can('auth.delete_user');
  const bulk = canDeactivate || canDelete;
  let filter = {};
  state.selected.clear();
  const results = h('div', { class: 'results' });
  const bulkBar = h('div', { class: 'bulk', hidden: !bulk });
  const bulkPanel = h('div', { class: 'bulk-panel' });
  const selectedText = h('span', { 'aria-live': 'polite' });
  const onSelect = () => { selectedText.textContent = `${state.selected.size} selected`; };
  bulkBar.append(selectedText,
    canDeactivate ? button('Deactivate selected', () => bulkDeactivate(bulkPanel, reload)) : null,
    canDelete ? button('Delete selected…', () => bulkDelete(bulkPanel, reload), { class: 'danger-outline' }) : null);
  onSelect();

  async function reload(restart = false) {
    if (restart) { state.cursors = [null]; state.page = 0; }
    results.replaceChildren(loading('users'));
    try {
      const data = await gql(USERS, { filter, orderBy: state.orderBy, first: PAGE_SIZE, after: state.cursors[state.page] });
      renderPage(data.users);
    } catch (error) {
      results.replaceChildren(notice('error', describe(error)));
    }
  }

  function renderPage(users) {
    const headers = [
      bulk ? h('th', { scope: 'col' }, h('span', { class: 'sr-only' }, 'Select')) : null,
      sortHeader('Username', 'username', reload), 'Email', 'First name', 'Last name', 'Staff', 'Active', 'Superuser',
      sortHeader('Date joined', 'dateJoined', reload), sortHeader('Last login', 'lastLogin', reload), 'Deactivated',
    ].filter(Boolean);
    const from = state.page * PAGE_SIZE + 1;
    const to = state.page * PAGE_SIZE + users.nodes.length;
    const prev = button('← Previous', () => { state.page -= 1; reload(); }, { disabled: state.page === 0 });
    const next = button('Next →', () => {
      state.cursors[state.page + 1] = users.pageInfo.endCursor;
      state.page += 1;
      reload();
    }, { disabled: !users.pageInfo.hasNextPage });
    results.replaceChildren(
      h('p', { class: 'count', id: 'total' }, `${users.totalCount} user${users.totalCount === 1 ? '' : 's'}`,
        users.nodes.length ? ` · showing ${from}–${to}` : ''),
      users.nodes.length ? table('Users', headers, users.nodes.map((u) => row(u, bulk, onSelect))) : h('p', {}, 'No user matches.'),
      h('nav', { class: 'pager', 'aria-label': 'Pages' }, prev, next));
  }

  show('Users', filterForm((f) => { filter = f; reload(true); }, groups), bulkBar, bulkPanel, results);
  await reload(true);
}

const BULK_DEACTIVATE = `mutation ConsoleBulkDeactivate($ids: [ID!], $input: DeactivateUserInput) {
  deactivateUsers(ids: $ids, input: $input) { deactivated { id username } skipped { id code } }
}`;

function bulkDeactivate(panel, reload) {
  const ids = [...state.selected];
  if (!ids.length) { panel.replaceChildren(notice('error', 'Select users first.')); return; }
  const groups = checkbox('Remove from groups', { checked: true });
  const perms = checkbox('Remove direct permissions', { checked: true });
  const staff = checkbox('Revoke staff status');
  const reason = field('Reason', { maxlength: '500' });
  const result = h('div', { class: 'result' });
  const go = button(`Deactivate ${ids.length} user${ids.length === 1 ? '' : 's'}`, async () => {
    try {
      const input = { removeFromGroups: groups.input.checked, removePermissions: perms.input.checked, revokeStaff: staff.input.checked, reason: reason.input.value || null };
      const { deactivateUsers: out } = await busy(go, () => gql(BULK_DEACTIVATE, { ids, input }));
      result.replaceChildren(notice('ok', `Deactivated: ${out.deactivated.map((u) => u.username).join(', ') || 'nobody'}.`,
        out.skipped.length ? ` Skipped ${out.skipped.length}: ${out.skipped.map((s) => s.code).join(', ')}.` : ''));
      state.selected.clear();
      reload();
    } catch (error) {
      result.replaceChildren(notice('error', describe(error)));
    }
  }, { class: 'primary' });
  panel.replaceChildren(section('Deactivate the selected users', groups.el, perms.el, staff.el, reason.el, go, result));
}

const BULK_DELETE = `mutation ConsoleBulkDelete($ids: [ID!], $policy: DeletePolicy, $dryRun: Boolean, $planToken: String, $reason: String) {
  deleteUsers(ids: $ids, policy: $policy, dryRun: $dryRun, planToken: $planToken, reason: $reason) {
    plan { ${PLAN_FIELDS} } deleted skipped { id code }
  }
}`;

function bulkDelete(panel, reload) {
  const ids = [...state.selected];
  if (!ids.length) { panel.replaceChildren(notice('error', 'Select users first.')); return; }
  const plans = planPanel({
    noun: `the selected users`,
    policies: ['PROTECT', 'SET_NULL', 'CASCADE'],
    preview: async (policy) => (await gql(BULK_DELETE, { ids, policy, dryRun: true })).deleteUsers.plan,
    execute: async (policy, planToken, reason) => (await gql(BULK_DELETE, { ids, policy, planToken, reason })).deleteUsers,
    done: (out, box) => {
      box.replaceChildren(notice('ok', `Deleted ${out.deleted.length} user${out.deleted.length === 1 ? '' : 's'}.`,
        out.skipped.length ? ` Skipped ${out.skipped.length}: ${out.skipped.map((s) => s.code).join(', ')}.` : ''));
      state.selected.clear();
      reload(true);
    },
  });
  panel.replaceChildren(section(`Delete ${ids.length} selected user${ids.length === 1 ? '' : 's'}`,
    h('p', {}, 'Users that PROTECT keeps, or that you may not delete, are skipped and listed.'), plans));
}
