// Dates, names and avatars.
import { lang, t } from './i18n.js';
import { h, icon } from './dom.js';

const cache = new Map();
function fmt(options) {
  const key = lang() + JSON.stringify(options);
  if (!cache.has(key)) cache.set(key, new Intl.DateTimeFormat(lang() === 'ru' ? 'ru-RU' : 'en-GB', options));
  return cache.get(key);
}

export function time(iso) { return iso ? fmt({ hour: '2-digit', minute: '2-digit' }).format(new Date(iso)) : ''; }

export function dayKey(iso) {
  const d = new Date(iso);
  return d.getFullYear() + '-' + d.getMonth() + '-' + d.getDate();
}

export function dayLabel(iso) {
  const d = new Date(iso);
  const today = new Date();
  const yesterday = new Date(Date.now() - 86400000);
  if (dayKey(d) === dayKey(today)) return t('chat.today');
  if (dayKey(d) === dayKey(yesterday)) return t('chat.yesterday');
  const sameYear = d.getFullYear() === today.getFullYear();
  return fmt(sameYear ? { day: 'numeric', month: 'long' } : { day: 'numeric', month: 'long', year: 'numeric' }).format(d);
}

/** A chat list timestamp: time today, weekday this week, date otherwise. */
export function shortDate(iso) {
  if (!iso) return '';
  const d = new Date(iso);
  const age = Date.now() - d.getTime();
  if (dayKey(d) === dayKey(new Date())) return time(iso);
  if (age < 6 * 86400000) return fmt({ weekday: 'short' }).format(d);
  return fmt({ day: '2-digit', month: '2-digit', year: '2-digit' }).format(d);
}

export function dateTime(iso) { return iso ? fmt({ day: 'numeric', month: 'short', hour: '2-digit', minute: '2-digit' }).format(new Date(iso)) : ''; }

export function initials(name) {
  const words = String(name || '?').trim().split(/\s+/).filter(Boolean);
  const letters = words.length > 1 ? [words[0], words[words.length - 1]] : words;
  return letters.map((w) => [...w][0] || '').join('').toUpperCase() || '?';
}

function hue(id) {
  let hash = 0;
  for (const ch of String(id)) hash = (hash * 31 + ch.codePointAt(0)) >>> 0;
  return hash % 8;
}

const KIND_ICONS = { group: 'users', channel: 'megaphone', notes: 'bookmark', bot: 'bot' };

/** A round avatar: initials on a colour derived from the id, or the chat kind's icon. */
export function avatar(id, name, { size = 'md', kind, online } = {}) {
  const useIcon = kind === 'notes' || kind === 'bot' && !name;
  const el = h('span', { class: `avatar avatar-${size} hue-${hue(id)}` + (kind === 'notes' ? ' avatar-notes' : ''), 'aria-hidden': 'true' },
    useIcon ? icon(KIND_ICONS[kind]) : initials(name));
  if (online) el.appendChild(h('span', { class: 'presence-dot' }));
  return el;
}

export function kindIcon(kind) { return KIND_ICONS[kind] ? icon(KIND_ICONS[kind]) : null; }
