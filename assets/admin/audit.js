// The audit log: filters by actor, target, action and time, newest first,
// more entries on demand (cursor pages), each entry's details readable.

import { gql } from './api.js';
import { h, show, field, select, button, busy, notice, table, loading } from './ui.js';
import { describe } from './messages.js';
import { auditRows } from './user.js';

const ACTIONS = ['LOGIN', 'LOGIN_FAILED', 'LOGOUT', 'USER_CREATED', 'USER_UPDATED', 'PASSWORD_CHANGED', 'GROUP_CREATED',
  'GROUP_PERMISSIONS_SET', 'GROUP_DELETED', 'USER_ADDED_TO_GROUP', 'USER_REMOVED_FROM_GROUP', 'PERMISSION_GRANTED',
  'PERMISSION_REVOKED', 'QUESTION_CREATED', 'QUESTION_DELETED', 'CHOICE_DELETED', 'QUESTION_ARCHIVED', 'QUESTION_RESTORED',
  'USER_DEACTIVATED', 'USER_REACTIVATED', 'USER_DELETED', 'USER_ANONYMIZED', 'USER_DATA_EXPORTED', 'ERASURE_REQUESTED',
  'ERASURE_CANCELLED'];

const AUDIT = `query ConsoleAudit($filter: AuditFilter, $after: String) {
  auditLog(filter: $filter, first: 50, after: $after) {
    totalCount pageInfo { hasNextPage endCursor }
    nodes { id at action actorUsername targetRepr reason details }
  }
}`;

export async function auditPage() {
  const actor = field('Actor (username)', { name: 'actorUsername' });
  const target = field('About (username)', { name: 'targetUsername' });
  const action = select('Action', [['', 'Any'], ...ACTIONS.map((a) => [a, a])], { name: 'action' });
  const since = field('Since', { type: 'datetime-local', name: 'since' });
  const until = field('Until', { type: 'datetime-local', name: 'until' });
  const results = h('div', {});
  const form = h('form', { class: 'filters', role: 'search', 'aria-label': 'Filter the audit log' },
    actor.el, target.el, action.el, since.el, until.el, h('button', { type: 'submit' }, 'Search'));
  const iso = (v) => (v ? new Date(v).toISOString() : undefined);
  const read = () => Object.fromEntries(Object.entries({
    actorUsername: actor.input.value.trim() || undefined, targetUsername: target.input.value.trim() || undefined,
    action: action.input.value || undefined, since: iso(since.input.value), until: iso(until.input.value),
  }).filter(([, v]) => v !== undefined));
  async function search() {
    results.replaceChildren(loading('the audit log'));
    const filter = read();
    try {
      const { auditLog } = await gql(AUDIT, { filter });
      const body = h('tbody', {}, auditRows(auditLog.nodes));
      const more = button('More entries', async () => {
        const page = (await busy(more, () => gql(AUDIT, { filter, after: more.dataset.after }))).auditLog;
        body.append(...auditRows(page.nodes));
        more.dataset.after = page.pageInfo.endCursor || '';
        more.hidden = !page.pageInfo.hasNextPage;
      });
      more.dataset.after = auditLog.pageInfo.endCursor || '';
      more.hidden = !auditLog.pageInfo.hasNextPage;
      const t = table('Audit log', ['When', 'Action', 'By', 'About', 'Reason', 'Details'], []);
      t.querySelector('tbody').replaceWith(body);
      results.replaceChildren(h('p', { class: 'count' }, `${auditLog.totalCount} entr${auditLog.totalCount === 1 ? 'y' : 'ies'}`), t, more);
    } catch (error) {
      results.replaceChildren(notice('error', describe(error)));
    }
  }
  form.addEventListener('submit', (event) => { event.preventDefault(); search(); });
  show('Audit log', form, results);
  await search();
}
