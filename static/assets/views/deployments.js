// Deployments (publish targets): list, create (file system or S3 origin), change, delete.
// Stored secrets come back as "****" and are never put into a form.
import { h, go, link, seg, details, when, badge, add, fill } from '../dom.js';
import { form, confirmButton, notice } from '../forms.js';
import * as api from '../api.js';
import { can, CREATE, UPDATE, DELETE } from '../permissions.js';
import { pagedList } from './list.js';

function where(origin) {
  if (!origin) return '—';
  return origin.type === 's3' ? `s3: ${origin.endpoint} / ${origin.bucket}` : `fs: ${origin.path}`;
}

export async function list(view) {
  const deployments = pagedList({
    caption: 'Deployments',
    headers: ['Name', 'Label', 'Origin', 'Status', 'Message'],
    searchLabel: 'Search deployments by name',
    load: async ({ offset, limit, search }) => {
      const answer = await api.call('GET', `/be/v1/deployments${api.query({ offset, limit, name: search })}`);
      return { items: answer.deployments, total: answer.total };
    },
    row: (d) => [link(`deployments/${seg(d.name)}`, d.name), d.label || '—', where(d.origin), badge(d.status), d.message || '—'],
  });
  add(view, h('div', { class: 'page-head' }, h('h1', { text: 'Deployments' })));
  if (can('deployments', CREATE)) add(view, createForm());
  add(view, deployments.element);
}

const isS3 = (values) => values['origin.type'] === 's3';
const isFs = (values) => values['origin.type'] === 'fs';
const hasAuth = (values) => Boolean(values['downloadAuth.type']);

function createForm() {
  return h('details', { class: 'create' },
    h('summary', { text: 'New deployment' }),
    form({
      submit: 'Create deployment',
      fields: [
        { name: 'name', label: 'Name', required: true, hint: '2 to 50 letters, digits, _, [ or ]; cannot be changed later.' },
        { name: 'label', label: 'Label' },
        { name: 'originPrefix', label: 'Path prefix on the origin', hint: 'Optional relative path.' },
        { name: 'origin.type', label: 'Origin type', type: 'select', options: [['fs', 'Directory on this machine'], ['s3', 'S3 bucket']], value: 'fs' },
        { name: 'origin.path', label: 'Directory', show: isFs, placeholder: '/srv/cdn' },
        { name: 'origin.endpoint', label: 'S3 endpoint', show: isS3, placeholder: 's3.us-east-1.amazonaws.com' },
        { name: 'origin.region', label: 'S3 region', show: isS3 },
        { name: 'origin.bucket', label: 'S3 bucket', show: isS3 },
        { name: 'origin.accessKeyId', label: 'Access key ID', show: isS3 },
        { name: 'origin.secretAccessKey', label: 'Secret access key', type: 'password', show: isS3, autocomplete: 'new-password' },
        { name: 'origin.pathStyle', label: 'Path-style addressing', type: 'checkbox', show: isS3 },
        { name: 'downloadAuth.type', label: 'Download authorization', type: 'select', options: [['', 'None'], ['akamai', 'Akamai'], ['gcore', 'Gcore']], value: '' },
        { name: 'downloadAuth.key', label: 'Download authorization key', type: 'password', show: hasAuth, autocomplete: 'new-password' },
      ],
      onSubmit: async (values) => {
        const origin = values['origin.type'] === 's3'
          ? {
            type: 's3',
            endpoint: values['origin.endpoint'],
            region: values['origin.region'],
            bucket: values['origin.bucket'],
            accessKeyId: values['origin.accessKeyId'],
            secretAccessKey: values['origin.secretAccessKey'],
            pathStyle: values['origin.pathStyle'],
          }
          : { type: 'fs', path: values['origin.path'] };
        const body = { name: values.name, origin };
        if (values.label) body.label = values.label;
        if (values.originPrefix) body.originPrefix = values.originPrefix;
        if (values['downloadAuth.type']) body.downloadAuth = { type: values['downloadAuth.type'], key: values['downloadAuth.key'] };
        const answer = await api.call('POST', '/be/v1/deployments', body);
        go(`deployments/${seg(answer.deployment.name)}`);
      },
    }));
}

export async function page(view, { name }) {
  const { deployment: d } = await api.call('GET', `/be/v1/deployments/${seg(name)}`);
  fill(view,
    h('div', { class: 'page-head' },
      h('p', { class: 'crumbs' }, link('deployments', 'Deployments'), ' / ', h('span', { text: d.name })),
      h('h1', {}, h('span', { text: d.label || d.name }), ' ', badge(d.status))),
    d.status === 'error' && d.message ? notice(`Last publish failed: ${d.message}`, 'error') : null,
    details([
      ['Name', d.name],
      ['Origin', where(d.origin)],
      ['Path prefix', d.originPrefix],
      ['Download authorization', d.downloadAuth ? d.downloadAuth.type : 'none'],
      ['Status', d.status],
      ['Message', d.message],
      ['Created', when(d.created)],
      ['Updated', when(d.updated)],
    ]),
    can('deployments', UPDATE) ? h('section', {}, form({
      title: 'Change',
      submit: 'Save changes',
      fields: [
        { name: 'label', label: 'Label', value: d.label || '' },
        { name: 'originPrefix', label: 'Path prefix on the origin', value: d.originPrefix || '' },
      ],
      onSubmit: async ({ label, originPrefix }) => {
        await api.call('PATCH', '/be/v1/deployments', { name: d.name, label: label || null, originPrefix: originPrefix || null });
        await page(view, { name: d.name });
        view.prepend(notice('Saved.'));
      },
    })) : null,
    can('deployments', DELETE) ? h('section', { class: 'danger-zone' },
      h('h2', { text: 'Delete this deployment' }),
      h('p', { text: 'Only possible while no app lists it. What was published there is removed in the background.' }),
      confirmButton('Delete deployment', `Delete ${d.name}?`, async () => {
        await api.call('DELETE', `/be/v1/deployments/${seg(d.name)}`);
        go('deployments');
      })) : null);
}
