"""Vestnik adapter for msgbench (aiohttp HTTP + aiohttp WebSocket, no SDK).

Same workload and semantics as the peer adapters in shared/peers (adapter_matrix.py,
adapter_xmpplite.py); msgbench.py itself is imported from there via PYTHONPATH.

register: `vestnik admin user add --login L --name N --password-stdin --data-dir D` against the
          server's data directory (limited concurrency, asyncio subprocesses), then
          POST /api/v1/auth/login -> token + user.id
room:     user 0 POST /api/v1/chats {"kind":"group","title":...,"members":[other user ids]}
receive:  per-user WebSocket GET /api/v1/stream (Authorization header); returns once the server
          sent {"type":"ready"}; message.created events in the room go to on_message(text)
send:     POST /api/v1/chats/{chat_id}/messages {"text","client_message_id"}; ack = HTTP 201
"""
from __future__ import annotations

import asyncio
import itertools
import json
import os
from dataclasses import dataclass, field
from urllib.parse import urlparse

import aiohttp

from msgbench import Adapter

_cmid = itertools.count(1)


@dataclass
class VUser:
    idx: int
    login: str
    user_id: str
    token: str
    ws: aiohttp.ClientWebSocketResponse | None = field(default=None, repr=False)
    task: asyncio.Task | None = field(default=None, repr=False)

    @property
    def auth(self):
        return {"Authorization": f"Bearer {self.token}"}


class VestnikAdapter(Adapter):
    name = "vestnik"

    @staticmethod
    def add_args(p):
        g = p.add_argument_group("vestnik adapter")
        g.add_argument("--vestnik-url", default="http://127.0.0.1:8080",
                       help="server base URL (the API is under /api/v1)")
        g.add_argument("--vestnik-bin", default=os.environ.get("VESTNIK_BIN", "vestnik"),
                       help="vestnik executable, used for `admin user add` (env VESTNIK_BIN)")
        g.add_argument("--vestnik-data-dir", default=os.environ.get("VESTNIK_DATA_DIR"),
                       help="the running server's --data-dir (users are created there; env VESTNIK_DATA_DIR)")
        g.add_argument("--vestnik-password", default="benchpass-123", help="password given to every bench user")
        g.add_argument("--vestnik-setup-concurrency", type=int, default=4,
                       help="parallel `admin user add` processes and logins")
        g.add_argument("--vestnik-cli-timeout", type=float, default=60.0,
                       help="seconds one `admin user add` may take")

    def __init__(self, args):
        super().__init__(args)
        self.url = args.vestnik_url.rstrip("/")
        u = urlparse(self.url)
        self.ws_url = ("wss" if u.scheme == "https" else "ws") + "://" + u.netloc + "/api/v1/stream"
        self.session: aiohttp.ClientSession | None = None
        self.stopping = False
        self.chat_id: str | None = None
        self.tasks: list[asyncio.Task] = []
        self.sockets: list[aiohttp.ClientWebSocketResponse] = []

    def target_hosts(self):
        return [urlparse(self.url).hostname]

    def _sess(self) -> aiohttp.ClientSession:
        if self.session is None:
            self.session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=0, ttl_dns_cache=None),
                timeout=aiohttp.ClientTimeout(total=120),
            )
        return self.session

    async def _req(self, method, path, *, user: VUser | None = None, json_body=None, ok=(200, 201), retries=8):
        s = self._sess()
        headers = user.auth if user else {}
        for attempt in range(retries + 1):
            async with s.request(method, self.url + "/api/v1" + path, json=json_body, headers=headers) as r:
                text = await r.text()
                if r.status in ok:
                    return r.status, (json.loads(text) if text else {})
                if r.status == 429 and attempt < retries:
                    self.count("http_429")
                    try:
                        wait = float(r.headers.get("Retry-After", "0.5"))
                    except ValueError:
                        wait = 0.5
                    await asyncio.sleep(min(max(wait, 0.05), 5.0))
                    continue
                self.count(f"http_{r.status}")
                raise RuntimeError(f"{method} {path} -> {r.status}: {text[:300]}")
        raise RuntimeError("unreachable")

    # ---------------------------------------------------------------- register
    async def _cli_add_user(self, login: str, name: str) -> None:
        a = self.args
        if not a.vestnik_data_dir:
            raise SystemExit("--vestnik-data-dir (the running server's data directory) is required")
        proc = await asyncio.create_subprocess_exec(
            a.vestnik_bin, "admin", "user", "add", "--login", login, "--name", name,
            "--password-stdin", "--data-dir", a.vestnik_data_dir,
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        try:
            out, err = await asyncio.wait_for(proc.communicate((a.vestnik_password + "\n").encode()),
                                              a.vestnik_cli_timeout)
        except asyncio.TimeoutError:
            proc.kill()
            await proc.wait()
            raise RuntimeError(f"`vestnik admin user add --login {login}` timed out")
        if proc.returncode != 0:
            raise RuntimeError(f"`vestnik admin user add --login {login}` exited {proc.returncode}: "
                               f"{(err or out).decode(errors='replace').strip()[:300]}")
        self.count("cli_users_added")

    async def register_users(self, n, prefix):
        # Logins: 2-32 chars of a-z 0-9 . _ - (lowercase only).
        base = "".join(c for c in prefix.lower() if c.isalnum() or c in "._-")
        sem = asyncio.Semaphore(self.args.vestnik_setup_concurrency)

        async def one(i):
            login = f"{base}u{i}"
            if not (2 <= len(login) <= 32):
                raise SystemExit(f"login {login!r} is not 2-32 characters; use a shorter --prefix/--run-id")
            async with sem:
                await self._cli_add_user(login, f"msgbench user {i}")
                _, r = await self._req("POST", "/auth/login", json_body={
                    "login": login, "password": self.args.vestnik_password, "device_name": "msgbench"})
            return VUser(i, login, r["user"]["id"], r["token"])

        return list(await asyncio.gather(*(one(i) for i in range(n))))

    # ---------------------------------------------------------------- room
    async def create_room(self, users, name):
        _, r = await self._req("POST", "/chats", user=users[0], json_body={
            "kind": "group", "title": name, "members": [u.user_id for u in users[1:]]})
        self.chat_id = r["chat"]["id"]
        members = r.get("members")
        if isinstance(members, list) and len(members) != len(users):
            raise RuntimeError(f"chat has {len(members)} members, expected {len(users)}")
        return self.chat_id

    # ---------------------------------------------------------------- receive
    async def start_receiver(self, user: VUser, room, on_message):
        ws = await self._sess().ws_connect(self.ws_url, headers=user.auth, heartbeat=None,
                                           max_msg_size=0, autoping=True)
        user.ws = ws
        self.sockets.append(ws)
        # Wait for {"type":"ready"}: from then on every committed event is delivered live.
        while True:
            msg = await asyncio.wait_for(ws.receive(), 30)
            if msg.type != aiohttp.WSMsgType.TEXT:
                raise RuntimeError(f"stream for {user.login} closed before ready: {msg.type} {msg.data!r}")
            frame = json.loads(msg.data)
            t = frame.get("type")
            if t == "ready":
                break
            if t == "error":
                raise RuntimeError(f"stream error for {user.login}: {frame}")
            self._handle(frame, room, on_message)  # (no catch-up without ?since, but be safe)
        user.task = asyncio.create_task(self._recv_loop(user, room, on_message))
        self.tasks.append(user.task)

    def _handle(self, frame, room, on_message):
        t = frame.get("type")
        if t == "event":
            ev = frame.get("event") or {}
            et = ev.get("type")
            if et == "message.created":
                m = ev.get("message") or {}
                if m.get("chat_id") == room:
                    on_message(m.get("text", ""))
                    return
                self.count("ws_message_other_chat")
            else:
                self.count(f"ws_event_{et}")
        elif t == "ephemeral":
            self.count("ws_ephemeral")
        elif t == "error":
            self.count(f"ws_error_{frame.get('code')}")
        else:
            self.count(f"ws_frame_{t}")

    async def _recv_loop(self, user: VUser, room, on_message):
        ws = user.ws
        try:
            while True:
                msg = await ws.receive()
                if msg.type == aiohttp.WSMsgType.TEXT:
                    try:
                        frame = json.loads(msg.data)
                    except ValueError:
                        self.count("ws_bad_json")
                        continue
                    self._handle(frame, room, on_message)
                elif msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSING, aiohttp.WSMsgType.CLOSED):
                    if not self.stopping:
                        self.count(f"ws_closed_{ws.close_code}")
                    return
                elif msg.type == aiohttp.WSMsgType.ERROR:
                    if not self.stopping:
                        self.count("ws_error_frame")
                    return
                else:
                    self.count(f"ws_msgtype_{msg.type.name}")
        except asyncio.CancelledError:
            raise
        except Exception as e:  # noqa: BLE001
            if not self.stopping:
                self.count(f"ws_exc_{type(e).__name__}")

    # ---------------------------------------------------------------- send
    async def send(self, user: VUser, room, body):
        status, _ = await self._req("POST", f"/chats/{room}/messages", user=user, json_body={
            "text": body, "client_message_id": f"mb-{user.idx}-{next(_cmid)}"})
        if status != 201:
            self.count(f"send_status_{status}")  # 200 = idempotent replay, should not happen

    async def close(self):
        self.stopping = True
        for ws in self.sockets:
            try:
                await asyncio.wait_for(ws.close(), 5)
            except Exception:  # noqa: BLE001
                pass
        for t in self.tasks:
            t.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        if self.session is not None:
            await self.session.close()


ADAPTER = VestnikAdapter
