// The realtime stream: one WebSocket, authenticated by its first frame (browsers cannot set
// headers, and tokens never go in URLs), resumed from the last event position after any drop.
//
// Every durable event carries `seq`; the stream remembers the highest one applied and reconnects
// with `?since=` that position, so a drop or a server restart loses nothing, and anything at or
// below it is ignored, so nothing is applied twice.

const CLOSE_UNAUTHENTICATED = 4401;
const CLOSE_REVOKED = 4403;

export class Stream {
  constructor({ token, onEvent, onEphemeral, onReady, onResync, onState, onFatal }) {
    this.token = token;
    this.handlers = { onEvent, onEphemeral, onReady, onResync, onState, onFatal };
    this.lastSeq = null;
    this.ws = null;
    this.state = 'connecting';
    this.attempt = 0;
    this.timer = null;
    this.stopped = false;
    this.onlineListener = () => this.reconnectSoon(0);
    // The browser knows the network is gone before TCP does: drop the socket now and show it,
    // then reconnect as soon as the network is back.
    this.offlineListener = () => { if (this.ws) { try { this.ws.close(); } catch { /* closing anyway */ } } };
    window.addEventListener('online', this.onlineListener);
    window.addEventListener('offline', this.offlineListener);
  }

  start() { this.connect(); }

  stop() {
    this.stopped = true;
    clearTimeout(this.timer);
    window.removeEventListener('online', this.onlineListener);
    window.removeEventListener('offline', this.offlineListener);
    if (this.ws) { try { this.ws.close(1000); } catch { /* already closed */ } }
    this.ws = null;
  }

  setState(state) {
    if (this.state === state) return;
    this.state = state;
    this.handlers.onState?.(state);
  }

  connect() {
    if (this.stopped) return;
    clearTimeout(this.timer);
    const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
    const since = this.lastSeq === null ? '' : '?since=' + encodeURIComponent(this.lastSeq);
    let ws;
    try {
      ws = new WebSocket(scheme + '//' + location.host + '/api/v1/stream' + since);
    } catch {
      this.scheduleReconnect();
      return;
    }
    this.ws = ws;
    this.setState(this.attempt === 0 ? 'connecting' : 'offline');
    ws.onopen = () => ws.send(JSON.stringify({ type: 'auth', token: this.token }));
    ws.onmessage = (message) => this.receive(message.data);
    ws.onclose = (close) => {
      if (this.ws !== ws) return;
      this.ws = null;
      if (close.code === CLOSE_UNAUTHENTICATED || close.code === CLOSE_REVOKED) {
        this.stopped = true;
        this.handlers.onFatal?.(close.code === CLOSE_REVOKED ? 'session_revoked' : 'unauthenticated');
        return;
      }
      this.setState('offline');
      this.scheduleReconnect();
    };
    ws.onerror = () => { /* onclose follows */ };
  }

  receive(data) {
    let frame;
    try { frame = JSON.parse(data); } catch { return; }
    switch (frame.type) {
      case 'event':
        if (this.lastSeq !== null && frame.seq <= this.lastSeq) return;
        this.lastSeq = frame.seq;
        this.handlers.onEvent?.(frame.event, frame.seq);
        break;
      case 'ephemeral':
        this.handlers.onEphemeral?.(frame.event);
        break;
      case 'ready': {
        const first = this.lastSeq === null;
        if (this.lastSeq === null || frame.seq > this.lastSeq) this.lastSeq = frame.seq;
        this.attempt = 0;
        this.setState('online');
        this.handlers.onReady?.({ first, seq: frame.seq });
        break;
      }
      case 'resync_required':
        this.lastSeq = frame.seq ?? this.lastSeq;
        this.handlers.onResync?.();
        break;
      case 'error':
        if (frame.code === 'session_revoked' || frame.code === 'unauthenticated') {
          this.stopped = true;
          this.handlers.onFatal?.(frame.code);
        }
        break;
    }
  }

  scheduleReconnect() {
    if (this.stopped) return;
    this.attempt += 1;
    const base = Math.min(10000, 400 * 2 ** Math.min(this.attempt - 1, 5));
    this.reconnectSoon(base / 2 + Math.random() * base / 2);
  }

  reconnectSoon(ms) {
    if (this.stopped || (this.ws && this.ws.readyState <= 1)) return;
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.connect(), ms);
  }

  /** Tells the chat's members the user is typing (best effort). */
  typing(chatId) {
    if (this.ws && this.ws.readyState === 1 && this.state === 'online') {
      this.ws.send(JSON.stringify({ type: 'typing', chat_id: chatId }));
    }
  }
}
