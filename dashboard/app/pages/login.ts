import { ApiError, api, rememberCsrf } from '../api.js';
import { fill, h } from '../dom.js';
import type { Me } from '../types.js';

/** Kept for the tab (sessionStorage): the user logged out, so the page does not sign on again by itself. */
const LOGGED_OUT = 'herd.loggedOut';
/** Kept for the tab: herd offered Kerberos sign-on (or it worked), so the button shows with no attempt made. */
const NEGOTIATE = 'herd.negotiate';

export function rememberLogout(): void {
  sessionStorage.setItem(LOGGED_OUT, '1');
}

type Answer = { csrfToken: string; user: Me };

/**
 * The login form; the session cookie and CSRF token it gets authenticate everything after. Where herd offers
 * Kerberos (docs/security.md: Kerberos sign-on), the page first tries it (`GET /api/v1/session`, which the browser answers
 * with its ticket when it may), unless the user just logged out; a "Sign in with Kerberos" button tries again.
 */
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
  const enter = async (answer: Answer) => {
    rememberCsrf(answer.csrfToken);
    sessionStorage.removeItem(LOGGED_OUT);
    await loggedIn(answer.user);
  };
  const signOn = async (asked: boolean) => {
    try {
      const answer = await api<Answer>('GET', '/api/v1/session');
      // Signed on by Kerberos: after a logout the button is how to sign on again.
      sessionStorage.setItem(NEGOTIATE, '1');
      await enter(answer);
    } catch (err) {
      const offered = err instanceof ApiError && err.body.negotiate === true;
      if (offered) sessionStorage.setItem(NEGOTIATE, '1');
      kerberos.hidden = !sessionStorage.getItem(NEGOTIATE);
      if (!asked) return;
      // The challenge unanswered: no ticket, or this site not allowed for Negotiate. A refusal says why itself.
      error.textContent =
        offered && err.body.refused !== true
          ? 'Kerberos sign-on: the browser sent no ticket (kinit, and allow this site for Negotiate).'
          : err instanceof ApiError
            ? err.message
            : 'herd could not be reached.';
    }
  };
  const kerberos = h(
    'button',
    {
      type: 'button',
      id: 'kerberos',
      hidden: !sessionStorage.getItem(NEGOTIATE),
      onclick: () => {
        error.textContent = '';
        void signOn(true);
      },
    },
    'Sign in with Kerberos',
  );
  const form = h(
    'form',
    {
      class: 'login card',
      onsubmit: async (e: Event) => {
        e.preventDefault();
        submit.disabled = true;
        error.textContent = '';
        try {
          await enter(
            await api<Answer>('POST', '/api/v1/session', {
              username: username.value,
              password: password.value,
            }),
          );
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
    kerberos,
  );
  fill(root, h('div', { class: 'login-wrap' }, form));
  username.focus();
  if (!sessionStorage.getItem(LOGGED_OUT)) void signOn(false);
}
