// A list page's body: a search box, optional filters, a table and paging (offset/limit).
import { h, table, fill } from '../dom.js';
import { notice } from '../forms.js';

let nextId = 0;

/**
 * `load({offset, limit, search, ...filters})` answers `{items, total}`; `row(item)` answers the
 * cells; `loaded(items)` runs after each page is shown. Answers `{element, reload, results}`.
 */
export function pagedList({ caption, headers, row, load, loaded = () => {}, searchLabel = 'Search by name', filters = [], pageSize = 20 }) {
  nextId += 1;
  const id = `list-${nextId}`;
  let offset = 0;
  let timer = null;
  const search = h('input', { type: 'search', id: `${id}-search`, autocomplete: 'off' });
  const selects = filters.map((filter) => h('select', { id: `${id}-${filter.name}`, name: filter.name },
    filter.options.map(([value, text]) => h('option', { value, text }))));
  const results = h('div', { class: 'results', 'aria-live': 'polite' });
  const status = h('span', { class: 'paging-status' });
  const prev = h('button', { type: 'button', text: 'Previous page', onclick: () => { offset = Math.max(0, offset - pageSize); reload(); } });
  const next = h('button', { type: 'button', text: 'Next page', onclick: () => { offset += pageSize; reload(); } });

  const restart = () => {
    offset = 0;
    reload();
  };
  search.addEventListener('input', () => {
    clearTimeout(timer);
    timer = setTimeout(restart, 250);
  });
  for (const select of selects) select.addEventListener('change', restart);

  let generation = 0;
  async function reload() {
    generation += 1;
    const mine = generation;
    const params = { offset, limit: pageSize, search: search.value.trim() };
    filters.forEach((filter, i) => { params[filter.name] = selects[i].value; });
    try {
      const { items, total } = await load(params);
      if (mine !== generation) return;
      fill(results, table(caption, headers, items.map(row), { empty: params.search || filters.some((filter) => params[filter.name]) ? 'No matches.' : 'Nothing here yet.' }));
      const last = Math.min(offset + items.length, total);
      status.textContent = total === 0 ? '' : `${offset + 1}–${last} of ${total}`;
      prev.disabled = offset === 0;
      next.disabled = last >= total;
      loaded(items);
    } catch (err) {
      if (mine !== generation) return;
      fill(results, notice(err.message, 'error'));
    }
  }

  const element = h('section', { class: 'list' },
    h('form', { class: 'filters', role: 'search', onsubmit: (event) => { event.preventDefault(); restart(); } },
      h('div', { class: 'field' }, h('label', { for: search.id, text: searchLabel }), search),
      filters.map((filter, i) => h('div', { class: 'field' }, h('label', { for: selects[i].id, text: filter.label }), selects[i]))),
    results,
    h('nav', { class: 'paging', 'aria-label': `${caption} pages` }, prev, status, next));
  reload();
  return { element, reload, results };
}
