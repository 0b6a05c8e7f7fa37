// Questions with their tallies; archive (soft delete) and restore; delete
// through a plan (PROTECT refuses while votes exist, CASCADE takes the
// choices and votes with it).

import { gql } from './api.js';
import { h, show, button, busy, notice, when, section, status, field } from './ui.js';
import { describe } from './messages.js';
import { caller } from './app.js';
import { planPanel, PLAN_FIELDS } from './plan.js';

const QUESTIONS = `query ConsoleQuestions {
  questions(includeArchived: true) { id text pubDate archivedAt createdBy { username } choices { id text voteCount } }
}`;
const ARCHIVE = 'mutation ConsoleArchive($id: ID!, $reason: String) { archiveQuestion(id: $id, reason: $reason) { id archivedAt } }';
const RESTORE = 'mutation ConsoleRestore($id: ID!) { restoreQuestion(id: $id) { id archivedAt } }';
const PLAN = `query ConsoleQuestionPlan($id: ID!, $policy: DeletePolicy) { deletionPlan(id: $id, policy: $policy) { ${PLAN_FIELDS} } }`;
const DELETE = `mutation ConsoleDeleteQuestion($id: ID!, $policy: DeletePolicy, $planToken: String, $reason: String) {
  deleteQuestion(id: $id, policy: $policy, planToken: $planToken, reason: $reason) { deleted }
}`;

function tallies(question) {
  const total = question.choices.reduce((sum, c) => sum + c.voteCount, 0);
  return h('div', {},
    h('p', { class: 'tally' }, h('strong', { class: 'total-votes' }, String(total)), ` vote${total === 1 ? '' : 's'}`),
    h('ul', { class: 'choices' }, question.choices.map((c) => {
      const share = total ? Math.round((100 * c.voteCount) / total) : 0;
      return h('li', {}, h('span', { class: 'choice' }, c.text), ' ',
        h('meter', { min: '0', max: String(Math.max(total, 1)), value: String(c.voteCount), 'aria-label': `${c.text}: ${c.voteCount} votes` }),
        ` ${c.voteCount} (${share}%)`);
    })));
}

function actions(question, reload) {
  if (!caller.can('polls.delete_question')) return null;
  const box = h('div', { class: 'question-actions' });
  const archived = Boolean(question.archivedAt);
  const reason = field('Reason', { maxlength: '500' });
  const toggle = button(archived ? 'Restore' : 'Archive', async () => {
    try {
      await busy(toggle, () => (archived ? gql(RESTORE, { id: question.id }) : gql(ARCHIVE, { id: question.id, reason: reason.input.value || null })));
      await reload(archived ? 'The question is live again.' : 'The question is archived: hidden and closed to votes, its tallies kept.');
    } catch (error) {
      status(describe(error), 'error');
    }
  });
  const panelBox = h('div', {});
  const del = button('Delete…', () => {
    del.hidden = true;
    panelBox.replaceChildren(planPanel({
      noun: 'this question',
      policies: ['PROTECT', 'CASCADE'],
      preview: async (policy) => (await gql(PLAN, { id: question.id, policy })).deletionPlan,
      execute: async (policy, planToken, r) => (await gql(DELETE, { id: question.id, policy, planToken, reason: r })).deleteQuestion,
      done: () => reload('The question is deleted.'),
    }));
  }, { class: 'danger-outline' });
  box.append(archived ? null : reason.el, toggle, ' ', del, panelBox);
  return box;
}

export async function questionsPage() {
  const reload = async (message) => { await questionsPage(); if (message) status(message, 'ok'); };
  const { questions } = await gql(QUESTIONS);
  show('Questions', h('p', { class: 'count' }, `${questions.length} question${questions.length === 1 ? '' : 's'}`),
    ...questions.map((q) => {
      const card = section(q.text,
        h('p', { class: 'meta' }, `Published ${when(q.pubDate)}`, q.createdBy ? ` by ${q.createdBy.username}` : '',
          q.archivedAt ? h('span', { class: 'badge inactive' }, `Archived ${when(q.archivedAt)}`) : null),
        tallies(q), actions(q, reload));
      card.dataset.question = q.text;
      return card;
    }));
}
