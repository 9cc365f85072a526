// An app's build imports: by URL (the server downloads the tar) or by uploading a tar from the
// browser through the one-time PUT URL, with the upload's progress; then the task chain
// dltar → mkraw → deploy of the import, polled until it ends.
import { h, add, fill, table, bytes } from '../dom.js';
import { form, notice } from '../forms.js';
import * as api from '../api.js';
import { taskCells, FINISHED } from './tasks.js';

// How often a running chain is polled: fast enough to feel live, slow enough for a busy server.
const POLL_MS = 1000;

let nextId = 0;

/**
 * The import section. `chain` is where the tasks of an import are shown; `group` the group of a
 * running import to watch from the start (the app is `processing`). `finished()` runs when the
 * chain has ended, to show the new build and patch.
 */
export function importSection(app, { group, finished }) {
  const chain = h('div', { class: 'chain', 'aria-live': 'polite' });
  const section = h('section', { class: 'import' },
    h('h2', { text: 'Import a build' }),
    h('div', { class: 'import-forms' }, uploadForm(app, (task) => watch(chain, task.group, finished)), urlForm(app, (task) => watch(chain, task.group, finished))),
    chain);
  if (group) watch(chain, group, finished);
  return section;
}

/** The task chain of the app's running import, if any: the newest group of its tasks. */
export async function runningGroup(app) {
  if (!app.processing) return null;
  const answer = await api.call('GET', `/be/v1/tasks${api.query({ appName: app.name, 'order[]': '-created', limit: 1 })}`);
  return answer.tasks?.[0]?.group ?? null;
}

function urlForm(app, started) {
  return form({
    title: 'From a URL',
    submit: 'Import from URL',
    className: 'import-url',
    fields: [
      { name: 'url', label: 'Build URL', type: 'url', required: true, hint: 'The uncompressed native-build.tar; the server downloads it.' },
      { name: 'buildName', label: 'Build name (optional)' },
      { name: 'stage', label: STAGE_LABEL, type: 'checkbox' },
    ],
    onSubmit: async ({ url, buildName, stage }, el) => {
      const answer = await api.call('POST', '/be/v1/builds', {
        appName: app.name, url, buildName: buildName || undefined, commit: stage ? false : undefined,
      });
      el.reset();
      started(answer.task);
    },
  });
}

// `"commit": false`: the build is processed and published but stays staged until "Go live".
const STAGE_LABEL = 'Stage only: go live later from the builds list';

function uploadForm(app, started) {
  nextId += 1;
  const fileId = `upload-file-${nextId}`;
  const nameId = `upload-name-${nextId}`;
  const stageId = `upload-stage-${nextId}`;
  const stage = h('input', { type: 'checkbox', id: stageId, name: 'stage' });
  const file = h('input', { type: 'file', id: fileId, name: 'file', accept: '.tar,application/x-tar', required: true });
  const buildName = h('input', { type: 'text', id: nameId, name: 'buildName', autocomplete: 'off' });
  const bar = h('progress', { max: '100', value: '0', 'aria-label': 'Upload progress' });
  const words = h('span', { class: 'bar-text' });
  const progress = h('p', { class: 'progress-cell upload-progress', hidden: true }, bar, words);
  const error = h('p', { class: 'form-error', role: 'alert', hidden: true });
  const button = h('button', { type: 'submit', class: 'primary', text: 'Upload and import' });
  const el = h('form', {
    class: 'form import-upload',
    novalidate: true,
    onsubmit: async (event) => {
      event.preventDefault();
      error.hidden = true;
      const chosen = file.files?.[0];
      if (!chosen) {
        error.textContent = 'Choose a tar file first.';
        error.hidden = false;
        return;
      }
      button.disabled = true;
      try {
        const answer = await api.call('POST', '/be/v1/builds', {
          appName: app.name, size: chosen.size, buildName: buildName.value.trim() || undefined,
          commit: stage.checked ? false : undefined,
        });
        // The chain shows the dltar waiting for the upload while it runs.
        started(answer.task);
        progress.hidden = false;
        await put(answer.upload, chosen, (sent, total) => {
          bar.value = total > 0 ? Math.round((100 * sent) / total) : 0;
          words.textContent = `${bytes(sent)} of ${bytes(total)} sent`;
        });
        words.textContent = `${bytes(chosen.size)} uploaded`;
        el.reset();
      } catch (err) {
        error.textContent = err.message;
        error.hidden = false;
      } finally {
        button.disabled = false;
      }
    },
  },
  h('h2', { text: 'Upload a tar' }),
  h('div', { class: 'field' }, h('label', { for: fileId, text: 'Build tar file' }), file),
  h('div', { class: 'field' }, h('label', { for: nameId, text: 'Build name (optional)' }), buildName),
  h('div', { class: 'field field-checkbox' }, stage, h('label', { for: stageId, text: STAGE_LABEL })),
  progress,
  error,
  h('div', { class: 'actions' }, button));
  return el;
}

/**
 * PUTs the file to the one-time URL. XMLHttpRequest, not fetch: only it reports upload progress.
 * The URL is this server's (CSP connect-src 'self'); the capability in it is the only credential.
 */
function put(upload, file, onProgress) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open(upload.method || 'PUT', upload.url);
    xhr.setRequestHeader('Content-Type', 'application/x-tar');
    xhr.upload.addEventListener('progress', (event) => onProgress(event.loaded, event.lengthComputable ? event.total : file.size));
    xhr.addEventListener('load', () => {
      if (xhr.status >= 200 && xhr.status < 300) {
        resolve();
        return;
      }
      let message = `The upload was refused (HTTP ${xhr.status}).`;
      try {
        message = JSON.parse(xhr.responseText).message || message;
      } catch {
        // Not the API's envelope: the status says enough.
      }
      reject(new api.ApiError(xhr.status, { error: 'upload-failed', message }));
    });
    xhr.addEventListener('error', () => reject(new api.ApiError(0, { error: 'network', message: 'The upload was cut off. Try again: the URL takes a repeated upload until it expires.' })));
    xhr.send(file);
  });
}

// One watcher per chain element: a new import replaces the previous one's polling.
const watchers = new WeakMap();

/** Polls the group's tasks into `chain` until every task has finished and the chain is complete. */
function watch(chain, group, finished) {
  const token = {};
  watchers.set(chain, token);
  const render = (tasks) => fill(chain,
    h('h3', { text: 'Import progress' }),
    table('Tasks of this import', ['Task', 'Status', 'Progress', 'Details', 'Created'],
      // A retried task runs again: watch the chain anew.
      tasks.map((task) => taskCells(task, () => watch(chain, group, finished), { withApp: false }))));
  let rendered = false;
  async function poll() {
    // Stops once another import took over or the user left the page.
    if (watchers.get(chain) !== token || (rendered && !chain.isConnected)) return;
    rendered = true;
    let tasks;
    try {
      tasks = (await api.call('GET', `/be/v1/tasks${api.query({ group, 'order[]': 'created' })}`)).tasks;
    } catch (err) {
      fill(chain, notice(err.message, 'error'));
      return;
    }
    if (watchers.get(chain) !== token) return;
    render(tasks);
    const last = tasks[tasks.length - 1];
    const ended = tasks.some((task) => task.status === 'failed' || task.status === 'expired')
      || (last?.type === 'deploy' && last.status === 'done');
    if (ended && tasks.every((task) => FINISHED.includes(task.status))) {
      watchers.delete(chain);
      if (last?.type === 'deploy' && last.status === 'done') add(chain, notice('Import done: the build is published.'));
      await finished(tasks);
      return;
    }
    setTimeout(poll, POLL_MS);
  }
  poll();
}
