"""Discord's gateway websocket: HELLO and heartbeats, IDENTIFY answered with READY and
GUILD_CREATE, RESUME answered with the missed events and RESUMED (or INVALID_SESSION), then
events sent to every session as its intents and its shard allow."""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import zlib
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSMsgType, web

from tests.fakes.discord.models import API_VERSION, JSON, Intent, shard_of
from tests.fakes.discord.payloads import application_flags, guild_payload, me_payload
from tests.fakes.discord.state import DiscordState
from tests.fakes.discord.wire import dumps

HEARTBEAT_INTERVAL = 5.0
TRACE = ["fake-discord-gateway"]
REPLAY_LIMIT = 1000
"""Dispatches a session keeps for a RESUME; one missing more is invalidated, as on Discord."""
CLEAN_CLOSES = (1000, 1001)
"""Close codes with which a client ends its session (it cannot be resumed after them)."""


@dataclass(eq=False)
class _Session:
    """What IDENTIFY opened: the events it gets, its sequence, and the dispatches a RESUME
    replays (those after the client's last ``seq``)."""

    id: str
    intents: int
    shard: tuple[int, int] | None  # (id, count) from IDENTIFY; None: every event
    conn: _Connection | None = None  # None while disconnected
    seq: int = 0
    sent: deque[JSON] = field(default_factory=deque)
    forgotten: int = 0  # the last sequence number no longer kept for a replay

    @property
    def connected(self) -> bool:
        return self.conn is not None and not self.conn.ws.closed

    def record(self, event: str, data: JSON, *, replayable: bool = True) -> JSON:
        """The next dispatch of ``event``, kept for a RESUME when ``replayable``."""
        self.seq += 1
        payload = {"op": 0, "t": event, "s": self.seq, "d": data}
        if replayable:
            if len(self.sent) == REPLAY_LIMIT:
                self.forgotten = self.sent.popleft()["s"]
            self.sent.append(payload)
        return payload

    def missed(self, seq: int) -> list[JSON] | None:
        """The dispatches after ``seq``; ``None`` when some are no longer kept."""
        if seq < self.forgotten:
            return None
        return [p for p in self.sent if p["s"] > seq]


@dataclass(eq=False)
class _Connection:
    ws: web.WebSocketResponse
    compress: bool
    session: _Session | None = None  # set once IDENTIFY or RESUME is answered
    dropped: bool = False  # closed by the fake (the session stays resumable)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    zlib: Any = None

    async def send(self, payload: JSON) -> None:
        async with self.lock:  # one zlib stream: frames go out whole and in order
            if self.ws.closed:
                raise ConnectionResetError("gateway connection closed")
            if not self.compress:
                await self.ws.send_str(dumps(payload))
                return
            if self.zlib is None:
                self.zlib = zlib.compressobj()
            data = self.zlib.compress(dumps(payload).encode())
            await self.ws.send_bytes(data + self.zlib.flush(zlib.Z_SYNC_FLUSH))

    async def send_event(self, event: str, data: JSON) -> None:
        if self.session is None:
            raise RuntimeError("dispatch before IDENTIFY")
        await self.send(self.session.record(event, data))

    async def close(self, code: int, message: bytes) -> None:
        with contextlib.suppress(Exception):
            await self.ws.close(code=code, message=message)


@dataclass
class HandshakeHold:
    """Payloads of the ``ops`` (2: IDENTIFY, 6: RESUME) wait unanswered until ``release()``;
    ``arrived`` is set once one waits."""

    ops: frozenset[int]
    arrived: asyncio.Event = field(default_factory=asyncio.Event)
    released: asyncio.Event = field(default_factory=asyncio.Event)

    def release(self) -> None:
        self.released.set()


class Gateway:
    """The websocket endpoint, its connections and their sessions.

    An IDENTIFY with a wrong token is closed with 4004, one asking for MESSAGE_CONTENT with
    4014 when ``message_content_allowed`` is false (the privileged intent is off in the
    Developer Portal), one with an impossible ``shard`` with 4010. A sharded connection gets
    the guilds whose ``(guild_id >> 22) % count`` is its shard id, and DMs on shard 0 only.
    Without MESSAGE_CONTENT, guild messages arrive with empty content unless they mention the
    bot or are its own, as on Discord.

    A session outlives its connection unless the client closed it with 1000 or 1001: events
    for it are kept while it is disconnected, and a RESUME (right token, known session id)
    gets those after its ``seq`` and then RESUMED; an unknown or dropped session gets
    INVALID_SESSION (``d: false``), and the client IDENTIFYs again.
    """

    def __init__(self, state: DiscordState, *, token: str, message_content_allowed: bool
                 ) -> None:
        self.state = state
        self.token = token
        self.message_content_allowed = message_content_allowed
        self.resumes: list[JSON] = []
        self._connections: set[_Connection] = set()
        self._sessions: dict[str, _Session] = {}
        self._hold: HandshakeHold | None = None

    @property
    def connected_sessions(self) -> int:
        """Sessions with an open connection."""
        return sum(1 for s in self._sessions.values() if s.connected)

    def hold_handshakes(self, *, identify: bool = True, resume: bool = True) -> HandshakeHold:
        """Leave the IDENTIFY (and/or RESUME) payloads arriving from now on unanswered until
        the returned hold is released (closing the gateway releases it too)."""
        self._hold = HandshakeHold(frozenset(op for op, held in ((2, identify), (6, resume))
                                             if held))
        return self._hold

    async def drop(self, shard_id: int, *, code: int, resumable: bool) -> None:
        """Close the connection of shard ``shard_id`` (an unsharded client's counts as shard
        0) with ``code``; unless ``resumable``, its session is gone for a RESUME."""
        conns = [s.conn for s in self._sessions.values()
                 if s.conn is not None and not s.conn.ws.closed
                 and (s.shard[0] if s.shard else 0) == shard_id]
        if not conns:
            raise LookupError(f"no connected gateway session on shard {shard_id}")
        for conn in conns:
            if not resumable and conn.session is not None:
                del self._sessions[conn.session.id]
            conn.dropped = True
            await conn.close(code, b"fake discord dropped the connection")
        self.state.notify()

    async def handle(self, request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse(autoping=True, max_msg_size=0)
        await ws.prepare(request)
        conn = _Connection(ws, compress=request.query.get("compress") == "zlib-stream")
        self._connections.add(conn)
        hello = {"heartbeat_interval": int(HEARTBEAT_INTERVAL * 1000), "_trace": TRACE}
        try:
            await conn.send({"op": 10, "s": None, "t": None, "d": hello})
            async for msg in ws:
                if msg.type is WSMsgType.TEXT:
                    await self._on_payload(conn, json.loads(msg.data), request)
        except ConnectionError:
            pass
        finally:
            self._connections.discard(conn)
            self._detach(conn)
            self.state.notify()
        return ws

    def _detach(self, conn: _Connection) -> None:
        """The connection is closed: its session waits for a RESUME, unless the client
        ended it."""
        session = conn.session
        if session is None or session.conn is not conn:
            return
        session.conn = None
        if not conn.dropped and conn.ws.close_code in CLEAN_CLOSES:
            self._sessions.pop(session.id, None)

    async def _on_payload(self, conn: _Connection, payload: JSON, request: web.Request) -> None:
        op = payload.get("op")
        if op == 1:
            await conn.send({"op": 11, "s": None, "t": None, "d": None})
        elif op in (2, 6) and conn.session is not None:
            await conn.close(4005, b"Already authenticated.")
        elif op in (2, 6):
            if self._hold is not None and op in self._hold.ops:
                self._hold.arrived.set()
                await self._hold.released.wait()
            d = payload.get("d") or {}
            await (self._identify(conn, d, request) if op == 2 else self._resume(conn, d))
        elif conn.session is None:
            await conn.close(4003, b"Not authenticated.")
        else:
            await conn.close(4001, b"Unknown opcode.")
        self.state.notify()

    async def _identify(self, conn: _Connection, d: JSON, request: web.Request) -> None:
        if d.get("token") != self.token:
            await conn.close(4004, b"Authentication failed.")
            return
        intents = int(d.get("intents") or 0)
        if not self.message_content_allowed and intents & Intent.MESSAGE_CONTENT:
            await conn.close(4014, b"Disallowed intent(s).")
            return
        shard = d.get("shard")
        if shard is not None and (not isinstance(shard, list) or len(shard) != 2
                                  or not 0 <= int(shard[0]) < int(shard[1])):
            await conn.close(4010, b"Invalid shard.")
            return
        session = _Session(secrets.token_hex(16), intents,
                           None if shard is None else (int(shard[0]), int(shard[1])), conn)
        conn.session = session
        guild_ids = [g for g in self.state.guild_names
                     if self._serves(session, {"guild_id": g})]
        ready: JSON = {
            "v": API_VERSION,
            "user": me_payload(self.state),
            "guilds": [{"id": str(g), "unavailable": True} for g in guild_ids],
            "session_id": session.id,
            "session_type": "normal",
            "resume_gateway_url": f"ws://{request.host}{request.path}",
            "application": {"id": str(self.state.application_id),
                            "flags": application_flags(self.message_content_allowed)},
            "private_channels": [],
            "relationships": [],
            "presences": [],
            "guild_join_requests": [],
            "geo_ordered_rtc_regions": [],
            "user_settings": {},
            "auth": {},
            "_trace": TRACE,
        }
        if shard is not None:
            ready["shard"] = shard
        await conn.send_event("READY", ready)
        # GUILD_CREATE comes whatever the intents, as on Discord when a client connects.
        for guild_id in guild_ids:
            await conn.send_event("GUILD_CREATE", guild_payload(self.state, guild_id))
        self._sessions[session.id] = session
        self.state.identifies.append({k: v for k, v in d.items() if k != "token"})

    async def _resume(self, conn: _Connection, d: JSON) -> None:
        if d.get("token") != self.token:
            await conn.close(4004, b"Authentication failed.")
            return
        seq = d.get("seq")
        self.resumes.append({"session_id": d.get("session_id"), "seq": seq})
        session = self._sessions.get(str(d.get("session_id")))
        missed = None if session is None else session.missed(seq if isinstance(seq, int) else 0)
        if session is None or missed is None:
            await conn.send({"op": 9, "s": None, "t": None, "d": False})
            return
        session.conn, conn.session = conn, session
        for payload in missed:
            await conn.send(payload)
        await conn.send(session.record("RESUMED", {"_trace": TRACE}, replayable=False))

    async def dispatch(self, event: str, data: JSON) -> None:
        """Send an event to every session whose shard and intents let it through (a
        GUILD_CREATE is routed by the guild's ``id``); a disconnected one keeps it for its
        RESUME."""
        routed = {"guild_id": data.get("id")} if event == "GUILD_CREATE" else data
        for session in list(self._sessions.values()):
            if not self._serves(session, routed):
                continue
            if (seen := self._as_seen(session.intents, event, data)) is None:
                continue
            payload = session.record(event, seen)
            if session.conn is not None:
                with contextlib.suppress(ConnectionError, RuntimeError):
                    await session.conn.send(payload)
        self.state.notify()

    @staticmethod
    def _serves(session: _Session, data: JSON) -> bool:
        """Whether ``session``'s shard gets an event: a guild's go to the guild's shard, the
        rest (DMs) to shard 0."""
        if session.shard is None:
            return True
        shard_id, count = session.shard
        guild_id = data.get("guild_id")
        return shard_of(int(guild_id), count) == shard_id if guild_id else shard_id == 0

    def _as_seen(self, intents: int, event: str, data: JSON) -> JSON | None:
        """What a session with ``intents`` receives of ``event`` (``None``: nothing)."""
        if event.startswith(("THREAD_", "CHANNEL_")):
            return data if intents & Intent.GUILDS else None
        if event not in ("MESSAGE_CREATE", "MESSAGE_UPDATE"):
            return data
        in_guild = "guild_id" in data
        if not intents & (Intent.GUILD_MESSAGES if in_guild else Intent.DIRECT_MESSAGES):
            return None
        bot_id = str(self.state.bot_user.id)
        exempt = (
            not in_guild
            or data.get("author", {}).get("id") == bot_id
            or any(m.get("id") == bot_id for m in data.get("mentions", []))
        )
        if intents & Intent.MESSAGE_CONTENT or exempt:
            return data
        return {**data, "content": "", "embeds": [], "attachments": [], "components": []}

    async def close(self) -> None:
        """Release a hold, then close every connection with 1001 (going away)."""
        if self._hold is not None:
            self._hold.release()
        for conn in list(self._connections):
            await conn.close(1001, b"fake discord stopping")
