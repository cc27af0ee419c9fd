// Bots in the web client: the bot badge of chats and people, the buttons a bot puts under its
// message (`bubble`) and above the composer (`keyboard`, from the latest bot message), pressing
// them (POST /messages/{id}/press), and the command menu (GET /chats/{id}/bot-commands).
//
// Everything a bot sends reaches the page as text nodes. Colours are used only when they are plain
// #rgb / #rrggbb values (set through the CSSOM, which the page's CSP allows); links are built only
// for http(s) URLs and open with noopener noreferrer. A bot's `metadata` is never shown.
import { api } from './api.js';
import { h, icon } from './dom.js';
import { state, emit, acceptMessage, rememberProfile } from './store.js';
import { t } from './i18n.js';
import { toast } from './views/dialogs.js';

/** True when the directory says `userId` is a bot (kind `botx`). */
export function isBot(userId) {
  const user = userId ? state.users.get(userId) : null;
  return !!user && user.kind === 'botx';
}

/** The kind to show for a chat list item: "bot" for a personal chat with a bot, else null. */
export function botKind(item) {
  if (item.chat.kind === 'personal' && isBot(item.peer_id)) return 'bot';
  return null;
}

/** Whether the chat has a bot member, as far as the client knows (its peer, or its loaded members). */
export function chatHasBot(chatId) {
  const item = state.chats.get(chatId);
  if (!item || item.chat.kind === 'notes') return false;
  if (botKind(item)) return true;
  const members = state.members.get(chatId);
  if (!members) return false;
  for (const id of members.keys()) if (isBot(id)) return true;
  return false;
}

// ---- command menu -------------------------------------------------------------------------
// Menus change rarely (the server refreshes them from the bot's /status every few minutes), so
// they are cached per chat. An empty answer (a bot registered moments ago that the server has not
// asked yet, or a bot without commands) is asked again after 30 s while the chat is open, or after
// a few seconds while the user has a "/" typed.

const MENU_TTL_MS = 60_000;
const EMPTY_MENU_TTL_MS = 30_000;
const EMPTY_MENU_RETRY_MS = 3_000;
const menus = new Map();

function menuKey(chatId) { return (state.me ? state.me.id : '') + '/' + chatId; }

/** The cached commands of the chat's bots: [{body, name, description, bot}]; may be empty. */
export function botCommands(chatId) {
  const entry = menus.get(menuKey(chatId));
  return entry ? entry.commands : [];
}

/**
 * Fetches the chat's command menu unless a fresh one is cached; emits 'bot-commands' when fetched.
 * `wanted`: the user is asking for the menu now, so an empty one is retried sooner.
 */
export function loadBotCommands(chatId, { wanted = false } = {}) {
  const key = menuKey(chatId);
  const entry = menus.get(key);
  if (entry && entry.loading) return;
  const ttl = entry && entry.commands.length ? MENU_TTL_MS : wanted ? EMPTY_MENU_RETRY_MS : EMPTY_MENU_TTL_MS;
  if (entry && Date.now() - entry.at < ttl) return;
  const previous = entry ? entry.commands : [];
  menus.set(key, { at: entry ? entry.at : 0, commands: previous, loading: true });
  api.botCommands(chatId).then((response) => {
    const commands = [];
    for (const menu of response.bots || []) {
      if (menu.bot) rememberProfile({ user: menu.bot });
      for (const command of menu.commands || []) {
        if (typeof command.body !== 'string' || !command.body.startsWith('/')) continue;
        commands.push({ body: command.body, name: String(command.name || ''), description: String(command.description || ''), bot: menu.bot || null });
      }
    }
    if (menus.get(key)) menus.set(key, { at: Date.now(), commands });
    emit('bot-commands', chatId);
  }).catch(() => {
    // Not fatal: the composer works without a menu; the next "/" asks again after the TTL.
    if (menus.get(key)) menus.set(key, { at: Date.now(), commands: previous });
  });
}

/** The commands starting with "/" + `query` (case-insensitive), menu order kept. */
export function matchCommands(chatId, query) {
  const prefix = '/' + query.toLowerCase();
  return botCommands(chatId).filter((c) => c.body.toLowerCase().startsWith(prefix));
}

// ---- buttons ------------------------------------------------------------------------------

const COLOR = /^#(?:[0-9a-f]{3}|[0-9a-f]{6})$/i;
const ALIGN = new Set(['left', 'center', 'right']);
// Presses in flight ("messageId:position") and the last failure per message and area.
const pressing = new Set();
const failures = new Map();

function rows(value) { return Array.isArray(value) ? value.filter(Array.isArray) : []; }

/** An http(s) URL as a normalised string, or null for anything else (javascript:, data:, …). */
export function safeLink(value) {
  if (typeof value !== 'string' || !value) return null;
  try {
    const url = new URL(value);
    return url.protocol === 'http:' || url.protocol === 'https:' ? url.href : null;
  } catch {
    return null;
  }
}

/** Inline buttons under a bot message, or null. */
export function renderBubble(message) {
  if (message.deleted_at) return null;
  const bubble = rows(message.bubble);
  if (!bubble.length) return null;
  return buttonGroup(message, bubble, 0, 'bubble');
}

/** The keyboard of `message` (buttons above the composer), or null. */
export function renderKeyboard(message) {
  const keyboard = rows(message.keyboard);
  if (!keyboard.length) return null;
  // Positions count the bubble buttons first, row by row, then the keyboard's (the press API's order).
  const offset = rows(message.bubble).reduce((n, row) => n + row.length, 0);
  return buttonGroup(message, keyboard, offset, 'keyboard');
}

/** The message whose keyboard the composer shows: the latest bot message, if it has one. */
export function keyboardMessage(chatId) {
  const tl = state.timelines.get(chatId);
  // Only at the latest end of the history: an older window does not know the latest bot message.
  if (!tl || !tl.loaded || tl.hasMoreAfter) return null;
  for (let i = tl.messages.length - 1; i >= 0; i--) {
    const m = tl.messages[i];
    if (m.deleted_at) continue;
    if (isBot(m.sender_id) || m.keyboard || m.bubble) return rows(m.keyboard).length ? m : null;
  }
  return null;
}

function buttonGroup(message, buttonRows, offset, area) {
  let position = offset;
  const failure = failures.get(message.id + ':' + area);
  return h('div', { class: 'bot-buttons bot-' + area, role: 'group', 'aria-label': t(area === 'keyboard' ? 'bot.keyboard' : 'bot.buttons'),
    dataset: { message: message.id } },
  buttonRows.map((row) => h('div', { class: 'bot-button-row' }, row.map((button) => {
    position += 1;
    return renderButton(message, button && typeof button === 'object' ? button : {}, position, area);
  }))),
  failure ? h('p', { class: 'bot-error', role: 'alert' }, icon('alert'), h('span', {}, failure)) : null);
}

function renderButton(message, button, position, area) {
  const label = String(button.label || button.command || '');
  const clientSide = button.handler === 'client' || typeof button.link === 'string';
  let el;
  if (clientSide) {
    const href = safeLink(button.link);
    if (href) {
      el = h('a', { class: 'bot-button bot-link', href, target: '_blank', rel: 'noopener noreferrer nofollow',
        title: href, 'aria-label': t('bot.opensLink', { label, url: href }),
        onclick: () => { if (button.show_alert) toast(String(button.alert_text || label)); } },
      h('span', { class: 'bot-button-label' }, label), icon('external'));
    } else {
      // A client-side action this client does not have (or a link that is not http(s)).
      el = h('button', { type: 'button', class: 'bot-button', disabled: true, title: t('bot.unsupported') }, h('span', { class: 'bot-button-label' }, label));
    }
  } else {
    const busy = pressing.has(message.id + ':' + position);
    // While pressed it stays focusable (aria-disabled, not disabled), so keyboard focus is not lost.
    el = h('button', { type: 'button', class: 'bot-button' + (busy ? ' busy' : ''), 'aria-disabled': busy ? 'true' : null, 'aria-busy': busy ? 'true' : null,
      title: typeof button.command === 'string' && button.command !== label ? button.command : null,
      dataset: { position: String(position) },
      onclick: () => press(message, button, position, area) },
    busy ? h('span', { class: 'spinner spinner-sm', 'aria-hidden': 'true' }) : null, h('span', { class: 'bot-button-label' }, label));
  }
  if (COLOR.test(button.background_color || '')) el.style.backgroundColor = button.background_color;
  if (COLOR.test(button.font_color || '')) el.style.color = button.font_color;
  if (ALIGN.has(button.align)) el.style.justifyContent = button.align === 'left' ? 'flex-start' : button.align === 'right' ? 'flex-end' : 'center';
  const size = Number(button.h_size);
  if (Number.isInteger(size) && size >= 1 && size <= 12) el.style.flexGrow = String(size);
  return el;
}

/**
 * Presses a button: the server sends the bot its command with the button's data. A button that is
 * not silent also shows the command in the chat as the user's message (the press answers with it).
 * While the request runs the button is disabled; a failure is shown next to the buttons.
 */
export async function press(message, button, position, area) {
  const key = message.id + ':' + position;
  if (pressing.has(key)) return;
  pressing.add(key);
  failures.delete(message.id + ':' + area);
  emit('bot-press', message);
  // eXpress shows a button's alert as the button is pressed.
  if (button.show_alert) toast(String(button.alert_text || button.label || ''));
  try {
    const result = await api.press(message.id, String(position));
    if (result && result.message) acceptMessage(result.message);
  } catch (error) {
    failures.set(message.id + ':' + area, pressError(error));
  } finally {
    pressing.delete(key);
    emit('bot-press', message);
  }
}

function pressError(error) {
  if (error && error.status === 0) return t('error.network');
  if (error && error.code === 'bot_unavailable') return t('bot.unavailable');
  if (error && error.code === 'message_deleted') return t('bot.deleted');
  return t('bot.pressFailed', { msg: error && error.message || String(error) });
}
