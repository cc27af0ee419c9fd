// Entry point: theme, language, session, stream, and the routes / (chat list), /chat/<id>, /login.
import { api, getToken, setToken, setUnauthenticatedHandler } from './api.js';
import { Stream } from './stream.js';
import { state, emit, on, reset, loadSnapshot, applyEvent, applyEphemeral, loadOutbox, flushOutbox, clearOutbox, rememberProfile, touchTimeline } from './store.js';
import { h, replace, setTitle } from './dom.js';
import { t, setLang, lang } from './i18n.js';
import { renderLogin } from './views/login.js';
import { Sidebar } from './views/sidebar.js';
import { ChatView } from './views/chat.js';
import { closeAllDialogs, toast } from './views/dialogs.js';

const root = document.getElementById('app');
let stream = null;
let sidebar = null;
let chatView = null;

// ---- theme -------------------------------------------------------------------------------
export function theme() { return document.documentElement.dataset.theme; }
export function setTheme(value) {
  document.documentElement.dataset.theme = value;
  localStorage.setItem('vestnik.theme', value);
}
const savedTheme = localStorage.getItem('vestnik.theme');
document.documentElement.dataset.theme = savedTheme || (matchMedia('(prefers-color-scheme: dark)').matches ? 'dark' : 'light');
setLang(lang());

// ---- routing -----------------------------------------------------------------------------
export function navigate(path, { replace: replaceState = false } = {}) {
  if (location.pathname !== path) history[replaceState ? 'replaceState' : 'pushState'](null, '', path);
  route();
}
window.addEventListener('popstate', () => route());

function route() {
  if (!getToken()) { showLogin(); return; }
  if (!state.me) return; // still starting
  const match = location.pathname.match(/^\/chat\/([A-Za-z0-9_-]+)$/);
  const chatId = match ? match[1] : null;
  openChat(chatId);
}

function openChat(chatId) {
  if (state.openChatId === chatId && chatView) return;
  state.openChatId = chatId;
  if (chatId) touchTimeline(chatId);
  root.classList.toggle('chat-open', !!chatId);
  chatView?.destroy();
  chatView = new ChatView(document.getElementById('chat-pane'), chatId, { stream, navigate });
  sidebar?.render();
  setTitle(t('app.name'));
}

// ---- session -----------------------------------------------------------------------------
function showLogin(message) {
  stopSession();
  if (location.pathname !== '/login') history.replaceState(null, '', '/login');
  root.className = 'login-screen';
  root.removeAttribute('aria-busy');
  renderLogin(root, { message, onLoggedIn: (response) => {
    setToken(response.token);
    localStorage.setItem('vestnik.session', response.session.id);
    history.replaceState(null, '', '/');
    start();
  } });
}

function stopSession() {
  stream?.stop();
  stream = null;
  chatView?.destroy();
  chatView = null;
  sidebar?.destroy();
  sidebar = null;
  closeAllDialogs();
  reset();
}

export async function logout() {
  // Stop acting for this user first: nothing queued is sent from here on (the next person on this
  // browser must not send it), and the stream is closed so the server's own revocation of this
  // session does not read as "ended elsewhere".
  clearOutbox();
  stream?.stop();
  stream = null;
  // A dead network must not keep the user from signing out: the token is dropped either way.
  await Promise.race([api.logout().catch(() => {}), new Promise((resolve) => setTimeout(resolve, 5000))]);
  forget();
  showLogin();
}

function forget(message) {
  clearOutbox();
  setToken(null);
  localStorage.removeItem('vestnik.session');
  if (message) showLogin(message);
}

setUnauthenticatedHandler(() => forget(t('sessions.ended')));
on('revoked', () => forget(t('sessions.ended')));

async function start() {
  root.className = 'boot';
  root.setAttribute('aria-busy', 'true');
  let me;
  try {
    me = await api.me();
  } catch (error) {
    if (error.status === 401) return; // handled: back to login
    // Server unreachable: try again shortly with the saved token.
    replace(root, h('div', { class: 'boot-error', role: 'alert' }, t('login.network')));
    setTimeout(start, 3000);
    return;
  }
  state.me = me.user || me;
  rememberProfile({ user: state.me, presence: { user_id: state.me.id, online: true } });
  state.sessionId = localStorage.getItem('vestnik.session');
  loadOutbox();
  buildLayout();
  stream = new Stream({
    token: getToken(),
    onEvent: (event, seq) => applyEvent(event, seq),
    onEphemeral: (event) => applyEphemeral(event),
    onReady: ({ first }) => {
      if (first || !state.snapshotLoaded) loadSnapshot().then(() => emit('resynced')).catch(() => {});
      flushOutbox();
    },
    onResync: () => {
      for (const id of [...state.timelines.keys()]) if (id !== state.openChatId) state.timelines.delete(id);
      loadSnapshot().then(() => emit('resynced')).catch(() => {});
    },
    onState: (value) => { state.connection = value; emit('connection', value); if (value === 'online') flushOutbox(); },
    onFatal: () => forget(t('sessions.ended')),
  });
  stream.start();
  // If the stream is slow to come up, show the chat list from HTTP meanwhile (reloaded at ready).
  setTimeout(() => { if (!state.snapshotLoaded && state.me) loadSnapshot().catch(() => {}); }, 2500);
  route();
}

function buildLayout() {
  sidebar?.destroy();
  root.className = 'layout';
  root.removeAttribute('aria-busy');
  const sidebarEl = h('nav', { class: 'sidebar', id: 'sidebar', 'aria-label': t('list.chats') });
  const chatPane = h('main', { class: 'chat-pane', id: 'chat-pane' });
  replace(root, sidebarEl, chatPane);
  sidebar = new Sidebar(sidebarEl, { navigate, logout, setTheme, theme, relayout });
}

/** Rebuilds the whole interface (after a language change). */
function relayout() {
  const open = state.openChatId;
  chatView?.destroy();
  chatView = null;
  state.openChatId = null;
  buildLayout();
  openChat(open);
}

// Global keys: Escape closes the topmost thing; Ctrl+K / Ctrl+F focuses the chat search.
document.addEventListener('keydown', (event) => {
  if ((event.ctrlKey || event.metaKey) && (event.key === 'k' || event.key === 'K')) {
    const search = document.getElementById('chat-search');
    if (search) { event.preventDefault(); search.focus(); }
  }
});

if (getToken()) start(); else showLogin();
export { toast };
