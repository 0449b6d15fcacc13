import { ApiError, api, rememberCsrf } from '../api.js';
import { fill, h } from '../dom.js';
import type { Me } from '../types.js';

/** The login form; the session cookie and CSRF token it gets authenticate everything after. */
export function loginPage(root: HTMLElement, loggedIn: (me: Me) => Promise<void>): void {
  const username = h('input', { id: 'username', name: 'username', autocomplete: 'username', required: true });
  const password = h('input', {
    id: 'password',
    name: 'password',
    type: 'password',
    autocomplete: 'current-password',
    required: true,
  });
  const error = h('p', { class: 'error', role: 'alert' });
  const submit = h('button', { type: 'submit' }, 'Log in');
  const form = h(
    'form',
    {
      class: 'login card',
      onsubmit: async (e: Event) => {
        e.preventDefault();
        submit.disabled = true;
        error.textContent = '';
        try {
          const answer = await api<{ csrfToken: string; user: Me }>('POST', '/api/v1/session', {
            username: username.value,
            password: password.value,
          });
          rememberCsrf(answer.csrfToken);
          await loggedIn(answer.user);
        } catch (err) {
          error.textContent = err instanceof ApiError ? err.message : 'herd could not be reached.';
          submit.disabled = false;
          password.select();
        }
      },
    },
    h('h1', null, 'herd'),
    h('p', { class: 'muted' }, 'Pools, hosts and VMs of your fleet.'),
    h('label', { for: 'username' }, 'Username'),
    username,
    h('label', { for: 'password' }, 'Password'),
    password,
    error,
    submit,
  );
  fill(root, h('div', { class: 'login-wrap' }, form));
  username.focus();
}
