// Forms with a label on every field, the server's validation errors shown next to the field they
// name (the error answer's `param`), one-time secrets, and two-step confirmation buttons.
import { h, add, fill } from './dom.js';

let nextId = 0;

function uid(prefix) {
  nextId += 1;
  return `${prefix}-${nextId}`;
}

function control(field, id, describedBy) {
  const common = { id, name: field.name, 'aria-describedby': describedBy, required: field.required };
  switch (field.type) {
    case 'select':
      return h('select', common, field.options.map(([value, text]) =>
        h('option', { value, selected: String(field.value ?? '') === String(value) }, text)));
    case 'checkbox':
      return h('input', { ...common, type: 'checkbox', checked: Boolean(field.value) });
    case 'textarea':
      return h('textarea', { ...common, rows: field.rows || 3, text: field.value ?? '' });
    case 'checkboxes':
      return h('div', { class: 'choices', id, role: 'group', 'aria-describedby': describedBy },
        field.options.length === 0 ? h('span', { class: 'hint', text: field.emptyText || 'None to choose from.' }) : null,
        field.options.map(([value, text]) => {
          const boxId = uid('choice');
          return h('span', { class: 'choice' },
            h('input', { type: 'checkbox', id: boxId, name: field.name, value, checked: (field.value || []).includes(value) }),
            h('label', { for: boxId, text }));
        }));
    case 'custom':
      return field.element;
    default:
      return h('input', {
        ...common,
        type: field.type || 'text',
        value: field.value ?? '',
        autocomplete: field.autocomplete || 'off',
        min: field.min,
        max: field.max,
        placeholder: field.placeholder,
        spellcheck: field.type === 'password' ? 'false' : undefined,
      });
  }
}

function readValue(field, wrapper) {
  switch (field.type) {
    case 'checkbox':
      return wrapper.querySelector('input').checked;
    case 'checkboxes':
      return [...wrapper.querySelectorAll('input:checked')].map((box) => box.value);
    case 'custom':
      return field.read();
    case 'number': {
      const text = wrapper.querySelector('input').value.trim();
      return text === '' ? undefined : Number(text);
    }
    case 'password':
      return wrapper.querySelector('input').value;
    default:
      return wrapper.querySelector('input, select, textarea').value.trim();
  }
}

/**
 * A form. `fields`: [{name, label, type, required, value, options, hint, show(values)}].
 * `onSubmit(values)` may throw an ApiError; its message appears next to the field its `param`
 * names (or its first part: `origin.path` → `origin.path`, else `origin`), else above the button.
 */
export function form({ fields, submit, onSubmit, title, className = '' }) {
  const formError = h('p', { class: 'form-error', role: 'alert', hidden: true });
  const button = h('button', { type: 'submit', class: 'primary', text: submit });
  const rows = fields.map((field) => {
    const id = uid(`f-${field.name}`);
    const errorId = `${id}-error`;
    const hintId = field.hint ? `${id}-hint` : null;
    const error = h('p', { class: 'field-error', id: errorId, role: 'alert', hidden: true });
    const input = control(field, id, [hintId, errorId].filter(Boolean).join(' '));
    const label = field.type === 'checkboxes' || field.type === 'custom'
      ? h('span', { class: 'label', id: `${id}-label`, text: field.label })
      : h('label', { for: id, text: field.label });
    if (field.type === 'checkboxes' || field.type === 'custom') input.setAttribute('aria-labelledby', `${id}-label`);
    const wrapper = h('div', { class: `field field-${field.type || 'text'}` },
      field.type === 'checkbox' ? [input, label] : [label, input],
      field.hint ? h('p', { class: 'hint', id: hintId, text: field.hint }) : null,
      error);
    return { field, wrapper, input, error };
  });

  const values = () => Object.fromEntries(rows
    .filter((row) => !row.wrapper.hidden)
    .map((row) => [row.field.name, readValue(row.field, row.wrapper)]));

  const updateVisibility = () => {
    const current = Object.fromEntries(rows.map((row) => [row.field.name, readValue(row.field, row.wrapper)]));
    for (const row of rows) if (row.field.show) row.wrapper.hidden = !row.field.show(current);
  };

  const clearErrors = () => {
    formError.hidden = true;
    for (const row of rows) {
      row.error.hidden = true;
      row.input.removeAttribute('aria-invalid');
    }
  };

  const showError = (err) => {
    const param = err.param || (err.code === 'already-exists' ? rows[0]?.field.name : null);
    const row = param && (rows.find((r) => r.field.name === param && !r.wrapper.hidden)
      || rows.find((r) => r.field.name === param.split('.')[0] && !r.wrapper.hidden));
    if (row) {
      row.error.textContent = err.message;
      row.error.hidden = false;
      row.input.setAttribute('aria-invalid', 'true');
      (row.input.matches('input, select, textarea') ? row.input : row.input.querySelector('input'))?.focus();
    } else {
      formError.textContent = err.message;
      formError.hidden = false;
    }
  };

  const el = h('form', {
    class: `form ${className}`,
    novalidate: true,
    onchange: updateVisibility,
    onsubmit: async (event) => {
      event.preventDefault();
      clearErrors();
      button.disabled = true;
      try {
        await onSubmit(values(), el);
      } catch (err) {
        showError(err);
      } finally {
        button.disabled = false;
      }
    },
  },
  title ? h('h2', { text: title }) : null,
  rows.map((row) => row.wrapper),
  formError,
  h('div', { class: 'actions' }, button));
  updateVisibility();
  return el;
}

/**
 * A secret the server shows only once (initial password, API key, signing secret): shown until
 * dismissed, never stored.
 */
export function oneTime(title, entries, onDone) {
  const box = h('section', { class: 'one-time', role: 'status', 'aria-label': title, tabindex: '-1' },
    h('h2', { text: title }),
    h('p', { text: 'Shown only this once: copy it now. It cannot be shown again.' }),
    h('dl', {}, entries.map(([term, value]) => [
      h('dt', { text: term }),
      h('dd', {}, h('code', { class: 'secret', tabindex: '0', text: value }), ' ',
        h('button', {
          type: 'button',
          text: 'Copy',
          onclick: async (event) => {
            try {
              await navigator.clipboard.writeText(value);
              event.target.textContent = 'Copied';
            } catch {
              event.target.textContent = 'Select and copy by hand';
            }
          },
        })),
    ])),
    h('button', { type: 'button', text: 'Done', onclick: () => { box.remove(); onDone?.(); } }));
  return box;
}

/**
 * Puts a one-time secret into `holder`, closes the form's section it came from and moves the
 * focus (and the view) to it, so it is not missed below a long form.
 */
export function showOnce(holder, box, formEl) {
  formEl?.closest('details')?.removeAttribute('open');
  fill(holder, box);
  box.scrollIntoView({ block: 'nearest' });
  box.focus({ preventScroll: true });
}

/** A button that asks once more ("Really delete?") before it acts; no modal dialog. */
export function confirmButton(label, question, onConfirm) {
  const holder = h('span', { class: 'confirm' });
  const error = h('span', { class: 'form-error', role: 'alert', hidden: true });
  const start = h('button', { type: 'button', class: 'danger', text: label });
  const reset = () => {
    fill(holder, start, error);
    start.focus();
  };
  start.addEventListener('click', () => {
    error.hidden = true;
    const yes = h('button', {
      type: 'button',
      class: 'danger',
      text: `Yes, ${label.toLowerCase()}`,
      onclick: async () => {
        yes.disabled = true;
        try {
          await onConfirm();
        } catch (err) {
          error.textContent = err.message;
          error.hidden = false;
          reset();
        }
      },
    });
    const no = h('button', { type: 'button', text: 'Cancel', onclick: reset });
    fill(holder, h('span', { class: 'question', text: question }), ' ', yes, ' ', no, error);
    yes.focus();
  });
  add(holder, start, error);
  return holder;
}

/** A line of feedback for the screen reader and the eye. */
export function notice(text, tone = 'info') {
  return h('p', { class: `notice notice-${tone}`, role: tone === 'error' ? 'alert' : 'status', text });
}
