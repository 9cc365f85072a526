// The console's entry point: the page frame, the navigation (only what the user's permissions
// allow) and the hash router. Views live in views/, one module per resource.
import { h, link, add, fill } from './dom.js';
import { notice } from './forms.js';
import * as api from './api.js';
import { can, READ } from './permissions.js';
import * as admin from './views/admin.js';
import * as apps from './views/apps.js';
import * as deployments from './views/deployments.js';
import * as login from './views/login.js';
import * as roles from './views/roles.js';
import * as subscriptions from './views/subscriptions.js';
import * as tasks from './views/tasks.js';
import * as users from './views/users.js';

const main = document.getElementById('main');
const topbar = document.getElementById('topbar');

/** Pages in the navigation, in order, with the resource whose Read bit shows them. */
const NAV = [
  { route: 'apps', title: 'Apps', resource: 'apps' },
  { route: 'tasks', title: 'Tasks', resource: 'tasks' },
  { route: 'deployments', title: 'Deployments', resource: 'deployments' },
  { route: 'users', title: 'Users', resource: 'beUsers' },
  { route: 'roles', title: 'Roles', resource: 'roles' },
  { route: 'subscriptions', title: 'Subscriptions', resource: 'subscriptions' },
];

/** Route patterns: `:name` matches one segment. `public` pages need no session. */
const ROUTES = [
  { pattern: 'login', view: login.render, public: true, title: 'Sign in' },
  { pattern: 'admin', view: admin.render, public: true, title: 'Administration' },
  { pattern: 'account', view: users.account, title: 'My account' },
  { pattern: 'apps', view: apps.list, resource: 'apps', title: 'Apps' },
  { pattern: 'apps/:name', view: apps.page, resource: 'apps', title: 'App' },
  { pattern: 'tasks', view: tasks.list, resource: 'tasks', title: 'Tasks' },
  { pattern: 'deployments', view: deployments.list, resource: 'deployments', title: 'Deployments' },
  { pattern: 'deployments/:name', view: deployments.page, resource: 'deployments', title: 'Deployment' },
  { pattern: 'users', view: users.list, resource: 'beUsers', title: 'Users' },
  { pattern: 'users/:name', view: users.page, resource: 'beUsers', title: 'User' },
  { pattern: 'roles', view: roles.list, resource: 'roles', title: 'Roles' },
  { pattern: 'roles/:name', view: roles.page, resource: 'roles', title: 'Role' },
  { pattern: 'subscriptions', view: subscriptions.list, resource: 'subscriptions', title: 'Subscriptions' },
  { pattern: 'subscriptions/:name', view: subscriptions.page, resource: 'subscriptions', title: 'Subscription' },
];

// Why the sign-in page is shown (session expired, revoked, signed out), shown there once.
let signInMessage = null;

function decode(part) {
  try {
    return decodeURIComponent(part);
  } catch {
    return part;
  }
}

function match(path) {
  const parts = path.split('/').filter(Boolean).map(decode);
  for (const route of ROUTES) {
    const pattern = route.pattern.split('/');
    if (pattern.length !== parts.length) continue;
    const params = {};
    if (pattern.every((p, i) => (p.startsWith(':') ? (params[p.slice(1)] = parts[i], true) : p === parts[i]))) {
      return { route, params };
    }
  }
  return null;
}

/** The first page the user may see. */
function home() {
  return NAV.find((item) => can(item.resource, READ))?.route || 'account';
}

function renderTopbar(current) {
  const session = api.currentSession();
  fill(topbar, h('a', { class: 'brand', href: session ? `#/${home()}` : '#/login', text: 'rockit-edge' }));
  if (!session) {
    add(topbar, h('nav', { 'aria-label': 'Main' }, h('ul', {},
      h('li', {}, link('login', 'Sign in', { 'aria-current': current === 'login' ? 'page' : undefined })),
      h('li', {}, link('admin', 'Administration', { 'aria-current': current === 'admin' ? 'page' : undefined })))));
    return;
  }
  const items = NAV.filter((item) => can(item.resource, READ));
  add(topbar,
    h('nav', { 'aria-label': 'Main' }, h('ul', {}, items.map((item) => h('li', {},
      link(item.route, item.title, { 'aria-current': current.split('/')[0] === item.route ? 'page' : undefined }))),
    h('li', {}, link('admin', 'Administration', { 'aria-current': current === 'admin' ? 'page' : undefined })))),
    h('div', { class: 'who' },
      link('account', `${session.user?.username ?? ''} @ ${session.org}`, { class: 'account', title: 'My account' }),
      h('button', {
        type: 'button',
        id: 'sign-out',
        text: 'Sign out',
        onclick: async () => {
          try {
            await api.logout();
          } catch {
            // The session ends here either way; the server may have ended it already.
          }
        },
      })));
}

async function render() {
  const path = location.hash.replace(/^#\/?/, '');
  const session = api.currentSession();
  const found = match(path);
  if (!found || (!path && session)) {
    location.replace(`#/${session ? home() : 'login'}`);
    return;
  }
  if (!found.route.public && !session) {
    location.replace('#/login');
    return;
  }
  if (found.route.pattern === 'login' && session) {
    location.replace(`#/${home()}`);
    return;
  }
  renderTopbar(path);
  const view = h('div', { class: 'view' });
  fill(main, view);
  document.title = `${found.route.title} · rockit-edge`;
  if (found.route.resource && !can(found.route.resource, READ)) {
    add(view, h('h1', { text: found.route.title }), notice('Your roles do not allow you to see this page.', 'error'));
    return;
  }
  // Kept while the sign-in page is shown (it may render twice: after a reload's failed refresh
  // and again on the hash change), dropped once the user is elsewhere.
  const onLogin = found.route.pattern === 'login';
  const message = onLogin ? signInMessage : null;
  if (!onLogin) signInMessage = null;
  try {
    await found.route.view(view, found.params, { message });
  } catch (err) {
    if (!view.isConnected) return;
    add(view, notice(err.message || String(err), 'error'));
  }
  // Keyboard and screen-reader users land on the new page's heading, not on the old link,
  // unless the page put the focus somewhere itself (the sign-in form's first field).
  const heading = view.querySelector('h1');
  if (heading && view.isConnected && !view.contains(document.activeElement)) {
    heading.setAttribute('tabindex', '-1');
    heading.focus({ preventScroll: true });
  }
}

api.onSessionEnd((message) => {
  signInMessage = message;
  if (location.hash === '#/login') render();
  else location.hash = '#/login';
});

// The skip link must not touch the hash: the hash is the router's.
document.querySelector('.skip-link')?.addEventListener('click', (event) => {
  event.preventDefault();
  main.focus();
});
window.addEventListener('hashchange', render);
document.getElementById('loading')?.remove();
await api.resume();
render();
