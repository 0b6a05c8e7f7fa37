// Groups: the list with member counts and permissions, and one group's page
// (members by cursor page, its permissions, deletion through a plan).

import { gql } from './api.js';
import { h, show, button, busy, notice, table, section, checkbox, status } from './ui.js';
import { describe } from './messages.js';
import { caller } from './app.js';
import { planPanel, PLAN_FIELDS } from './plan.js';

const GROUPS = 'query ConsoleGroups { groups { id name memberCount permissions { key } } }';

export async function groupsPage() {
  const { groups } = await gql(GROUPS);
  show('Groups', h('p', { class: 'count' }, `${groups.length} group${groups.length === 1 ? '' : 's'}`),
    table('Groups', ['Name', 'Members', 'Permissions'], groups.map((g) => h('tr', {},
      h('th', { scope: 'row' }, h('a', { href: `#/group/${encodeURIComponent(g.id)}` }, g.name)),
      h('td', {}, String(g.memberCount)),
      h('td', {}, g.permissions.map((p) => p.key).join(', ') || 'none')))));
}

const GROUP = `query ConsoleGroup($id: ID!, $after: String) {
  group(id: $id) { id name memberCount permissions { key }
    members(first: 50, after: $after) { totalCount pageInfo { hasNextPage endCursor } nodes { id username } } }
}`;

function membersSection(group) {
  const list = h('ul', { class: 'members' });
  const more = button('More members', () => busy(more, () => page(more.dataset.after)));
  const add = (members) => {
    list.append(...members.nodes.map((u) => h('li', {}, h('a', { href: `#/user/${encodeURIComponent(u.id)}` }, u.username))));
    more.hidden = !members.pageInfo.hasNextPage;
    more.dataset.after = members.pageInfo.endCursor || '';
  };
  async function page(after) {
    try { add((await gql(GROUP, { id: group.id, after })).group.members); } catch (error) { list.append(h('li', {}, notice('error', describe(error)))); }
  }
  if (group.members) add(group.members);
  return section(`Members (${group.memberCount})`, group.memberCount ? list : h('p', {}, 'No member.'), more);
}

const SET_PERMISSIONS = `mutation ConsoleSetGroupPermissions($groupId: ID!, $permissions: [String!]!) {
  setGroupPermissions(groupId: $groupId, permissions: $permissions) { id }
}`;

async function permissionsSection(group, reload) {
  const has = new Set(group.permissions.map((p) => p.key));
  if (!caller.can('auth.change_group')) return section('Permissions', h('p', {}, [...has].join(', ') || 'none'));
  const { permissions } = await gql('query ConsoleGroupPermissionList { permissions { key name } }');
  const boxes = permissions.map((p) => [p.key, checkbox(`${p.key} (${p.name})`, { checked: has.has(p.key), disabled: !caller.can(p.key) && !has.has(p.key) })]);
  const result = h('div', { class: 'result' });
  const save = button('Save permissions', async () => {
    const chosen = boxes.filter(([, b]) => b.input.checked).map(([key]) => key);
    try {
      await busy(save, () => gql(SET_PERMISSIONS, { groupId: group.id, permissions: chosen }));
      await reload('The group\'s permissions are saved.');
    } catch (error) {
      result.replaceChildren(notice('error', describe(error)));
    }
  }, { class: 'primary' });
  return section('Permissions', h('fieldset', { class: 'columns' }, h('legend', {}, 'What every member holds'), boxes.map(([, b]) => b.el)), save, result);
}

const GROUP_PLAN = `query ConsoleGroupPlan($id: ID!, $policy: DeletePolicy) { deletionPlan(id: $id, policy: $policy) { ${PLAN_FIELDS} } }`;
const DELETE_GROUP = `mutation ConsoleDeleteGroup($id: ID!, $policy: DeletePolicy, $planToken: String, $reason: String) {
  deleteGroup(id: $id, policy: $policy, planToken: $planToken, reason: $reason) { deleted }
}`;

export async function groupPage(id) {
  const reload = async (message) => { await groupPage(id); if (message) status(message, 'ok'); };
  const { data } = await gql(GROUP, { id }, { partial: true });
  const group = data.group;
  if (!group) { show('Group not found', notice('error', 'This group no longer exists.')); return; }
  const parts = [membersSection(group), await permissionsSection(group, reload)];
  if (caller.can('auth.delete_group')) {
    parts.push(section('Delete this group', planPanel({
      noun: group.name,
      policies: ['PROTECT', 'SET_NULL', 'CASCADE'],
      preview: async (policy) => (await gql(GROUP_PLAN, { id, policy })).deletionPlan,
      execute: async (policy, planToken, reason) => (await gql(DELETE_GROUP, { id, policy, planToken, reason })).deleteGroup,
      done: (_out, box) => box.replaceChildren(notice('ok', `The group ${group.name} is deleted. `, h('a', { href: '#/groups' }, 'Back to the groups'))),
    })));
  }
  show(`Group: ${group.name}`, h('p', {}, h('a', { href: '#/groups' }, '← All groups')), ...parts);
}

