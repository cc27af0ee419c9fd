// The hook for bot chats (the bot API lands separately). Everything here is driven by fields the
// server does not send yet, so today it renders nothing; when messages gain bot fields, only this
// file changes:
//   - a chat whose kind is "bot" (or whose peer is a bot) gets the bot icon and a command menu;
//   - a message with `buttons` (inline, under the bubble) or `keyboard` (replacing the composer's
//     suggestions) renders them; pressing one sends its `command` as text or its `data` back.
// All of it is rendered with DOM text nodes like any other user content.
import { h } from './dom.js';
import { state } from './store.js';

/** The kind to show for a chat list item: "bot" for bot chats, else null (use the chat's kind). */
export function botKind(item) {
  if (item.chat.kind === 'bot') return 'bot';
  const peer = item.chat.kind === 'personal' && item.peer_id ? state.users.get(item.peer_id) : null;
  if (peer && peer.is_bot === true) return 'bot';
  return null;
}

/** Inline buttons under a message, if the message carries any (`message.buttons: [[{text, command|data}]]`). */
export function renderMessageButtons(message, { sendCommand }) {
  const rows = Array.isArray(message.buttons) ? message.buttons : null;
  if (!rows || !rows.length) return null;
  return h('div', { class: 'bot-buttons', role: 'group' },
    rows.map((row) => h('div', { class: 'bot-button-row' },
      (Array.isArray(row) ? row : []).map((button) => h('button', { type: 'button', class: 'bot-button',
        onclick: () => sendCommand(message, button) }, String(button && button.text || ''))))));
}

/** The command menu for a bot chat (`chat.commands: [{command, description}]`), if any. */
export function commandMenu(chat) {
  return Array.isArray(chat.commands) && chat.commands.length ? chat.commands : null;
}
