"""Discord's gateway websocket: HELLO and heartbeats, IDENTIFY answered with READY and
GUILD_CREATE, then events sent to every identified connection as its intents and its shard
allow."""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import zlib
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSMsgType, web

from tests.fakes.discord.models import API_VERSION, JSON, Intent, shard_of
from tests.fakes.discord.payloads import application_flags, guild_payload, me_payload
from tests.fakes.discord.state import DiscordState
from tests.fakes.discord.wire import dumps

HEARTBEAT_INTERVAL = 5.0
TRACE = ["fake-discord-gateway"]


@dataclass(eq=False)
class _Connection:
    ws: web.WebSocketResponse
    compress: bool
    intents: int | None = None  # set once IDENTIFY is answered
    shard: tuple[int, int] | None = None  # (id, count) from IDENTIFY; None: every event
    seq: int = 0
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
        self.seq += 1
        await self.send({"op": 0, "t": event, "s": self.seq, "d": data})

    async def close(self, code: int, message: bytes) -> None:
        with contextlib.suppress(Exception):
            await self.ws.close(code=code, message=message)


class Gateway:
    """The websocket endpoint and its connections.

    An IDENTIFY with a wrong token is closed with 4004, one asking for MESSAGE_CONTENT with
    4014 when ``message_content_allowed`` is false (the privileged intent is off in the
    Developer Portal), one with an impossible ``shard`` with 4010. A sharded connection gets
    the guilds whose ``(guild_id >> 22) % count`` is its shard id, and DMs on shard 0 only.
    Without MESSAGE_CONTENT, guild messages arrive with empty content unless they mention the
    bot or are its own, as on Discord. Resuming is not implemented.
    """

    def __init__(self, state: DiscordState, *, token: str, message_content_allowed: bool
                 ) -> None:
        self.state = state
        self.token = token
        self.message_content_allowed = message_content_allowed
        self._connections: set[_Connection] = set()

    @property
    def connected_sessions(self) -> int:
        """Identified connections still open."""
        return sum(1 for c in self._connections if c.intents is not None and not c.ws.closed)

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
            self.state.notify()
        return ws

    async def _on_payload(self, conn: _Connection, payload: JSON, request: web.Request) -> None:
        op = payload.get("op")
        if op == 1:
            await conn.send({"op": 11, "s": None, "t": None, "d": None})
        elif op == 2:
            await self._identify(conn, payload.get("d") or {}, request)
        elif conn.intents is None:
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
        if shard is not None:
            if (not isinstance(shard, list) or len(shard) != 2
                    or not 0 <= int(shard[0]) < int(shard[1])):
                await conn.close(4010, b"Invalid shard.")
                return
            conn.shard = (int(shard[0]), int(shard[1]))
        guild_ids = [g for g in self.state.guild_names if self._serves(conn, {"guild_id": g})]
        ready: JSON = {
            "v": API_VERSION,
            "user": me_payload(self.state),
            "guilds": [{"id": str(g), "unavailable": True} for g in guild_ids],
            "session_id": secrets.token_hex(16),
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
        conn.intents = intents
        self.state.identifies.append({k: v for k, v in d.items() if k != "token"})

    async def dispatch(self, event: str, data: JSON) -> None:
        """Send an event to every identified connection whose shard and intents let it
        through (a GUILD_CREATE is routed by the guild's ``id``)."""
        routed = {"guild_id": data.get("id")} if event == "GUILD_CREATE" else data
        for conn in list(self._connections):
            if conn.intents is None or not self._serves(conn, routed):
                continue
            if (seen := self._as_seen(conn.intents, event, data)) is None:
                continue
            with contextlib.suppress(ConnectionError, RuntimeError):
                await conn.send_event(event, seen)
        self.state.notify()

    @staticmethod
    def _serves(conn: _Connection, data: JSON) -> bool:
        """Whether ``conn``'s shard gets an event: a guild's go to the guild's shard, the rest
        (DMs) to shard 0."""
        if conn.shard is None:
            return True
        shard_id, count = conn.shard
        guild_id = data.get("guild_id")
        return shard_of(int(guild_id), count) == shard_id if guild_id else shard_id == 0

    def _as_seen(self, intents: int, event: str, data: JSON) -> JSON | None:
        """What a connection with ``intents`` receives of ``event`` (``None``: nothing)."""
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
        """Close every connection with 1001 (going away)."""
        for conn in list(self._connections):
            await conn.close(1001, b"fake discord stopping")
