// The message box: send (queued while offline), reply, edit, @mention autocomplete, typing, and in
// chats with a bot its "/" command menu and keyboard (bots.js).
import { api } from '../api.js';
import { state, on, queueMessage, userName, timeline } from '../store.js';
import { h, replace, icon } from '../dom.js';
import { t } from '../i18n.js';
import { avatar } from '../format.js';
import { showError } from './dialogs.js';
import { chatHasBot, botCommands, loadBotCommands, matchCommands, keyboardMessage, renderKeyboard } from '../bots.js';

const drafts = new Map();

export class Composer {
  constructor({ chatId, stream, view }) {
    this.chatId = chatId;
    this.stream = stream;
    this.view = view;
    this.mode = null; // {kind: 'reply'|'edit', message}
    this.lastTyping = 0;
    this.suggestions = [];
    this.active = 0;
    this.input = h('textarea', { id: 'composer-input', class: 'composer-input', rows: '1', placeholder: t('composer.placeholder'), 'aria-label': t('composer.placeholder'),
      'aria-autocomplete': 'list', 'aria-controls': 'mention-list', 'aria-expanded': 'false', maxlength: '16000',
      oninput: () => this.onInput(), onkeydown: (e) => this.keys(e), onclick: () => this.updateSuggestions() });
    this.input.value = drafts.get(chatId) || '';
    this.sendButton = h('button', { type: 'submit', class: 'send-btn', id: 'send-button', 'aria-label': t('composer.send'), title: t('composer.send') }, icon('send'));
    this.bar = h('div', { class: 'composer-bar', hidden: true });
    this.mentionList = h('ul', { class: 'mention-list', id: 'mention-list', role: 'listbox', 'aria-label': t('composer.mentions'), hidden: true });
    this.notice = h('div', { class: 'composer-notice', hidden: true, role: 'status' });
    // Bot chats: the "/" menu button, the keyboard and its show/hide toggle (hidden until needed).
    this.menuButton = h('button', { type: 'button', class: 'composer-icon-btn', id: 'bot-menu-button', hidden: true, 'aria-label': t('bot.menu'), title: t('bot.menu'),
      'aria-haspopup': 'listbox', 'aria-controls': 'mention-list', onclick: () => this.toggleCommandMenu() }, icon('bot'));
    this.keyboardCollapsed = false;
    this.keyboardHost = h('div', { class: 'bot-keyboard-host', id: 'bot-keyboard', hidden: true });
    this.keyboardToggle = h('button', { type: 'button', class: 'composer-icon-btn', id: 'bot-keyboard-toggle', hidden: true, 'aria-controls': 'bot-keyboard',
      'aria-expanded': 'true', 'aria-label': t('bot.hideKeyboard'), title: t('bot.hideKeyboard'),
      onclick: () => { this.keyboardCollapsed = !this.keyboardCollapsed; this.drawKeyboard(); } }, icon('keyboard'));
    this.form = h('form', { class: 'composer-row', onsubmit: (e) => { e.preventDefault(); this.submit(); } }, this.menuButton, this.keyboardToggle, this.input, this.sendButton);
    this.readOnly = h('div', { class: 'composer-readonly', hidden: true }, t('chat.readOnly'));
    this.el = h('footer', { class: 'composer' }, this.mentionList, this.notice, this.bar, this.keyboardHost, this.form, this.readOnly);
    this.offs = [on('connection', () => this.drawNotice()),
      on('bot-commands', (chatId) => {
        if (chatId !== this.chatId) return;
        this.drawBotControls();
        if (this.commandQuery()) this.updateSuggestions();
      })];
    this.update();
    this.drawNotice();
    requestAnimationFrame(() => this.autosize());
  }

  destroy() { for (const off of this.offs) off(); clearTimeout(this.menuRetry); drafts.set(this.chatId, this.input.value); }

  focus() { if (!this.form.hidden) this.input.focus(); }

  update() {
    const item = state.chats.get(this.chatId);
    const readOnly = !!item && item.chat.kind === 'channel' && item.my_role !== 'admin';
    this.form.hidden = readOnly;
    this.readOnly.hidden = !readOnly;
    if (!readOnly && chatHasBot(this.chatId)) loadBotCommands(this.chatId);
    this.drawBotControls();
    this.drawKeyboard();
  }

  // ---- bots --------------------------------------------------------------------------------

  drawBotControls() {
    const hasMenu = chatHasBot(this.chatId) && botCommands(this.chatId).length > 0;
    this.menuButton.hidden = !hasMenu;
    if (hasMenu) this.input.setAttribute('aria-description', t('bot.menuHint'));
    else this.input.removeAttribute('aria-description');
  }

  /** Shows the keyboard of the latest bot message above the input (or hides it). */
  drawKeyboard() {
    const item = state.chats.get(this.chatId);
    const readOnly = !!item && item.chat.kind === 'channel' && item.my_role !== 'admin';
    const message = readOnly ? null : keyboardMessage(this.chatId);
    this.keyboardToggle.hidden = !message;
    this.keyboardToggle.setAttribute('aria-expanded', String(!this.keyboardCollapsed));
    const toggleLabel = t(this.keyboardCollapsed ? 'bot.showKeyboard' : 'bot.hideKeyboard');
    this.keyboardToggle.setAttribute('aria-label', toggleLabel);
    this.keyboardToggle.title = toggleLabel;
    const keyboard = message && !this.keyboardCollapsed ? renderKeyboard(message) : null;
    // Redrawn with every history change: keep the focus on the same button.
    const focused = this.keyboardHost.contains(document.activeElement) ? document.activeElement.dataset.position : null;
    this.keyboardHost.hidden = !keyboard;
    replace(this.keyboardHost, keyboard);
    if (focused) this.keyboardHost.querySelector(`[data-position="${CSS.escape(focused)}"]`)?.focus();
  }

  /** The "/" button: opens the command menu (starting a "/" in an empty box), or closes it. */
  toggleCommandMenu() {
    if (!this.mentionList.hidden && this.suggestions.length && this.suggestions[0].kind === 'command') { this.closeSuggestions(); this.focus(); return; }
    if (!this.commandQuery()) {
      if (this.input.value.trim()) return this.focus();
      this.input.value = '/';
    }
    this.focus();
    this.input.setSelectionRange(this.input.value.length, this.input.value.length);
    this.autosize();
    this.updateSuggestions();
  }

  /** "/" and a word at the very start of the message (before any space): the command being typed. */
  commandQuery() {
    const caret = this.input.selectionStart;
    const match = this.input.value.slice(0, caret).match(/^\/(\S*)$/u);
    return match ? { query: match[1], start: 0, end: caret } : null;
  }

  drawNotice() {
    const offline = state.connection !== 'online';
    this.notice.hidden = !offline;
    this.notice.textContent = offline ? t('composer.queued') : '';
  }

  autosize() {
    this.input.style.height = 'auto';
    this.input.style.height = Math.min(this.input.scrollHeight, 200) + 'px';
  }

  onInput() {
    this.autosize();
    drafts.set(this.chatId, this.input.value);
    const now = Date.now();
    if (this.input.value.trim() && now - this.lastTyping > 3000 && this.mode?.kind !== 'edit') {
      this.lastTyping = now;
      this.stream?.typing(this.chatId);
    }
    this.updateSuggestions();
  }

  // ---- reply / edit ------------------------------------------------------------------------

  startReply(m) {
    this.mode = { kind: 'reply', message: m };
    this.drawBar();
    this.focus();
  }

  startEdit(m) {
    this.mode = { kind: 'edit', message: m, draft: this.input.value };
    this.input.value = m.text;
    this.drawBar();
    this.autosize();
    this.focus();
    this.input.setSelectionRange(this.input.value.length, this.input.value.length);
  }

  cancelMode() {
    if (this.mode && this.mode.kind === 'edit') { this.input.value = this.mode.draft || ''; this.autosize(); }
    this.mode = null;
    this.drawBar();
  }

  drawBar() {
    const mode = this.mode;
    this.bar.hidden = !mode;
    this.sendButton.setAttribute('aria-label', mode && mode.kind === 'edit' ? t('composer.save') : t('composer.send'));
    replace(this.sendButton, icon(mode && mode.kind === 'edit' ? 'check' : 'send'));
    if (!mode) { this.bar.replaceChildren(); return; }
    const m = mode.message;
    replace(this.bar, icon(mode.kind === 'edit' ? 'edit' : 'reply'),
      h('div', { class: 'composer-bar-text' },
        h('strong', {}, mode.kind === 'edit' ? t('composer.editing') : t('composer.replyTo', { name: userName(m.sender_id) })),
        h('span', { class: 'ellipsis' }, m.text)),
      h('button', { type: 'button', class: 'icon-btn', 'aria-label': t('composer.cancel'), onclick: () => { this.cancelMode(); this.focus(); } }, icon('close')));
  }

  // ---- sending -----------------------------------------------------------------------------

  async submit() {
    const text = this.input.value.replace(/^\s+|\s+$/g, '');
    if (this.mode && this.mode.kind === 'edit') {
      const m = this.mode.message;
      if (!text || text === m.text) { this.cancelMode(); return; }
      try {
        await api.edit(m.id, text);
        this.mode = null;
        this.input.value = '';
        this.drawBar();
        this.autosize();
      } catch (error) { showError(error); }
      return;
    }
    if (!text) return;
    this.sendText(text, this.mode && this.mode.kind === 'reply' ? this.mode.message.id : undefined);
    this.input.value = '';
    drafts.delete(this.chatId);
    this.mode = null;
    this.drawBar();
    this.autosize();
    this.closeSuggestions();
    this.focus();
  }

  sendText(text, replyTo) {
    this.view.stickToBottom = true;
    if (timeline(this.chatId).hasMoreAfter) this.view.jumpToLatest();
    queueMessage(this.chatId, text, replyTo);
  }

  keys(event) {
    if (!this.mentionList.hidden && this.suggestions.length) {
      if (event.key === 'ArrowDown' || event.key === 'ArrowUp') {
        event.preventDefault();
        this.active = (this.active + (event.key === 'ArrowDown' ? 1 : -1) + this.suggestions.length) % this.suggestions.length;
        this.drawSuggestions();
        return;
      }
      if (event.key === 'Enter' || event.key === 'Tab') {
        event.preventDefault();
        const s = this.suggestions[this.active];
        // Enter on a command typed in full sends it; otherwise the choice is inserted to go on typing.
        if (event.key === 'Enter' && s.kind === 'command' && this.input.value.trim() === s.body) { this.closeSuggestions(); this.submit(); return; }
        this.pick(s);
        return;
      }
      if (event.key === 'Escape') { event.preventDefault(); this.closeSuggestions(); return; }
    }
    if (event.key === 'Enter' && !event.shiftKey && !event.isComposing) { event.preventDefault(); this.submit(); return; }
    if (event.key === 'Escape' && this.mode) { event.preventDefault(); this.cancelMode(); return; }
    if (event.key === 'ArrowUp' && !this.input.value && !this.mode) {
      // Like Telegram: up in an empty box edits your last message.
      const mine = timeline(this.chatId).messages.filter((m) => m.sender_id === state.me.id && !m.deleted_at && !m.forwarded_from);
      if (mine.length) { event.preventDefault(); this.startEdit(mine[mine.length - 1]); }
      return;
    }
    if (event.key === 'Tab' && event.shiftKey) return;
  }

  // ---- mentions ----------------------------------------------------------------------------

  mentionQuery() {
    const caret = this.input.selectionStart;
    const before = this.input.value.slice(0, caret);
    const match = before.match(/(^|\s)@([\p{L}\p{N}_.-]*)$/u);
    return match ? { query: match[2].toLowerCase(), start: caret - match[2].length - 1, end: caret } : null;
  }

  updateSuggestions() {
    const command = this.commandQuery();
    if (command && chatHasBot(this.chatId)) {
      loadBotCommands(this.chatId, { wanted: true }); // no-op while the cached menu is fresh; 'bot-commands' redraws
      // A bot registered moments ago has no menu yet: look again while the "/" stays typed.
      clearTimeout(this.menuRetry);
      if (!botCommands(this.chatId).length) this.menuRetry = setTimeout(() => { if (this.commandQuery()) this.updateSuggestions(); }, 3000);
      this.suggestions = matchCommands(this.chatId, command.query).slice(0, 50).map((c) => ({ kind: 'command', ...c }));
      this.range = command;
      this.active = 0;
      if (!this.suggestions.length) { this.closeSuggestions(); return; }
      this.drawSuggestions();
      return;
    }
    const q = this.mentionQuery();
    const item = state.chats.get(this.chatId);
    const members = state.members.get(this.chatId);
    if (!q || !item || item.chat.kind === 'notes' || !members) { this.closeSuggestions(); return; }
    const list = [];
    for (const id of members.keys()) {
      if (id === state.me.id) continue;
      const u = state.users.get(id);
      if (!u) continue;
      if (u.login.toLowerCase().startsWith(q.query) || u.display_name.toLowerCase().split(/\s+/).some((w) => w.startsWith(q.query))) list.push({ kind: 'mention', login: u.login, name: u.display_name, id });
    }
    list.sort((a, b) => a.name.localeCompare(b.name));
    if (item.chat.kind !== 'personal' && 'all'.startsWith(q.query)) list.push({ kind: 'mention', login: 'all', name: t('composer.everyone'), id: 'all' });
    this.suggestions = list.slice(0, 8);
    this.range = q;
    this.active = 0;
    if (!this.suggestions.length) { this.closeSuggestions(); return; }
    this.drawSuggestions();
  }

  drawSuggestions() {
    const commands = this.suggestions[0].kind === 'command';
    // Several bots in the chat: each command says whose it is.
    const bots = commands ? new Set(this.suggestions.map((s) => s.bot && s.bot.id)).size : 0;
    this.mentionList.hidden = false;
    this.mentionList.classList.toggle('command-list', commands);
    this.mentionList.setAttribute('aria-label', t(commands ? 'bot.menu' : 'composer.mentions'));
    this.input.setAttribute('aria-expanded', 'true');
    this.menuButton.setAttribute('aria-expanded', String(commands));
    replace(this.mentionList, this.suggestions.map((s, i) => h('li', { role: 'option', id: 'mention-' + i, class: 'mention-option' + (i === this.active ? ' active' : ''), 'aria-selected': String(i === this.active),
      dataset: commands ? { command: s.body } : { login: s.login },
      onmousedown: (e) => { e.preventDefault(); this.pick(s); } },
    commands ? [h('span', { class: 'command-body' }, s.body),
      h('span', { class: 'command-text' }, h('span', { class: 'command-description' }, s.description || s.name),
        bots > 1 && s.bot ? h('span', { class: 'muted command-bot' }, s.bot.display_name) : null)]
      : [s.id === 'all' ? h('span', { class: 'avatar avatar-sm hue-0', 'aria-hidden': 'true' }, '@') : avatar(s.id, s.name, { size: 'sm' }),
        h('span', { class: 'person-name' }, s.name), h('span', { class: 'muted' }, '@' + s.login)])));
    this.input.setAttribute('aria-activedescendant', 'mention-' + this.active);
    this.mentionList.querySelector('.mention-option.active')?.scrollIntoView({ block: 'nearest' });
  }

  closeSuggestions() {
    this.suggestions = [];
    this.mentionList.hidden = true;
    this.input.setAttribute('aria-expanded', 'false');
    this.menuButton.setAttribute('aria-expanded', 'false');
    this.input.removeAttribute('aria-activedescendant');
  }

  pick(s) {
    const { start, end } = this.range;
    const value = this.input.value;
    const insert = s.kind === 'command' ? s.body + ' ' : '@' + s.login + ' ';
    this.input.value = value.slice(0, start) + insert + value.slice(end);
    const caret = start + insert.length;
    this.input.setSelectionRange(caret, caret);
    this.closeSuggestions();
    this.focus();
  }
}
