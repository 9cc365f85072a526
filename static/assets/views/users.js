// Users and machine accounts: list, create (initial password or API key shown once), change
// profile and roles, reset credentials, delete; a machine account's API keys; one's own password.
import { h, go, link, seg, table, details, when, add, fill } from '../dom.js';
import { form, confirmButton, notice, oneTime, showOnce } from '../forms.js';
import * as api from '../api.js';
import { can, CREATE, READ, UPDATE, DELETE } from '../permissions.js';
import { pagedList } from './list.js';
import { names } from './apps.js';

function fullName(user) {
  return user.type === 'machine' ? user.label : [user.title, user.firstname, user.surname].filter(Boolean).join(' ');
}

/** The role field: checkboxes when the user may read roles, else a comma-separated text field. */
async function rolesField(selected = []) {
  if (!can('roles', READ)) {
    return { name: 'roles', label: 'Roles', value: selected.join(', '), hint: 'Comma-separated role names.', parse: names };
  }
  const answer = await api.call('GET', `/be/v1/roles${api.query({ limit: 1000, 'fields[]': 'name,label' })}`);
  const options = answer.roles.map((role) => [role.name, role.label && role.label !== role.name ? `${role.name} (${role.label})` : role.name]);
  return { name: 'roles', label: 'Roles', type: 'checkboxes', options, value: selected };
}

function rolesValue(field, value) {
  return field.parse ? field.parse(value) : value;
}

export async function list(view) {
  const users = pagedList({
    caption: 'Users',
    headers: ['Username', 'Type', 'Name', 'Roles', 'Last sign-in'],
    searchLabel: 'Search users by username',
    filters: [{ name: 'type', label: 'Type', options: [['', 'All'], ['user', 'People'], ['machine', 'Machine accounts']] }],
    load: async ({ offset, limit, search, type }) => {
      const answer = await api.call('GET', `/be/v1/users${api.query({ offset, limit, username: search, type })}`);
      return { items: answer.users, total: answer.total };
    },
    row: (user) => [
      link(`users/${seg(user.username)}`, user.username),
      user.type === 'machine' ? 'machine' : 'person',
      fullName(user) || '—',
      user.roles.join(', ') || '—',
      when(user.lastLogin),
    ],
  });
  add(view, h('div', { class: 'page-head' }, h('h1', { text: 'Users' })));
  if (can('beUsers', CREATE)) add(view, await createForm(view, users));
  add(view, users.element);
}

async function createForm(view, users) {
  const roles = await rolesField();
  const person = (values) => values.type !== 'machine';
  const machine = (values) => values.type === 'machine';
  const holder = h('div');
  const created = form({
    submit: 'Create account',
    fields: [
      { name: 'type', label: 'Kind', type: 'select', options: [['user', 'Person'], ['machine', 'Machine account (API key)']], value: 'user' },
      { name: 'username', label: 'Username', required: true, hint: '2 to 50 letters, digits or _; cannot be changed later.' },
      { name: 'email', label: 'Email', type: 'email', show: person, autocomplete: 'off' },
      { name: 'firstname', label: 'First name', show: person },
      { name: 'surname', label: 'Surname', show: person },
      { name: 'title', label: 'Title', show: person },
      { name: 'password', label: 'Password', type: 'password', show: person, autocomplete: 'new-password', hint: 'At least 12 characters. Leave empty to have one generated and shown once.' },
      { name: 'label', label: 'Label', show: machine, hint: 'What this machine account is for.' },
      roles,
    ],
    onSubmit: async (values, formEl) => {
      const body = { username: values.username, type: values.type, roles: rolesValue(roles, values.roles) };
      for (const key of ['email', 'firstname', 'surname', 'title', 'password', 'label']) {
        if (values[key]) body[key] = values[key];
      }
      const answer = await api.call('POST', '/be/v1/users', body);
      formEl.reset();
      formEl.dispatchEvent(new Event('change'));
      const secret = answer.apiKey
        ? oneTime(`API key of ${answer.user.username}`, [['API key', answer.apiKey], ['Key ID', answer.apiKeyId]])
        : answer.initialPassword
          ? oneTime(`Initial password of ${answer.user.username}`, [['Password', answer.initialPassword]])
          : notice(`Account ${answer.user.username} created.`);
      showOnce(holder, secret, formEl);
      users.reload();
    },
  });
  return h('div', {}, h('details', { class: 'create' }, h('summary', { text: 'New account' }), created), holder);
}

export async function page(view, { name }) {
  const { user } = await api.call('GET', `/be/v1/users/${seg(name)}`);
  const me = api.currentSession()?.user?.username === user.username;
  const machine = user.type === 'machine';
  const secretHolder = h('div', { class: 'secret-holder' });
  fill(view,
    h('div', { class: 'page-head' },
      h('p', { class: 'crumbs' }, link('users', 'Users'), ' / ', h('span', { text: user.username })),
      h('h1', { text: user.username })),
    details([
      ['Type', machine ? 'machine account' : 'person'],
      [machine ? 'Label' : 'Name', fullName(user)],
      ['Email', machine ? null : user.email],
      ['Roles', user.roles.join(', ')],
      ['Last sign-in', when(user.lastLogin)],
      ['Created', when(user.created)],
      ['Updated', when(user.updated)],
    ]),
    secretHolder);
  if (can('beUsers', UPDATE) || me) add(view, await profileForm(view, user));
  if (machine) add(view, await apiKeys(user, secretHolder));
  if (can('beUsers', UPDATE) && !me) {
    add(view, h('section', {},
      h('h2', { text: machine ? 'New API key' : 'Reset password' }),
      h('p', { text: machine ? 'Revokes every key of this account and issues a new one.' : 'Sets a new initial password; the old one stops working.' }),
      confirmButton(machine ? 'Reset API key' : 'Reset password', 'Really reset?', async () => {
        const answer = await api.call('PATCH', '/be/v1/users', { username: user.username, resetCreds: true });
        await page(view, { name: user.username });
        showOnce(view.querySelector('.secret-holder'), answer.apiKey
          ? oneTime(`New API key of ${user.username}`, [['API key', answer.apiKey], ['Key ID', answer.apiKeyId]])
          : oneTime(`New password of ${user.username}`, [['Password', answer.initialPassword]]));
      })));
  }
  if (can('beUsers', DELETE) && !me) {
    add(view, h('section', { class: 'danger-zone' },
      h('h2', { text: 'Delete this account' }),
      h('p', { text: 'Its sessions and API keys stop working at once.' }),
      confirmButton('Delete account', `Delete ${user.username}?`, async () => {
        await api.call('DELETE', `/be/v1/users/${seg(user.username)}`);
        go('users');
      })));
  }
}

async function profileForm(view, user) {
  const machine = user.type === 'machine';
  const fields = machine
    ? [{ name: 'label', label: 'Label', value: user.label || '' }]
    : [
      { name: 'email', label: 'Email', type: 'email', value: user.email || '' },
      { name: 'firstname', label: 'First name', value: user.firstname || '' },
      { name: 'surname', label: 'Surname', value: user.surname || '' },
      { name: 'title', label: 'Title', value: user.title || '' },
    ];
  const roles = can('beUsers', UPDATE) ? await rolesField(user.roles) : null;
  if (roles) fields.push(roles);
  return h('section', {}, form({
    title: 'Change',
    submit: 'Save changes',
    fields,
    onSubmit: async (values) => {
      const body = { username: user.username, ...values };
      if (roles) body.roles = rolesValue(roles, values.roles);
      await api.call('PATCH', '/be/v1/users', body);
      await page(view, { name: user.username });
      view.prepend(notice('Saved.'));
    },
  }));
}

async function apiKeys(user, secretHolder) {
  const section = h('section', {}, h('h2', { text: 'API keys' }));
  const body = h('div');
  const reload = async () => {
    const answer = await api.call('GET', `/be/v1/apikeys${api.query({ username: user.username, limit: 100 })}`);
    fill(body, table('API keys', ['Key ID', 'Created', 'Last used', ''], answer.apikeys.map((key) => [
      key.apiKeyId,
      when(key.created),
      when(key.lastUsed),
      confirmButton('Revoke', `Revoke key ${key.apiKeyId}?`, async () => {
        await api.call('DELETE', `/be/v1/apikeys/${seg(key.apiKeyId)}`);
        await reload();
      }),
    ]), { empty: 'No API keys.' }));
  };
  await reload();
  add(section, body, h('button', {
    type: 'button',
    text: 'New API key',
    onclick: async () => {
      try {
        const answer = await api.call('POST', '/be/v1/apikeys', { username: user.username });
        showOnce(secretHolder, oneTime(`New API key of ${user.username}`, [['API key', answer.apiKey], ['Key ID', answer.apiKeyId]]));
        await reload();
      } catch (err) {
        fill(secretHolder, notice(err.message, 'error'));
      }
    },
  }));
  return section;
}

/** The signed-in user's own page: who they are, and a password change. */
export async function account(view) {
  const session = api.currentSession();
  add(view,
    h('h1', { text: 'My account' }),
    details([
      ['Username', session.user?.username],
      ['Organization', session.org],
      ['Roles', (session.user?.roles || []).join(', ')],
    ]),
    session.user?.type === 'machine' ? null : h('section', {}, form({
      title: 'Change password',
      submit: 'Change password',
      fields: [
        { name: 'oldPW', label: 'Current password', type: 'password', required: true, autocomplete: 'current-password' },
        { name: 'newPW', label: 'New password', type: 'password', required: true, autocomplete: 'new-password', hint: 'At least 12 characters.' },
      ],
      onSubmit: async ({ oldPW, newPW }, formEl) => {
        await api.call('PATCH', '/be/v1/users', { oldPW, newPW });
        formEl.reset();
        formEl.before(notice('Password changed.'));
      },
    })));
}
