// The left column: menu, search, connection state and the chat list.
import { state, on, sortedChats, chatTitle, userName, typingUsers, createNotes, rememberProfile, loadSnapshot } from '../store.js';
import { api } from '../api.js';
import { h, replace, icon, rafThrottle, setUnreadTotal, debounce } from '../dom.js';
import { t, lang, setLang } from '../i18n.js';
import { avatar, shortDate, kindIcon } from '../format.js';
import { openNewChatDialog, openSessionsDialog, openMenu, showError } from './dialogs.js';
import { botKind } from '../bots.js';

export class Sidebar {
  constructor(el, actions) {
    this.el = el;
    this.actions = actions;
    this.filter = '';
    this.people = [];
    // Typing a colleague's name finds them in the directory too, like a messenger's global search.
    this.searchPeople = debounce(async () => {
      const query = this.filter;
      if (!query) return;
      try {
        const list = await api.users(query, 20);
        if (query !== this.filter) return;
        list.users.forEach(rememberProfile);
        this.people = list.users.filter((p) => p.user.id !== state.me.id);
        this.render();
      } catch { /* the chat filter still works offline */ }
    }, 200);
    this.search = h('input', { id: 'chat-search', type: 'search', placeholder: t('list.search'), 'aria-label': t('list.search'), autocomplete: 'off',
      oninput: () => { this.filter = this.search.value.trim().toLowerCase(); this.people = []; this.render(); this.searchPeople(); },
      onkeydown: (e) => { if (e.key === 'ArrowDown') { e.preventDefault(); this.list.querySelector('a')?.focus(); } if (e.key === 'Escape') { this.search.value = ''; this.filter = ''; this.render(); } } });
    this.menuButton = h('button', { class: 'icon-btn', id: 'menu-button', 'aria-label': t('menu.title'), 'aria-haspopup': 'menu', onclick: () => this.openMenu() }, icon('menu'));
    this.status = h('div', { class: 'conn-status', role: 'status', id: 'conn-status' });
    this.list = h('ul', { class: 'chat-list', id: 'chat-list', 'aria-label': t('list.chats'), onkeydown: (e) => this.keys(e) });
    const newButton = h('button', { class: 'fab', id: 'new-chat', 'aria-label': t('list.newChat'), title: t('list.newChat'), onclick: () => openNewChatDialog(actions.navigate) }, icon('edit'));
    replace(el, h('div', { class: 'sidebar-head' }, this.menuButton, h('div', { class: 'search-box' }, icon('search'), this.search)), this.status, this.list, newButton);
    this.render = rafThrottle(() => this.draw());
    // Unsubscribed in destroy(): a sidebar is rebuilt on every sign-in and language change.
    this.offs = ['chats', 'users', 'typing', 'presence'].map((topic) => on(topic, () => this.render()));
    this.offs.push(on('connection', () => this.drawStatus()));
    this.drawStatus();
    this.draw();
  }

  destroy() {
    for (const off of this.offs) off();
    this.offs = [];
  }

  drawStatus() {
    const c = state.connection;
    this.status.textContent = c === 'online' ? '' : t(c === 'offline' ? 'conn.offline' : 'conn.connecting');
    this.status.className = 'conn-status' + (c === 'online' ? '' : ' visible ' + c);
  }

  draw() {
    if (!this.el.isConnected) return;
    const focusedId = document.activeElement && document.activeElement.closest('.chat-item')?.dataset.id;
    let unreadTotal = 0;
    for (const item of state.chats.values()) unreadTotal += item.unread_count || 0;
    setUnreadTotal(unreadTotal);
    const items = sortedChats().filter((item) => {
      if (!this.filter) return true;
      const peer = item.peer_id && state.users.get(item.peer_id);
      return [chatTitle(item), item.chat.kind === 'notes' ? t('kind.notes') : '', peer ? peer.login : ''].join(' ').toLowerCase().includes(this.filter);
    });
    const withChat = new Set(items.filter((item) => item.chat.kind === 'personal').map((item) => item.peer_id));
    const people = this.filter ? this.people.filter((p) => !withChat.has(p.user.id)) : [];
    if (!items.length && !people.length) {
      replace(this.list, h('li', { class: 'list-empty' }, state.snapshotLoaded ? t(this.filter ? 'list.noResults' : 'list.empty') : t('chat.loading')));
      return;
    }
    replace(this.list, items.map((item) => this.row(item)),
      people.length ? h('li', { class: 'list-section', role: 'presentation' }, t('list.people')) : null,
      people.map((p) => this.personRow(p)));
    if (focusedId) this.list.querySelector(`.chat-item[data-id="${CSS.escape(focusedId)}"]`)?.focus();
  }

  row(item) {
    const chat = item.chat;
    const kind = botKind(item) || chat.kind;
    const title = chat.kind === 'notes' ? t('kind.notes') : chatTitle(item);
    const online = chat.kind === 'personal' && item.peer_id && state.presence.get(item.peer_id)?.online;
    const typing = typingUsers(chat.id);
    let preview;
    if (typing.length) preview = h('span', { class: 'typing-text' }, chat.kind === 'personal' ? t('chat.typingPersonal') : t('chat.typing1', { a: userName(typing[0]).split(' ')[0] }));
    else if (item.last_message) {
      const m = item.last_message;
      const who = m.sender_id === state.me.id ? t('list.you') : (chat.kind === 'group' ? userName(m.sender_id).split(' ')[0] : null);
      preview = [who && chat.kind !== 'notes' ? h('span', { class: 'preview-sender' }, who + ': ') : null,
        m.deleted_at ? h('i', {}, t('msg.deleted')) : firstLine(m.text)];
    } else preview = h('i', {}, t('list.noMessages'));
    const unread = item.unread_count > 0;
    const active = state.openChatId === chat.id;
    const label = [t('kind.' + kind), title, unread ? t('list.unread', { n: item.unread_count }) : ''].filter(Boolean).join(', ');
    return h('li', {},
      h('a', { class: 'chat-item' + (active ? ' active' : '') + (unread ? ' unread' : ''), href: '/chat/' + chat.id, dataset: { id: chat.id, kind },
        'aria-current': active ? 'page' : null, 'aria-label': label,
        onclick: (e) => { if (e.ctrlKey || e.metaKey || e.shiftKey) return; e.preventDefault(); this.actions.navigate('/chat/' + chat.id); } },
      avatar(chat.kind === 'personal' ? item.peer_id || chat.id : chat.id, title, { kind, online }),
      h('span', { class: 'chat-item-body' },
        h('span', { class: 'chat-item-top' },
          h('span', { class: 'chat-item-title' }, kind !== 'personal' && kind !== 'notes' ? kindIcon(kind) : null, h('span', { class: 'ellipsis' }, title)),
          h('span', { class: 'chat-item-time' }, shortDate(item.last_message ? item.last_message.created_at : chat.last_activity_at))),
        h('span', { class: 'chat-item-bottom' },
          h('span', { class: 'chat-item-preview ellipsis' }, preview),
          unread ? h('span', { class: 'badge', 'aria-hidden': 'true' }, item.unread_count > 999 ? '999+' : String(item.unread_count)) : null))));
  }

  personRow(p) {
    const u = p.user;
    const bot = u.kind === 'botx';
    const open = async (e) => {
      e.preventDefault();
      try {
        const chat = await api.createChat({ kind: 'personal', members: [u.id] });
        if (!state.chats.has(chat.id)) await loadSnapshot();
        this.search.value = '';
        this.filter = '';
        this.people = [];
        this.actions.navigate('/chat/' + chat.id);
      } catch (error) { showError(error); }
    };
    return h('li', {},
      h('a', { class: 'chat-item person-result', href: '#', dataset: { login: u.login, kind: bot ? 'bot' : 'personal' }, onclick: open, 'aria-label': t(bot ? 'kind.bot' : 'kind.personal') + ', ' + u.display_name },
        avatar(u.id, u.display_name, { kind: bot ? 'bot' : undefined, online: !bot && p.presence && p.presence.online }),
        h('span', { class: 'chat-item-body' },
          h('span', { class: 'chat-item-top' }, h('span', { class: 'chat-item-title' }, bot ? kindIcon('bot') : null, h('span', { class: 'ellipsis' }, u.display_name))),
          h('span', { class: 'chat-item-bottom' }, h('span', { class: 'chat-item-preview ellipsis' }, ['@' + u.login, u.department, u.position].filter(Boolean).join(' · '))))));
  }

  keys(event) {
    const links = [...this.list.querySelectorAll('a.chat-item')];
    const index = links.indexOf(document.activeElement);
    if (index < 0) return;
    if (event.key === 'ArrowDown' || event.key === 'ArrowUp') {
      event.preventDefault();
      const next = event.key === 'ArrowDown' ? Math.min(links.length - 1, index + 1) : index - 1;
      if (next < 0) this.search.focus(); else links[next].focus();
    } else if (event.key === 'Home') { event.preventDefault(); links[0].focus(); }
    else if (event.key === 'End') { event.preventDefault(); links[links.length - 1].focus(); }
  }

  openMenu() {
    const { actions } = this;
    openMenu(this.menuButton, [
      { header: true, label: state.me.display_name, sub: '@' + state.me.login, id: state.me.id },
      { key: 'notes', icon: 'bookmark', label: t('menu.notes'), action: async () => { const chat = await createNotes(); if (chat) actions.navigate('/chat/' + chat.id); } },
      { key: 'theme', icon: 'moon', label: t('menu.theme'), checked: actions.theme() === 'dark', action: () => actions.setTheme(actions.theme() === 'dark' ? 'light' : 'dark') },
      { key: 'language', icon: 'globe', label: t('menu.language'), action: () => { setLang(lang() === 'ru' ? 'en' : 'ru'); actions.relayout(); } },
      { key: 'sessions', icon: 'devices', label: t('menu.sessions'), action: () => openSessionsDialog() },
      { key: 'logout', icon: 'logout', label: t('menu.logout'), danger: true, action: () => actions.logout() },
    ]);
  }
}

function firstLine(text) {
  const line = String(text || '').split('\n').find((l) => l.trim()) || '';
  return line.length > 120 ? line.slice(0, 120) + '…' : line;
}
