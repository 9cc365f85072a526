// Subscriptions: webhooks and Slack URLs for build events. The signing secret is shown once.
import { h, when, add } from '../dom.js';
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
      s.name,
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

