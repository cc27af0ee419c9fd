// One message bubble. All user text is set with text nodes; links are built as elements with an
// http(s) href only.
import { state, userName, readCount, fetchMessage } from '../store.js';
import { h, icon } from '../dom.js';
import { t } from '../i18n.js';
import { avatar, time, dateTime } from '../format.js';
import { renderBubble } from '../bots.js';

const TOKEN = /(https?:\/\/[^\s<>"']+[^\s<>"'.,;:!?)\]]|@[A-Za-z0-9_.-]*[A-Za-z0-9_])/g;

/** The message text as nodes: plain text, mention highlights, and safe links. */
export function richText(text, logins) {
  const nodes = [];
  let last = 0;
  for (const match of text.matchAll(TOKEN)) {
    if (match.index > last) nodes.push(text.slice(last, match.index));
    const token = match[0];
    if (token.startsWith('@')) {
      const login = token.slice(1).toLowerCase();
      const me = state.me && login === state.me.login.toLowerCase();
      nodes.push(login === 'all' || logins.has(login) ? h('span', { class: 'mention' + (me || login === 'all' ? ' mention-me' : '') }, token) : token);
    } else {
      let href = null;
      try { const url = new URL(token); if (url.protocol === 'http:' || url.protocol === 'https:') href = url.href; } catch { href = null; }
      nodes.push(href ? h('a', { href, target: '_blank', rel: 'noopener noreferrer nofollow' }, token) : token);
    }
    last = match.index + token.length;
  }
  if (last < text.length) nodes.push(text.slice(last));
  return nodes;
}

export function knownLogins() {
  const logins = new Set();
  for (const u of state.users.values()) logins.add(u.login.toLowerCase());
  return logins;
}

/**
 * Builds the row for `m`. `ctx`: {chat, item, grouped: {prev, next}, pending, onAction, onJump,
 * onReact, onRetry, onDiscard, onHistory, onReadBy}. A bot message's buttons come from bots.js.
 */
export function renderMessage(m, ctx) {
  const own = m.sender_id === state.me.id;
  const kind = ctx.item ? ctx.item.chat.kind : 'group';
  const showSender = !own && !ctx.grouped.prev && (kind === 'group' || kind === 'channel');
  const showAvatar = !own && kind === 'group';
  const deleted = !!m.deleted_at;
  const name = userName(m.sender_id);
  const classes = ['msg', own ? 'own' : 'other', ctx.grouped.prev ? 'cont-prev' : '', ctx.grouped.next ? 'cont-next' : '', deleted ? 'deleted' : '', ctx.pending ? 'pending' : '', showAvatar ? 'with-avatar' : ''];

  const bubble = h('div', { class: 'bubble' });
  if (showSender) bubble.appendChild(h('div', { class: 'sender hue-text-' + hueOf(m.sender_id) }, name));
  if (deleted) {
    bubble.appendChild(h('div', { class: 'text tombstone' }, icon('trash'), t('msg.deleted')));
  } else {
    if (m.forwarded_from) {
      bubble.appendChild(h('div', { class: 'forwarded' }, icon('forward'), t('msg.forwardedFrom', { name: userName(m.forwarded_from.sender_id) })));
    }
    if (m.reply_to) bubble.appendChild(quote(m, ctx));
    bubble.appendChild(h('div', { class: 'text', dir: 'auto' }, richText(m.text, ctx.logins)));
  }
  bubble.appendChild(meta(m, ctx, own, deleted));

  const row = h('div', { class: classes.filter(Boolean).join(' '), id: ctx.pending ? 'p-' + m.client_message_id : 'm-' + m.id,
    dataset: { id: m.id || '', seq: m.chat_seq || '', cmid: m.client_message_id || '' },
    role: 'article', tabindex: '-1',
    'aria-label': (own ? t('list.you') : name) + ', ' + dateTime(m.created_at) + (deleted ? ', ' + t('msg.deleted') : '') },
  showAvatar ? (ctx.grouped.next ? h('span', { class: 'avatar-spacer' }) : avatar(m.sender_id, name, { size: 'sm' })) : null,
  h('div', { class: 'msg-body' }, bubble, renderBubble(m), reactions(m, ctx)),
  !deleted && !ctx.pending ? h('button', { type: 'button', class: 'msg-more', 'aria-label': t('msg.actions'), tabindex: '-1', 'aria-haspopup': 'menu',
    onclick: (e) => ctx.onAction(m, e.currentTarget) }, icon('more')) : null);
  if (!deleted && !ctx.pending) {
    row.addEventListener('contextmenu', (e) => { e.preventDefault(); ctx.onAction(m, null, e.clientX, e.clientY); });
    row.addEventListener('dblclick', (e) => { if (!e.target.closest('button, a')) ctx.onReply(m); });
  }
  return row;
}

function hueOf(id) {
  let hash = 0;
  for (const ch of String(id)) hash = (hash * 31 + ch.codePointAt(0)) >>> 0;
  return hash % 8;
}

function quote(m, ctx) {
  const el = h('button', { type: 'button', class: 'quote', onclick: () => ctx.onJump(m.reply_to) });
  const fill = (target) => {
    el.replaceChildren(
      h('span', { class: 'quote-name' }, target ? userName(target.sender_id) : t('msg.unknownMessage')),
      h('span', { class: 'quote-text' }, target ? (target.deleted_at ? t('msg.deleted') : target.text.slice(0, 200)) : '…'));
  };
  fill(null);
  fetchMessage(m.chat_id, m.reply_to).then(fill);
  return el;
}

function meta(m, ctx, own, deleted) {
  const el = h('span', { class: 'meta' });
  if (m.pinned && !deleted) el.appendChild(icon('pin', t('chat.pinned')));
  if (m.edit_count > 0 && !deleted) {
    el.appendChild(h('button', { type: 'button', class: 'edited', title: t('msg.history'), onclick: () => ctx.onHistory(m) }, t('msg.edited')));
  }
  el.appendChild(h('time', { datetime: m.created_at, title: dateTime(m.created_at) }, time(m.created_at)));
  if (own && !deleted) {
    if (ctx.pending) {
      if (m.state === 'failed') {
        el.appendChild(icon('alert', t('msg.failed')));
      } else el.appendChild(h('span', { class: 'status status-sending' }, icon('clock', t('msg.sending'))));
    } else {
      const kind = ctx.item ? ctx.item.chat.kind : 'group';
      const readers = kind === 'notes' ? 0 : readCount(m.chat_id, m.chat_seq);
      if (readers > 0) {
        const label = kind === 'personal' ? t('msg.read') : t('msg.readBy', { n: readers });
        el.appendChild(h('button', { type: 'button', class: 'status status-read', title: label, 'aria-label': label, onclick: () => ctx.onReadBy(m) },
          icon('checks'), kind === 'personal' ? null : h('span', { class: 'read-count' }, String(readers))));
      } else el.appendChild(h('span', { class: 'status status-sent' }, icon('check', t('msg.sent'))));
    }
  }
  return el;
}

function reactions(m, ctx) {
  if (m.deleted_at || !m.reactions || !m.reactions.length) return null;
  return h('div', { class: 'reactions', role: 'group', 'aria-label': t('msg.react') },
    m.reactions.map((r) => {
      const mine = r.users.includes(state.me.id);
      return h('button', { type: 'button', class: 'reaction' + (mine ? ' mine' : ''), 'aria-pressed': String(mine),
        title: r.users.map(userName).join(', '), 'aria-label': t('msg.reactionLabel', { emoji: r.emoji, n: r.count }),
        onclick: () => ctx.onReact(m, r.emoji, !mine) }, h('span', { class: 'emoji' }, r.emoji), h('span', {}, String(r.count)));
    }));
}

/** The failed-send controls under a pending message. */
export function pendingControls(p, ctx) {
  if (p.state !== 'failed') return null;
  return h('div', { class: 'pending-controls' },
    h('span', { class: 'form-error' }, t('msg.failed') + (p.error ? ': ' + p.error : '')),
    h('button', { type: 'button', class: 'btn btn-link', onclick: () => ctx.onRetry(p) }, t('msg.retry')),
    h('button', { type: 'button', class: 'btn btn-link', onclick: () => ctx.onDiscard(p) }, t('msg.discard')));
}
