// The chat info panel: title and description, members with presence and roles, admin actions.
import { api } from '../api.js';
import { state, on, userName, chatTitle, loadChatDetails } from '../store.js';
import { h, replace, icon } from '../dom.js';
import { t } from '../i18n.js';
import { avatar, dateTime } from '../format.js';
import { modal, peoplePicker, openMenu, confirmDialog, showError } from './dialogs.js';

export class InfoPanel {
  constructor(host, chatId, { navigate, onClose }) {
    this.host = host;
    this.chatId = chatId;
    this.navigate = navigate;
    this.onClose = onClose;
    this.el = h('aside', { class: 'info-pane', id: 'info-pane', 'aria-label': t('members.title'), onkeydown: (e) => { if (e.key === 'Escape') { e.stopPropagation(); this.close(); } } });
    replace(host, this.el);
    this.offs = [on('members', (id) => { if (id === chatId) this.draw(); }), on('users', () => this.draw()), on('presence', () => this.draw()), on('chat', (id) => { if (id === chatId) this.draw(); })];
    this.draw();
    this.el.querySelector('.icon-btn')?.focus();
    loadChatDetails(chatId).catch(() => {});
  }

  close() {
    for (const off of this.offs) off();
    this.host.replaceChildren();
    this.onClose();
  }

  draw() {
    const item = state.chats.get(this.chatId);
    if (!item) return;
    const chat = item.chat;
    const admin = item.my_role === 'admin';
    const managed = chat.kind === 'group' || chat.kind === 'channel';
    const members = [...(state.members.get(this.chatId) || new Map()).values()]
      .sort((a, b) => (a.role === b.role ? userName(a.user_id).localeCompare(userName(b.user_id)) : a.role === 'admin' ? -1 : 1));
    const title = chatTitle(item);
    const focusedId = document.activeElement?.closest?.('[data-member]')?.dataset.member;
    replace(this.el,
      h('header', { class: 'info-head' }, h('h2', {}, t('members.title')),
        h('button', { type: 'button', class: 'icon-btn', 'aria-label': t('dialog.close'), onclick: () => this.close() }, icon('close'))),
      h('div', { class: 'info-card' },
        avatar(chat.kind === 'personal' ? item.peer_id : chat.id, title, { size: 'xl', kind: chat.kind }),
        h('h3', {}, title),
        h('div', { class: 'muted' }, chat.kind === 'personal' ? profileLine(item.peer_id) : t(chat.kind === 'channel' ? 'chat.subscribers' : 'chat.members', { n: chat.member_count })),
        chat.description ? h('p', { class: 'info-description' }, chat.description) : null,
        managed && admin ? h('button', { type: 'button', class: 'btn btn-small', onclick: () => this.rename() }, icon('edit'), t('members.rename')) : null),
      managed ? h('section', { class: 'info-section' },
        h('div', { class: 'info-section-head' }, h('h3', {}, t('members.members')),
          admin ? h('button', { type: 'button', class: 'btn btn-small', id: 'add-members', onclick: () => this.addMembers() }, icon('plus'), t('members.add')) : null),
        h('ul', { class: 'people-list members-list' }, members.map((m) => this.memberRow(m, admin)))) : null,
      managed ? h('div', { class: 'info-footer' }, h('button', { type: 'button', class: 'btn btn-danger-outline btn-block', onclick: () => this.leave() }, icon('logout'), t('members.leave'))) : null);
    if (focusedId) this.el.querySelector(`[data-member="${CSS.escape(focusedId)}"] button`)?.focus();
  }

  memberRow(m, admin) {
    const me = m.user_id === state.me.id;
    const p = state.presence.get(m.user_id);
    const name = userName(m.user_id);
    const user = state.users.get(m.user_id);
    const status = p && p.online ? t('chat.online') : p && p.last_seen_at ? t('chat.lastSeen', { t: dateTime(p.last_seen_at) }) : user ? '@' + user.login : '';
    return h('li', { class: 'person', dataset: { member: m.user_id } },
      avatar(m.user_id, name, { size: 'sm', online: p && p.online }),
      h('span', { class: 'person-body' }, h('span', { class: 'person-name' }, name, me ? h('span', { class: 'muted' }, ' (' + t('members.you') + ')') : null),
        h('span', { class: 'muted' + (p && p.online ? ' online-text' : '') }, status)),
      m.role === 'admin' ? h('span', { class: 'role-badge' }, t('members.admin')) : null,
      admin && !me ? h('button', { type: 'button', class: 'icon-btn', 'aria-label': t('members.actionsFor', { name }), 'aria-haspopup': 'menu',
        onclick: (e) => this.memberMenu(m, e.currentTarget) }, icon('more')) : null);
  }

  memberMenu(m, anchor) {
    openMenu(anchor, [
      m.role === 'admin'
        ? { key: 'demote', icon: 'users', label: t('members.removeAdmin'), action: () => api.setRole(this.chatId, m.user_id, 'member').catch(showError) }
        : { key: 'promote', icon: 'users', label: t('members.makeAdmin'), action: () => api.setRole(this.chatId, m.user_id, 'admin').catch(showError) },
      { key: 'remove', icon: 'trash', label: t('members.remove'), danger: true, action: () => api.removeMember(this.chatId, m.user_id).catch(showError) },
    ]);
  }

  addMembers() {
    const existing = new Set((state.members.get(this.chatId) || new Map()).keys());
    const { body, close } = modal(t('members.add'));
    const picker = peoplePicker({ multiple: true, exclude: existing });
    const add = h('button', { type: 'button', class: 'btn btn-primary', onclick: async () => {
      if (!picker.selected.size) { close(); return; }
      try { await api.addMembers(this.chatId, [...picker.selected.keys()]); close(); } catch (error) { showError(error); }
    } }, t('members.add'));
    replace(body, picker.el, h('div', { class: 'dialog-actions' }, add));
    picker.input.focus();
  }

  rename() {
    const item = state.chats.get(this.chatId);
    const { body, close } = modal(t('members.rename'));
    const title = h('input', { class: 'input', value: item.chat.title, 'aria-label': t('new.name'), maxlength: '128' });
    const description = h('textarea', { class: 'input', 'aria-label': t('new.description'), placeholder: t('new.description'), rows: '3', maxlength: '2048' });
    description.value = item.chat.description || '';
    replace(body, h('form', { class: 'new-chat-form', onsubmit: async (e) => {
      e.preventDefault();
      try { await api.updateChat(this.chatId, { title: title.value.trim(), description: description.value.trim() }); close(); } catch (error) { showError(error); }
    } }, title, description, h('div', { class: 'dialog-actions' }, h('button', { type: 'submit', class: 'btn btn-primary' }, t('members.save')))));
    title.focus();
  }

  async leave() {
    if (!(await confirmDialog(t('members.leaveConfirm'), t('members.leave')))) return;
    try { await api.leave(this.chatId); this.close(); this.navigate('/', { replace: true }); } catch (error) { showError(error); }
  }
}

function profileLine(userId) {
  const u = state.users.get(userId);
  if (!u) return '';
  return ['@' + u.login, u.department, u.position].filter(Boolean).join(' · ');
}
