// The realtime stream: one WebSocket, authenticated by its first frame (browsers cannot set
// headers, and tokens never go in URLs), resumed from the last event position after any drop.
//
// Every durable event carries `seq`; the stream remembers the highest one applied and reconnects
// with `?since=` that position, so a drop or a server restart loses nothing, and anything at or
// below it is ignored, so nothing is applied twice.

const CLOSE_UNAUTHENTICATED = 4401;
const CLOSE_REVOKED = 4403;
// A socket can die without a close (a laptop lid, a NAT or proxy dropping the flow): TCP may not
// notice for many minutes and the page would show "online" while missing everything. Browsers
// cannot see WebSocket pings, so after this much silence the client sends a `ping` frame, and a
// socket that stays silent for PONG_TIMEOUT_MS more is treated as dead.
// The browser suite shortens both through sessionStorage ("idle,timeout" in ms) so it can test a
// frozen server in seconds; nothing else sets it.
const heartbeatOverride = (sessionStorage.getItem('vestnik.heartbeat') || '').split(',').map(Number);
export const HEARTBEAT_IDLE_MS = heartbeatOverride[0] > 0 ? heartbeatOverride[0] : 25000;
export const PONG_TIMEOUT_MS = heartbeatOverride[1] > 0 ? heartbeatOverride[1] : 10000;

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
    this.heartbeat = null;
    this.lastHeard = 0;
    this.pingSentAt = 0;
    this.onlineListener = () => this.reconnectSoon(0);
    // The browser knows the network is gone before TCP does: drop the socket now and show it,
    // then reconnect as soon as the network is back.
    this.offlineListener = () => { if (this.ws) this.abandon(); };
    window.addEventListener('online', this.onlineListener);
    window.addEventListener('offline', this.offlineListener);
  }

  start() { this.connect(); }

  stop() {
    this.stopped = true;
    clearTimeout(this.timer);
    this.stopHeartbeat();
    window.removeEventListener('online', this.onlineListener);
    window.removeEventListener('offline', this.offlineListener);
    const ws = this.ws;
    this.ws = null;
    if (ws) { detach(ws); try { ws.close(1000); } catch { /* already closed */ } }
  }

  /**
   * Gives up on the current socket now and reconnects. A dead socket's close handshake can take
   * as long as TCP does to notice, so its handlers are detached instead of waiting for `onclose`.
   */
  abandon() {
    const ws = this.ws;
    if (!ws) return;
    this.ws = null;
    this.stopHeartbeat();
    detach(ws);
    try { ws.close(); } catch { /* it is dead anyway */ }
    this.setState('offline');
    this.scheduleReconnect();
  }

  startHeartbeat() {
    this.stopHeartbeat();
    this.lastHeard = Date.now();
    this.pingSentAt = 0;
    this.heartbeat = setInterval(() => this.checkHeartbeat(), Math.min(1000, PONG_TIMEOUT_MS / 4));
  }

  stopHeartbeat() {
    clearInterval(this.heartbeat);
    this.heartbeat = null;
  }

  /**
   * Pings after HEARTBEAT_IDLE_MS of silence; no frame at all PONG_TIMEOUT_MS later means dead.
   * A socket still opening after both together is given up too (a server that accepts TCP but
   * never answers the upgrade would otherwise hold the client "connecting" indefinitely).
   */
  checkHeartbeat() {
    const ws = this.ws;
    if (!ws) return;
    const now = Date.now();
    if (ws.readyState === 0) {
      if (now - this.lastHeard >= HEARTBEAT_IDLE_MS + PONG_TIMEOUT_MS) this.abandon();
      return;
    }
    if (ws.readyState !== 1) return;
    if (this.pingSentAt) {
      if (now - this.pingSentAt >= PONG_TIMEOUT_MS) this.abandon();
    } else if (now - this.lastHeard >= HEARTBEAT_IDLE_MS) {
      this.pingSentAt = now;
      try { ws.send('{"type":"ping"}'); } catch { this.abandon(); }
    }
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
    this.startHeartbeat();
    ws.onopen = () => {
      if (this.ws !== ws) return;
      this.lastHeard = Date.now();
      ws.send(JSON.stringify({ type: 'auth', token: this.token }));
    };
    // Frames from a socket already replaced or abandoned are ignored: only the current one counts.
    ws.onmessage = (message) => { if (this.ws === ws) this.receive(message.data); };
    ws.onclose = (close) => {
      if (this.ws !== ws) return;
      this.ws = null;
      this.stopHeartbeat();
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
    // Any frame proves the socket alive, not only a pong.
    this.lastHeard = Date.now();
    this.pingSentAt = 0;
    let frame;
    try { frame = JSON.parse(data); } catch { return; }
    if (!frame || typeof frame !== 'object') return;
    switch (frame.type) {
      case 'event':
        if (typeof frame.seq !== 'number' || (this.lastSeq !== null && frame.seq <= this.lastSeq)) return;
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
      case 'pong':
        break; // liveness only, recorded above
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

function detach(ws) {
  ws.onopen = null;
  ws.onmessage = null;
  ws.onclose = null;
  ws.onerror = null;
}
