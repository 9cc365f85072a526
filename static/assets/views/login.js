// Sign-in: username and password, then the organization (two-step login); or all three at once.
import { h, go, link, add, fill } from '../dom.js';
import { form, notice } from '../forms.js';
import * as api from '../api.js';

export function render(view, _params, { message } = {}) {
  const panel = h('div', { class: 'panel narrow' });
  add(view, panel);
  credentialsStep(panel, message);
}

function credentialsStep(panel, message) {
  fill(panel,
    h('h1', { text: 'Sign in' }),
    message ? notice(message, 'error') : null,
    form({
      submit: 'Sign in',
      fields: [
        { name: 'username', label: 'Username', required: true, autocomplete: 'username' },
        { name: 'password', label: 'Password', type: 'password', required: true, autocomplete: 'current-password' },
        {
          name: 'orgName',
          label: 'Organization (optional)',
          autocomplete: 'organization',
          hint: 'Leave empty to choose from your organizations after signing in.',
        },
      ],
      onSubmit: async ({ username, password, orgName }) => {
        if (orgName) {
          await api.loginDirect(username, password, orgName);
          go('');
          return;
        }
        const answer = await api.loginWithPassword(username, password);
        orgStep(panel, answer);
      },
    }),
    h('p', { class: 'aside' }, 'Instance administrator? ', link('admin', 'Open the administration page'), '.'));
  panel.querySelector('input')?.focus();
}

function orgStep(panel, { orgs, orgSelection }) {
  const options = orgs.map((org) => [org.name, org.label && org.label !== org.name ? `${org.label} (${org.name})` : org.name]);
  const choose = form({
    submit: 'Continue',
    fields: [{ name: 'orgName', label: 'Organization', type: 'select', required: true, options, value: options[0]?.[0] }],
    onSubmit: async ({ orgName }) => {
      try {
        await api.chooseOrg(orgSelection, orgName);
      } catch (err) {
        // The selection token lives 15 minutes; after that only a fresh sign-in helps.
        if (err.status === 401) {
          credentialsStep(panel, `${err.message} Please sign in again.`);
          return;
        }
        throw err;
      }
      go('');
    },
  });
  fill(panel,
    h('h1', { text: 'Choose an organization' }),
    h('p', { text: 'Your username and password are valid in these organizations.' }),
    choose,
    h('button', { type: 'button', class: 'link-button', text: 'Back', onclick: () => credentialsStep(panel) }));
  choose.querySelector('select')?.focus();
}
