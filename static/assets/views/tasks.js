// Tasks: the filterable list, and the pieces the app page reuses to show an import's chain
// (status, progress bar, warnings and exception in words, retry / acknowledge / cancel).
import { h, link, seg, when, badge, bytes, add } from '../dom.js';
import * as api from '../api.js';
import { can, UPDATE, EXECUTE } from '../permissions.js';
import { pagedList } from './list.js';

/** Statuses after which a task changes no more (unless retried). */
export const FINISHED = ['done', 'failed', 'expired'];

/** A progress bar for `{done, total}`; a running task with no total yet shows an open bar. */
export function progressBar(task) {
  const { done = 0, total = 0 } = task.progress || {};
  const share = task.status === 'done' ? 1 : total > 0 ? Math.min(1, done / total) : null;
  // Without a total a running task shows an open (moving) bar; an ended one a still, empty one.
  const ended = FINISHED.includes(task.status);
  let words = `${Math.round((share ?? 0) * 100)}%`;
  if (share === null) words = ended ? (task.status === 'expired' ? 'never started' : 'stopped') : task.status === 'submitted' ? 'waiting' : `${bytes(done)} so far`;
  const bar = h('progress', { max: '100', 'aria-label': `${task.type} progress: ${words}` });
  if (share !== null || ended) bar.value = Math.round((share ?? 0) * 100);
  return h('span', { class: 'progress-cell' }, bar, h('span', { class: 'bar-text', text: words }));
}

/** The exception's compat fields as sentences, after its message. */
export function exceptionText(exception) {
  if (!exception) return null;
  const lines = [];
  const failed = exception.fileReadFailed;
  // A fileReadFailed message only repeats its fields; the sentence below says it more plainly.
  if (exception.message && !failed) lines.push(String(exception.message));
  if (exception.httpStatus !== undefined) lines.push(`The build server answered HTTP ${exception.httpStatus}.`);
  if (exception.sizeBytesActual !== undefined || exception.sizeBytesExpected !== undefined) {
    const actual = exception.sizeBytesActual !== undefined ? `${bytes(exception.sizeBytesActual)} (${exception.sizeBytesActual} bytes)` : 'unknown';
    const expected = exception.sizeBytesExpected !== undefined
      ? `${bytes(exception.sizeBytesExpected)} (${exception.sizeBytesExpected} bytes)` : null;
    lines.push(expected ? `Received ${actual}; expected ${expected}.` : `Received ${actual}, more than allowed.`);
  }
  if (exception.exitCode !== undefined) lines.push(`Exit code ${exception.exitCode}.`);
  if (failed) {
    lines.push(`Could not read ${failed.filename || 'the file'}: expected ${failed.typeExpected || 'another type'}, found ${failed.typeDetected || 'an unknown type'}.`);
    lines.push('A retry would read the same file: import a corrected build.');
  }
  if (lines.length === 0) lines.push(JSON.stringify(exception));
  return h('div', { class: 'exception', role: 'note' }, lines.map((line) => h('p', { text: line })));
}

function warningText(warning) {
  if (typeof warning === 'string') return warning;
  if (warning && typeof warning === 'object' && warning.message) return String(warning.message);
  return JSON.stringify(warning);
}

/** The warnings as a list, or null when there are none. */
export function warningsList(task) {
  if (!task.warnings?.length) return null;
  return h('ul', { class: 'warnings', 'aria-label': `Warnings of ${task.name}` },
    task.warnings.map((warning) => h('li', { text: warningText(warning) })));
}

/**
 * The buttons the user's roles allow on this task: retry (failed, unless the build was refused
 * for its content; tasks X), acknowledge
 * warnings (tasks U), cancel an upload still awaited (tasks U). `changed()` runs after each.
 */
export function taskActions(task, changed) {
  const error = h('span', { class: 'form-error', role: 'alert', hidden: true });
  const act = (label, run) => h('button', {
    type: 'button',
    text: label,
    'aria-label': `${label}: ${task.name}`,
    onclick: async (event) => {
      event.target.disabled = true;
      error.hidden = true;
      try {
        await run();
        await changed();
      } catch (err) {
        error.textContent = err.message;
        error.hidden = false;
        event.target.disabled = false;
      }
    },
  });
  const buttons = [];
  // A build refused for its content (fileReadFailed) fails the same way however often it runs.
  if (task.status === 'failed' && !task.exception?.fileReadFailed && can('tasks', EXECUTE)) {
    buttons.push(act('Retry', () => api.call('POST', '/be/v1/trigger', { action: 'retryTask', taskName: task.name })));
  }
  if (task.warnings?.length && can('tasks', UPDATE)) {
    buttons.push(act('Acknowledge warnings', () => api.call('PATCH', '/be/v1/tasks', { name: task.name, ackWarnings: true })));
  }
  // A dltar still submitted with nothing received is the one an upload URL waits for; the server
  // refuses (409) to expire anything else, and that answer is shown.
  if (task.type === 'dltar' && task.status === 'submitted' && can('tasks', UPDATE)) {
    buttons.push(act('Cancel upload', () => api.call('PATCH', '/be/v1/tasks', { name: task.name, expire: true })));
  }
  if (buttons.length === 0) return null;
  return h('span', { class: 'task-actions' }, buttons, error);
}

/** One task as table cells: the app page's chain and the Tasks page share them. */
export function taskCells(task, changed, { withApp = true } = {}) {
  return [
    h('span', { class: 'task-name' }, h('strong', { text: task.type }), h('br'), h('small', { text: task.name })),
    withApp ? (task.appName ? link(`apps/${seg(task.appName)}`, task.appName) : '—') : null,
    badge(task.status),
    progressBar(task),
    h('div', {},
      task.attempts > 1 ? h('p', { class: 'hint', text: `Attempt ${task.attempts}` }) : null,
      exceptionText(task.exception),
      warningsList(task),
      taskActions(task, changed)),
    when(task.created),
  ].filter((cell) => cell !== null);
}

const TYPES = [['', 'All types'], ['dltar', 'dltar (download)'], ['mkraw', 'mkraw (image and patch)'], ['deploy', 'deploy'], ['commit', 'commit (go live)'], ['prune', 'prune'], ['hello', 'hello']];
const STATUSES = [['', 'All statuses'], ['submitted', 'submitted'], ['running', 'running'], ['done', 'done'], ['failed', 'failed'], ['expired', 'expired']];

// While tasks of the shown page wait or run, the page reloads itself: soon after a change, less
// and less often while nothing changes, never while the browser tab is hidden.
const REFRESH_MIN_MS = 1000;
const REFRESH_MAX_MS = 15000;

/** A task's visible state, to tell whether a reload changed anything. */
function stateOf(items) {
  return JSON.stringify(items.map((task) => [task.name, task.status, task.progress, task.attempts, task.warnings?.length]));
}

export async function list(view) {
  const live = h('p', { class: 'hint auto-refresh', 'aria-live': 'off' });
  let delay = REFRESH_MIN_MS;
  let timer = null;
  let seen = '';
  let active = false;
  const due = () => {
    clearTimeout(timer);
    timer = null;
    if (!active || document.hidden || !view.isConnected) return;
    timer = setTimeout(() => {
      if (!view.isConnected || document.hidden) return;
      // A keyboard user on a button of the table keeps it: wait until the focus moves on.
      if (tasks.results.contains(document.activeElement)) due();
      else tasks.reload();
    }, delay);
  };
  const tasks = pagedList({
    caption: 'Tasks',
    headers: ['Task', 'App', 'Status', 'Progress', 'Details', 'Created'],
    searchLabel: 'Filter by app name',
    filters: [
      { name: 'type', label: 'Type', options: TYPES },
      { name: 'status', label: 'Status', options: STATUSES },
    ],
    load: async ({ offset, limit, search, type, status }) => {
      const answer = await api.call('GET', `/be/v1/tasks${api.query({ offset, limit, appName: search, type, status, 'order[]': '-created' })}`);
      return { items: answer.tasks, total: answer.total };
    },
    loaded: (items) => {
      active = items.some((task) => !FINISHED.includes(task.status));
      const state = stateOf(items);
      delay = state === seen ? Math.min(REFRESH_MAX_MS, delay * 2) : REFRESH_MIN_MS;
      seen = state;
      live.textContent = active ? 'Tasks are waiting or running: this page updates itself.' : '';
      due();
    },
    row: (task) => taskCells(task, () => tasks.reload()),
  });
  const visibility = () => {
    if (!view.isConnected) {
      document.removeEventListener('visibilitychange', visibility);
      return;
    }
    if (document.hidden) {
      clearTimeout(timer);
      timer = null;
    } else if (active) {
      delay = REFRESH_MIN_MS;
      tasks.reload();
    }
  };
  document.addEventListener('visibilitychange', visibility);
  add(view,
    h('div', { class: 'page-head' }, h('h1', { text: 'Tasks' })),
    h('p', { class: 'hint', text: 'Newest first. An import runs as dltar (download or upload) → mkraw (image and patch) → deploy; going live or rolling back runs a commit task.' }),
    live,
    tasks.element);
}
