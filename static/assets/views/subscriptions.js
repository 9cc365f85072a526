// Subscriptions: webhooks and Slack URLs for build events. The signing secret is shown once; a
// subscription's page lists its newest deliveries, so an operator sees why a receiver got nothing.
import { h, when, add, fill, link, seg, details, table, go } from '../dom.js';
import { form, confirmButton, notice, oneTime, showOnce } from '../forms.js';
import * as api from '../api.js';
import { can, CREATE, DELETE } from '../permissions.js';
import { pagedList } from './list.js';

const TYPES = ['dltar', 'mkraw', 'deploy'];
const EVENTS = ['submit', 'begin', 'end', 'error'];

function eventsText(events) {
  return events && events.length ? events.map((e) => `${e.type}:${e.event}`).join(', ') : 'every event';
}

export async function list(view) {
  const subscriptions = pagedList({
    caption: 'Subscriptions',
    headers: ['Name', 'Type', 'URL', 'Events', 'Created', ''],
    searchLabel: 'Search subscriptions by name',
    load: async ({ offset, limit, search }) => {
      const answer = await api.call('GET', `/be/v1/subscriptions${api.query({ offset, limit, name: search })}`);
      return { items: answer.subscriptions, total: answer.total };
    },
    row: (s) => [
      link(`subscriptions/${seg(s.name)}`, s.name),
      s.type,
      h('span', { class: 'url', text: s.url }),
      eventsText(s.events),
      when(s.created),
      can('subscriptions', DELETE)
        ? confirmButton('Delete', `Delete ${s.name}?`, async () => {
          await api.call('DELETE', `/be/v1/subscriptions/${encodeURIComponent(s.name)}`);
          subscriptions.reload();
        })
        : '',
    ],
  });
  add(view, h('div', { class: 'page-head' }, h('h1', { text: 'Subscriptions' })));
  if (can('subscriptions', CREATE)) {
    const holder = h('div');
    add(view, h('details', { class: 'create' },
      h('summary', { text: 'New subscription' }),
      form({
        submit: 'Create subscription',
        fields: [
          { name: 'name', label: 'Name', required: true, hint: '2 to 50 letters, digits or _.' },
          { name: 'type', label: 'Type', type: 'select', options: [['webhook', 'Webhook'], ['slack', 'Slack']], value: 'webhook' },
          { name: 'url', label: 'URL', type: 'url', required: true, placeholder: 'https://example.com/hooks/rockit' },
          {
            name: 'events',
            label: 'Events (none ticked: every event)',
            type: 'checkboxes',
            options: TYPES.flatMap((type) => EVENTS.map((event) => [`${type}:${event}`, `${type} ${event}`])),
            value: [],
          },
        ],
        onSubmit: async ({ name, type, url, events }, formEl) => {
          const body = { name, type, url, events: events.map((v) => ({ type: v.split(':')[0], event: v.split(':')[1] })) };
          const answer = await api.call('POST', '/be/v1/subscriptions', body);
          formEl.reset();
          showOnce(holder, answer.secret
            ? oneTime(`Signing secret of ${answer.subscription.name}`, [['Secret', answer.secret]])
            : notice(`Subscription ${answer.subscription.name} created.`), formEl);
          subscriptions.reload();
        },
      })), holder);
  }
  add(view, subscriptions.element,
    h('p', { class: 'hint', text: 'Deliveries are signed with the secret in the x-rockit-subscriptions header.' }));
}


const STATUS_TONE = { delivered: 'good', failed: 'bad', pending: 'neutral' };

/** A delivery's status as a badge: delivered, pending (being retried) or failed (given up). */
function statusBadge(status) {
  return h('span', { class: `badge badge-${STATUS_TONE[status] || 'neutral'}`, text: status });
}

/** One delivery as table cells; every server text goes in as text. */
function deliveryRow(d) {
  // The error text names the receiver's answer already; the bare status only when there is none.
  const error = d.lastError || (d.lastStatus === null || d.lastStatus === undefined ? '—' : `HTTP ${d.lastStatus}`);
  // Not tried yet: it waits its turn behind the app's earlier events, so no time is promised.
  const next = d.status !== 'pending' ? '—' : d.attempts === 0 ? 'queued' : when(d.nextAttempt);
  return [
    `${d.type} ${d.event}`,
    d.appName ? `${d.taskName} (${d.appName})` : d.taskName,
    statusBadge(d.status),
    String(d.attempts),
    h('span', { class: 'delivery-error', text: error }),
    next,
    d.finished ? when(d.finished) : '—',
  ];
}

export async function page(view, { name }) {
  const { subscription: s } = await api.call('GET', `/be/v1/subscriptions/${seg(name)}`);
  fill(view,
    h('div', { class: 'page-head' },
      h('p', { class: 'crumbs' }, link('subscriptions', 'Subscriptions'), ' / ', h('span', { text: s.name })),
      h('h1', { text: s.name })),
    details([
      ['Type', s.type],
      ['URL', h('span', { class: 'url', text: s.url })],
      ['Events', eventsText(s.events)],
      ['Created', when(s.created)],
      ['Updated', when(s.updated)],
    ]),
    h('section', { class: 'deliveries' },
      h('div', { class: 'page-head' },
        h('h2', { text: 'Last deliveries' }),
        h('button', { type: 'button', text: 'Refresh deliveries', onclick: () => page(view, { name: s.name }) })),
      table('Last deliveries, newest first',
        ['Event', 'Task', 'Status', 'Attempts', 'Last error', 'Next attempt', 'Finished'],
        (s.deliveries || []).map(deliveryRow),
        { empty: 'No deliveries yet.' }),
      h('p', { class: 'hint', text: 'The newest 50, newest first. A pending delivery holds the app\'s later events back until it is delivered or given up.' })),
    can('subscriptions', DELETE) ? h('section', { class: 'danger-zone' },
      h('h2', { text: 'Delete this subscription' }),
      confirmButton('Delete subscription', `Delete ${s.name}?`, async () => {
        await api.call('DELETE', `/be/v1/subscriptions/${seg(s.name)}`);
        go('subscriptions');
      })) : null);
}
