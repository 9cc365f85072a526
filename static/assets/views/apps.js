// Apps: the list (search, paging), creating one, and an app's page with its builds, patches
// (size against the full image), deployments, status and error, and its build imports (imports.js).
import { h, go, link, seg, table, details, bytes, when, badge, add, fill } from '../dom.js';
import { form, confirmButton, notice } from '../forms.js';
import * as api from '../api.js';
import { can, CREATE, UPDATE, DELETE } from '../permissions.js';
import { pagedList } from './list.js';
import { importSection, runningGroup } from './imports.js';
import { taskCells, FINISHED } from './tasks.js';

const LIST_FIELDS = 'name,label,status,iCurBuild,sizeBytes,updated';

/** "a, b" → ["a", "b"]; empty → []. */
export function names(text) {
  return String(text || '').split(',').map((s) => s.trim()).filter(Boolean);
}

export async function list(view) {
  const apps = pagedList({
    caption: 'Apps',
    headers: ['Name', 'Label', 'Status', 'Current build', 'Size', 'Updated'],
    searchLabel: 'Search apps by name',
    load: async ({ offset, limit, search }) => {
      const answer = await api.call('GET', `/be/v1/apps${api.query({ offset, limit, name: search, 'fields[]': LIST_FIELDS })}`);
      return { items: answer.apps, total: answer.total };
    },
    row: (app) => [
      link(`apps/${seg(app.name)}`, app.name),
      app.label,
      badge(app.status),
      app.iCurBuild > 0 ? `#${app.iCurBuild}` : '—',
      bytes(app.sizeBytes),
      when(app.updated),
    ],
  });
  add(view, h('div', { class: 'page-head' }, h('h1', { text: 'Apps' })));
  if (can('apps', CREATE)) add(view, createForm());
  add(view, apps.element);
}

function createForm() {
  return h('details', { class: 'create' },
    h('summary', { text: 'New app' }),
    form({
      submit: 'Create app',
      fields: [
        { name: 'name', label: 'Name', required: true, hint: '2 to 50 letters, digits or _; cannot be changed later.' },
        { name: 'label', label: 'Label', required: true },
        { name: 'maxBuilds', label: 'Builds kept', type: 'number', value: 5, min: 1, max: 100 },
        { name: 'deployments', label: 'Deployments', hint: 'Comma-separated names; empty means all of the organization’s deployments.' },
      ],
      onSubmit: async ({ name, label, maxBuilds, deployments }) => {
        const answer = await api.call('POST', '/be/v1/apps', { name, label, maxBuilds, deployments: names(deployments) });
        go(`apps/${seg(answer.app.name)}`);
      },
    }));
}

export async function page(view, { name }) {
  const { app } = await api.call('GET', `/be/v1/apps/${seg(name)}`);
  // The parts an import changes, refreshed in place when its chain ends (the chain stays shown).
  const statusBadge = h('span', {});
  const summary = h('div', {});
  const builds = h('section', {});
  // Go live / roll back: the commit task's progress, and whether one runs (buttons disabled).
  const commitStatus = h('div', { class: 'commit-status', 'aria-live': 'polite' });
  let shown = app;
  let committing = false;
  const showApp = (current) => {
    shown = current;
    fill(statusBadge, badge(current.status));
    fill(summary, current.error ? notice(`Error: ${current.error}`, 'error') : null, appDetails(current));
    fill(builds, h('h2', { text: 'Builds' }), buildsTable(current, { committing, commit: commitTo }), commitStatus,
      h('h2', { text: 'Patches' }), patchesChart(current));
  };
  const reloadApp = async () => showApp((await api.call('GET', `/be/v1/apps/${seg(app.name)}`)).app);
  async function commitTo(build) {
    const title = `${build.buildId > shown.iCurBuild ? 'Going live with' : 'Rolling back to'} build #${build.buildId}`;
    const busy = (on) => {
      committing = on;
      showApp(shown);
    };
    busy(true);
    fill(commitStatus, h('p', { text: `${title}…` }));
    let task;
    try {
      ({ task } = await api.call('POST', '/be/v1/commit', { appName: app.name, buildId: build.buildId }));
    } catch (err) {
      busy(false);
      fill(commitStatus, notice(err.message, 'error'));
      return;
    }
    watchTask(task, commitStatus, title, {
      retried: () => busy(true),
      ended: async (ended, err) => {
        committing = false;
        if (err) {
          showApp(shown);
          add(commitStatus, notice(err.message, 'error'));
          return;
        }
        await reloadApp().catch(() => showApp(shown));
        if (ended.status === 'done') add(commitStatus, notice(`Build #${build.buildId} is live on every deployment.`));
      },
    });
  }
  showApp(app);
  const imports = can('apps', UPDATE)
    ? importSection(app, {
      group: await runningGroup(app).catch(() => null),
      finished: reloadApp,
    })
    : null;
  fill(view,
    h('div', { class: 'page-head' },
      h('p', { class: 'crumbs' }, link('apps', 'Apps'), ' / ', h('span', { text: app.name })),
      h('h1', {}, h('span', { text: app.label }), ' ', statusBadge)),
    summary,
    builds,
    imports,
    can('apps', UPDATE) ? editForm(view, app) : null,
    can('apps', DELETE) ? h('section', { class: 'danger-zone' },
      h('h2', { text: 'Delete this app' }),
      h('p', { text: 'Its images and patches are removed everywhere, in the background.' }),
      confirmButton('Delete app', `Delete ${app.name}?`, async () => {
        await api.call('DELETE', `/be/v1/apps/${seg(app.name)}`);
        go('apps');
      })) : null);
}

function appDetails(app) {
  return details([
    ['Name', app.name],
    ['Status', app.status],
    ['Current build', app.iCurBuild > 0 ? `#${app.iCurBuild}` : 'none yet'],
    ['Size', bytes(app.sizeBytes)],
    ['Builds kept', String(app.maxBuilds)],
    ['Deployments', app.deployments.length ? app.deployments.join(', ') : 'all of the organization’s deployments'],
    ['Image name', app.dxfName],
    ['Processing', app.processing ? 'yes' : 'no'],
    ['Created', when(app.created)],
    ['Updated', when(app.updated)],
  ]);
}

/**
 * The retained builds, the current one marked. With apps update, every other build offers
 * "Go live" (newer than the current one) or "Roll back" (older): `commit(build)` runs it.
 */
function buildsTable(app, { committing, commit }) {
  const mayCommit = can('apps', UPDATE);
  const busy = committing || app.processing || app.exporting;
  const headers = ['ID', 'Name', 'Size', 'Created'];
  if (mayCommit) headers.push('Live');
  return table('Builds', headers, app.builds.map((build) => {
    const current = build.buildId === app.iCurBuild;
    const cells = [
      current ? h('span', {}, `#${build.buildId} `, h('span', { class: 'badge badge-good', text: 'current' })) : `#${build.buildId}`,
      build.buildName || '—',
      bytes(build.sizeBytes),
      when(build.created),
    ];
    if (mayCommit) {
      const label = build.buildId > app.iCurBuild ? 'Go live' : 'Roll back';
      cells.push(current ? h('span', { class: 'hint', text: 'live now' }) : h('button', {
        type: 'button',
        class: 'commit',
        text: label,
        'aria-label': `${label}: build #${build.buildId}`,
        title: busy ? 'Wait for the running import or commit to end.' : undefined,
        disabled: busy,
        onclick: () => commit(build),
      }));
    }
    return cells;
  }), { empty: 'No builds yet.' });
}

// How often a commit task is polled while it runs.
const COMMIT_POLL_MS = 1000;

/**
 * Shows `task` in `into`, polled until it has finished; then `ended(task)` (or `ended(null, err)`
 * when it cannot be read). Retrying a failed task from its row calls `retried()` and watches again.
 */
function watchTask(task, into, title, { retried, ended }) {
  const show = (current) => fill(into, h('h3', { text: title }),
    table('Commit task', ['Task', 'Status', 'Progress', 'Details', 'Created'],
      [taskCells(current, () => { retried(); poll(); }, { withApp: false })]));
  async function poll() {
    // The user left the page: nothing to show any more.
    if (into.dataset.shown && !into.isConnected) return;
    into.dataset.shown = 'yes';
    let current;
    try {
      current = (await api.call('GET', `/be/v1/tasks/${seg(task.name)}`)).task;
    } catch (err) {
      ended(null, err);
      return;
    }
    show(current);
    if (FINISHED.includes(current.status)) ended(current);
    else setTimeout(poll, COMMIT_POLL_MS);
  }
  show(task);
  poll();
}

/** Each patch as a bar against the full image of the build it leads to. */
function patchesChart(app) {
  const imageSize = new Map(app.builds.map((build) => [build.buildId, build.sizeBytes]));
  return table('Patches', ['From → to', 'Patch size', 'Against the full image'], app.patches.map((patch) => {
    const full = imageSize.get(patch.toBuildId);
    const share = full > 0 ? Math.min(1, patch.sizeBytes / full) : null;
    const bar = h('span', { class: 'bar-patch' });
    bar.style.width = `${share === null ? 0 : Math.max(0.5, share * 100)}%`;
    const describe = share === null
      ? 'image size unknown'
      : `${(share * 100).toFixed(1)}% of the ${bytes(full)} image`;
    return [
      `#${patch.fromBuildId} → #${patch.toBuildId}`,
      bytes(patch.sizeBytes),
      h('span', { class: 'bar-cell' },
        h('span', { class: 'bar-image', role: 'img', 'aria-label': describe }, bar),
        h('span', { class: 'bar-text', text: describe })),
    ];
  }), { empty: 'No patches yet: a patch appears once a second build is imported.' });
}

function editForm(view, app) {
  return h('section', {},
    form({
      title: 'Change',
      submit: 'Save changes',
      fields: [
        { name: 'label', label: 'Label', required: true, value: app.label },
        { name: 'maxBuilds', label: 'Builds kept', type: 'number', value: app.maxBuilds, min: 1, max: 100 },
        { name: 'deployments', label: 'Deployments', value: app.deployments.join(', '), hint: 'Comma-separated names; empty means all.' },
      ],
      onSubmit: async ({ label, maxBuilds, deployments }) => {
        await api.call('PATCH', '/be/v1/apps', { name: app.name, label, maxBuilds, deployments: names(deployments) });
        await page(view, { name: app.name });
        view.prepend(notice('Saved.'));
      },
    }));
}
