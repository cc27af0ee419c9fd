// Dialogs, menus and toasts: native <dialog> for focus trapping and Escape, focus returned to
// whatever opened them.
import { api } from '../api.js';
import { state, chatTitle, userName, ensureUsers, rememberProfile, loadSnapshot, sortedChats } from '../store.js';
import { h, replace, icon, debounce, announce } from '../dom.js';
import { t } from '../i18n.js';
import { avatar, dateTime } from '../format.js';

const open = new Set();

export function closeAllDialogs() {
  for (const d of [...open]) d.close();
  document.querySelectorAll('.menu-layer').forEach((el) => el.remove());
}

/** Opens a modal dialog; returns {dialog, body, close}. */
export function modal(title, { className = '', onClose } = {}) {
  const returnFocus = document.activeElement;
  const id = 'dlg-' + Math.random().toString(36).slice(2);
  const body = h('div', { class: 'dialog-body' });
  const dialog = h('dialog', { class: 'dialog ' + className, 'aria-labelledby': id },
    h('header', { class: 'dialog-head' }, h('h2', { id }, title),
      h('button', { class: 'icon-btn', type: 'button', 'aria-label': t('dialog.close'), onclick: () => dialog.close() }, icon('close'))),
    body);
  dialog.addEventListener('close', () => {
    open.delete(dialog);
    dialog.remove();
    onClose?.();
    if (returnFocus && returnFocus.isConnected) returnFocus.focus();
  });
  dialog.addEventListener('click', (e) => { if (e.target === dialog) dialog.close(); });
  document.body.appendChild(dialog);
  open.add(dialog);
  dialog.showModal();
  return { dialog, body, close: () => dialog.close() };
}

export function toast(text, { error = false } = {}) {
  let host = document.getElementById('toasts');
  if (!host) { host = h('div', { id: 'toasts', class: 'toasts', role: 'status', 'aria-live': 'polite' }); document.body.appendChild(host); }
  const el = h('div', { class: 'toast' + (error ? ' toast-error' : '') }, text);
  host.appendChild(el);
  setTimeout(() => el.remove(), 4000);
}

export function showError(error) {
  toast(error && error.status === 0 ? t('error.network') : t('error.generic', { msg: error && error.message || String(error) }), { error: true });
}

export function confirmDialog(text, okLabel) {
  return new Promise((resolve) => {
    let result = false;
    const { body, close } = modal(text, { className: 'dialog-small', onClose: () => resolve(result) });
    const ok = h('button', { class: 'btn btn-danger', type: 'button', onclick: () => { result = true; close(); } }, okLabel || t('dialog.ok'));
    replace(body, h('div', { class: 'dialog-actions' }, h('button', { class: 'btn', type: 'button', onclick: close }, t('dialog.cancel')), ok));
    ok.focus();
  });
}

/**
 * A popup menu anchored to `anchor`: items {icon, label, action, danger, checked} or a {header}.
 * Arrow keys move, Enter activates, Escape closes and returns focus to the anchor.
 */
export function openMenu(anchor, items, { extra, x, y } = {}) {
  document.querySelectorAll('.menu-layer').forEach((el) => el.remove());
  const close = () => { layer.remove(); if (anchor && anchor.isConnected) anchor.focus(); };
  const menu = h('div', { class: 'menu', role: 'menu' });
  if (extra) menu.appendChild(extra(close));
  for (const item of items) {
    if (item.header) {
      menu.appendChild(h('div', { class: 'menu-header' }, avatar(item.id, item.label, { size: 'sm' }), h('div', {}, h('strong', {}, item.label), h('div', { class: 'muted' }, item.sub))));
      continue;
    }
    menu.appendChild(h('button', { type: 'button', class: 'menu-item' + (item.danger ? ' danger' : ''), role: item.checked === undefined ? 'menuitem' : 'menuitemcheckbox',
      'aria-checked': item.checked === undefined ? null : String(item.checked), tabindex: '-1', dataset: item.key ? { action: item.key } : null,
      onclick: () => { close(); item.action(); } }, icon(item.icon), h('span', {}, item.label),
      item.checked === undefined ? null : h('span', { class: 'switch' + (item.checked ? ' on' : ''), 'aria-hidden': 'true' })));
  }
  const layer = h('div', { class: 'menu-layer', onclick: (e) => { if (e.target === layer) close(); } }, menu);
  layer.addEventListener('keydown', (e) => {
    const buttons = [...menu.querySelectorAll('[role^="menuitem"], .emoji-btn')];
    const i = buttons.indexOf(document.activeElement);
    if (e.key === 'Escape') { e.preventDefault(); e.stopPropagation(); close(); }
    else if (e.key === 'ArrowDown' || (e.key === 'ArrowRight' && document.activeElement.classList.contains('emoji-btn'))) { e.preventDefault(); buttons[(i + 1) % buttons.length].focus(); }
    else if (e.key === 'ArrowUp' || (e.key === 'ArrowLeft' && document.activeElement.classList.contains('emoji-btn'))) { e.preventDefault(); buttons[(i - 1 + buttons.length) % buttons.length].focus(); }
    else if (e.key === 'Tab') { e.preventDefault(); buttons[(i + (e.shiftKey ? -1 : 1) + buttons.length) % buttons.length].focus(); }
  });
  document.body.appendChild(layer);
  const rect = anchor ? anchor.getBoundingClientRect() : { left: x, right: x, bottom: y, top: y };
  const mw = menu.offsetWidth, mh = menu.offsetHeight;
  let left = x !== undefined ? x : rect.left;
  let top = y !== undefined ? y : rect.bottom + 4;
  if (left + mw > innerWidth - 8) left = Math.max(8, (x !== undefined ? x : rect.right) - mw);
  if (top + mh > innerHeight - 8) top = Math.max(8, (y !== undefined ? y : rect.top) - mh - 4);
  menu.style.left = left + 'px';
  menu.style.top = top + 'px';
  (menu.querySelector('[role^="menuitem"], .emoji-btn'))?.focus();
  return close;
}

// ---- people picker (directory search) -------------------------------------------------------

function peoplePicker({ multiple, exclude = new Set(), onPick, onChange }) {
  const selected = new Map();
  const results = h('ul', { class: 'people-list', role: 'listbox', 'aria-label': t('new.search'), 'aria-multiselectable': multiple ? 'true' : 'false' });
  const chips = h('div', { class: 'chips' });
  const input = h('input', { type: 'search', class: 'input', placeholder: t('new.search'), 'aria-label': t('new.search'), autocomplete: 'off',
    onkeydown: (e) => { if (e.key === 'ArrowDown') { e.preventDefault(); results.querySelector('[role=option]')?.focus(); } } });
  const drawChips = () => {
    replace(chips, [...selected.values()].map((u) => h('button', { type: 'button', class: 'chip', 'aria-label': t('dialog.close') + ': ' + u.display_name,
      onclick: () => { selected.delete(u.id); drawChips(); search(); } }, u.display_name, icon('close'))));
    onChange?.(selected);
  };
  const search = debounce(async () => {
    let list;
    try { list = await api.users(input.value.trim(), 50); } catch (error) { showError(error); return; }
    const users = list.users.filter((p) => p.user.id !== state.me.id && !exclude.has(p.user.id));
    users.forEach(rememberProfile);
    if (!users.length) { replace(results, h('li', { class: 'muted list-empty' }, t('new.noUsers'))); return; }
    replace(results, users.map((p) => {
      const u = p.user;
      const isSelected = selected.has(u.id);
      const toggle = () => {
        if (!multiple) { onPick(u); return; }
        if (selected.has(u.id)) selected.delete(u.id); else selected.set(u.id, u);
        drawChips();
        search();
      };
      return h('li', { role: 'option', tabindex: '0', class: 'person' + (isSelected ? ' selected' : ''), 'aria-selected': String(isSelected), dataset: { login: u.login },
        onclick: toggle,
        onkeydown: (e) => {
          if (e.key === 'Enter' || e.key === ' ') { e.preventDefault(); toggle(); }
          else if (e.key === 'ArrowDown') { e.preventDefault(); e.currentTarget.nextElementSibling?.focus(); }
          else if (e.key === 'ArrowUp') { e.preventDefault(); (e.currentTarget.previousElementSibling || input).focus(); }
        } },
      avatar(u.id, u.display_name, { size: 'sm', online: p.presence && p.presence.online }),
      h('span', { class: 'person-body' }, h('span', { class: 'person-name' }, u.kind === 'botx' ? icon('bot', t('kind.bot')) : null, u.display_name),
        h('span', { class: 'muted' }, ['@' + u.login, u.department, u.position].filter(Boolean).join(' · '))),
      multiple ? h('span', { class: 'check' + (isSelected ? ' on' : ''), 'aria-hidden': 'true' }, isSelected ? icon('check') : null) : null);
    }));
  }, 150);
  input.addEventListener('input', search);
  search();
  return { el: h('div', { class: 'people-picker' }, chips, input, results), input, selected };
}

// ---- new chat -------------------------------------------------------------------------------

export function openNewChatDialog(navigate) {
  const { body, close } = modal(t('new.title'), { className: 'dialog-new' });
  let kind = 'personal';
  const tabs = h('div', { class: 'tabs', role: 'tablist' });
  const panel = h('div', { class: 'tab-panel', role: 'tabpanel' });
  const kinds = ['personal', 'group', 'channel'];
  const drawTabs = () => replace(tabs, kinds.map((k) => h('button', { type: 'button', role: 'tab', class: 'tab', id: 'tab-' + k, 'aria-selected': String(k === kind), tabindex: k === kind ? '0' : '-1',
    onclick: () => { kind = k; drawTabs(); drawPanel(); },
    onkeydown: (e) => {
      if (e.key !== 'ArrowRight' && e.key !== 'ArrowLeft') return;
      const i = (kinds.indexOf(kind) + (e.key === 'ArrowRight' ? 1 : 2)) % 3;
      kind = kinds[i]; drawTabs(); drawPanel(); tabs.querySelector('[aria-selected=true]').focus();
    } }, t('new.' + k))));
  const drawPanel = () => {
    if (kind === 'personal') {
      const picker = peoplePicker({ multiple: false, onPick: async (u) => {
        try {
          const chat = await api.createChat({ kind: 'personal', members: [u.id] });
          if (!state.chats.has(chat.id)) await loadSnapshot();
          close();
          navigate('/chat/' + chat.id);
        } catch (error) { showError(error); }
      } });
      replace(panel, picker.el);
      picker.input.focus();
      return;
    }
    const title = h('input', { class: 'input', id: 'new-chat-title', placeholder: t('new.name'), 'aria-label': t('new.name'), maxlength: '128' });
    const description = h('input', { class: 'input', placeholder: t('new.description'), 'aria-label': t('new.description'), maxlength: '2048' });
    const count = h('span', { class: 'muted' }, t('new.selected', { n: 0 }));
    const error = h('p', { class: 'form-error', role: 'alert' });
    const picker = peoplePicker({ multiple: true, onChange: (sel) => { count.textContent = t('new.selected', { n: sel.size }); } });
    const create = h('button', { type: 'submit', class: 'btn btn-primary', id: 'new-chat-create' }, t('new.create'));
    replace(panel, h('form', { class: 'new-chat-form', onsubmit: async (e) => {
      e.preventDefault();
      if (!title.value.trim()) { error.textContent = t('new.needTitle'); title.focus(); return; }
      create.disabled = true;
      try {
        const chat = await api.createChat({ kind, title: title.value.trim(), description: description.value.trim() || undefined, members: [...picker.selected.keys()] });
        await loadSnapshot();
        close();
        navigate('/chat/' + chat.id);
      } catch (err) { create.disabled = false; error.textContent = err.message; }
    } }, title, description, picker.el, error, h('div', { class: 'dialog-actions' }, count, create)));
    title.focus();
  };
  replace(body, tabs, panel);
  drawTabs();
  drawPanel();
}

// ---- sessions -------------------------------------------------------------------------------

export async function openSessionsDialog() {
  const { body } = modal(t('sessions.title'), { className: 'dialog-sessions' });
  const draw = async () => {
    let list;
    try { list = await api.sessions(); } catch (error) { showError(error); return; }
    replace(body, h('ul', { class: 'session-list' }, list.sessions.sort((a, b) => (b.current - a.current) || b.session.last_seen_at.localeCompare(a.session.last_seen_at)).map(({ session, current }) =>
      h('li', { class: 'session' + (current ? ' current' : '') },
        icon('devices'),
        h('div', { class: 'session-body' }, h('strong', {}, session.device_name || '—'),
          h('div', { class: 'muted' }, current ? t('sessions.current') : t('sessions.seen', { t: dateTime(session.last_seen_at) })),
          h('div', { class: 'muted small' }, t('sessions.started', { t: dateTime(session.created_at) }))),
        current ? null : h('button', { type: 'button', class: 'btn btn-small btn-danger-outline', onclick: async () => {
          try { await api.endSession(session.id); announce(t('sessions.end')); draw(); } catch (error) { showError(error); }
        } }, t('sessions.end'))))));
  };
  replace(body, h('p', { class: 'muted' }, t('chat.loading')));
  await draw();
}

// ---- forward --------------------------------------------------------------------------------

export function openForwardDialog(message, navigate) {
  const { body, close } = modal(t('forward.title'));
  // One key per target for the life of this dialog: a second click or a retry after a network
  // error forwards once, not twice.
  const opened = Date.now();
  replace(body, h('ul', { class: 'people-list', role: 'listbox', 'aria-label': t('forward.title') }, sortedChats().map((item) => {
    const title = item.chat.kind === 'notes' ? t('kind.notes') : chatTitle(item);
    const pick = async () => {
      try {
        await api.send(item.chat.id, { forward_of: message.id, client_message_id: 'fwd-' + message.id + '-' + item.chat.id + '-' + opened });
        close();
        navigate('/chat/' + item.chat.id);
      } catch (error) { showError(error); }
    };
    return h('li', { role: 'option', tabindex: '0', class: 'person', onclick: pick,
      onkeydown: (e) => {
        if (e.key === 'Enter') { e.preventDefault(); pick(); }
        else if (e.key === 'ArrowDown') { e.preventDefault(); e.currentTarget.nextElementSibling?.focus(); }
        else if (e.key === 'ArrowUp') { e.preventDefault(); e.currentTarget.previousElementSibling?.focus(); }
      } }, avatar(item.chat.kind === 'personal' ? item.peer_id : item.chat.id, title, { size: 'sm', kind: item.chat.kind }), h('span', { class: 'person-name' }, title));
  })));
  body.querySelector('[role=option]')?.focus();
}

// ---- edit history and read-by ---------------------------------------------------------------

export async function openHistoryDialog(message) {
  const { body } = modal(t('msg.history'));
  try {
    const history = await api.edits(message.id);
    replace(body, h('ol', { class: 'history-list' }, history.versions.map((v) => h('li', {},
      h('div', { class: 'muted small' }, (v.version === 0 ? t('msg.original') : t('msg.version', { n: v.version })) + ' · ' + dateTime(v.edited_at)),
      h('div', { class: 'history-text' }, v.text)))));
  } catch (error) { showError(error); }
}

export async function openReadByDialog(message) {
  const { body } = modal(t('msg.readByList'));
  try {
    const result = await api.readBy(message.id);
    ensureUsers(result.users);
    const users = result.users.filter((id) => id !== state.me.id);
    if (!users.length) { replace(body, h('p', { class: 'muted' }, t('readby.nobody'))); return; }
    const draw = () => replace(body, h('ul', { class: 'people-list' }, users.map((id) => h('li', { class: 'person' }, avatar(id, userName(id), { size: 'sm' }), h('span', { class: 'person-name' }, userName(id))))));
    draw();
    setTimeout(draw, 400);
  } catch (error) { showError(error); }
}

export { peoplePicker };
