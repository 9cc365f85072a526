// Roles: list, create and change with a grid of the CRUDX bits, delete. The grid only offers the
// bits a resource allows and the signed-in user holds (nobody can grant more than they have).
import { h, go, link, seg, details, when, add, fill } from '../dom.js';
import { form, confirmButton, notice } from '../forms.js';
import * as api from '../api.js';
import { can, held, BITS, RESOURCES, CREATE, UPDATE, DELETE } from '../permissions.js';
import { pagedList } from './list.js';

/** "CRU-" style summary of a bitmask. */
function letters(bits, allowed) {
  return BITS.filter(([bit]) => allowed & bit).map(([bit, , letter]) => (bits & bit ? letter : '·')).join('');
}

/** The permission grid as a custom form field: `{element, read()}`. */
export function permissionGrid(permissions = {}, { editable = true } = {}) {
  const boxes = [];
  const element = h('div', { class: 'table-wrap' }, h('table', { class: 'grid' },
    h('caption', { class: 'visually-hidden', text: 'Permissions per resource' }),
    h('thead', {}, h('tr', {}, h('th', { scope: 'col', text: 'Resource' }), BITS.map(([, name, letter]) => h('th', { scope: 'col', title: name },
      // Narrow screens show the initial only; every checkbox carries its full name anyway.
      h('span', { class: 'bit-long', text: name }), h('span', { class: 'bit-short', 'aria-hidden': 'true', text: letter }))))),
    h('tbody', {}, RESOURCES.map(([resource, allowed]) => h('tr', {},
      h('th', { scope: 'row', text: resource }),
      BITS.map(([bit, name]) => {
        if (!(allowed & bit)) return h('td', { class: 'na' }, h('span', { 'aria-hidden': 'true', text: '—' }));
        const mayGrant = (held(resource) & bit) === bit;
        const box = h('input', {
          type: 'checkbox',
          'aria-label': `${resource}: ${name}`,
          'data-resource': resource,
          'data-bit': bit,
          checked: ((permissions[resource] ?? 0) & bit) === bit,
          disabled: !editable || !mayGrant,
          title: mayGrant ? undefined : 'You do not hold this right, so you cannot grant it',
        });
        boxes.push(box);
        return h('td', {}, box);
      }))))));
  const read = () => {
    const result = Object.fromEntries(RESOURCES.map(([resource]) => [resource, 0]));
    for (const box of boxes) if (box.checked) result[box.dataset.resource] |= Number(box.dataset.bit);
    return result;
  };
  return { element, read };
}

export async function list(view) {
  const roles = pagedList({
    caption: 'Roles',
    headers: ['Name', 'Label', 'Users', 'apps', 'beUsers', 'deployments', 'roles', 'subscriptions', 'tasks'],
    searchLabel: 'Search roles by name',
    load: async ({ offset, limit, search }) => {
      const answer = await api.call('GET', `/be/v1/roles${api.query({ offset, limit, name: search })}`);
      return { items: answer.roles, total: answer.total };
    },
    row: (role) => [
      link(`roles/${seg(role.name)}`, role.name),
      role.label || '—',
      String(role.users),
      ...['apps', 'beUsers', 'deployments', 'roles', 'subscriptions', 'tasks'].map((resource) => h('code', {
        text: letters(role.permissions[resource] ?? 0, RESOURCES.find(([r]) => r === resource)[1]),
      })),
    ],
  });
  add(view, h('div', { class: 'page-head' }, h('h1', { text: 'Roles' })));
  if (can('roles', CREATE)) {
    const grid = permissionGrid();
    add(view, h('details', { class: 'create' },
      h('summary', { text: 'New role' }),
      form({
        submit: 'Create role',
        fields: [
          { name: 'name', label: 'Name', required: true, hint: '2 to 50 letters, digits or _; cannot be changed later.' },
          { name: 'label', label: 'Label' },
          { name: 'permissions', label: 'Permissions', type: 'custom', element: grid.element, read: grid.read },
        ],
        onSubmit: async ({ name, label, permissions }) => {
          const body = { name, permissions };
          if (label) body.label = label;
          const answer = await api.call('POST', '/be/v1/roles', body);
          go(`roles/${seg(answer.role.name)}`);
        },
      })));
  }
  add(view, roles.element);
}

export async function page(view, { name }) {
  const { role } = await api.call('GET', `/be/v1/roles/${seg(name)}`);
  const editable = can('roles', UPDATE) && !role.builtin;
  const grid = permissionGrid(role.permissions, { editable });
  fill(view,
    h('div', { class: 'page-head' },
      h('p', { class: 'crumbs' }, link('roles', 'Roles'), ' / ', h('span', { text: role.name })),
      h('h1', { text: role.label || role.name })),
    details([
      ['Name', role.name],
      ['Members', String(role.users)],
      ['Built in', role.builtin ? 'yes: it cannot be changed or deleted' : 'no'],
      ['Created', when(role.created)],
      ['Updated', when(role.updated)],
    ]),
    editable
      ? h('section', {}, form({
        title: 'Change',
        submit: 'Save changes',
        fields: [
          { name: 'label', label: 'Label', value: role.label || '' },
          { name: 'permissions', label: 'Permissions', type: 'custom', element: grid.element, read: grid.read },
        ],
        onSubmit: async ({ label, permissions }) => {
          await api.call('PATCH', '/be/v1/roles', { name: role.name, label, permissions });
          await page(view, { name: role.name });
          view.prepend(notice('Saved.'));
        },
      }))
      : h('section', {}, h('h2', { text: 'Permissions' }), grid.element),
    can('roles', DELETE) && !role.builtin ? h('section', { class: 'danger-zone' },
      h('h2', { text: 'Delete this role' }),
      h('p', { text: 'Only possible while no account holds it.' }),
      confirmButton('Delete role', `Delete ${role.name}?`, async () => {
        await api.call('DELETE', `/be/v1/roles/${seg(role.name)}`);
        go('roles');
      })) : null);
}
