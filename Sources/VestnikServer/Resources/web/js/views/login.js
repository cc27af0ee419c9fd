// The sign-in screen.
import { api } from '../api.js';
import { h, replace } from '../dom.js';
import { t, lang, setLang } from '../i18n.js';

function deviceName() {
  const ua = navigator.userAgent;
  const browser = /Edg\//.test(ua) ? 'Edge' : /Firefox\//.test(ua) ? 'Firefox' : /Chrom(e|ium)\//.test(ua) ? 'Chrome' : /Safari\//.test(ua) ? 'Safari' : 'Browser';
  const os = /Windows/.test(ua) ? 'Windows' : /Android/.test(ua) ? 'Android' : /iPhone|iPad/.test(ua) ? 'iOS' : /Mac OS/.test(ua) ? 'macOS' : /Linux/.test(ua) ? 'Linux' : '';
  return (browser + (os ? ' · ' + os : '') + ' (web)').slice(0, 100);
}

export function renderLogin(root, { message, onLoggedIn }) {
  const error = h('p', { class: 'form-error', id: 'login-error', role: 'alert' }, message || '');
  const login = h('input', { id: 'login', name: 'login', autocomplete: 'username', autocapitalize: 'none', spellcheck: 'false', required: true, 'aria-describedby': 'login-error' });
  const password = h('input', { id: 'password', name: 'password', type: 'password', autocomplete: 'current-password', required: true, 'aria-describedby': 'login-error' });
  const submit = h('button', { class: 'btn btn-primary btn-block', type: 'submit', id: 'login-submit' }, t('login.submit'));
  let countdown = null;

  const form = h('form', { class: 'login-card', novalidate: true, 'aria-labelledby': 'login-title', onsubmit: async (event) => {
    event.preventDefault();
    if (!login.value.trim() || !password.value) { error.textContent = t('login.required'); (login.value.trim() ? password : login).focus(); return; }
    submit.disabled = true;
    submit.textContent = t('login.busy');
    error.textContent = '';
    try {
      const response = await api.login(login.value.trim(), password.value, deviceName());
      onLoggedIn(response);
    } catch (err) {
      submit.disabled = false;
      submit.textContent = t('login.submit');
      if (err.code === 'rate_limited') {
        let left = err.retryAfter || 60;
        submit.disabled = true;
        const tick = () => {
          error.textContent = t('login.rateLimited', { s: left });
          if (left-- <= 0) { clearInterval(countdown); submit.disabled = false; error.textContent = ''; }
        };
        clearInterval(countdown);
        tick();
        countdown = setInterval(tick, 1000);
      } else if (err.code === 'account_blocked') error.textContent = t('login.blocked');
      else if (err.status === 0 || err.status >= 500) error.textContent = t('login.network');
      else if (err.status === 401 || err.code === 'invalid_credentials') error.textContent = t('login.invalid');
      else error.textContent = err.message;
      password.select();
      password.focus();
    }
  } },
  h('div', { class: 'login-logo', 'aria-hidden': 'true' }),
  h('h1', { id: 'login-title' }, t('login.title')),
  h('p', { class: 'muted' }, t('login.subtitle')),
  h('label', { class: 'field' }, h('span', {}, t('login.login')), login),
  h('label', { class: 'field' }, h('span', {}, t('login.password')), password),
  error,
  submit,
  h('button', { type: 'button', class: 'btn btn-link lang-switch', onclick: () => {
    setLang(lang() === 'ru' ? 'en' : 'ru');
    renderLogin(root, { message: '', onLoggedIn });
  } }, t('menu.language')));
  replace(root, h('div', { class: 'login-wrap' }, form));
  login.focus();
}
