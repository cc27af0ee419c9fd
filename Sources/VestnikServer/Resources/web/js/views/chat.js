// The conversation pane: header, pinned bar, history with infinite scroll both ways, composer.
import { api } from '../api.js';
import { state, on, timeline, loadHistory, loadChatDetails, loadPins, markRead, userName, chatTitle, typingUsers,
  pendingFor, retryPending, discardPending, ensureUsers } from '../store.js';
import { h, replace, icon, rafThrottle, announce, setTitle } from '../dom.js';
import { t } from '../i18n.js';
import { avatar, dayKey, dayLabel, dateTime } from '../format.js';
import { renderMessage, pendingControls, knownLogins } from './message.js';
import { Composer } from './composer.js';
import { InfoPanel } from './info.js';
import { openMenu, openForwardDialog, openHistoryDialog, openReadByDialog, confirmDialog, showError } from './dialogs.js';
import { botKind } from '../bots.js';

const QUICK_REACTIONS = ['👍', '❤️', '😂', '😮', '😢', '🎉', '🔥', '👎'];
const GROUP_GAP_MS = 5 * 60 * 1000;

export class ChatView {
  constructor(el, chatId, { stream, navigate }) {
    this.el = el;
    this.chatId = chatId;
    this.stream = stream;
    this.navigate = navigate;
    this.offs = [];
    this.stickToBottom = true;
    // Where "unread messages" starts, fixed when the chat is opened (like Telegram's divider).
    const opened = state.chats.get(chatId);
    this.unreadAfter = opened && opened.unread_count > 0 ? opened.read_seq : null;
    if (!chatId) { this.drawEmpty(); return; }
    this.build();
  }

  destroy() {
    for (const off of this.offs) off();
    this.offs = [];
    this.composer?.destroy();
    this.info?.close();
    document.removeEventListener('visibilitychange', this.onVisible);
  }

  get item() { return state.chats.get(this.chatId); }

  drawEmpty() {
    replace(this.el, h('div', { class: 'empty-pane' }, h('div', { class: 'empty-illustration', 'aria-hidden': 'true' }, icon('send')), h('p', {}, t('chat.select'))));
  }

  build() {
    this.title = h('h1', { class: 'chat-title ellipsis', id: 'chat-title' });
    this.subtitle = h('div', { class: 'chat-subtitle ellipsis', id: 'chat-subtitle', 'aria-live': 'polite' });
    this.avatarSlot = h('span', { class: 'avatar-slot' });
    this.infoButton = h('button', { type: 'button', class: 'icon-btn', id: 'chat-info-button', 'aria-label': t('chat.info'), 'aria-expanded': 'false', onclick: () => this.toggleInfo() }, icon('info'));
    const head = h('header', { class: 'chat-head' },
      h('button', { type: 'button', class: 'icon-btn back-btn', 'aria-label': t('chat.back'), onclick: () => this.navigate('/') }, icon('back')),
      h('button', { type: 'button', class: 'chat-head-main', onclick: () => this.toggleInfo(), 'aria-label': t('chat.info') }, this.avatarSlot,
        h('span', { class: 'chat-head-text' }, this.title, this.subtitle)),
      this.infoButton);
    this.pinnedBar = h('div', { class: 'pinned-bar', hidden: true });
    this.list = h('div', { class: 'messages-inner' });
    // The log is redrawn as a whole; new messages are announced once through the live region
    // instead (aria-live off here), so a screen reader does not re-read the history.
    this.scroller = h('div', { class: 'messages', id: 'messages', role: 'log', 'aria-live': 'off', 'aria-label': t('chat.messages'), tabindex: '0',
      onscroll: rafThrottle(() => this.onScroll()), onkeydown: (e) => this.keys(e),
      onfocus: (e) => { if (e.target === this.scroller) this.focusMessage(this.lastMessageEl()); } }, this.list);
    this.jumpBadge = h('span', { class: 'badge', hidden: true });
    this.jump = h('button', { type: 'button', class: 'jump-latest', id: 'jump-latest', hidden: true, 'aria-label': t('chat.jumpLatest'), onclick: () => this.jumpToLatest() }, icon('down'), this.jumpBadge);
    this.composer = new Composer({ chatId: this.chatId, stream: this.stream, view: this });
    this.body = h('section', { class: 'chat-main' }, head, this.pinnedBar, h('div', { class: 'messages-wrap' }, this.scroller, this.jump), this.composer.el);
    this.infoHost = h('div', { class: 'info-host' });
    replace(this.el, h('div', { class: 'chat-layout' }, this.body, this.infoHost));

    this.drawHeader();
    this.draw = rafThrottle(() => this.drawMessages());
    this.offs.push(
      on('timeline', ({ chatId, mode, anchorId }) => { if (chatId === this.chatId) this.onTimeline(mode, anchorId); }),
      on('message', ({ chatId, message, inserted }) => { if (chatId === this.chatId) this.onMessage(message, inserted); }),
      on('pending', (chatId) => { if (chatId === this.chatId) this.draw(); }),
      on('receipts', (chatId) => { if (chatId === this.chatId) this.refreshOwnStatuses(); }),
      on('members', (chatId) => { if (chatId === this.chatId) { this.drawHeader(); this.refreshOwnStatuses(); this.composer.update(); } }),
      on('chats', () => { this.drawHeader(); this.composer.update(); }),
      on('chat', (chatId) => { if (chatId === this.chatId) this.drawHeader(); }),
      on('users', () => { this.drawHeader(); this.draw(); this.composer.update(); }),
      on('typing', (chatId) => { if (chatId === this.chatId) this.drawSubtitle(); }),
      on('presence', () => this.drawSubtitle()),
      on('pins', (chatId) => { if (chatId === this.chatId) this.drawPinned(); }),
      // A button press started or ended: redraw that message's buttons and the keyboard.
      on('bot-press', (message) => {
        if (message.chat_id !== this.chatId) return;
        const current = timeline(this.chatId).byId.get(message.id);
        if (current) this.onMessage(current, false);
        this.composer.drawKeyboard();
      }),
      on('removed', (chatId) => { if (chatId === this.chatId) this.navigate('/', { replace: true }); }),
      on('resynced', () => this.reload()),
      on('connection', (value) => { if (value === 'online' && this.failedLoad) this.reload(); }),
    );
    this.onVisible = () => { if (document.visibilityState === 'visible') this.maybeMarkRead(); };
    document.addEventListener('visibilitychange', this.onVisible);
    this.reload();
    this.composer.focus();
  }

  async reload() {
    const tl = timeline(this.chatId);
    this.failedLoad = false;
    try {
      if (!tl.loaded || !tl.hasMoreAfter) {
        this.stickToBottom = true;
        await loadHistory(this.chatId, 'latest');
      }
      await Promise.all([loadChatDetails(this.chatId), loadPins(this.chatId)]);
    } catch (error) {
      this.failedLoad = true;
      if (error.status === 404 || error.status === 403) { this.navigate('/', { replace: true }); return; }
      if (!tl.loaded) replace(this.list, h('div', { class: 'messages-empty' }, t('conn.offline')));
    }
  }

  drawHeader() {
    const item = this.item;
    if (!item) { this.title.textContent = '…'; return; }
    const kind = botKind(item) || item.chat.kind;
    const title = item.chat.kind === 'notes' ? t('kind.notes') : chatTitle(item);
    this.title.textContent = title;
    setTitle(title + ' · ' + t('app.name'));
    const online = item.chat.kind === 'personal' && state.presence.get(item.peer_id)?.online;
    replace(this.avatarSlot, avatar(item.chat.kind === 'personal' ? item.peer_id : item.chat.id, title, { kind, online }));
    this.infoButton.hidden = item.chat.kind === 'notes';
    this.drawSubtitle();
  }

  drawSubtitle() {
    const item = this.item;
    if (!item) return;
    const typing = typingUsers(this.chatId);
    this.subtitle.classList.toggle('typing-text', typing.length > 0);
    if (typing.length) {
      const names = typing.map((id) => userName(id).split(' ')[0]);
      this.subtitle.textContent = item.chat.kind === 'personal' ? t('chat.typingPersonal')
        : names.length === 1 ? t('chat.typing1', { a: names[0] }) : names.length === 2 ? t('chat.typing2', { a: names[0], b: names[1] }) : t('chat.typingMany', { n: names.length });
      return;
    }
    const chat = item.chat;
    if (botKind(item)) {
      // Bots have no presence: the subtitle says what the chat is.
      this.subtitle.classList.remove('online-text');
      this.subtitle.textContent = t('kind.bot');
    } else if (chat.kind === 'personal') {
      const p = state.presence.get(item.peer_id);
      this.subtitle.textContent = p && p.online ? t('chat.online') : p && p.last_seen_at ? t('chat.lastSeen', { t: dateTime(p.last_seen_at) }) : t('chat.offlineNow');
      this.subtitle.classList.toggle('online-text', !!(p && p.online));
    } else if (chat.kind === 'notes') {
      this.subtitle.textContent = '';
    } else {
      this.subtitle.classList.remove('online-text');
      this.subtitle.textContent = t(chat.kind === 'channel' ? 'chat.subscribers' : 'chat.members', { n: chat.member_count });
    }
  }

  drawPinned() {
    const pins = state.pins.get(this.chatId) || [];
    const last = pins[pins.length - 1];
    this.pinnedBar.hidden = !last;
    if (!last) return;
    const item = this.item;
    const canUnpin = item && (item.chat.kind !== 'channel' || item.my_role === 'admin');
    replace(this.pinnedBar,
      h('button', { type: 'button', class: 'pinned-main', onclick: () => this.jumpTo(last.id) }, icon('pin'),
        h('span', { class: 'pinned-text' }, h('strong', {}, t('chat.pinned') + (pins.length > 1 ? ` (${pins.length})` : '')), h('span', { class: 'ellipsis' }, last.deleted_at ? t('msg.deleted') : last.text))),
      canUnpin ? h('button', { type: 'button', class: 'icon-btn', 'aria-label': t('chat.unpin'), title: t('chat.unpin'), onclick: () => api.unpin(last.id).catch(showError) }, icon('close')) : null);
  }

  // ---- messages ----------------------------------------------------------------------------

  ctx() {
    return {
      item: this.item, logins: knownLogins(),
      onAction: (m, anchor, x, y) => this.actions(m, anchor, x, y),
      onJump: (id) => this.jumpTo(id),
      onReact: (m, emoji, add) => (add ? api.react(m.id, emoji) : api.unreact(m.id, emoji)).catch(showError),
      onReply: (m) => this.composer.startReply(m),
      onHistory: (m) => openHistoryDialog(m),
      onReadBy: (m) => openReadByDialog(m),
      onRetry: (p) => retryPending(this.chatId, p.client_message_id),
      onDiscard: (p) => discardPending(this.chatId, p.client_message_id),
    };
  }

  /** The rows to show: loaded history, then (at the latest end) messages still being sent. */
  rows() {
    const tl = timeline(this.chatId);
    const rows = tl.messages.map((m) => ({ m, pending: false }));
    if (!tl.hasMoreAfter) {
      const sent = new Set(tl.messages.map((m) => m.client_message_id).filter(Boolean));
      for (const p of pendingFor(this.chatId)) {
        if (sent.has(p.client_message_id)) continue;
        rows.push({ m: { ...p, id: null, chat_id: this.chatId, sender_id: state.me.id, reactions: [], mentions: [], edit_count: 0 }, pending: true, p });
      }
    }
    return rows;
  }

  grouped(rows, i) {
    const same = (a, b) => a && b && !a.m.deleted_at === !b.m.deleted_at && a.m.sender_id === b.m.sender_id
      && dayKey(a.m.created_at) === dayKey(b.m.created_at)
      && Math.abs(new Date(a.m.created_at) - new Date(b.m.created_at)) < GROUP_GAP_MS;
    return { prev: same(rows[i - 1], rows[i]), next: same(rows[i], rows[i + 1]) };
  }

  drawMessages(scrollTarget) {
    if (!this.list.isConnected) return;
    const tl = timeline(this.chatId);
    const anchor = this.captureAnchor();
    const focusedId = document.activeElement && document.activeElement.closest && document.activeElement.closest('.msg')?.id;
    const rows = this.rows();
    const ctx = this.ctx();
    const nodes = [];
    if (tl.loaded && tl.hasMoreBefore) nodes.push(h('div', { class: 'history-loader', 'aria-hidden': 'true' }, h('span', { class: 'spinner' })));
    if (tl.loaded && !rows.length) {
      nodes.push(h('div', { class: 'messages-empty' }, h('div', { class: 'empty-bubble' }, t(this.item && this.item.chat.kind === 'notes' ? 'chat.notesEmpty' : 'chat.empty'))));
    }
    let lastDay = null;
    let dividerShown = false;
    let dividerEl = null;
    rows.forEach((row, i) => {
      const day = dayKey(row.m.created_at);
      if (day !== lastDay) {
        nodes.push(h('div', { class: 'day-separator', role: 'separator' }, h('span', {}, dayLabel(row.m.created_at))));
        lastDay = day;
      }
      if (this.unreadAfter !== null && !dividerShown && !row.pending && row.m.chat_seq > this.unreadAfter && row.m.sender_id !== state.me.id) {
        dividerShown = true;
        dividerEl = h('div', { class: 'unread-divider', role: 'separator', id: 'unread-divider' }, h('span', {}, t('chat.unreadBelow')));
        nodes.push(dividerEl);
      }
      const el = renderMessage(row.m, { ...ctx, grouped: this.grouped(rows, i), pending: row.pending });
      if (row.pending) { const controls = pendingControls(row.p, ctx); if (controls) el.querySelector('.msg-body').appendChild(controls); }
      nodes.push(el);
    });
    if (!tl.loaded) nodes.push(h('div', { class: 'messages-empty' }, h('span', { class: 'spinner' })));
    if (tl.loaded && tl.hasMoreAfter) nodes.push(h('div', { class: 'history-loader', 'aria-hidden': 'true' }, h('span', { class: 'spinner' })));
    replace(this.list, nodes);
    if (scrollTarget) {
      const target = document.getElementById('m-' + scrollTarget);
      if (target) { target.scrollIntoView({ block: 'center' }); target.classList.add('flash'); setTimeout(() => target.classList.remove('flash'), 1600); this.focusMessage(target); }
    } else if (dividerEl && !this.dividerScrolled) {
      // First view of a chat with unread messages: start at the divider, not the bottom.
      this.dividerScrolled = true;
      this.scroller.scrollTop = Math.max(0, dividerEl.offsetTop - 80);
      this.stickToBottom = this.distanceFromBottom() < 40;
    } else if (this.stickToBottom) {
      this.scroller.scrollTop = this.scroller.scrollHeight;
    } else this.restoreAnchor(anchor);
    if (focusedId) document.getElementById(focusedId)?.focus({ preventScroll: true });
    this.updateJump();
    this.maybeMarkRead();
    this.composer.drawKeyboard();
  }

  captureAnchor() {
    const top = this.scroller.getBoundingClientRect().top;
    for (const el of this.list.querySelectorAll('.msg[id]')) {
      const rect = el.getBoundingClientRect();
      if (rect.bottom > top) return { id: el.id, offset: rect.top - top };
    }
    return null;
  }

  restoreAnchor(anchor) {
    if (!anchor) return;
    const el = document.getElementById(anchor.id);
    if (!el) return;
    const top = this.scroller.getBoundingClientRect().top;
    this.scroller.scrollTop += el.getBoundingClientRect().top - top - anchor.offset;
  }

  onTimeline(mode, anchorId) {
    if (mode === 'latest') this.stickToBottom = true;
    if (mode === 'around') { this.stickToBottom = false; this.drawMessages(anchorId); return; }
    this.drawMessages();
  }

  onMessage(message, inserted) {
    if (inserted) {
      if (message.sender_id === state.me.id && !timeline(this.chatId).hasMoreAfter) this.stickToBottom = true;
      if (message.sender_id !== state.me.id && !this.stickToBottom) this.unseen = (this.unseen || 0) + 1;
      if (message.sender_id !== state.me.id && !message.deleted_at) announce(userName(message.sender_id) + ': ' + message.text.slice(0, 140));
      this.draw();
      return;
    }
    // An update in place: replace just that row (its neighbours' grouping cannot change).
    const old = document.getElementById('m-' + message.id);
    if (!old) return;
    const rows = this.rows();
    const i = rows.findIndex((r) => r.m.id === message.id);
    if (i < 0) return;
    const el = renderMessage(message, { ...this.ctx(), grouped: this.grouped(rows, i), pending: false });
    const hadFocus = old.contains(document.activeElement);
    // A bot button being pressed is redrawn (pending, then done): keep the focus on it.
    const position = hadFocus && document.activeElement.closest('.bot-bubble') ? document.activeElement.dataset.position : null;
    const atBottom = this.distanceFromBottom() < 40;
    old.replaceWith(el);
    const button = position ? el.querySelector(`.bot-bubble [data-position="${CSS.escape(position)}"]`) : null;
    if (button) button.focus({ preventScroll: true });
    else if (hadFocus) el.focus({ preventScroll: true });
    if (atBottom) this.scroller.scrollTop = this.scroller.scrollHeight;
    this.composer.drawKeyboard();
  }

  refreshOwnStatuses() {
    const tl = timeline(this.chatId);
    for (const el of this.list.querySelectorAll('.msg.own[data-id]')) {
      const m = tl.byId.get(el.dataset.id);
      if (m) this.onMessage(m, false);
    }
  }

  distanceFromBottom() { return this.scroller.scrollHeight - this.scroller.scrollTop - this.scroller.clientHeight; }

  onScroll() {
    const tl = timeline(this.chatId);
    const fromBottom = this.distanceFromBottom();
    this.stickToBottom = fromBottom < 40 && !tl.hasMoreAfter;
    if (this.stickToBottom) this.unseen = 0;
    if (tl.loaded && !tl.loading) {
      if (this.scroller.scrollTop < 400 && tl.hasMoreBefore) loadHistory(this.chatId, 'before').catch(() => {});
      else if (fromBottom < 400 && tl.hasMoreAfter) loadHistory(this.chatId, 'after').catch(() => {});
    }
    this.updateJump();
    this.maybeMarkRead();
  }

  updateJump() {
    const tl = timeline(this.chatId);
    const show = tl.hasMoreAfter || this.distanceFromBottom() > 300;
    this.jump.hidden = !show;
    const unread = this.item ? this.item.unread_count : 0;
    this.jumpBadge.hidden = !show || !unread;
    this.jumpBadge.textContent = String(unread);
  }

  maybeMarkRead() {
    if (document.visibilityState !== 'visible') return;
    const tl = timeline(this.chatId);
    if (!tl.loaded || tl.hasMoreAfter || this.distanceFromBottom() > 80) return;
    markRead(this.chatId);
  }

  async jumpToLatest() {
    const tl = timeline(this.chatId);
    this.stickToBottom = true;
    if (tl.hasMoreAfter) await loadHistory(this.chatId, 'latest').catch(showError);
    else this.scroller.scrollTo({ top: this.scroller.scrollHeight, behavior: 'smooth' });
    this.composer.focus();
  }

  async jumpTo(messageId) {
    const tl = timeline(this.chatId);
    if (tl.byId.has(messageId)) {
      this.stickToBottom = false;
      this.drawMessages(messageId);
      return;
    }
    try { await loadHistory(this.chatId, 'around', messageId); } catch (error) { showError(error); }
  }

  // ---- keyboard ----------------------------------------------------------------------------

  lastMessageEl() { const all = this.list.querySelectorAll('.msg'); return all[all.length - 1]; }

  focusMessage(el) { if (el) el.focus(); }

  keys(event) {
    const current = document.activeElement && document.activeElement.closest('.msg');
    if (!current || !this.list.contains(current)) return;
    const all = [...this.list.querySelectorAll('.msg')];
    const i = all.indexOf(current);
    if (event.target.closest('.reactions, .quote, .edited, .status, .bot-buttons, a') && event.key === 'Enter') return;
    switch (event.key) {
      case 'ArrowUp': event.preventDefault(); if (i > 0) all[i - 1].focus(); else this.scroller.scrollTop = 0; break;
      case 'ArrowDown': event.preventDefault(); if (i < all.length - 1) all[i + 1].focus(); else this.composer.focus(); break;
      case 'Home': event.preventDefault(); all[0]?.focus(); break;
      case 'End': event.preventDefault(); all[all.length - 1]?.focus(); break;
      case 'Enter':
      case 'ContextMenu': {
        event.preventDefault();
        const m = this.messageFor(current);
        if (m && !m.deleted_at) this.actions(m, current.querySelector('.msg-more') || current);
        break;
      }
      case 'Escape': event.preventDefault(); this.composer.focus(); break;
    }
  }

  messageFor(el) { return el && el.dataset.id ? timeline(this.chatId).byId.get(el.dataset.id) : null; }

  actions(m, anchor, x, y) {
    const item = this.item;
    const own = m.sender_id === state.me.id;
    const admin = item && item.my_role === 'admin';
    const canWrite = item && (item.chat.kind !== 'channel' || admin);
    const rowEl = document.getElementById('m-' + m.id);
    const items = [];
    if (canWrite) items.push({ key: 'reply', icon: 'reply', label: t('msg.reply'), action: () => this.composer.startReply(m) });
    if (own && !m.forwarded_from) items.push({ key: 'edit', icon: 'edit', label: t('msg.edit'), action: () => this.composer.startEdit(m) });
    items.push({ key: 'copy', icon: 'copy', label: t('msg.copy'), action: () => copyText(m.text) });
    items.push({ key: 'forward', icon: 'forward', label: t('msg.forward'), action: () => openForwardDialog(m, this.navigate) });
    if (item && (item.chat.kind !== 'channel' || admin)) items.push({ key: 'pin', icon: 'pin', label: m.pinned ? t('msg.unpin') : t('msg.pin'), action: () => (m.pinned ? api.unpin(m.id) : api.pin(m.id)).catch(showError) });
    if (m.edit_count > 0) items.push({ key: 'history', icon: 'clock', label: t('msg.history'), action: () => openHistoryDialog(m) });
    if (own && item && item.chat.kind !== 'notes') items.push({ key: 'readby', icon: 'checks', label: t('msg.readByList'), action: () => openReadByDialog(m) });
    if (own || admin) items.push({ key: 'delete', icon: 'trash', label: t('msg.delete'), danger: true, action: async () => {
      if (await confirmDialog(t('msg.deleteConfirm'), t('msg.delete'))) api.remove(m.id).catch(showError);
    } });
    const mine = new Set((m.reactions || []).filter((r) => r.users.includes(state.me.id)).map((r) => r.emoji));
    const extra = (close) => h('div', { class: 'emoji-row', role: 'group', 'aria-label': t('emoji.picker') }, QUICK_REACTIONS.map((emoji) =>
      h('button', { type: 'button', class: 'emoji-btn' + (mine.has(emoji) ? ' mine' : ''), tabindex: '-1', 'aria-label': emoji, 'aria-pressed': String(mine.has(emoji)),
        onclick: () => { close(); (mine.has(emoji) ? api.unreact(m.id, emoji) : api.react(m.id, emoji)).catch(showError); } }, emoji)));
    openMenu(anchor || rowEl, items, { extra, x, y });
  }

  // ---- info panel --------------------------------------------------------------------------

  toggleInfo() {
    if (!this.item || this.item.chat.kind === 'notes') return;
    if (this.info) { this.info.close(); return; }
    this.info = new InfoPanel(this.infoHost, this.chatId, { navigate: this.navigate, onClose: () => {
      this.info = null;
      this.infoButton.setAttribute('aria-expanded', 'false');
      this.el.querySelector('.chat-layout').classList.remove('info-open');
      this.infoButton.focus();
    } });
    this.infoButton.setAttribute('aria-expanded', 'true');
    this.el.querySelector('.chat-layout').classList.add('info-open');
  }
}

/** Copies text; the async clipboard API needs a secure context, which a plain-http office server is not. */
function copyText(text) {
  if (navigator.clipboard && window.isSecureContext) { navigator.clipboard.writeText(text).catch(() => {}); return; }
  const area = h('textarea', { class: 'sr-only', 'aria-hidden': 'true' });
  area.value = text;
  document.body.appendChild(area);
  area.select();
  try { document.execCommand('copy'); } catch { /* nothing else to try */ }
  area.remove();
}

export { ensureUsers };
