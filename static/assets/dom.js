// Building the page from elements. Text from the server only ever becomes a text node or
// textContent: nothing here parses HTML, so a label like <img onerror=…> stays plain text.

/**
 * Creates an element. `attrs`: `class`, `text` (textContent), `on<event>` handlers (functions),
 * booleans (set when true, omitted when false), anything else via setAttribute.
 * Children: nodes, strings (as text), arrays, null/undefined/false (skipped).
 */
export function h(tag, attrs = {}, ...children) {
  const el = tag.startsWith('svg:')
    ? document.createElementNS('http://www.w3.org/2000/svg', tag.slice(4))
    : document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key === 'text') el.textContent = String(value);
    else if (key.startsWith('on') && typeof value === 'function') el.addEventListener(key.slice(2), value);
    else if (value === true) el.setAttribute(key, '');
    else el.setAttribute(key, String(value));
  }
  append(el, children);
  return el;
}

/** Appends children (see `h`). */
export function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

/** Removes every child. */
export function clear(el) {
  el.replaceChildren();
  return el;
}

/** Appends children like `h` does (null and false skipped; the DOM's own append would show "null"). */
export function add(el, ...children) {
  return append(el, children);
}

/** Replaces every child. */
export function fill(el, ...children) {
  el.replaceChildren();
  return append(el, children);
}

/** A table with a caption (for screen readers), header cells and rows of cells. */
export function table(caption, headers, rows, { empty = 'Nothing here yet.' } = {}) {
  if (rows.length === 0) return h('p', { class: 'empty', text: empty });
  return h('div', { class: 'table-wrap' },
    h('table', {},
      h('caption', { class: 'visually-hidden', text: caption }),
      h('thead', {}, h('tr', {}, headers.map((title) => h('th', { scope: 'col', text: title })))),
      h('tbody', {}, rows.map((cells) => h('tr', {}, cells.map((cell) => h('td', {}, cell)))))));
}

/** A definition list from [term, value] pairs; empty values show as a dash. */
export function details(pairs) {
  return h('dl', { class: 'details' }, pairs.map(([term, value]) => [
    h('dt', { text: term }),
    h('dd', {}, value === null || value === undefined || value === '' ? '—' : value),
  ]));
}

/** A link inside the console (hash routing). */
export function link(route, text, attrs = {}) {
  return h('a', { ...attrs, href: `#/${route}` }, text);
}

const UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];

/** 1536 → "1.5 KiB". */
export function bytes(n) {
  if (typeof n !== 'number' || !Number.isFinite(n)) return '—';
  let value = n;
  let unit = 0;
  while (value >= 1024 && unit < UNITS.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return `${unit === 0 ? value : value.toFixed(1)} ${UNITS[unit]}`;
}

/** An RFC 3339 timestamp as local date and time; anything else unchanged. */
export function when(value) {
  if (!value) return '—';
  const date = new Date(value);
  return Number.isNaN(date.getTime()) ? String(value) : date.toLocaleString();
}

/** A status word as a small badge (`ok`, `error`, …). */
export function badge(status) {
  const word = String(status ?? 'unknown');
  const tone = /error|fail/.test(word) ? 'bad' : /ok|done|ready|live|success/.test(word) ? 'good' : 'neutral';
  return h('span', { class: `badge badge-${tone}`, text: word });
}

/** Goes to a console page (hash routing: the server only ever serves `/`). */
export function go(route) {
  location.hash = `#/${route}`;
}

/** A path segment for the API, e.g. a name typed by a user. */
export function seg(value) {
  return encodeURIComponent(String(value));
}
