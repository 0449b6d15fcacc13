import { badge, fill, h } from '../dom.js';
import { searchAll } from '../nav.js';
import type { Page } from '../page.js';
import { onStateChange } from '../state.js';

export const searchPage: Page = (main, _params, query) => {
  const text = query.get('q') ?? '';
  const list = h('ul', { class: 'results' });
  const draw = () => {
    const found = searchAll(text);
    fill(
      list,
      found.length === 0
        ? h('li', { class: 'empty' }, 'Nothing matches.')
        : found
            .slice(0, 500)
            .map((r) =>
              h(
                'li',
                null,
                h('a', { href: r.href }, r.name),
                ' ',
                h('span', { class: 'muted' }, r.kind),
                r.state && badge(r.state),
                r.detail && h('span', { class: 'muted' }, ` in ${r.detail}`),
              ),
            ),
    );
  };
  fill(main, h('h1', null, `Search: “${text}”`), list);
  draw();
  return onStateChange(draw);
};
