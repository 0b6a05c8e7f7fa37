// The deletion confirmation shared by users, groups, questions and bulk
// selections: choose a policy, see the plan's counts (what is refused,
// deleted, kept detached), confirm with the plan's token. The server
// carries out exactly the plan shown or nothing: a PLAN_CHANGED answer
// shows "the data changed since you looked" with the new plan to confirm.

import { h, notice, busy, field, button } from './ui.js';
import { describe } from './messages.js';

export const POLICY_TEXT = {
  PROTECT: 'PROTECT: refuse while other records depend on it.',
  SET_NULL: 'SET_NULL: keep the contributions, detached (votes show "Deleted user").',
  CASCADE: 'CASCADE: delete what cannot stand alone with it.',
};

const RELATION_TEXT = {
  votes: 'votes', questions: 'questions', sessions: 'sessions', groupMemberships: 'group memberships',
  userPermissions: 'direct permissions', deactivations: 'deactivation records', auditEntries: 'audit entries (as actor)',
  auditEntriesAsTarget: 'audit entries (about them)', members: 'members', groupPermissions: 'group permissions',
  rememberedMemberships: 'memberships remembered by deactivations', choices: 'choices',
};

const count = (n) => Number(n).toLocaleString('en-GB');

function relations(title, rows, kind) {
  if (!rows.length) return null;
  return h('div', { class: `plan-part ${kind}` }, h('h3', {}, title),
    h('ul', {}, rows.map((r) => h('li', {}, h('strong', {}, count(r.count)), ' ', RELATION_TEXT[r.relation] || r.relation))));
}

export function describePlan(plan) {
  const refused = !plan.allowed;
  return h('div', { class: 'plan', 'data-policy': plan.policy, 'data-allowed': String(plan.allowed) },
    refused
      ? notice('error', h('strong', {}, `Refused under ${plan.policy}`), ': memberdesk will not delete this while these records depend on it. Choose another policy, or deal with them first.')
      : notice('info', `Under ${plan.policy}, confirming deletes ${count(plan.targetCount)} record${plan.targetCount === 1 ? '' : 's'} and:`),
    relations('Blocking the deletion', plan.protected, 'protected'),
    relations('Deleted with it', plan.deleted, 'deleted'),
    relations('Kept, detached', plan.detached, 'detached'),
    !plan.protected.length && !plan.deleted.length && !plan.detached.length ? h('p', {}, 'Nothing else refers to it.') : null);
}

// The panel: `preview(policy)` answers a plan, `execute(policy, token,
// reason)` deletes, `done(result)` shows what happened.
let panels = 0;

export function planPanel({ noun, policies, preview, execute, done }) {
  panels += 1;
  const group = `policy-${panels}`;
  const radios = policies.map((policy, i) => {
    const id = `${group}-${policy}`;
    return h('div', { class: 'check' },
      h('input', { type: 'radio', name: group, id, value: policy, checked: i === 0 }),
      h('label', { for: id }, POLICY_TEXT[policy]));
  });
  const chosen = () => radios.map((r) => r.querySelector('input')).find((i) => i.checked).value;
  const planBox = h('div', { class: 'plan-box', 'aria-live': 'polite' });
  const result = h('div', { class: 'result' });
  const reason = field('Reason (kept in the audit log)', { name: 'reason', maxlength: '500' });
  let current = null;
  const confirm = button(`Delete ${noun}`, async () => {
    result.replaceChildren();
    try {
      const outcome = await busy(confirm, () => execute(current.policy, current.token, reason.input.value || null));
      confirm.hidden = true;
      done(outcome, result);
    } catch (error) {
      result.replaceChildren(notice('error', describe(error)));
      if (error.code === 'PLAN_CHANGED') {
        result.append(h('p', { class: 'changed' }, 'The data changed since you looked: the plan below is the new one.'));
        await load();
      }
    }
  }, { class: 'danger', hidden: true });
  async function load() {
    planBox.replaceChildren(h('p', { class: 'loading' }, h('span', { class: 'spinner', 'aria-hidden': 'true' }), ' Counting what the deletion touches…'));
    confirm.hidden = true;
    try {
      current = await preview(chosen());
      planBox.replaceChildren(describePlan(current));
      confirm.hidden = !current.allowed;
    } catch (error) {
      planBox.replaceChildren(notice('error', describe(error)));
    }
  }
  const previewButton = button('Show the plan', () => {
    result.replaceChildren();
    return busy(previewButton, load);
  });
  for (const r of radios) r.querySelector('input').addEventListener('change', () => { result.replaceChildren(); load(); });
  const panel = h('div', { class: 'plan-panel' },
    h('fieldset', {}, h('legend', {}, 'What happens to the records that refer to it'), radios),
    previewButton, planBox, reason.el, confirm, result);
  load();
  return panel;
}

export const PLAN_FIELDS = 'policy allowed targetCount token protected { relation count } deleted { relation count } detached { relation count }';
