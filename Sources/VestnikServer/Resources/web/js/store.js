// Client state and how each server event changes it. Applying an event twice, or an event that a
// freshly fetched snapshot already contains, changes nothing: upserts by id, counters guarded by
// per-chat sequence numbers, edits by edit count.

import { api, ApiError } from './api.js';

const listeners = new Map();
export function on(topic, fn) {
  if (!listeners.has(topic)) listeners.set(topic, new Set());
  listeners.get(topic).add(fn);
  return () => listeners.get(topic).delete(fn);
}
export function emit(topic, detail) {
  for (const fn of listeners.get(topic) || []) {
    try { fn(detail); } catch (error) { console.error(error); }
  }
}

export const state = {
  me: null,
  sessionId: null,
  users: new Map(),
  presence: new Map(),
  chats: new Map(),
  members: new Map(),
  timelines: new Map(),
  typing: new Map(),
  pins: new Map(),
  pending: new Map(),
  openChatId: null,
  connection: 'connecting',
  snapshotLoaded: false,
};

// Bumped by reset(): work started for one signed-in user (an outbox flush awaiting the network,
// a delayed retry) checks it after every await and stops if another session began meanwhile, so
// nothing queued by one user is ever sent with the next user's token.
let sessionEpoch = 0;

export function reset() {
  sessionEpoch += 1;
  for (const key of ['users', 'presence', 'chats', 'members', 'timelines', 'typing', 'pins', 'pending']) state[key].clear();
  clearTimeout(flushTimer);
  flushTimer = null;
  flushing = null;
  flushAgain = false;
  for (const timer of typingTimers.values()) clearTimeout(timer);
  typingTimers.clear();
  fetchedQuotes.clear();
  inflightUsers.clear();
  state.me = null;
  state.sessionId = null;
  state.openChatId = null;
  state.snapshotLoaded = false;
}

// ---- users -------------------------------------------------------------------------------

const inflightUsers = new Map();
let usersChanged = null;
function usersUpdated() {
  if (usersChanged) return;
  usersChanged = setTimeout(() => { usersChanged = null; emit('users'); }, 16);
}

export function rememberProfile(profile) {
  if (!profile) return;
  state.users.set(profile.user.id, profile.user);
  if (profile.presence) state.presence.set(profile.user.id, profile.presence);
  usersUpdated();
}

/** Fetches the profiles of unknown users in the background. */
export function ensureUsers(ids) {
  for (const id of ids) {
    if (!id || state.users.has(id) || inflightUsers.has(id)) continue;
    const epoch = sessionEpoch;
    const request = api.user(id).then((profile) => { if (epoch === sessionEpoch) rememberProfile(profile); })
      .catch(() => {}).finally(() => { if (inflightUsers.get(id) === request) inflightUsers.delete(id); });
    inflightUsers.set(id, request);
  }
}

export function userName(id) {
  if (state.me && id === state.me.id) return state.me.display_name;
  const user = state.users.get(id);
  return user ? user.display_name : '…';
}

// ---- chats -------------------------------------------------------------------------------

export function chatTitle(item) {
  if (!item) return '';
  const chat = item.chat;
  if (chat.kind === 'personal' && item.peer_id) return userName(item.peer_id);
  return chat.title;
}

export function sortedChats() {
  return [...state.chats.values()].sort((a, b) => (b.chat.last_activity_at || '').localeCompare(a.chat.last_activity_at || ''));
}

let buffering = false;
let buffered = [];

/** Loads the chat list (and the open chat) afresh; events arriving meanwhile are applied after it. */
export async function loadSnapshot() {
  buffering = true;
  buffered = [];
  try {
    const list = await api.chats();
    const seen = new Set();
    for (const item of list.chats) {
      seen.add(item.chat.id);
      const old = state.chats.get(item.chat.id);
      state.chats.set(item.chat.id, item);
      if (old && old.chat.last_message_seq > item.chat.last_message_seq) state.chats.set(item.chat.id, { ...item, chat: old.chat, last_message: old.last_message });
    }
    for (const id of [...state.chats.keys()]) if (!seen.has(id)) state.chats.delete(id);
    ensureUsers(list.chats.flatMap((item) => [item.peer_id, item.last_message && item.last_message.sender_id]));
    state.snapshotLoaded = true;
  } finally {
    buffering = false;
    const queue = buffered;
    buffered = [];
    for (const [event, seq] of queue) applyEvent(event, seq);
  }
  emit('chats');
}

let refreshTimer = null;
function refreshChatsSoon() {
  clearTimeout(refreshTimer);
  refreshTimer = setTimeout(() => loadSnapshot().catch(() => {}), 150);
}

// ---- timelines ---------------------------------------------------------------------------

// A long session visits many chats and keeps receiving messages in all of them; without limits
// every message ever seen would stay in memory. Each timeline keeps a window of at most
// MAX_WINDOW messages (MAX_WINDOW_OPEN for the chat on screen, so reading back is not cut short),
// and only the MAX_TIMELINES most recently opened chats keep one at all (reopening a chat
// reloads its latest page anyway).
const MAX_WINDOW = 400;
const MAX_WINDOW_OPEN = 1000;
const MAX_TIMELINES = 12;

export function timeline(chatId) {
  let tl = state.timelines.get(chatId);
  if (!tl) {
    tl = { messages: [], byId: new Map(), hasMoreBefore: true, hasMoreAfter: false, loaded: false, loading: false };
    state.timelines.set(chatId, tl);
  }
  return tl;
}

/** Marks `chatId`'s timeline as the most recently used and drops the least recently used ones. */
export function touchTimeline(chatId) {
  const tl = state.timelines.get(chatId);
  if (tl) { state.timelines.delete(chatId); state.timelines.set(chatId, tl); }
  for (const id of state.timelines.keys()) {
    if (state.timelines.size <= MAX_TIMELINES) break;
    if (id !== chatId && id !== state.openChatId) state.timelines.delete(id);
  }
}

function insertSorted(tl, message) {
  const existing = tl.byId.get(message.id);
  if (existing) {
    const index = tl.messages.indexOf(existing);
    tl.messages[index] = message;
    tl.byId.set(message.id, message);
    return false;
  }
  tl.byId.set(message.id, message);
  let index = tl.messages.length;
  while (index > 0 && tl.messages[index - 1].chat_seq > message.chat_seq) index--;
  tl.messages.splice(index, 0, message);
  return true;
}

function trim(tl, keepEnd, max = MAX_WINDOW) {
  if (tl.messages.length <= max) return;
  const removed = keepEnd ? tl.messages.splice(0, tl.messages.length - max) : tl.messages.splice(max);
  for (const m of removed) tl.byId.delete(m.id);
  if (keepEnd) tl.hasMoreBefore = true; else tl.hasMoreAfter = true;
}

/** Loads a window of history: the latest, around a message, or more before/after the window. */
export async function loadHistory(chatId, mode = 'latest', anchorId) {
  const tl = timeline(chatId);
  if (tl.loading) return;
  tl.loading = true;
  try {
    if (mode === 'latest' || mode === 'around') {
      const page = await api.history(chatId, mode === 'around' ? { around: anchorId } : {}, 50);
      tl.messages = [];
      tl.byId.clear();
      for (const m of page.messages) insertSorted(tl, m);
      tl.hasMoreBefore = page.has_more_before;
      tl.hasMoreAfter = page.has_more_after;
      if (!tl.hasMoreAfter) for (const m of tl.early || []) if (!tl.byId.has(m.id)) insertSorted(tl, m);
      tl.early = [];
      tl.loaded = true;
      ensureUsers(page.messages.flatMap(messageUserIds));
      emit('timeline', { chatId, mode, anchorId });
    } else if (mode === 'before' && tl.hasMoreBefore && tl.messages.length) {
      const page = await api.history(chatId, { before: tl.messages[0].id }, 50);
      for (const m of page.messages) insertSorted(tl, m);
      tl.hasMoreBefore = page.has_more_before;
      trim(tl, false);
      ensureUsers(page.messages.flatMap(messageUserIds));
      emit('timeline', { chatId, mode });
    } else if (mode === 'after' && tl.hasMoreAfter && tl.messages.length) {
      const page = await api.history(chatId, { after: tl.messages[tl.messages.length - 1].id }, 50);
      for (const m of page.messages) insertSorted(tl, m);
      tl.hasMoreAfter = page.has_more_after;
      trim(tl, true);
      ensureUsers(page.messages.flatMap(messageUserIds));
      emit('timeline', { chatId, mode });
    }
  } finally {
    tl.loading = false;
  }
}

function messageUserIds(m) {
  const ids = [m.sender_id];
  if (m.forwarded_from) ids.push(m.forwarded_from.sender_id);
  for (const r of m.reactions || []) ids.push(...r.users);
  for (const mention of m.mentions || []) if (mention.user_id) ids.push(mention.user_id);
  return ids;
}

/** Finds a message anywhere the client has it. */
export function findMessage(chatId, id) {
  const tl = state.timelines.get(chatId);
  if (tl && tl.byId.has(id)) return tl.byId.get(id);
  for (const m of state.pins.get(chatId) || []) if (m.id === id) return m;
  const item = state.chats.get(chatId);
  if (item && item.last_message && item.last_message.id === id) return item.last_message;
  return null;
}

const fetchedQuotes = new Map();
const MAX_QUOTES = 500;
/** A message outside the loaded window (a reply's quote), fetched once (a bounded cache). */
export function fetchMessage(chatId, id) {
  const local = findMessage(chatId, id);
  if (local) return Promise.resolve(local);
  if (!fetchedQuotes.has(id)) {
    if (fetchedQuotes.size >= MAX_QUOTES) fetchedQuotes.delete(fetchedQuotes.keys().next().value);
    fetchedQuotes.set(id, api.message(id).then((m) => { ensureUsers([m.sender_id]); return m; }).catch(() => null));
  }
  return fetchedQuotes.get(id);
}

// ---- members -----------------------------------------------------------------------------

export async function loadChatDetails(chatId) {
  const details = await api.chat(chatId);
  const members = new Map();
  for (const m of details.members) members.set(m.user_id, m);
  state.members.set(chatId, members);
  const item = state.chats.get(chatId);
  if (item) { item.chat = details.chat; item.my_role = details.my_role; }
  ensureUsers(details.members.map((m) => m.user_id));
  emit('members', chatId);
  return details;
}

/** How many other members have read the message at `chatSeq`. */
export function readCount(chatId, chatSeq) {
  const members = state.members.get(chatId);
  if (!members) return 0;
  let n = 0;
  for (const m of members.values()) if (m.user_id !== state.me.id && m.read_seq >= chatSeq) n++;
  return n;
}

export async function loadPins(chatId) {
  const list = await api.pins(chatId);
  state.pins.set(chatId, list.messages);
  ensureUsers(list.messages.map((m) => m.sender_id));
  emit('pins', chatId);
}

// ---- read position -----------------------------------------------------------------------

let reading = false;
/** Marks the newest loaded message of the chat read if it is newer than the read position. */
export async function markRead(chatId) {
  const item = state.chats.get(chatId);
  const tl = state.timelines.get(chatId);
  if (!item || !tl || tl.hasMoreAfter || !tl.messages.length || reading) return;
  const last = tl.messages[tl.messages.length - 1];
  if (last.chat_seq <= item.read_seq && item.unread_count === 0) return;
  reading = true;
  try {
    const position = await api.markRead(chatId, last.id);
    item.read_seq = Math.max(item.read_seq, position.read_seq);
    item.unread_count = position.unread_count;
    emit('chats');
  } catch { /* retried on the next scroll or message */ } finally {
    reading = false;
  }
}

// ---- events ------------------------------------------------------------------------------

function applyMessage(message, { isNew }) {
  const item = state.chats.get(message.chat_id);
  if (item) {
    const chat = item.chat;
    if (message.chat_seq > chat.last_message_seq) {
      if (isNew && message.sender_id !== state.me.id && message.chat_seq > item.read_seq) item.unread_count += 1;
      chat.last_message_seq = message.chat_seq;
      chat.last_activity_at = message.created_at;
      item.last_message = message;
    } else if (item.last_message && item.last_message.id === message.id) {
      item.last_message = message;
    }
    if (message.sender_id === state.me.id && message.chat_seq > item.read_seq) item.read_seq = message.chat_seq;
    emit('chats');
  } else if (isNew) {
    refreshChatsSoon();
  }
  const tl = state.timelines.get(message.chat_id);
  if (tl && tl.loaded) {
    const existing = tl.byId.get(message.id);
    if (existing) {
      // An older version arriving late (a snapshot racing an edit) must not win.
      if (!(existing.edit_count > message.edit_count && !message.deleted_at) && !(existing.deleted_at && !message.deleted_at)) {
        insertSorted(tl, message);
        emit('message', { chatId: message.chat_id, message, inserted: false });
      }
    } else if (isNew && !tl.hasMoreAfter) {
      insertSorted(tl, message);
      trim(tl, true, message.chat_id === state.openChatId ? MAX_WINDOW_OPEN : MAX_WINDOW);
      emit('message', { chatId: message.chat_id, message, inserted: true });
    }
  } else if (tl && isNew) {
    // The first page is still loading and may have been read before this commit: keep it for then
    // (bounded: if the page never loads, the oldest are dropped; the reload fetches them anyway).
    (tl.early ||= []).push(message);
    if (tl.early.length > MAX_WINDOW) tl.early.splice(0, tl.early.length - MAX_WINDOW);
  }
  // A new message from someone stops their typing indicator.
  const typing = isNew && state.typing.get(message.chat_id);
  if (typing && typing.delete(message.sender_id)) emit('typing', message.chat_id);
  if (isNew && message.client_message_id && message.sender_id === state.me.id) settlePending(message.chat_id, message.client_message_id);
  ensureUsers(messageUserIds(message));
}

/** A message the server returned to this client's own request (a button press shown in the chat). */
export function acceptMessage(message) { applyMessage(message, { isNew: true }); }

function updateMessage(chatId, messageId, change) {
  const touch = (m) => (m && m.id === messageId ? { ...m, ...change(m) } : m);
  const tl = state.timelines.get(chatId);
  if (tl && tl.byId.has(messageId)) {
    const updated = touch(tl.byId.get(messageId));
    insertSorted(tl, updated);
    emit('message', { chatId, message: updated, inserted: false });
  }
  const item = state.chats.get(chatId);
  if (item && item.last_message && item.last_message.id === messageId) item.last_message = touch(item.last_message);
}

export function applyEvent(event, seq) {
  if (buffering) { buffered.push([event, seq]); return; }
  const me = state.me && state.me.id;
  switch (event.type) {
    case 'message.created': applyMessage(event.message, { isNew: true }); break;
    case 'message.edited':
    case 'message.deleted': applyMessage(event.message, { isNew: false }); break;
    case 'reactions.changed':
      updateMessage(event.chat_id, event.message_id, () => ({ reactions: event.reactions }));
      ensureUsers(event.reactions.flatMap((r) => r.users));
      break;
    case 'message.pinned':
    case 'message.unpinned':
      updateMessage(event.chat_id, event.message_id, () => ({ pinned: event.type === 'message.pinned' }));
      if (state.pins.has(event.chat_id)) loadPins(event.chat_id).catch(() => {});
      break;
    case 'receipt.updated': {
      const members = state.members.get(event.chat_id);
      const member = members && members.get(event.user_id);
      if (member && event.read_seq > member.read_seq) member.read_seq = event.read_seq;
      if (event.user_id === me) {
        const item = state.chats.get(event.chat_id);
        if (item && event.read_seq > item.read_seq) {
          item.read_seq = event.read_seq;
          if (event.read_seq >= item.chat.last_message_seq) item.unread_count = 0; else refreshChatsSoon();
          emit('chats');
        }
      }
      emit('receipts', event.chat_id);
      break;
    }
    case 'chat.created':
    case 'member.joined':
      if (!state.chats.has(event.chat.id)) refreshChatsSoon();
      else updateChat(event.chat);
      if (event.members && state.members.has(event.chat.id)) {
        for (const m of event.members) state.members.get(event.chat.id).set(m.user_id, m);
        ensureUsers(event.members.map((m) => m.user_id));
        emit('members', event.chat.id);
      }
      break;
    case 'chat.updated': updateChat(event.chat); break;
    case 'member.left':
      if (event.user_id === me) {
        state.chats.delete(event.chat.id);
        state.timelines.delete(event.chat.id);
        emit('chats');
        emit('removed', event.chat.id);
      } else {
        updateChat(event.chat);
        if (state.members.has(event.chat.id)) { state.members.get(event.chat.id).delete(event.user_id); emit('members', event.chat.id); }
      }
      break;
    case 'member.role_changed': {
      const members = state.members.get(event.chat_id);
      if (members && members.has(event.user_id)) members.get(event.user_id).role = event.role;
      const item = state.chats.get(event.chat_id);
      if (item && event.user_id === me) item.my_role = event.role;
      emit('members', event.chat_id);
      emit('chats');
      break;
    }
    case 'session.revoked':
      if (event.session_id === state.sessionId) emit('revoked');
      emit('sessions');
      break;
  }
}

function updateChat(chat) {
  const item = state.chats.get(chat.id);
  if (!item) return;
  // Keep the newest message position we know (the event may predate messages already applied).
  const lastSeq = Math.max(item.chat.last_message_seq, chat.last_message_seq);
  const lastActivity = (item.chat.last_activity_at || '') > (chat.last_activity_at || '') ? item.chat.last_activity_at : chat.last_activity_at;
  item.chat = { ...chat, last_message_seq: lastSeq, last_activity_at: lastActivity };
  emit('chats');
  emit('chat', chat.id);
}

const typingTimers = new Map();
export function applyEphemeral(event) {
  if (event.type === 'typing.started') {
    if (state.me && event.user_id === state.me.id) return;
    if (!state.typing.has(event.chat_id)) state.typing.set(event.chat_id, new Map());
    state.typing.get(event.chat_id).set(event.user_id, Date.now() + 6000);
    ensureUsers([event.user_id]);
    emit('typing', event.chat_id);
    const key = event.chat_id + '/' + event.user_id;
    clearTimeout(typingTimers.get(key));
    typingTimers.set(key, setTimeout(() => {
      typingTimers.delete(key);
      const map = state.typing.get(event.chat_id);
      if (map) { map.delete(event.user_id); if (!map.size) state.typing.delete(event.chat_id); }
      emit('typing', event.chat_id);
    }, 6000));
  } else if (event.type === 'presence.changed') {
    state.presence.set(event.presence.user_id, event.presence);
    emit('presence', event.presence.user_id);
  }
}


export function typingUsers(chatId) {
  const map = state.typing.get(chatId);
  if (!map) return [];
  const now = Date.now();
  return [...map.entries()].filter(([, until]) => until > now).map(([id]) => id);
}

// ---- outbox ------------------------------------------------------------------------------
// Messages typed while offline wait here (and in localStorage, surviving a reload) and are sent
// with their client_message_id, so a retry after an unclear failure never duplicates them.

function outboxKey() { return 'vestnik.outbox.' + (state.me ? state.me.id : ''); }

export function loadOutbox() {
  state.pending.clear();
  let saved = [];
  try { saved = JSON.parse(localStorage.getItem(outboxKey()) || '[]'); } catch { saved = []; }
  for (const p of saved) {
    if (!state.pending.has(p.chat_id)) state.pending.set(p.chat_id, []);
    state.pending.get(p.chat_id).push({ ...p, state: p.state === 'failed' ? 'failed' : 'sending' });
  }
}

function saveOutbox() {
  if (!state.me) return; // signed out: there is no one's outbox to write
  const all = [...state.pending.values()].flat().map(({ inFlight, ...p }) => p);
  localStorage.setItem(outboxKey(), JSON.stringify(all));
}

/** Forgets the signed-in user's queued messages, in memory and in storage (logout). */
export function clearOutbox() {
  if (state.me) localStorage.removeItem(outboxKey());
  state.pending.clear();
  clearTimeout(flushTimer);
  flushTimer = null;
  sessionEpoch += 1;
}

function newClientId() {
  const bytes = new Uint8Array(16);
  crypto.getRandomValues(bytes);
  return 'web-' + [...bytes].map((b) => b.toString(16).padStart(2, '0')).join('');
}

export function pendingFor(chatId) { return state.pending.get(chatId) || []; }

export function queueMessage(chatId, text, replyTo) {
  const entry = { client_message_id: newClientId(), chat_id: chatId, text, reply_to: replyTo || undefined, created_at: new Date().toISOString(), state: 'sending' };
  if (!state.pending.has(chatId)) state.pending.set(chatId, []);
  state.pending.get(chatId).push(entry);
  saveOutbox();
  emit('pending', chatId);
  flushOutbox();
  return entry;
}

function settlePending(chatId, clientId) {
  const list = state.pending.get(chatId);
  if (!list) return;
  const index = list.findIndex((p) => p.client_message_id === clientId);
  if (index < 0) return;
  list.splice(index, 1);
  saveOutbox();
  emit('pending', chatId);
}

export function discardPending(chatId, clientId) { settlePending(chatId, clientId); }

export function retryPending(chatId, clientId) {
  const entry = pendingFor(chatId).find((p) => p.client_message_id === clientId);
  if (!entry) return;
  entry.state = 'sending';
  entry.error = undefined;
  saveOutbox();
  emit('pending', chatId);
  flushOutbox();
}

let flushTimer = null;
let flushing = null;
let flushAgain = false;

/**
 * Sends every waiting message in order, per chat; transient failures retry later with the same
 * client_message_id (so a send that did reach the server is not stored twice); any other error
 * marks the message failed for the user to retry or discard, never retried on its own.
 *
 * Only one flush runs at a time: a call during a flush makes it go round once more, so a message
 * typed while an earlier one is in flight is sent right after it, in order.
 */
export function flushOutbox() {
  if (flushing) { flushAgain = true; return flushing; }
  clearTimeout(flushTimer);
  flushTimer = null;
  const run = (async () => {
    try {
      do {
        flushAgain = false;
        await flushOnce();
      } while (flushAgain && flushing === run);
    } finally {
      if (flushing === run) flushing = null;
    }
  })();
  flushing = run;
  return run;
}

async function flushOnce() {
  const epoch = sessionEpoch;
  let retryLater = false;
  let retryAfter = 0;
  for (const [chatId, list] of [...state.pending]) {
    for (const entry of [...list]) {
      if (epoch !== sessionEpoch) return;
      if (entry.state !== 'sending' || !list.includes(entry)) continue;
      try {
        const message = await api.send(chatId, { text: entry.text, client_message_id: entry.client_message_id, reply_to: entry.reply_to });
        if (epoch !== sessionEpoch) return;
        applyMessage(message, { isNew: true });
        settlePending(chatId, entry.client_message_id);
      } catch (error) {
        if (epoch !== sessionEpoch) return;
        if (error instanceof ApiError && !error.transient && error.status !== 429) {
          entry.state = 'failed';
          entry.error = error.message;
          saveOutbox();
          emit('pending', chatId);
        } else {
          retryLater = true;
          if (error instanceof ApiError && error.retryAfter) retryAfter = Math.max(retryAfter, error.retryAfter * 1000);
          break; // keep this chat's order: later messages wait for this one
        }
      }
    }
  }
  if (retryLater && epoch === sessionEpoch) {
    clearTimeout(flushTimer);
    flushTimer = setTimeout(flushOutbox, Math.max(retryAfter, state.connection === 'online' ? 2000 : 5000));
  }
}

/** Opens (or creates) the user's own notes chat. */
export async function createNotes() {
  const chat = await api.createChat({ kind: 'notes' });
  if (!state.chats.has(chat.id)) await loadSnapshot();
  return chat;
}
