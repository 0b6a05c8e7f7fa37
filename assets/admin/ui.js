// Small DOM helpers shared by every page: building elements without
// parsing HTML strings (so nothing from the server is ever read as markup), the
// status line, buttons that show they are busy, dates, labelled fields.

import { describe } from './messages.js';

// h('a', { href: '#/x', class: 'y', onclick: f }, 'text', child…)
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === false || value === null || value === undefined) continue;
    if (key.startsWith('on')) el.addEventListener(key.slice(2), value);
    else if (key === 'class') el.className = value;
    else if (key === 'dataset') Object.assign(el.dataset, value);
    else if (value === true) el.setAttribute(key, '');
    else el.setAttribute(key, value);
  }
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

export function main() {
  return document.getElementById('main');
}

// Replaces the page content and moves focus to its heading, so keyboard and
// screen-reader users land on the new page.
export function show(title, ...content) {
  const heading = h('h1', { tabindex: '-1' }, title);
  main().replaceChildren(heading, ...content);
  document.title = `${title} · memberdesk admin`;
  heading.focus();
}

export function status(message, kind = 'info') {
  const el = document.getElementById('status');
  el.className = `status ${kind}`;
  el.textContent = message;
}

export function clearStatus() {
  status('', 'info');
}

export function fail(error) {
  status(describe(error), 'error');
}

// A notice inside a page (a result, a refusal), announced to screen readers.
export function notice(kind, ...content) {
  return h('div', { class: `notice ${kind}`, role: kind === 'error' ? 'alert' : 'status' }, ...content);
}

// Runs `work` with the button disabled and a spinner, so a long operation
// (a bulk deletion, a plan over millions of rows) never looks frozen and
// cannot be sent twice.
export async function busy(button, work) {
  const label = button.textContent;
  button.disabled = true;
  button.setAttribute('aria-busy', 'true');
  button.replaceChildren(h('span', { class: 'spinner', 'aria-hidden': 'true' }), ` ${label}…`);
  try {
    return await work();
  } finally {
    button.disabled = false;
    button.removeAttribute('aria-busy');
    button.textContent = label;
  }
}

export function loading(what) {
  return h('p', { class: 'loading', role: 'status' }, h('span', { class: 'spinner', 'aria-hidden': 'true' }), ` Loading ${what}…`);
}

export function when(value) {
  if (!value) return '—';
  return new Date(value).toLocaleString('en-GB', { dateStyle: 'medium', timeStyle: 'short' });
}

export function yesNo(value) {
  if (value === null || value === undefined) return '—';
  return h('span', { class: value ? 'yes' : 'no' }, value ? 'Yes' : 'No');
}

let fieldIds = 0;

// A labelled input: the label is tied to the field, so it is read out and
// clicking it focuses the field.
export function field(label, attrs = {}) {
  const id = attrs.id || `f${++fieldIds}`;
  const input = h(attrs.tag || 'input', { ...attrs, tag: null, id });
  return { input, el: h('div', { class: 'field' }, h('label', { for: id }, label), input) };
}

export function checkbox(label, attrs = {}) {
  const id = attrs.id || `f${++fieldIds}`;
  const input = h('input', { type: 'checkbox', ...attrs, id });
  return { input, el: h('div', { class: 'check' }, input, h('label', { for: id }, label)) };
}

export function select(label, options, attrs = {}) {
  const id = attrs.id || `f${++fieldIds}`;
  const input = h('select', { ...attrs, id },
    options.map(([value, text]) => h('option', { value }, text)));
  return { input, el: h('div', { class: 'field' }, h('label', { for: id }, label), input) };
}

export function button(text, onclick, attrs = {}) {
  return h('button', { type: 'button', ...attrs, onclick }, text);
}

export function section(title, ...content) {
  return h('section', { class: 'card', 'aria-label': title }, h('h2', {}, title), ...content);
}

export function table(caption, headers, rows) {
  return h('div', { class: 'table-wrap' },
    h('table', {},
      h('caption', { class: 'sr-only' }, caption),
      h('thead', {}, h('tr', {}, headers.map((x) => (x instanceof Node ? x : h('th', { scope: 'col' }, x))))),
      h('tbody', {}, rows)));
}

// Offers `json` as a file download, built in the page (no URL holds data).
export function download(filename, json) {
  const blob = new Blob([JSON.stringify(json, null, 2)], { type: 'application/json' });
  const url = URL.createObjectURL(blob);
  const link = h('a', { href: url, download: filename });
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
}
