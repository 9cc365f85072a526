// The instance administrator's page: the admin token is pasted once and kept in this tab's
// sessionStorage; versions, ping, the test task, maintenance mode, organizations.
import { h, clear, details, when, add, fill } from '../dom.js';
import { form, confirmButton, notice, oneTime, showOnce } from '../forms.js';
import * as api from '../api.js';
import { pagedList } from './list.js';

export async function render(view, params, options = {}) {
  clear(view);
  if (!api.admin.token()) {
    tokenForm(view, options.message);
    return;
  }
  let versions;
  try {
    versions = (await api.admin.call('GET', '/srv/v1/versions')).versions;
  } catch (err) {
    if (err.status === 401) {
      api.admin.forget();
      tokenForm(view, `The admin token was refused: ${err.message}`);
      return;
    }
    throw err;
  }
  add(view,
    h('div', { class: 'page-head' },
      h('h1', { text: 'Instance administration' }),
      h('button', { type: 'button', text: 'Forget admin token', onclick: () => { api.admin.forget(); render(view); } })),
    h('div', { class: 'columns' },
      h('section', {}, h('h2', { text: 'Versions' }), details([
        ['Server', versions.edge],
        ['Engine', versions.engine ?? 'not known until a test task has run'],
        ['API revision', versions.api],
        ['Database schema', String(versions.schema)],
      ]), pingButton()),
      helloForm()),
    await maintenanceSection(),
    orgsSection());
}

function tokenForm(view, message) {
  add(view, h('div', { class: 'panel narrow' },
    h('h1', { text: 'Instance administration' }),
    message ? notice(message, 'error') : null,
    h('p', {}, 'Paste an admin token, made on the server with ', h('code', { text: 'rockit-edge admin-token --name NAME' }),
      '. It is kept in this browser tab only, until the tab is closed.'),
    form({
      submit: 'Continue',
      fields: [{ name: 'token', label: 'Admin token', type: 'password', required: true, autocomplete: 'off' }],
      onSubmit: async ({ token }) => {
        api.admin.remember(token.trim());
        try {
          await api.admin.call('GET', '/srv/v1/versions');
        } catch (err) {
          api.admin.forget();
          err.param = 'token';
          throw err;
        }
        render(view);
      },
    })));
  view.querySelector('input')?.focus();
}

function pingButton() {
  const out = h('p', { class: 'result', role: 'status' });
  return h('div', {},
    h('button', {
      type: 'button',
      text: 'Ping',
      onclick: async () => {
        try {
          const answer = await api.admin.call('POST', '/srv/v1/ping', {});
          out.textContent = `${answer.message} at ${new Date(answer.time * 1000).toLocaleString()} (version ${answer.version})`;
        } catch (err) {
          out.textContent = err.message;
        }
      },
    }),
    out);
}

function helloForm() {
  const out = h('div', { class: 'result', role: 'status' });
  return h('section', {},
    form({
      title: 'Test task',
      submit: 'Run test task',
      fields: [
        { name: 'message', label: 'Message', required: true, value: 'hello' },
        { name: 'maintenance', label: 'Run even in maintenance mode', type: 'checkbox' },
      ],
      onSubmit: async ({ message, maintenance }) => {
        fill(out, 'Running…');
        try {
          const { task } = await api.admin.call('POST', '/srv/v1/hello', { message, maintenance });
          fill(out, details([
            ['Task', task.name],
            ['Status', task.status],
            ['Output', task.output === undefined ? null : h('code', { text: JSON.stringify(task.output) })],
            ['Ended', when(task.ended)],
          ]));
        } catch (err) {
          clear(out);
          throw err;
        }
      },
    }),
    out);
}

async function maintenanceSection() {
  const section = h('section', {});
  const show = async () => {
    const { maintenance } = await api.admin.call('GET', '/srv/v1/maintenance');
    fill(section,
      h('h2', { text: 'Maintenance mode' }),
      notice(maintenance.enabled
        ? `On: the API answers 503 to organizations.${maintenance.message ? ` Message: ${maintenance.message}` : ''}`
        : 'Off: the API serves requests.', maintenance.enabled ? 'error' : 'info'),
      form({
        submit: maintenance.enabled ? 'Turn maintenance off' : 'Turn maintenance on',
        fields: maintenance.enabled ? [] : [
          { name: 'message', label: 'Message for clients', value: '' },
          { name: 'retryAfter', label: 'Retry after (seconds)', type: 'number', value: 900, min: 1 },
        ],
        onSubmit: async ({ message, retryAfter }) => {
          const body = { enabled: !maintenance.enabled };
          if (message) body.message = message;
          if (retryAfter !== undefined) body.retryAfter = retryAfter;
          await api.admin.call('POST', '/srv/v1/maintenance', body);
          await show();
        },
      }));
  };
  await show();
  return section;
}

function orgsSection() {
  const holder = h('div');
  const orgs = pagedList({
    caption: 'Organizations',
    headers: ['Name', 'Label', 'Users', 'Apps', 'Created', ''],
    searchLabel: 'Search organizations by name',
    load: async ({ offset, limit, search }) => {
      const answer = await api.admin.call('GET', `/adm/v1/orgs${api.query({ offset, limit, name: search })}`);
      return { items: answer.orgs, total: answer.total };
    },
    row: (org) => [
      org.name,
      org.label,
      String(org.users ?? '—'),
      String(org.apps ?? '—'),
      when(org.created),
      confirmButton('Delete', `Delete ${org.name}, all its data and its published files?`, async () => {
        await api.admin.call('DELETE', `/adm/v1/orgs/${encodeURIComponent(org.name)}?prune=true`);
        orgs.reload();
      }),
    ],
  });
  return h('section', {},
    h('h2', { text: 'Organizations' }),
    h('details', { class: 'create' },
      h('summary', { text: 'New organization' }),
      form({
        submit: 'Create organization',
        fields: [
          { name: 'name', label: 'Name', required: true, hint: '2 to 50 letters, digits or _.' },
          { name: 'label', label: 'Label' },
          { name: 'admin.username', label: 'First administrator’s username', value: 'admin' },
        ],
        onSubmit: async (values, formEl) => {
          const body = { name: values.name, admin: { username: values['admin.username'] || 'admin' } };
          if (values.label) body.label = values.label;
          const answer = await api.admin.call('POST', '/adm/v1/orgs', body);
          formEl.reset();
          showOnce(holder, oneTime(`First administrator of ${answer.org.name}`, [
            ['Username', answer.admin.username],
            ['Initial password', answer.admin.initialPassword],
          ]), formEl);
          orgs.reload();
        },
      })),
    holder,
    orgs.element);
}
