// The JSON API under /api/v1. The token travels only in the Authorization header.

export class ApiError extends Error {
  constructor(status, code, message, retryAfter) {
    super(message || code);
    this.status = status;
    this.code = code;
    this.retryAfter = retryAfter;
  }
  /** The request may succeed if repeated later (network down, server restarting). */
  get transient() { return this.status === 0 || this.status === 502 || this.status === 503 || this.status === 504; }
}

let token = localStorage.getItem('vestnik.token');
let onUnauthenticated = () => {};

export function getToken() { return token; }
export function setToken(value) {
  token = value;
  if (value) localStorage.setItem('vestnik.token', value);
  else localStorage.removeItem('vestnik.token');
}
export function setUnauthenticatedHandler(fn) { onUnauthenticated = fn; }

const enc = encodeURIComponent;

async function request(method, path, body, { auth = true } = {}) {
  const headers = { Accept: 'application/json' };
  // The token this request carries: a 401 for a token that was replaced meanwhile (a request from
  // before a logout, answered after the next sign-in) must not sign the new user out.
  const sentToken = token;
  if (auth && sentToken) headers.Authorization = 'Bearer ' + sentToken;
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  let response;
  try {
    response = await fetch('/api/v1' + path, {
      method, headers, body: body === undefined ? undefined : JSON.stringify(body),
      credentials: 'omit', cache: 'no-store', referrerPolicy: 'no-referrer',
    });
  } catch (error) {
    throw new ApiError(0, 'network', String(error && error.message || error));
  }
  if (response.status === 204) return null;
  let data = null;
  try { data = await response.json(); } catch { data = null; }
  if (!response.ok) {
    const err = data && data.error ? data.error : {};
    const retryAfter = Number(response.headers.get('Retry-After')) || undefined;
    const error = new ApiError(response.status, err.code || 'http_' + response.status, err.message || response.statusText, retryAfter);
    if (response.status === 401 && auth && sentToken === token) onUnauthenticated(error);
    throw error;
  }
  return data;
}

function query(params) {
  const parts = Object.entries(params).filter(([, v]) => v !== undefined && v !== null && v !== '')
    .map(([k, v]) => enc(k) + '=' + enc(v));
  return parts.length ? '?' + parts.join('&') : '';
}

export const api = {
  login: (login, password, deviceName) => request('POST', '/auth/login', { login, password, device_name: deviceName }, { auth: false }),
  logout: () => request('POST', '/auth/logout'),
  me: () => request('GET', '/me'),
  sessions: () => request('GET', '/sessions'),
  endSession: (id) => request('DELETE', '/sessions/' + enc(id)),
  users: (q, limit = 50) => request('GET', '/users' + query({ q, limit })),
  user: (id) => request('GET', '/users/' + enc(id)),
  chats: () => request('GET', '/chats'),
  createChat: (body) => request('POST', '/chats', body).then((details) => details.chat),
  chat: (id) => request('GET', '/chats/' + enc(id)),
  updateChat: (id, body) => request('PATCH', '/chats/' + enc(id), body),
  addMembers: (id, userIds) => request('POST', '/chats/' + enc(id) + '/members', { user_ids: userIds }),
  removeMember: (id, userId) => request('DELETE', '/chats/' + enc(id) + '/members/' + enc(userId)),
  setRole: (id, userId, role) => request('PUT', '/chats/' + enc(id) + '/members/' + enc(userId) + '/role', { role }),
  leave: (id) => request('POST', '/chats/' + enc(id) + '/leave'),
  markRead: (id, messageId) => request('POST', '/chats/' + enc(id) + '/read', { message_id: messageId }),
  history: (id, anchor = {}, limit = 50) => request('GET', '/chats/' + enc(id) + '/messages' + query({ ...anchor, limit })),
  send: (id, body) => request('POST', '/chats/' + enc(id) + '/messages', body),
  pins: (id) => request('GET', '/chats/' + enc(id) + '/pins'),
  message: (id) => request('GET', '/messages/' + enc(id)),
  edit: (id, text) => request('PATCH', '/messages/' + enc(id), { text }),
  remove: (id) => request('DELETE', '/messages/' + enc(id)),
  edits: (id) => request('GET', '/messages/' + enc(id) + '/edits'),
  readBy: (id) => request('GET', '/messages/' + enc(id) + '/read-by'),
  react: (id, emoji) => request('PUT', '/messages/' + enc(id) + '/reactions/' + enc(emoji)),
  unreact: (id, emoji) => request('DELETE', '/messages/' + enc(id) + '/reactions/' + enc(emoji)),
  pin: (id) => request('PUT', '/messages/' + enc(id) + '/pin'),
  unpin: (id) => request('DELETE', '/messages/' + enc(id) + '/pin'),
  botCommands: (chatId) => request('GET', '/chats/' + enc(chatId) + '/bot-commands'),
  press: (id, button) => request('POST', '/messages/' + enc(id) + '/press', { button }),
};
