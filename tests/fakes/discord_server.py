"""A fake Discord (REST API + gateway websocket) on 127.0.0.1 for end-to-end tests.

The real ``discord.py`` client (``discord.Client`` / ``commands.Bot`` with ``app_commands``) can
log in, connect, receive events and make REST calls against it.  Everything is in memory and
inspectable by tests (``calls``, ``messages_in()``, ``edits_of()``, ``interaction_responses``...).

Pointing discord.py at the fake (``FakeDiscord.patch_discord()`` does exactly this)::

    discord.http.Route.BASE = fake.api_url                              # REST *and* webhooks
    discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(fake.gateway_url)

``discord/webhook/async_.py`` (interaction callbacks, followups, ``@original``) imports the very
same ``Route`` class from ``discord.http``, so the one ``Route.BASE`` assignment covers it.  Both
attributes are read at request/connect time, so set them before ``client.start()``.

Typical use::

    async with FakeDiscord() as fake:
        with fake.patch_discord():
            client = discord.Client(intents=intents, guild_ready_timeout=0.05)
            async with fake.client_running(client):
                await fake.send_message(fake.text_channel_id, fake.plain_user, "hi")

Behaviour deliberately mirrors real Discord where discord.py (or our adapter) depends on it:
JSON bodies are served with ``Content-Type: application/json`` *without* a charset, 429s carry a
JSON body plus ``Via`` and ``X-RateLimit-*`` headers, bot-created messages are echoed back over the
gateway, message content is blanked for sessions without the MESSAGE_CONTENT intent, content over
2000 characters is rejected with a 50035 form error, and an interaction can be acknowledged once.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
import math
import mimetypes
import re
import secrets
import time
import zlib
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from aiohttp import BodyPartReader, WSMsgType, web

if TYPE_CHECKING:
    import discord

__all__ = [
    "Call",
    "Edit",
    "FakeDiscord",
    "FakeRole",
    "FakeUser",
    "Intent",
    "InteractionResponse",
    "Perm",
    "RateLimitHit",
    "UploadedFile",
]

JSON = dict[str, Any]

DISCORD_EPOCH_MS = 1_420_070_400_000
API_VERSION = 10
MAX_CONTENT = 2000


class Perm:
    """Discord permission bits (subset)."""

    CREATE_INSTANT_INVITE = 1 << 0
    KICK_MEMBERS = 1 << 1
    BAN_MEMBERS = 1 << 2
    ADMINISTRATOR = 1 << 3
    MANAGE_CHANNELS = 1 << 4
    MANAGE_GUILD = 1 << 5
    ADD_REACTIONS = 1 << 6
    VIEW_CHANNEL = 1 << 10
    SEND_MESSAGES = 1 << 11
    MANAGE_MESSAGES = 1 << 13
    EMBED_LINKS = 1 << 14
    ATTACH_FILES = 1 << 15
    READ_MESSAGE_HISTORY = 1 << 16
    MENTION_EVERYONE = 1 << 17
    USE_EXTERNAL_EMOJIS = 1 << 18
    CHANGE_NICKNAME = 1 << 26
    MANAGE_ROLES = 1 << 28
    USE_APPLICATION_COMMANDS = 1 << 31
    MANAGE_THREADS = 1 << 34
    CREATE_PUBLIC_THREADS = 1 << 35
    CREATE_PRIVATE_THREADS = 1 << 36
    SEND_MESSAGES_IN_THREADS = 1 << 38
    ALL = (1 << 51) - 1

    EVERYONE_DEFAULT = (
        CREATE_INSTANT_INVITE
        | ADD_REACTIONS
        | VIEW_CHANNEL
        | SEND_MESSAGES
        | EMBED_LINKS
        | ATTACH_FILES
        | READ_MESSAGE_HISTORY
        | USE_EXTERNAL_EMOJIS
        | CHANGE_NICKNAME
        | USE_APPLICATION_COMMANDS
        | CREATE_PUBLIC_THREADS
        | SEND_MESSAGES_IN_THREADS
    )
    BOT_DEFAULT = EVERYONE_DEFAULT | MANAGE_MESSAGES | MANAGE_THREADS | CREATE_PRIVATE_THREADS


class Intent:
    """Gateway intent bits the fake understands."""

    GUILDS = 1 << 0
    GUILD_MEMBERS = 1 << 1
    GUILD_MESSAGES = 1 << 9
    GUILD_MESSAGE_REACTIONS = 1 << 10
    DIRECT_MESSAGES = 1 << 12
    DIRECT_MESSAGE_REACTIONS = 1 << 13
    MESSAGE_CONTENT = 1 << 15


EPHEMERAL = 1 << 6
LOADING = 1 << 7
SUPPRESS_EMBEDS = 1 << 2
SUPPRESS_NOTIFICATIONS = 1 << 12

THREAD_TYPES = (10, 11, 12)
DM_TYPES = (1, 3)
ARG_OPTION_TYPES = {3, 4, 5, 6, 7, 8, 9, 10, 11}


def _now_iso() -> str:
    return datetime.now(UTC).isoformat()


def _dumps(data: Any) -> str:
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False)


def _json_response(
    data: Any, status: int = 200, headers: Mapping[str, str] | None = None
) -> web.Response:
    # body= (not text=) so the header is exactly "application/json": with text= aiohttp appends
    # "; charset=utf-8" and discord.py's json_or_text() would hand back a *string*.
    return web.Response(
        body=_dumps(data).encode(),
        status=status,
        content_type="application/json",
        headers=dict(headers or {}),
    )


def _as_int(value: Any) -> int | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


# --------------------------------------------------------------------------- public records


@dataclass
class FakeUser:
    """A Discord user; ``roles`` are guild role ids (without @everyone) if ``is_member``."""

    id: int
    username: str
    bot: bool = False
    global_name: str | None = None
    roles: list[int] = field(default_factory=list)
    is_member: bool = True
    joined_at: str = field(default_factory=_now_iso)

    @property
    def mention(self) -> str:
        return f"<@{self.id}>"

    def payload(self) -> JSON:
        return {
            "id": str(self.id),
            "username": self.username,
            "discriminator": "0",
            "global_name": self.global_name,
            "avatar": None,
            "banner": None,
            "accent_color": None,
            "avatar_decoration_data": None,
            "bot": self.bot,
            "system": False,
            "public_flags": 0,
            "flags": 0,
        }

    def member_payload(self, *, with_user: bool = True) -> JSON:
        data: JSON = {
            "roles": [str(r) for r in self.roles],
            "nick": None,
            "avatar": None,
            "banner": None,
            "joined_at": self.joined_at,
            "premium_since": None,
            "deaf": False,
            "mute": False,
            "pending": False,
            "flags": 0,
            "communication_disabled_until": None,
        }
        if with_user:
            data["user"] = self.payload()
        return data


@dataclass
class FakeRole:
    id: int
    name: str
    permissions: int
    position: int = 0
    managed: bool = False
    bot_id: int | None = None

    def payload(self) -> JSON:
        data: JSON = {
            "id": str(self.id),
            "name": self.name,
            "color": 0,
            "colors": {"primary_color": 0, "secondary_color": None, "tertiary_color": None},
            "hoist": False,
            "icon": None,
            "unicode_emoji": None,
            "position": self.position,
            "permissions": str(self.permissions),
            "managed": self.managed,
            "mentionable": False,
            "flags": 0,
        }
        if self.bot_id is not None:
            data["tags"] = {"bot_id": str(self.bot_id)}
        return data


@dataclass
class UploadedFile:
    field_name: str
    filename: str
    content_type: str
    data: bytes


@dataclass
class Call:
    """One HTTP request received by the fake.

    ``path`` is relative to the API base (``/channels/1/messages``) for API calls; other requests
    (attachment downloads, unknown paths) keep their full path and have ``api=False``.
    ``json`` is the JSON body, or the parsed ``payload_json`` of a multipart body.
    """

    method: str
    path: str
    query: dict[str, str] = field(default_factory=dict)
    json: Any = None
    form: dict[str, str] | None = None
    files: list[UploadedFile] = field(default_factory=list)
    status: int = 0
    known: bool = True
    api: bool = True
    at: float = field(default_factory=time.monotonic)

    @property
    def body(self) -> Any:
        return self.json if self.json is not None else self.form


@dataclass
class Edit:
    """A successful edit of a message (``at`` is ``time.monotonic()``)."""

    message_id: int
    content: str | None
    at: float
    payload: JSON


@dataclass
class RateLimitHit:
    method: str
    path: str
    bucket: str
    retry_after: float
    at: float


@dataclass
class InteractionResponse:
    """An interaction callback (``type``: 1 pong, 4 message, 5 deferred message, 6 deferred
    update, 7 update message, 8 autocomplete, 9 modal)."""

    interaction_id: int
    interaction_type: int
    type: int
    data: JSON | None
    message_id: int | None
    at: float

    @property
    def ephemeral(self) -> bool:
        return bool((self.data or {}).get("flags", 0) & EPHEMERAL)


# --------------------------------------------------------------------------- private state


class _ApiError(Exception):
    def __init__(
        self,
        status: int,
        message: str,
        code: int | None = 0,
        *,
        errors: JSON | None = None,
        headers: Mapping[str, str] | None = None,
        extra: JSON | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.body: JSON = {"message": message}
        if code is not None:
            self.body["code"] = code
        if errors is not None:
            self.body["errors"] = errors
        if extra:
            self.body.update(extra)
        self.headers = dict(headers or {})

    def response(self) -> web.Response:
        return _json_response(self.body, self.status, self.headers)


def _form_error(field_name: str, code: str, message: str) -> _ApiError:
    return _ApiError(
        400,
        "Invalid Form Body",
        50035,
        errors={field_name: {"_errors": [{"code": code, "message": message}]}},
    )


@dataclass(eq=False)
class _Interaction:
    id: int
    token: str
    type: int
    channel_id: int
    user: FakeUser
    created: float
    message_id: int | None = None  # component/modal source message
    response_type: int | None = None
    original_id: int | None = None
    followup_ids: list[int] = field(default_factory=list)
    loading_pending: bool = False


@dataclass(eq=False)
class _Injected429:
    method: str
    path: re.Pattern[str]
    retry_after: float
    times: int


@dataclass(eq=False)
class _Bucket:
    start: float
    count: int = 0


@dataclass(eq=False)
class _Conn:
    ws: web.WebSocketResponse
    path: str
    query: dict[str, str]
    compress: bool
    send_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    session: _Session | None = None
    closed_by_server: bool = False
    _zlib: Any = None

    async def close(self, code: int, message: bytes) -> None:
        self.closed_by_server = True
        with contextlib.suppress(Exception):
            await self.ws.close(code=code, message=message)

    async def send(self, payload: JSON) -> None:
        text = _dumps(payload)
        async with self.send_lock:
            if self.ws.closed:
                raise ConnectionResetError("gateway connection closed")
            if self.compress:
                if self._zlib is None:
                    self._zlib = zlib.compressobj()
                data = self._zlib.compress(text.encode()) + self._zlib.flush(zlib.Z_SYNC_FLUSH)
                await self.ws.send_bytes(data)
            else:
                await self.ws.send_str(text)


@dataclass(eq=False)
class _Session:
    session_id: str
    intents: int
    shard: list[int] | None
    seq: int = 0
    buffer: deque[JSON] = field(default_factory=lambda: deque(maxlen=2000))
    conn: _Conn | None = None
    invalidated: bool = False
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


Handler = Callable[..., Awaitable[web.StreamResponse]]


# --------------------------------------------------------------------------- the fake


class FakeDiscord:
    """In-memory Discord with REST + gateway on 127.0.0.1 (see module docstring).

    Args:
        token: bot token the fake accepts (REST ``Authorization: Bot <token>`` and IDENTIFY).
            ``None`` accepts any token.
        edit_limit / edit_window: per-channel limit on ``PATCH .../messages/{id}`` (and per
            interaction token on webhook message edits). ``None`` disables it.
        send_limit / send_window: same for ``POST /channels/{id}/messages`` (off by default).
        ratelimit_headers: send ``X-RateLimit-*`` headers on successful limited requests, as
            Discord does. discord.py then paces itself and normally never sees a 429; set
            ``False`` to force discord.py into the 429-and-retry path.
        heartbeat_interval: seconds, sent in HELLO.
        enforce_intents: filter gateway events by the IDENTIFY intents like Discord does
            (no MESSAGE_CREATE without GUILD_MESSAGES / DIRECT_MESSAGES, blank content without
            MESSAGE_CONTENT unless DM / mention / own message).
        interaction_ack_timeout: interaction callbacks later than this many seconds after
            the interaction get ``404 Unknown interaction`` (10062), as on Discord, whose
            deadline is 3 s. ``None`` disables it.
        clock: the monotonic clock that deadline is measured with (tests pass a virtual one).
        message_content_allowed: ``False`` answers an IDENTIFY asking for MESSAGE_CONTENT
            with close code 4014 (disallowed intents), as Discord does when the privileged
            intent is not enabled for the bot in the Developer Portal.
    """

    def __init__(
        self,
        *,
        token: str | None = "fake-bot-token",
        edit_limit: int | None = 5,
        edit_window: float = 5.0,
        send_limit: int | None = None,
        send_window: float = 5.0,
        ratelimit_headers: bool = True,
        heartbeat_interval: float = 5.0,
        enforce_intents: bool = True,
        interaction_ack_timeout: float | None = 3.0,
        clock: Callable[[], float] = time.monotonic,
        message_content_allowed: bool = True,
        bot_name: str = "GeminiBot",
        guild_name: str = "Fake Guild",
        channel_name: str = "general",
    ) -> None:
        self.token = token
        self.edit_limit = edit_limit
        self.edit_window = edit_window
        self.send_limit = send_limit
        self.send_window = send_window
        self.ratelimit_headers = ratelimit_headers
        self.heartbeat_interval = heartbeat_interval
        self.enforce_intents = enforce_intents
        self.interaction_ack_timeout = interaction_ack_timeout
        self.clock = clock
        self.message_content_allowed = message_content_allowed
        self._injected_429s: list[_Injected429] = []

        self._last_id = 0
        self._port: int | None = None
        self._runner: web.AppRunner | None = None
        self._changed = asyncio.Event()

        # ---- recorded traffic
        self.calls: list[Call] = []
        self.rate_limited: list[RateLimitHit] = []
        self.interaction_responses: list[InteractionResponse] = []
        self.followups: list[JSON] = []
        self.identifies: list[JSON] = []
        self.resumes: list[JSON] = []
        self.gateway_received: list[JSON] = []
        self.gateway_connects: list[str] = []
        self.dispatched: list[tuple[str, JSON]] = []

        # ---- state
        self.users: dict[int, FakeUser] = {}
        self.roles: dict[int, FakeRole] = {}
        self.channels: dict[int, JSON] = {}
        self.commands: list[JSON] = []
        self.guild_commands: dict[int, list[JSON]] = {}
        self._messages: dict[int, JSON] = {}
        self._channel_messages: dict[int, list[int]] = {}
        self._edits: dict[int, list[Edit]] = {}
        self._files: dict[int, tuple[str, bytes, str]] = {}
        self._created_threads: list[int] = []
        self._interactions: dict[int, _Interaction] = {}
        self._buckets: dict[str, _Bucket] = {}
        self._sessions: dict[str, _Session] = {}
        self._conns: set[_Conn] = set()
        self._command_ids: dict[tuple[int | None, str], int] = {}
        self._route_table: list[tuple[str, re.Pattern[str], Handler, bool]] | None = None

        self.application_id = self._next_id()
        self.guild_id = self._next_id()
        self.guild_name = guild_name
        self.verify_key = secrets.token_hex(32)

        self.bot_user = self.add_user(bot_name, bot=True, user_id=self.application_id)
        self.owner_user = self.add_user("guild-owner")
        self.admin_user = self.add_user("alice-admin")
        self.plain_user = self.add_user("bob")
        self.other_bot = self.add_user("OtherBot", bot=True)

        self.everyone_role_id = self.guild_id
        self.roles[self.guild_id] = FakeRole(self.guild_id, "@everyone", Perm.EVERYONE_DEFAULT, 0)
        self.bot_role_id = self.add_role(
            bot_name, Perm.BOT_DEFAULT, managed=True, bot_id=self.bot_user.id
        )
        self.admin_role_id = self.add_role(
            "Moderators", Perm.MANAGE_CHANNELS | Perm.MANAGE_MESSAGES | Perm.MANAGE_THREADS
        )
        self.other_bot_role_id = self.add_role(
            "OtherBot", Perm.EVERYONE_DEFAULT, managed=True, bot_id=self.other_bot.id
        )
        self.bot_user.roles.append(self.bot_role_id)
        self.admin_user.roles.append(self.admin_role_id)
        self.other_bot.roles.append(self.other_bot_role_id)
        self.owner_id = self.owner_user.id

        self.category_id = self._add_channel_sync("Text Channels", type=4)
        self.text_channel_id = self._add_channel_sync(channel_name, parent_id=self.category_id)
        self.dm_channel_id = self._add_dm_sync(self.plain_user)

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Bind 127.0.0.1 on a free port and start serving."""
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_get("/gateway", self._gateway_handler)
        app.router.add_get("/gateway/resume", self._gateway_handler)
        app.router.add_route("*", r"/api/v{version:\d+}/{tail:.*}", self._api_entry)
        app.router.add_get("/attachments/{channel}/{aid}/{filename}", self._serve_attachment)
        app.router.add_get("/media/attachments/{channel}/{aid}/{filename}", self._serve_attachment)
        app.router.add_route("*", "/{tail:.*}", self._unknown_entry)
        self._runner = web.AppRunner(app, shutdown_timeout=1.0, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self._port = self._runner.addresses[0][1]

    async def stop(self) -> None:
        """Close gateway connections (code 1001) and stop the server.  Close clients first."""
        for conn in list(self._conns):
            await conn.close(1001, b"fake discord stopping")
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> FakeDiscord:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("FakeDiscord is not started")
        return self._port

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def api_url(self) -> str:
        """Value for ``discord.http.Route.BASE`` (e.g. ``http://127.0.0.1:PORT/api/v10``)."""
        return f"{self.base_url}/api/v{API_VERSION}"

    @property
    def gateway_url(self) -> str:
        """Value for ``DiscordWebSocket.DEFAULT_GATEWAY`` (``ws://127.0.0.1:PORT/gateway``)."""
        return f"ws://127.0.0.1:{self.port}/gateway"

    @property
    def resume_gateway_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/gateway/resume"

    @contextlib.contextmanager
    def patch_discord(self) -> Iterator[None]:
        """Point discord.py's REST (incl. webhooks/interactions) and gateway at the fake."""
        import yarl
        from discord.gateway import DiscordWebSocket
        from discord.http import Route

        old_base, old_gateway = Route.BASE, DiscordWebSocket.DEFAULT_GATEWAY
        Route.BASE = self.api_url
        DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(self.gateway_url)
        try:
            yield
        finally:
            Route.BASE = old_base
            DiscordWebSocket.DEFAULT_GATEWAY = old_gateway

    @contextlib.asynccontextmanager
    async def client_running(
        self, client: discord.Client, *, within: float = 5.0, fast_reidentify: bool = True
    ) -> AsyncIterator[discord.Client]:
        """Run ``client.start(token)`` in a task until it is ready; close it on exit.

        ``fast_reidentify`` replaces ``client.before_identify_hook`` (discord.py sleeps 5 s
        before every non-initial IDENTIFY, e.g. after INVALID_SESSION) with a no-op.
        """
        if self.token is None:
            raise RuntimeError("client_running() needs FakeDiscord(token=...)")
        if fast_reidentify:

            async def no_identify_delay(shard_id: int | None, *, initial: bool = False) -> None:
                return None

            client.before_identify_hook = no_identify_delay  # type: ignore[method-assign]
        task = asyncio.create_task(client.start(self.token), name="fake-discord-client")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        try:
            while True:
                if client.is_ready():
                    break
                if task.done():
                    task.result()
                    raise RuntimeError("discord client stopped before becoming ready")
                if loop.time() > deadline:
                    raise TimeoutError("discord client did not become ready")
                await asyncio.sleep(0.01)
            yield client
        finally:
            await client.close()
            done, _ = await asyncio.wait({task}, timeout=5.0)
            if not done:
                task.cancel()
            elif not task.cancelled():
                task.exception()  # mark retrieved; an exception from the body takes precedence

    # ------------------------------------------------------------------ ids & waiting

    def _next_id(self) -> int:
        ms = int(time.time() * 1000) - DISCORD_EPOCH_MS
        sid = max(ms << 22, self._last_id + 1)
        self._last_id = sid
        return sid

    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    async def wait_until(self, predicate: Callable[[], Any], within: float = 5.0) -> Any:
        """Wait until ``predicate()`` is truthy (re-checked on every state change); return it."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        while True:
            result = predicate()
            if result:
                return result
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise TimeoutError("FakeDiscord.wait_until timed out")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), min(remaining, 0.05))

    async def wait_for_call(
        self, method: str, path_pattern: str, *, count: int = 1, within: float = 5.0
    ) -> Call:
        """Wait until ``count`` calls match (method, ``re.fullmatch`` on path); return the last."""

        def found() -> Call | None:
            matches = self.calls_to(method, path_pattern)
            return matches[count - 1] if len(matches) >= count else None

        result: Call = await self.wait_until(found, within)
        return result

    async def wait_for_identify(self, count: int = 1, within: float = 5.0) -> None:
        await self.wait_until(lambda: len(self.identifies) >= count, within)

    async def wait_for_interaction_response(
        self, interaction: JSON | int, within: float = 5.0
    ) -> InteractionResponse:
        iid = int(interaction["id"]) if isinstance(interaction, dict) else int(interaction)

        def found() -> InteractionResponse | None:
            for resp in self.interaction_responses:
                if resp.interaction_id == iid:
                    return resp
            return None

        result: InteractionResponse = await self.wait_until(found, within)
        return result

    def calls_to(self, method: str, path_pattern: str) -> list[Call]:
        rx = re.compile(path_pattern)
        return [c for c in self.calls if c.method == method and rx.fullmatch(c.path)]

    @property
    def unknown_calls(self) -> list[Call]:
        return [c for c in self.calls if not c.known]

    def reset_calls(self) -> None:
        self.calls.clear()

    # ------------------------------------------------------------------ state setup

    def _user(self, user: FakeUser | int) -> FakeUser:
        uid = user.id if isinstance(user, FakeUser) else int(user)
        try:
            return self.users[uid]
        except KeyError:
            raise LookupError(f"unknown user {uid}") from None

    def add_user(
        self,
        username: str,
        *,
        bot: bool = False,
        roles: Sequence[int] = (),
        member: bool = True,
        user_id: int | None = None,
    ) -> FakeUser:
        """Create a user (a guild member unless ``member=False``)."""
        user = FakeUser(
            id=user_id or self._next_id(),
            username=username,
            bot=bot,
            global_name=None if bot else username.title(),
            roles=list(roles),
            is_member=member,
        )
        self.users[user.id] = user
        return user

    def add_role(
        self, name: str, permissions: int, *, managed: bool = False, bot_id: int | None = None
    ) -> int:
        rid = self._next_id()
        self.roles[rid] = FakeRole(rid, name, permissions, len(self.roles), managed, bot_id)
        return rid

    def _add_channel_sync(
        self,
        name: str,
        *,
        type: int = 0,
        parent_id: int | None = None,
        overwrites: Sequence[JSON] = (),
        topic: str | None = None,
    ) -> int:
        cid = self._next_id()
        self.channels[cid] = {
            "id": str(cid),
            "type": type,
            "guild_id": str(self.guild_id),
            "name": name,
            "position": sum(1 for c in self.channels.values() if "position" in c),
            "parent_id": str(parent_id) if parent_id else None,
            "topic": topic,
            "nsfw": False,
            "rate_limit_per_user": 0,
            "permission_overwrites": [self._overwrite(o) for o in overwrites],
            "last_message_id": None,
            "flags": 0,
            "default_auto_archive_duration": 1440,
        }
        self._channel_messages[cid] = []
        return cid

    @staticmethod
    def _overwrite(ow: JSON) -> JSON:
        return {
            "id": str(ow["id"]),
            "type": int(ow.get("type", 0)),
            "allow": str(ow.get("allow", 0)),
            "deny": str(ow.get("deny", 0)),
        }

    async def add_channel(
        self,
        name: str,
        *,
        type: int = 0,
        parent_id: int | None = None,
        overwrites: Sequence[JSON] = (),
        topic: str | None = None,
    ) -> int:
        """Add a guild channel (dispatches CHANNEL_CREATE to connected clients).

        ``overwrites``: ``{"id": role_or_user_id, "type": 0 role / 1 member, "allow", "deny"}``.
        """
        cid = self._add_channel_sync(
            name, type=type, parent_id=parent_id, overwrites=overwrites, topic=topic
        )
        await self.dispatch("CHANNEL_CREATE", copy.deepcopy(self.channels[cid]))
        return cid

    async def set_overwrite(
        self,
        channel_id: int,
        target_id: int,
        *,
        allow: int = 0,
        deny: int = 0,
        member: bool = False,
    ) -> None:
        """Set a permission overwrite on a guild channel (dispatches CHANNEL_UPDATE)."""
        ch = self._channel(channel_id)
        ows = [o for o in ch["permission_overwrites"] if int(o["id"]) != target_id]
        ows.append(
            self._overwrite({"id": target_id, "type": int(member), "allow": allow, "deny": deny})
        )
        ch["permission_overwrites"] = ows
        await self.dispatch("CHANNEL_UPDATE", copy.deepcopy(ch))

    def _make_thread(
        self,
        parent_id: int,
        name: str,
        *,
        owner_id: int,
        type: int = 11,
        thread_id: int | None = None,
        auto_archive_duration: int = 1440,
        rate_limit_per_user: int = 0,
        invitable: bool = True,
    ) -> JSON:
        parent = self._channel(parent_id)
        if parent["type"] in THREAD_TYPES or parent["type"] in DM_TYPES:
            raise _ApiError(400, "Cannot create a thread here", 50024)
        tid = thread_id or self._next_id()
        now = _now_iso()
        thread: JSON = {
            "id": str(tid),
            "type": type,
            "guild_id": str(self.guild_id),
            "parent_id": str(parent_id),
            "owner_id": str(owner_id),
            "name": name,
            "last_message_id": None,
            "message_count": 0,
            "member_count": 1,
            "total_message_sent": 0,
            "rate_limit_per_user": rate_limit_per_user or 0,
            "flags": 0,
            "applied_tags": [],
            "thread_metadata": {
                "archived": False,
                "auto_archive_duration": auto_archive_duration or 1440,
                "archive_timestamp": now,
                "locked": False,
                "invitable": invitable,
                "create_timestamp": now,
            },
        }
        self.channels[tid] = thread
        self._channel_messages[tid] = []
        return thread

    async def add_thread(
        self, parent_id: int, name: str, *, owner: FakeUser | int | None = None, type: int = 11
    ) -> int:
        """Add an (active) thread; listed in GUILD_CREATE, THREAD_CREATE sent if connected."""
        owner_id = self._user(owner).id if owner is not None else self.plain_user.id
        thread = self._make_thread(parent_id, name, owner_id=owner_id, type=type)
        await self.dispatch("THREAD_CREATE", {**copy.deepcopy(thread), "newly_created": True})
        return int(thread["id"])

    def _add_dm_sync(self, user: FakeUser) -> int:
        for cid, ch in self.channels.items():
            if ch["type"] == 1 and int(ch["recipients"][0]["id"]) == user.id:
                return cid
        cid = self._next_id()
        self.channels[cid] = {
            "id": str(cid),
            "type": 1,
            "last_message_id": None,
            "flags": 0,
            "recipients": [user.payload()],
        }
        self._channel_messages[cid] = []
        return cid

    def dm_channel_for(self, user: FakeUser | int) -> int:
        """Id of the DM channel between the bot and ``user`` (created if needed)."""
        return self._add_dm_sync(self._user(user))

    def add_attachment_file(
        self,
        filename: str,
        data: bytes,
        content_type: str | None = None,
        *,
        channel_id: int | None = None,
        **extra: Any,
    ) -> JSON:
        """Store bytes served by the fake and return an attachment payload (url/proxy_url).

        Pass the result to ``send_message(attachments=...)`` or as an attachment slash option.
        ``extra`` (e.g. ``width``, ``height``, ``description``) is merged into the payload.
        """
        cid = channel_id or self.text_channel_id
        aid = self._next_id()
        safe = re.sub(r"[^\w.\-]", "_", filename) or "file"
        ctype = content_type or mimetypes.guess_type(safe)[0] or "application/octet-stream"
        self._files[aid] = (safe, bytes(data), ctype)
        payload: JSON = {
            "id": str(aid),
            "filename": safe,
            "size": len(data),
            "url": f"{self.base_url}/attachments/{cid}/{aid}/{safe}",
            "proxy_url": f"{self.base_url}/media/attachments/{cid}/{aid}/{safe}",
            "content_type": ctype,
        }
        payload.update(extra)
        return payload

    def attachment_bytes(self, attachment_id: int | str) -> bytes:
        return self._files[int(attachment_id)][1]

    # ------------------------------------------------------------------ permissions

    def _channel(self, channel_id: int | str) -> JSON:
        try:
            return self.channels[int(channel_id)]
        except (KeyError, ValueError):
            raise _ApiError(404, "Unknown Channel", 10003) from None

    def base_permissions(self, user: FakeUser | int) -> int:
        u = self._user(user)
        if u.id == self.owner_id:
            return Perm.ALL
        perms = self.roles[self.everyone_role_id].permissions
        for rid in u.roles:
            if rid in self.roles:
                perms |= self.roles[rid].permissions
        return Perm.ALL if perms & Perm.ADMINISTRATOR else perms

    def permissions_in(self, channel_id: int, user: FakeUser | int) -> int:
        """Discord's permission algorithm (roles + overwrites; threads use the parent)."""
        u = self._user(user)
        ch = self._channel(channel_id)
        if ch["type"] in DM_TYPES:
            return (
                Perm.VIEW_CHANNEL
                | Perm.SEND_MESSAGES
                | Perm.READ_MESSAGE_HISTORY
                | Perm.EMBED_LINKS
                | Perm.ATTACH_FILES
                | Perm.ADD_REACTIONS
                | Perm.USE_APPLICATION_COMMANDS
            )
        if ch["type"] in THREAD_TYPES:
            ch = self._channel(ch["parent_id"])
        perms = self.base_permissions(u)
        if perms & Perm.ADMINISTRATOR or perms == Perm.ALL:
            return Perm.ALL
        ows = {(int(o["id"]), int(o["type"])): o for o in ch.get("permission_overwrites", [])}

        def apply(allow: int, deny: int) -> None:
            nonlocal perms
            perms = (perms & ~deny) | allow

        if (ow := ows.get((self.guild_id, 0))) is not None:
            apply(int(ow["allow"]), int(ow["deny"]))
        allow = deny = 0
        for rid in u.roles:
            if (ow := ows.get((rid, 0))) is not None:
                allow |= int(ow["allow"])
                deny |= int(ow["deny"])
        apply(allow, deny)
        if (ow := ows.get((u.id, 1))) is not None:
            apply(int(ow["allow"]), int(ow["deny"]))
        return perms

    def _require(self, channel_id: int, perm: int, what: str = "Missing Permissions") -> None:
        if not self.permissions_in(channel_id, self.bot_user) & perm:
            raise _ApiError(403, what, 50013)

    # ------------------------------------------------------------------ payload builders

    def _guild_payload(self, *, full: bool = True) -> JSON:
        members = [u for u in self.users.values() if u.is_member]
        data: JSON = {
            "id": str(self.guild_id),
            "name": self.guild_name,
            "icon": None,
            "splash": None,
            "discovery_splash": None,
            "banner": None,
            "description": None,
            "owner_id": str(self.owner_id),
            "afk_channel_id": None,
            "afk_timeout": 300,
            "verification_level": 0,
            "default_message_notifications": 1,
            "explicit_content_filter": 0,
            "mfa_level": 0,
            "nsfw_level": 0,
            "premium_tier": 0,
            "premium_subscription_count": 0,
            "premium_progress_bar_enabled": False,
            "preferred_locale": "en-US",
            "system_channel_id": str(self.text_channel_id),
            "system_channel_flags": 0,
            "rules_channel_id": None,
            "public_updates_channel_id": None,
            "safety_alerts_channel_id": None,
            "vanity_url_code": None,
            "features": [],
            "roles": [r.payload() for r in self.roles.values()],
            "emojis": [],
            "stickers": [],
        }
        if full:
            channels = [c for c in self.channels.values() if "guild_id" in c]
            data.update(
                {
                    "unavailable": False,
                    "large": False,
                    "joined_at": self.bot_user.joined_at,
                    "member_count": len(members),
                    "members": [u.member_payload() for u in members],
                    "channels": [
                        copy.deepcopy(c) for c in channels if c["type"] not in THREAD_TYPES
                    ],
                    "threads": [
                        copy.deepcopy(c)
                        for c in channels
                        if c["type"] in THREAD_TYPES and not c["thread_metadata"]["archived"]
                    ],
                    "presences": [],
                    "voice_states": [],
                    "stage_instances": [],
                    "guild_scheduled_events": [],
                    "soundboard_sounds": [],
                }
            )
        return data

    def _me_payload(self) -> JSON:
        return {
            **self.bot_user.payload(),
            "verified": True,
            "mfa_enabled": False,
            "locale": "en-US",
            "email": None,
        }

    def _application_payload(self) -> JSON:
        return {
            "id": str(self.application_id),
            "name": self.bot_user.username,
            "icon": None,
            "description": "",
            "summary": "",
            "type": None,
            "bot_public": True,
            "bot_require_code_grant": False,
            "verify_key": self.verify_key,
            "flags": (1 << 19) | (1 << 15),
            "owner": self.owner_user.payload(),
            "team": None,
            "bot": self.bot_user.payload(),
            "interactions_endpoint_url": None,
            "redirect_uris": [],
            "tags": [],
            "integration_types_config": {"0": {}},
            "approximate_guild_count": 1,
        }

    def _channel_guild_id(self, channel_id: int) -> int | None:
        ch = self.channels.get(channel_id)
        return int(ch["guild_id"]) if ch and "guild_id" in ch else None

    def _render(self, msg: JSON, *, gateway: bool, nested: bool = False) -> JSON:
        out = copy.deepcopy(msg)
        ref = msg.get("message_reference")
        if ref is not None and not nested and msg["type"] == 19:
            target = self._messages.get(int(ref["message_id"]))
            out["referenced_message"] = (
                self._render(target, gateway=gateway, nested=True) if target else None
            )
        thread = self.channels.get(int(msg["id"]))
        if thread is not None and thread["type"] in THREAD_TYPES:
            out["thread"] = copy.deepcopy(thread)
        gid = self._channel_guild_id(int(msg["channel_id"]))
        if gateway and gid is not None:
            out["guild_id"] = str(gid)
            author = self.users.get(int(msg["author"]["id"]))
            if author is not None and author.is_member:
                out["member"] = author.member_payload(with_user=False)
            for mention in out["mentions"]:
                mu = self.users.get(int(mention["id"]))
                if mu is not None and mu.is_member:
                    mention["member"] = mu.member_payload(with_user=False)
        return out

    def _mentions_from(self, content: str) -> tuple[list[JSON], list[str]]:
        users: list[JSON] = []
        seen: set[int] = set()
        for m in re.finditer(r"<@!?(\d+)>", content):
            uid = int(m.group(1))
            if uid in self.users and uid not in seen:
                seen.add(uid)
                users.append(self.users[uid].payload())
        roles = [
            m.group(1) for m in re.finditer(r"<@&(\d+)>", content) if int(m.group(1)) in self.roles
        ]
        return users, roles

    def _store_message(
        self,
        channel_id: int,
        author: FakeUser,
        content: str,
        *,
        attachments: Sequence[JSON] = (),
        embeds: Sequence[JSON] = (),
        components: Sequence[JSON] = (),
        reference: JSON | None = None,
        flags: int = 0,
        nonce: Any = None,
        tts: bool = False,
        msg_type: int = 0,
        extra_mentions: Sequence[FakeUser] = (),
        webhook: bool = False,
        interaction_metadata: JSON | None = None,
        ephemeral: bool = False,
    ) -> JSON:
        ch = self._channel(channel_id)
        mid = self._next_id()
        mentions, mention_roles = self._mentions_from(content)
        for u in extra_mentions:
            if all(int(m["id"]) != u.id for m in mentions):
                mentions.append(u.payload())
        msg: JSON = {
            "id": str(mid),
            "channel_id": str(channel_id),
            "type": 19 if reference is not None and reference["type"] == 0 and msg_type == 0
            else msg_type,
            "content": content,
            "author": author.payload(),
            "timestamp": _now_iso(),
            "edited_timestamp": None,
            "tts": tts,
            "mention_everyone": False,
            "mentions": mentions,
            "mention_roles": mention_roles,
            "attachments": list(attachments),
            "embeds": list(embeds),
            "components": list(components),
            "reactions": [],
            "pinned": False,
            "flags": flags | (EPHEMERAL if ephemeral else 0),
        }
        if reference is not None:
            msg["message_reference"] = reference
        if nonce is not None:
            msg["nonce"] = nonce
        if webhook:
            msg["webhook_id"] = str(self.application_id)
            msg["application_id"] = str(self.application_id)
        if interaction_metadata is not None:
            msg["interaction_metadata"] = interaction_metadata
        self._messages[mid] = msg
        if not ephemeral:
            self._channel_messages.setdefault(channel_id, []).append(mid)
            ch["last_message_id"] = str(mid)
            if ch["type"] in THREAD_TYPES:
                ch["message_count"] = ch.get("message_count", 0) + 1
                ch["total_message_sent"] = ch.get("total_message_sent", 0) + 1
                msg["position"] = ch["total_message_sent"] - 1
        self._notify()
        return msg

    def _reference_from(self, ref: Any, channel_id: int) -> JSON | None:
        if not isinstance(ref, dict) or _as_int(ref.get("message_id")) is None:
            return None
        mid = int(ref["message_id"])
        target = self._messages.get(mid)
        if target is None or target.get("flags", 0) & EPHEMERAL:
            if ref.get("fail_if_not_exists") is False:
                return None
            raise _form_error("message_reference", "REPLIES_UNKNOWN_MESSAGE", "Unknown message")
        out: JSON = {
            "type": int(ref.get("type", 0) or 0),
            "message_id": str(mid),
            "channel_id": target["channel_id"],
        }
        gid = self._channel_guild_id(int(target["channel_id"]))
        if gid is not None:
            out["guild_id"] = str(gid)
        return out

    # ------------------------------------------------------------------ message accessors

    def get_message(self, message_id: int | str) -> JSON:
        """Current stored payload (REST shape) of a message, including ephemeral ones."""
        return copy.deepcopy(self._messages[int(message_id)])

    def message_payloads_in(self, channel_id: int) -> list[JSON]:
        return [
            copy.deepcopy(self._messages[m]) for m in self._channel_messages.get(channel_id, [])
        ]

    def messages_in(self, channel_id: int) -> list[str]:
        """Current content of each (non-ephemeral, non-deleted) message, oldest first."""
        return [self._messages[m]["content"] for m in self._channel_messages.get(channel_id, [])]

    def edits_of(self, message_id: int | str) -> list[Edit]:
        return list(self._edits.get(int(message_id), []))

    @property
    def threads(self) -> list[JSON]:
        """Thread channels created through the REST API (by the bot), current payloads."""
        return [copy.deepcopy(self.channels[t]) for t in self._created_threads]

    @property
    def modals(self) -> list[JSON]:
        return [r.data or {} for r in self.interaction_responses if r.type == 9]

    # ------------------------------------------------------------------ gateway

    async def _gateway_handler(self, request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse(autoping=True, max_msg_size=0)
        if not ws.can_prepare(request).ok:
            return await self._unknown_entry(request)
        await ws.prepare(request)
        self.gateway_connects.append(request.path_qs)
        query = dict(request.query)
        conn = _Conn(ws, request.path, query, compress=query.get("compress") == "zlib-stream")
        self._conns.add(conn)
        try:
            await conn.send(
                {
                    "op": 10,
                    "s": None,
                    "t": None,
                    "d": {
                        "heartbeat_interval": int(self.heartbeat_interval * 1000),
                        "_trace": ["fake-discord-gateway"],
                    },
                }
            )
            async for msg in ws:
                if msg.type is not WSMsgType.TEXT:
                    continue
                try:
                    payload = json.loads(msg.data)
                except ValueError:
                    await conn.close(4002, b"Error while decoding payload.")
                    break
                await self._on_gateway_payload(conn, payload)
        except ConnectionError:
            pass
        finally:
            self._conns.discard(conn)
            session = conn.session
            if session is not None and session.conn is conn:
                session.conn = None
                # A client's own close with 1000/1001 ends the session (as on Discord);
                # anything else (or a close the fake started) leaves it resumable.
                if not conn.closed_by_server and ws.close_code in (1000, 1001):
                    session.invalidated = True
            self._notify()
        return ws

    async def _on_gateway_payload(self, conn: _Conn, payload: JSON) -> None:
        op = payload.get("op")
        d = payload.get("d")
        if op != 1:
            logged = copy.deepcopy(payload)
            if isinstance(logged.get("d"), dict) and "token" in logged["d"]:
                logged["d"]["token"] = "<redacted>"
            self.gateway_received.append(logged)
        if op == 1:
            await conn.send({"op": 11, "s": None, "t": None, "d": None})
        elif op == 2:
            await self._identify(conn, d or {})
        elif op == 6:
            await self._resume(conn, d or {})
        elif conn.session is None:
            await conn.close(4003, b"Not authenticated.")
        elif op == 8:
            await self._request_members(conn.session, d or {})
        elif op in (3, 4):
            pass  # presence / voice state updates: accepted and ignored
        else:
            await conn.close(4001, b"Unknown opcode.")
        self._notify()

    def _token_ok(self, token: Any) -> bool:
        return self.token is None or token == self.token

    async def _identify(self, conn: _Conn, d: JSON) -> None:
        if conn.session is not None:
            await conn.close(4005, b"Already authenticated.")
            return
        if not self._token_ok(d.get("token")):
            await conn.close(4004, b"Authentication failed.")
            return
        if not self.message_content_allowed and int(d.get("intents") or 0) & Intent.MESSAGE_CONTENT:
            await conn.close(4014, b"Disallowed intent(s).")
            return
        session = _Session(
            session_id=secrets.token_hex(16),
            intents=int(d.get("intents") or 0),
            shard=d.get("shard"),
        )
        self._sessions[session.session_id] = session
        ready: JSON = {
            "v": API_VERSION,
            "user": self._me_payload(),
            "guilds": [{"id": str(self.guild_id), "unavailable": True}],
            "session_id": session.session_id,
            "session_type": "normal",
            "resume_gateway_url": self.resume_gateway_url,
            "application": {"id": str(self.application_id), "flags": (1 << 19) | (1 << 15)},
            "private_channels": [],
            "relationships": [],
            "presences": [],
            "guild_join_requests": [],
            "geo_ordered_rtc_regions": [],
            "user_settings": {},
            "auth": {},
            "_trace": ["fake-discord-gateway"],
        }
        if session.shard is not None:
            ready["shard"] = session.shard
        async with session.lock:
            conn.session = session
            session.conn = conn
            await self._send_dispatch(session, "READY", ready)
            # GUILD_CREATE is sent regardless of the GUILDS intent (as Discord does on connect).
            await self._send_dispatch(session, "GUILD_CREATE", self._guild_payload())
        logged = {k: v for k, v in d.items() if k != "token"}
        self.identifies.append(logged)

    async def _resume(self, conn: _Conn, d: JSON) -> None:
        if not self._token_ok(d.get("token")):
            await conn.close(4004, b"Authentication failed.")
            return
        session = self._sessions.get(str(d.get("session_id")))
        seq = int(d.get("seq") or 0)
        oldest = session.buffer[0]["s"] if session is not None and session.buffer else 1
        if session is None or session.invalidated or seq + 1 < oldest:
            await conn.send({"op": 9, "s": None, "t": None, "d": False})
            return
        old = session.conn
        if old is not None and old is not conn:
            await old.close(4000, b"Session resumed elsewhere.")
        async with session.lock:
            conn.session = session
            session.conn = conn
            for frame in list(session.buffer):
                if frame["s"] > seq:
                    await conn.send(frame)
            await self._send_dispatch(session, "RESUMED", {"_trace": ["fake-discord-gateway"]})
        self.resumes.append({"session_id": session.session_id, "seq": seq})

    async def _request_members(self, session: _Session, d: JSON) -> None:
        query = str(d.get("query") or "").lower()
        ids = {int(x) for x in (d.get("user_ids") or [])} if d.get("user_ids") else None
        limit = int(d.get("limit") or 0)
        members = [
            u
            for u in self.users.values()
            if u.is_member
            and (ids is None or u.id in ids)
            and (not query or u.username.lower().startswith(query))
        ]
        if limit:
            members = members[:limit]
        chunk: JSON = {
            "guild_id": str(self.guild_id),
            "members": [u.member_payload() for u in members],
            "chunk_index": 0,
            "chunk_count": 1,
            "not_found": [str(i) for i in (ids or set()) if i not in self.users],
        }
        if d.get("nonce") is not None:
            chunk["nonce"] = d["nonce"]
        async with session.lock:
            await self._send_dispatch(session, "GUILD_MEMBERS_CHUNK", chunk)

    async def _send_dispatch(self, session: _Session, event: str, data: JSON) -> None:
        """Sequence + buffer (for RESUME) + send; caller holds ``session.lock``."""
        session.seq += 1
        frame = {"op": 0, "t": event, "s": session.seq, "d": data}
        session.buffer.append(frame)
        conn = session.conn
        if conn is not None:
            try:
                await conn.send(frame)
            except (ConnectionError, RuntimeError):
                if session.conn is conn:
                    session.conn = None

    def _filter_for(self, intents: int, event: str, data: JSON) -> JSON | None:
        """What a session with ``intents`` receives for ``event`` (``None``: nothing)."""
        if not self.enforce_intents:
            return data
        if event.startswith("MESSAGE_REACTION"):
            need = (
                Intent.GUILD_MESSAGE_REACTIONS
                if "guild_id" in data
                else Intent.DIRECT_MESSAGE_REACTIONS
            )
            return data if intents & need else None
        if event in ("MESSAGE_CREATE", "MESSAGE_UPDATE", "MESSAGE_DELETE", "MESSAGE_DELETE_BULK"):
            need = Intent.GUILD_MESSAGES if "guild_id" in data else Intent.DIRECT_MESSAGES
            if not intents & need:
                return None
            if (
                event in ("MESSAGE_CREATE", "MESSAGE_UPDATE")
                and not intents & Intent.MESSAGE_CONTENT
            ):
                exempt = (
                    "guild_id" not in data
                    or data.get("author", {}).get("id") == str(self.bot_user.id)
                    or any(m.get("id") == str(self.bot_user.id) for m in data.get("mentions", []))
                )
                if not exempt:
                    data = {
                        **data,
                        "content": "",
                        "embeds": [],
                        "attachments": [],
                        "components": [],
                    }
            return data
        if event.startswith(("THREAD_", "CHANNEL_")) and not intents & Intent.GUILDS:
            return None
        return data

    async def dispatch(self, event: str, data: JSON) -> None:
        """Send a DISPATCH event to every live session (buffered for RESUME if disconnected)."""
        self.dispatched.append((event, data))
        for session in list(self._sessions.values()):
            if session.invalidated:
                continue
            filtered = self._filter_for(session.intents, event, data)
            if filtered is None:
                continue
            async with session.lock:
                await self._send_dispatch(session, event, filtered)
        self._notify()

    @property
    def connected_sessions(self) -> int:
        """Number of identified, currently connected gateway sessions."""
        return sum(1 for s in self._sessions.values() if s.conn is not None and not s.invalidated)

    async def reconnect_clients(self) -> None:
        """Send op 7 RECONNECT to every connection (discord.py then RESUMEs)."""
        for conn in list(self._conns):
            with contextlib.suppress(ConnectionError, RuntimeError):
                await conn.send({"op": 7, "s": None, "t": None, "d": None})

    async def invalidate_sessions(self, *, resumable: bool = False) -> None:
        """Send op 9 INVALID_SESSION (``resumable=False``: client re-IDENTIFYs)."""
        for conn in list(self._conns):
            if conn.session is not None and not resumable:
                conn.session.invalidated = True
            with contextlib.suppress(ConnectionError, RuntimeError):
                await conn.send({"op": 9, "s": None, "t": None, "d": resumable})

    async def drop_connections(self, code: int = 4000) -> None:
        """Close every gateway websocket from the server side with ``code``."""
        for conn in list(self._conns):
            await conn.close(code, b"dropped by fake")

    # ------------------------------------------------------------------ injected user events

    async def send_message(
        self,
        channel_id: int,
        author: FakeUser | int,
        content: str = "",
        *,
        attachments: Sequence[JSON | tuple[str, bytes] | tuple[str, bytes, str]] = (),
        mentions_bot: bool = False,
        mentions: Sequence[FakeUser | int] = (),
        reference_message_id: int | str | None = None,
        ping_reply: bool = True,
        forward: bool = False,
        embeds: Sequence[JSON] = (),
    ) -> JSON:
        """A user posts a message: stored, MESSAGE_CREATE dispatched; returns that payload.

        ``attachments``: payloads from ``add_attachment_file`` or ``(filename, data[, ctype])``.
        ``mentions_bot`` prepends ``<@botid>``; ``<@id>`` in ``content`` also becomes a mention.
        A reply (``reference_message_id``) pings the replied-to author unless ``ping_reply=False``
        (as the Discord client does), so a reply to the bot lists the bot in ``mentions``.
        ``forward=True`` forwards the referenced message instead (a DEFAULT message with a
        FORWARD reference and a ``message_snapshots`` copy, pinging no one).
        """
        user = self._user(author)
        self._channel(channel_id)
        if mentions_bot and self.bot_user.mention not in content:
            content = f"{self.bot_user.mention} {content}".rstrip()
        atts: list[JSON] = []
        for att in attachments:
            if isinstance(att, dict):
                atts.append(copy.deepcopy(att))
            else:
                atts.append(self.add_attachment_file(*att, channel_id=channel_id))
        extra = [self._user(m) for m in mentions]
        reference = None
        if reference_message_id is not None:
            reference = self._reference_from(
                {"message_id": reference_message_id, "type": 1 if forward else 0}, channel_id
            )
            target = self._messages[int(reference_message_id)]
            replied = self.users.get(int(target["author"]["id"]))
            if ping_reply and replied is not None and not forward:
                extra.append(replied)
        msg = self._store_message(
            channel_id,
            user,
            content,
            attachments=atts,
            embeds=embeds,
            reference=reference,
            extra_mentions=extra,
        )
        if forward:
            msg["message_snapshots"] = [{"message": {
                k: copy.deepcopy(target[k]) for k in (
                    "type", "content", "embeds", "attachments", "timestamp", "edited_timestamp",
                    "flags", "mentions", "mention_roles", "components")
            }}]
        payload = self._render(msg, gateway=True)
        await self.dispatch("MESSAGE_CREATE", payload)
        return payload

    def _new_interaction(
        self,
        itype: int,
        channel_id: int,
        user: FakeUser,
        data: JSON,
        *,
        message_id: int | None = None,
        locale: str = "en-US",
    ) -> JSON:
        ch = self._channel(channel_id)
        iid = self._next_id()
        token = "aW50ZXJhY3Rpb24." + secrets.token_urlsafe(48)
        gid = self._channel_guild_id(channel_id)
        payload: JSON = {
            "id": str(iid),
            "application_id": str(self.application_id),
            "type": itype,
            "data": data,
            "token": token,
            "version": 1,
            "channel_id": str(channel_id),
            "channel": copy.deepcopy(ch),
            "locale": locale,
            "entitlements": [],
            "entitlement_sku_ids": [],
            "attachment_size_limit": 26_214_400,
            "app_permissions": str(self.permissions_in(channel_id, self.bot_user)),
        }
        if gid is not None:
            payload["guild_id"] = str(gid)
            payload["guild"] = {"id": str(gid), "locale": "en-US", "features": []}
            payload["guild_locale"] = "en-US"
            payload["member"] = {
                **user.member_payload(),
                "permissions": str(self.permissions_in(channel_id, user)),
            }
            payload["context"] = 0
            payload["authorizing_integration_owners"] = {"0": str(gid)}
        else:
            payload["user"] = user.payload()
            payload["context"] = 1
            payload["authorizing_integration_owners"] = {"0": str(user.id)}
        if message_id is not None:
            payload["message"] = self._render(self._messages[message_id], gateway=False)
        self._interactions[iid] = _Interaction(
            id=iid,
            token=token,
            type=itype,
            channel_id=channel_id,
            user=user,
            created=self.clock(),
            message_id=message_id,
        )
        return payload

    def _find_command(self, name: str, guild_id: int | None) -> JSON | None:
        if guild_id is not None:
            for cmd in self.guild_commands.get(guild_id, []):
                if cmd["name"] == name and cmd.get("type", 1) == 1:
                    return cmd
        for cmd in self.commands:
            if cmd["name"] == name and cmd.get("type", 1) == 1:
                return cmd
        return None

    def _option_value(
        self, schema: JSON, name: str, value: Any, resolved: JSON, channel_id: int
    ) -> JSON:
        otype = int(schema["type"])
        out: JSON = {"name": name, "type": otype}
        if otype == 3:
            out["value"] = str(value)
        elif otype == 4:
            out["value"] = int(value)
        elif otype == 5:
            out["value"] = bool(value)
        elif otype == 10:
            out["value"] = float(value)
        elif otype in (6, 9) and (isinstance(value, FakeUser) or int(value) in self.users):
            u = self._user(value)
            out["value"] = str(u.id)
            resolved.setdefault("users", {})[str(u.id)] = u.payload()
            if u.is_member and self._channel_guild_id(channel_id) is not None:
                resolved.setdefault("members", {})[str(u.id)] = {
                    **u.member_payload(with_user=False),
                    "permissions": str(self.permissions_in(channel_id, u)),
                }
        elif otype in (8, 9):
            role = self.roles[int(value)]
            out["value"] = str(role.id)
            resolved.setdefault("roles", {})[str(role.id)] = role.payload()
        elif otype == 7:
            ch = self._channel(int(value))
            out["value"] = ch["id"]
            entry: JSON = {
                k: ch[k] for k in ("id", "name", "type", "parent_id", "thread_metadata") if k in ch
            }
            entry["permissions"] = str(self.permissions_in(int(value), self.bot_user))
            resolved.setdefault("channels", {})[ch["id"]] = entry
        elif otype == 11:
            att = (
                value
                if isinstance(value, dict)
                else self.add_attachment_file(*value, channel_id=channel_id)
            )
            out["value"] = att["id"]
            resolved.setdefault("attachments", {})[att["id"]] = copy.deepcopy(att)
        else:
            raise ValueError(f"unsupported option type {otype} for {name!r}")
        if schema.get("choices"):
            allowed = [c["value"] for c in schema["choices"]]
            if out["value"] not in allowed:
                raise ValueError(f"option {name!r}={out['value']!r} not in choices {allowed}")
        return out

    async def slash_command(
        self,
        channel_id: int,
        user: FakeUser | int,
        name: str,
        options: Mapping[str, Any] | None = None,
        *,
        subcommand: str | Sequence[str] = (),
        locale: str = "en-US",
    ) -> JSON:
        """Invoke a registered chat-input command; dispatches INTERACTION_CREATE (type 2).

        ``name`` may contain the subcommand path (``"gemini ask"``, ``"gemini admin reset"``)
        or pass it as ``subcommand``. Option types come from the synced command schema
        (USER: FakeUser/id, CHANNEL: id, ROLE: id, ATTACHMENT: ``add_attachment_file()`` payload
        or ``(filename, data[, ctype])``). Raises LookupError if the command was never synced.
        """
        u = self._user(user)
        path = name.split() + ([subcommand] if isinstance(subcommand, str) else list(subcommand))
        gid = self._channel_guild_id(channel_id)
        cmd = self._find_command(path[0], gid)
        if cmd is None:
            known = [c["name"] for c in self.commands] + [
                c["name"] for cs in self.guild_commands.values() for c in cs
            ]
            raise LookupError(
                f"/{path[0]} is not registered (synced: {known}); sync the tree first"
            )
        data: JSON = {"id": cmd["id"], "name": cmd["name"], "type": 1}
        if cmd.get("guild_id"):
            data["guild_id"] = cmd["guild_id"]
        container = data
        schema_opts: list[JSON] = cmd.get("options") or []
        for part in path[1:]:
            sub = next((o for o in schema_opts if o["name"] == part and o["type"] in (1, 2)), None)
            if sub is None:
                raise LookupError(f"no subcommand {part!r} in /{' '.join(path)}")
            node: JSON = {"name": part, "type": sub["type"], "options": []}
            container.setdefault("options", []).append(node)
            container = node
            schema_opts = sub.get("options") or []
        if any(o["type"] in (1, 2) for o in schema_opts):
            raise ValueError(f"/{' '.join(path)} needs a subcommand")
        resolved: JSON = {}
        values: list[JSON] = []
        given = dict(options or {})
        for name_, value in given.items():
            schema = next((o for o in schema_opts if o["name"] == name_), None)
            if schema is None or schema["type"] in (1, 2):
                raise ValueError(f"unknown option {name_!r} for /{' '.join(path)}")
            values.append(self._option_value(schema, name_, value, resolved, channel_id))
        missing = [o["name"] for o in schema_opts if o.get("required") and o["name"] not in given]
        if missing:
            raise ValueError(f"missing required options {missing} for /{' '.join(path)}")
        container["options"] = values
        if resolved:
            data["resolved"] = resolved
        payload = self._new_interaction(2, channel_id, u, data, locale=locale)
        await self.dispatch("INTERACTION_CREATE", payload)
        return payload

    @staticmethod
    def _walk_components(components: Sequence[JSON]) -> Iterator[JSON]:
        for comp in components:
            yield comp
            yield from FakeDiscord._walk_components(comp.get("components") or [])
            if isinstance(comp.get("component"), dict):
                yield from FakeDiscord._walk_components([comp["component"]])
            if isinstance(comp.get("accessory"), dict):
                yield from FakeDiscord._walk_components([comp["accessory"]])

    async def click_button(
        self,
        message_id: int | str,
        custom_id: str,
        user: FakeUser | int,
        *,
        values: Sequence[str] | None = None,
    ) -> JSON:
        """Use a component (button; pass ``values`` for selects) on a stored message;
        dispatches INTERACTION_CREATE type 3. Raises LookupError if no such component."""
        mid = int(message_id)
        if mid not in self._messages:
            raise LookupError(f"unknown message {mid}")
        msg = self._messages[mid]
        comp = next(
            (
                c
                for c in self._walk_components(msg.get("components") or [])
                if c.get("custom_id") == custom_id
            ),
            None,
        )
        if comp is None:
            raise LookupError(f"message {mid} has no component with custom_id {custom_id!r}")
        if comp.get("disabled"):
            raise ValueError(f"component {custom_id!r} is disabled")
        data: JSON = {"custom_id": custom_id, "component_type": comp["type"]}
        if comp["type"] != 2 or values is not None:
            data["values"] = list(values or [])
        payload = self._new_interaction(
            3, int(msg["channel_id"]), self._user(user), data, message_id=mid
        )
        await self.dispatch("INTERACTION_CREATE", payload)
        return payload

    select_menu = click_button

    async def submit_modal(
        self,
        custom_id: str,
        user: FakeUser | int,
        fields: Mapping[str, str | Sequence[str]],
        *,
        channel_id: int | None = None,
    ) -> JSON:
        """Submit the most recent modal shown with ``custom_id`` (INTERACTION_CREATE type 5).

        ``fields`` maps text-input custom_id -> value (list of values for selects). The
        component structure mirrors the recorded modal (action rows or labels).
        """
        source: InteractionResponse | None = None
        for resp in reversed(self.interaction_responses):
            if resp.type == 9 and (resp.data or {}).get("custom_id") == custom_id:
                source = resp
                break
        if source is None:
            raise LookupError(f"no modal with custom_id {custom_id!r} was shown")
        origin = self._interactions[source.interaction_id]
        remaining = dict(fields)

        def convert(comp: JSON) -> JSON | None:
            ctype = comp.get("type")
            if ctype == 1:
                return {
                    "type": 1,
                    "components": [c for c in map(convert, comp.get("components", [])) if c],
                }
            if ctype == 18:
                out: JSON = {"type": 18, "component": convert(comp["component"])}
                if "id" in comp:
                    out["id"] = comp["id"]
                return out
            cid = comp.get("custom_id")
            if cid is None:
                return {"type": ctype, "id": comp["id"]} if "id" in comp else None
            value = remaining.pop(cid, None)
            if ctype == 4:
                if value is None and comp.get("required", True):
                    raise ValueError(f"modal field {cid!r} is required")
                out = {"type": 4, "custom_id": cid, "value": "" if value is None else str(value)}
            else:
                vals = [value] if isinstance(value, str) else list(value or [])
                out = {"type": ctype, "custom_id": cid, "values": vals}
            if "id" in comp:
                out["id"] = comp["id"]
            return out

        components = [c for c in map(convert, (source.data or {}).get("components", [])) if c]
        if remaining:
            raise ValueError(f"modal {custom_id!r} has no fields {sorted(remaining)}")
        data = {"custom_id": custom_id, "components": components}
        payload = self._new_interaction(
            5, channel_id or origin.channel_id, self._user(user), data, message_id=origin.message_id
        )
        await self.dispatch("INTERACTION_CREATE", payload)
        return payload

    # ------------------------------------------------------------------ HTTP plumbing

    def _routes(self) -> list[tuple[str, re.Pattern[str], Handler, bool]]:
        snow = r"(?P<{}>\d+)"
        table: list[tuple[str, str, Handler, bool]] = [
            ("GET", "/gateway", self._h_gateway, False),
            ("GET", "/gateway/bot", self._h_gateway_bot, True),
            ("GET", "/users/@me", self._h_me, True),
            ("POST", "/users/@me/channels", self._h_create_dm, True),
            ("GET", f"/users/{snow.format('uid')}", self._h_user, True),
            ("GET", "/oauth2/applications/@me", self._h_application, True),
            ("GET", "/applications/@me", self._h_application, True),
            ("GET", f"/applications/{snow.format('app')}/commands", self._h_get_commands, True),
            ("PUT", f"/applications/{snow.format('app')}/commands", self._h_put_commands, True),
            (
                "GET",
                f"/applications/{snow.format('app')}/guilds/{snow.format('gid')}/commands",
                self._h_get_commands,
                True,
            ),
            (
                "PUT",
                f"/applications/{snow.format('app')}/guilds/{snow.format('gid')}/commands",
                self._h_put_commands,
                True,
            ),
            ("GET", f"/guilds/{snow.format('gid')}", self._h_guild, True),
            ("GET", f"/guilds/{snow.format('gid')}/channels", self._h_guild_channels, True),
            ("GET", f"/guilds/{snow.format('gid')}/roles", self._h_guild_roles, True),
            (
                "GET",
                f"/guilds/{snow.format('gid')}/members/{snow.format('uid')}",
                self._h_member,
                True,
            ),
            ("GET", f"/channels/{snow.format('cid')}", self._h_get_channel, True),
            ("PATCH", f"/channels/{snow.format('cid')}", self._h_edit_channel, True),
            ("DELETE", f"/channels/{snow.format('cid')}", self._h_delete_channel, True),
            ("GET", f"/channels/{snow.format('cid')}/messages", self._h_history, True),
            ("POST", f"/channels/{snow.format('cid')}/messages", self._h_create_message, True),
            (
                "GET",
                f"/channels/{snow.format('cid')}/messages/{snow.format('mid')}",
                self._h_get_message,
                True,
            ),
            (
                "PATCH",
                f"/channels/{snow.format('cid')}/messages/{snow.format('mid')}",
                self._h_edit_message,
                True,
            ),
            (
                "DELETE",
                f"/channels/{snow.format('cid')}/messages/{snow.format('mid')}",
                self._h_delete_message,
                True,
            ),
            ("POST", f"/channels/{snow.format('cid')}/typing", self._h_typing, True),
            (
                "POST",
                f"/channels/{snow.format('cid')}/messages/{snow.format('mid')}/threads",
                self._h_thread_from_message,
                True,
            ),
            (
                "POST",
                f"/channels/{snow.format('cid')}/threads",
                self._h_thread_without_message,
                True,
            ),
            ("PUT", f"/channels/{snow.format('cid')}/thread-members/@me", self._h_no_content, True),
            (
                "DELETE",
                f"/channels/{snow.format('cid')}/thread-members/@me",
                self._h_no_content,
                True,
            ),
            (
                "PUT",
                f"/channels/{snow.format('cid')}/messages/{snow.format('mid')}/reactions/(?P<emoji>[^/]+)/@me",
                self._h_add_reaction,
                True,
            ),
            (
                "DELETE",
                f"/channels/{snow.format('cid')}/messages/{snow.format('mid')}/reactions/(?P<emoji>[^/]+)/@me",
                self._h_remove_reaction,
                True,
            ),
            (
                "POST",
                f"/interactions/{snow.format('iid')}/(?P<token>[^/]+)/callback",
                self._h_interaction_callback,
                False,
            ),
            ("POST", f"/webhooks/{snow.format('app')}/(?P<token>[^/]+)", self._h_followup, False),
            (
                "GET",
                f"/webhooks/{snow.format('app')}/(?P<token>[^/]+)/messages/(?P<mid>@original|\\d+)",
                self._h_webhook_get,
                False,
            ),
            (
                "PATCH",
                f"/webhooks/{snow.format('app')}/(?P<token>[^/]+)/messages/(?P<mid>@original|\\d+)",
                self._h_webhook_edit,
                False,
            ),
            (
                "DELETE",
                f"/webhooks/{snow.format('app')}/(?P<token>[^/]+)/messages/(?P<mid>@original|\\d+)",
                self._h_webhook_delete,
                False,
            ),
        ]
        return [(m, re.compile(p), h, auth) for m, p, h, auth in table]

    async def _read_body(self, request: web.Request, call: Call) -> None:
        if not request.body_exists:
            return
        if request.content_type == "multipart/form-data":
            reader = await request.multipart()
            form: dict[str, str] = {}
            while True:
                part = await reader.next()
                if part is None:
                    break
                if not isinstance(part, BodyPartReader):
                    continue
                raw = await part.read(decode=False)
                name = part.name or ""
                if part.filename:
                    ctype = part.headers.get("Content-Type", "application/octet-stream")
                    call.files.append(UploadedFile(name, part.filename, ctype, bytes(raw)))
                else:
                    form[name] = bytes(raw).decode("utf-8", "replace")
            call.form = form
            if "payload_json" in form:
                call.json = json.loads(form["payload_json"])
        else:
            raw = await request.read()
            if raw and request.content_type == "application/json":
                call.json = json.loads(raw)
            elif raw:
                call.form = {"_raw": raw.decode("utf-8", "replace")}

    async def _api_entry(self, request: web.Request) -> web.StreamResponse:
        path = "/" + request.match_info["tail"]
        call = Call(method=request.method, path=path, query=dict(request.query))
        self.calls.append(call)
        response: web.StreamResponse
        try:
            await self._read_body(request, call)
            method_matched = False
            if self._route_table is None:
                self._route_table = self._routes()
            for method, rx, handler, auth in self._route_table:
                m = rx.fullmatch(path)
                if m is None:
                    continue
                if method != request.method:
                    method_matched = True
                    continue
                if auth and not self._authorized(request):
                    raise _ApiError(401, "401: Unauthorized", 0)
                self._check_injected_429(call)
                response = await handler(call, **m.groupdict())
                break
            else:
                call.known = False
                if method_matched:
                    raise _ApiError(405, "405: Method Not Allowed", 0)
                raise _ApiError(404, "404: Not Found", 0)
        except _ApiError as exc:
            response = exc.response()
        call.status = response.status
        self._notify()
        return response

    async def _unknown_entry(self, request: web.Request) -> web.StreamResponse:
        call = Call(
            method=request.method,
            path=request.path,
            query=dict(request.query),
            known=False,
            api=False,
            status=404,
        )
        self.calls.append(call)
        self._notify()
        return _json_response({"message": "404: Not Found", "code": 0}, 404)

    def _authorized(self, request: web.Request) -> bool:
        header = request.headers.get("Authorization", "")
        if self.token is None:
            return header.startswith("Bot ")
        return header == f"Bot {self.token}"

    async def _serve_attachment(self, request: web.Request) -> web.StreamResponse:
        call = Call(method=request.method, path=request.path, api=False)
        self.calls.append(call)
        entry = self._files.get(_as_int(request.match_info["aid"]) or 0)
        if entry is None or entry[0] != request.match_info["filename"]:
            call.status = 404
            return web.Response(status=404, text="This content is no longer available.")
        call.status = 200
        self._notify()
        return web.Response(body=entry[1], content_type=entry[2])

    # ------------------------------------------------------------------ rate limits

    def rate_limit_next(
        self, method: str, path_pattern: str, retry_after: float, *, times: int = 1
    ) -> None:
        """Answer the next ``times`` requests matching (method, ``re.fullmatch`` on path) with
        a 429 asking to wait ``retry_after`` seconds, as Discord does for a long limit.
        discord.py waits out at most its ``max_ratelimit_timeout`` and raises
        ``discord.RateLimited`` for a longer wait."""
        self._injected_429s.append(_Injected429(method, re.compile(path_pattern), retry_after,
                                                times))

    def _check_injected_429(self, call: Call) -> None:
        for injected in self._injected_429s:
            if injected.method == call.method and injected.path.fullmatch(call.path):
                injected.times -= 1
                if injected.times <= 0:
                    self._injected_429s.remove(injected)
                retry_after = injected.retry_after
                self.rate_limited.append(
                    RateLimitHit(call.method, call.path, "injected", retry_after, self.clock())
                )
                raise _ApiError(
                    429,
                    "You are being rate limited.",
                    None,
                    extra={"retry_after": retry_after, "global": False},
                    headers={"Retry-After": str(max(1, math.ceil(retry_after))),
                             "X-RateLimit-Scope": "user", "Via": "1.1 google"},
                )

    def _rate_check(
        self, kind: str, key: str, limit: int | None, window: float, call: Call
    ) -> dict[str, str]:
        """Count one request in ``key``'s fixed window; raise a Discord-style 429 if over."""
        if limit is None:
            return {}
        now = time.monotonic()
        bucket = self._buckets.get(key)
        if bucket is None or now >= bucket.start + window - 0.002:
            bucket = self._buckets[key] = _Bucket(now)
        reset_after = max(bucket.start + window - now, 0.0)
        headers = {
            "X-RateLimit-Limit": str(limit),
            "X-RateLimit-Reset": f"{time.time() + reset_after:.3f}",
            "X-RateLimit-Reset-After": f"{math.ceil(reset_after * 1000) / 1000:.3f}",
            "X-RateLimit-Bucket": f"fake-{kind}-bucket",
        }
        if bucket.count >= limit:
            retry_after = math.ceil(reset_after * 1000) / 1000 + 0.001
            self.rate_limited.append(RateLimitHit(call.method, call.path, key, retry_after, now))
            raise _ApiError(
                429,
                "You are being rate limited.",
                None,
                extra={"retry_after": retry_after, "global": False},
                headers={
                    **headers,
                    "X-RateLimit-Remaining": "0",
                    "X-RateLimit-Scope": "user",
                    "Retry-After": str(max(1, math.ceil(retry_after))),
                    "Via": "1.1 google",
                },
            )
        bucket.count += 1
        if not self.ratelimit_headers:
            return {}
        return {**headers, "X-RateLimit-Remaining": str(limit - bucket.count)}

    # ------------------------------------------------------------------ message bodies

    def _attachments_from(
        self,
        body: JSON,
        files: Sequence[UploadedFile],
        channel_id: int,
        existing: Sequence[JSON] = (),
    ) -> list[JSON] | None:
        """New attachment list for a create/edit; ``None`` means "leave unchanged"."""
        uploads: dict[int, UploadedFile] = {}
        for f in files:
            m = re.fullmatch(r"files\[(\d+)\]", f.field_name) or re.fullmatch(
                r"file(\d*)", f.field_name
            )
            idx = int(m.group(1) or 0) if m else len(uploads)
            uploads[idx] = f

        def upload(idx: int, meta: JSON) -> JSON:
            f = uploads.pop(idx)
            ctype = None if f.content_type == "application/octet-stream" else f.content_type
            extra = {"description": meta["description"]} if meta.get("description") else {}
            return self.add_attachment_file(
                meta.get("filename") or f.filename, f.data, ctype, channel_id=channel_id, **extra
            )

        if "attachments" not in body:
            if not uploads:
                return None
            return [*existing, *(upload(i, {}) for i in sorted(uploads))]
        by_id = {a["id"]: a for a in existing}
        result: list[JSON] = []
        for meta in body.get("attachments") or []:
            aid = str(meta.get("id"))
            if aid in by_id:
                result.append(by_id[aid])
            elif _as_int(aid) is not None and int(aid) in uploads:
                result.append(upload(int(aid), meta))
        result.extend(upload(i, {}) for i in sorted(uploads))
        return result

    @staticmethod
    def _validate_message(content: str, embeds: Sequence[JSON], components: Sequence[JSON]) -> None:
        if len(content) > MAX_CONTENT:
            raise _form_error(
                "content", "BASE_TYPE_MAX_LENGTH", f"Must be {MAX_CONTENT} or fewer in length."
            )
        if len(embeds) > 10:
            raise _form_error("embeds", "BASE_TYPE_MAX_LENGTH", "Must be 10 or fewer in length.")
        if len(components) > 5 and all(c.get("type") == 1 for c in components):
            raise _form_error("components", "BASE_TYPE_MAX_LENGTH", "Must be 5 or fewer in length.")

    def _create_from_body(
        self,
        channel_id: int,
        body: JSON,
        files: Sequence[UploadedFile],
        *,
        webhook: bool = False,
        msg_type: int = 0,
        interaction_metadata: JSON | None = None,
        allow_ephemeral: bool = False,
        extra_flags: int = 0,
        allow_empty: bool = False,
    ) -> JSON:
        content = body.get("content") or ""
        embeds = body.get("embeds") or []
        components = body.get("components") or []
        attachments = self._attachments_from(body, files, channel_id) or []
        self._validate_message(content, embeds, components)
        if not allow_empty and not (
            content
            or embeds
            or attachments
            or components
            or body.get("sticker_ids")
            or body.get("poll")
        ):
            raise _ApiError(400, "Cannot send an empty message", 50006)
        flags = int(body.get("flags") or 0)
        ephemeral = allow_ephemeral and bool(flags & EPHEMERAL)
        reference = self._reference_from(body.get("message_reference"), channel_id)
        return self._store_message(
            channel_id,
            self.bot_user,
            content,
            attachments=attachments,
            embeds=embeds,
            components=components,
            reference=reference,
            flags=(flags & ~EPHEMERAL) | extra_flags,
            nonce=body.get("nonce"),
            tts=bool(body.get("tts")),
            msg_type=msg_type,
            webhook=webhook,
            interaction_metadata=interaction_metadata,
            ephemeral=ephemeral,
        )

    def _apply_edit(self, msg: JSON, body: JSON, files: Sequence[UploadedFile]) -> None:
        channel_id = int(msg["channel_id"])
        content = body["content"] if "content" in body else msg["content"]
        content = content or ""
        embeds = body["embeds"] if "embeds" in body else msg["embeds"]
        components = body["components"] if "components" in body else msg["components"]
        self._validate_message(content, embeds or [], components or [])
        attachments = self._attachments_from(body, files, channel_id, msg["attachments"])
        if attachments is None:
            attachments = msg["attachments"]
        if not (content or embeds or attachments or components):
            raise _ApiError(400, "Cannot send an empty message", 50006)
        msg["content"] = content
        msg["embeds"] = list(embeds or [])
        msg["components"] = list(components or [])
        msg["attachments"] = attachments
        if "flags" in body and body["flags"] is not None:
            keep = msg["flags"] & ~(SUPPRESS_EMBEDS)
            msg["flags"] = keep | (int(body["flags"]) & SUPPRESS_EMBEDS)
        msg["flags"] &= ~LOADING
        mentions, mention_roles = self._mentions_from(content)
        msg["mentions"], msg["mention_roles"] = mentions, mention_roles
        msg["edited_timestamp"] = _now_iso()
        self._edits.setdefault(int(msg["id"]), []).append(
            Edit(int(msg["id"]), content, time.monotonic(), copy.deepcopy(body))
        )
        self._notify()

    def _message_in(self, channel_id: int, message_id: int) -> JSON:
        msg = self._messages.get(message_id)
        if msg is None or int(msg["channel_id"]) != channel_id or msg["flags"] & EPHEMERAL:
            raise _ApiError(404, "Unknown Message", 10008)
        return msg

    async def _dispatch_message(self, event: str, msg: JSON) -> None:
        if not msg["flags"] & EPHEMERAL:
            await self.dispatch(event, self._render(msg, gateway=True))

    # ------------------------------------------------------------------ REST handlers

    async def _h_no_content(self, call: Call, **_: str) -> web.StreamResponse:
        return web.Response(status=204)

    async def _h_gateway(self, call: Call) -> web.StreamResponse:
        return _json_response({"url": self.gateway_url})

    async def _h_gateway_bot(self, call: Call) -> web.StreamResponse:
        return _json_response(
            {
                "url": self.gateway_url,
                "shards": 1,
                "session_start_limit": {
                    "total": 1000,
                    "remaining": 999,
                    "reset_after": 86_400_000,
                    "max_concurrency": 1,
                },
            }
        )

    async def _h_me(self, call: Call) -> web.StreamResponse:
        return _json_response(self._me_payload())

    async def _h_user(self, call: Call, uid: str) -> web.StreamResponse:
        user = self.users.get(int(uid))
        if user is None:
            raise _ApiError(404, "Unknown User", 10013)
        return _json_response(user.payload())

    async def _h_create_dm(self, call: Call) -> web.StreamResponse:
        rid = _as_int((call.json or {}).get("recipient_id"))
        if rid is None or rid not in self.users:
            raise _ApiError(400, "Invalid Recipient(s)", 50033)
        cid = self._add_dm_sync(self.users[rid])
        return _json_response(self.channels[cid])

    async def _h_application(self, call: Call) -> web.StreamResponse:
        return _json_response(self._application_payload())

    def _check_app(self, app: str, gid: str | None) -> None:
        if int(app) != self.application_id:
            raise _ApiError(403, "Missing Access", 50001)
        if gid is not None and int(gid) != self.guild_id:
            raise _ApiError(403, "Missing Access", 50001)

    async def _h_get_commands(
        self, call: Call, app: str, gid: str | None = None
    ) -> web.StreamResponse:
        self._check_app(app, gid)
        cmds = self.commands if gid is None else self.guild_commands.get(int(gid), [])
        return _json_response(cmds)

    async def _h_put_commands(
        self, call: Call, app: str, gid: str | None = None
    ) -> web.StreamResponse:
        self._check_app(app, gid)
        body = call.json
        if not isinstance(body, list):
            raise _form_error(
                "_root", "LIST_TYPE_CONVERT", "Only iterables may be used in a ListType"
            )
        guild_id = int(gid) if gid is not None else None
        result: list[JSON] = []
        for i, cmd in enumerate(body):
            ctype = int(cmd.get("type", 1))
            if not cmd.get("name") or (ctype == 1 and not cmd.get("description")):
                raise _form_error(str(i), "BASE_TYPE_REQUIRED", "This field is required")
            key = (guild_id, f"{ctype}:{cmd['name']}")
            cid = self._command_ids.setdefault(key, self._next_id())
            out: JSON = {
                "id": str(cid),
                "application_id": str(self.application_id),
                "version": str(self._next_id()),
                "type": ctype,
                "name": cmd["name"],
                "description": cmd.get("description", ""),
                "options": copy.deepcopy(cmd.get("options") or []),
                "default_member_permissions": cmd.get("default_member_permissions"),
                "dm_permission": cmd.get("dm_permission", True),
                "nsfw": bool(cmd.get("nsfw", False)),
                "contexts": cmd.get("contexts"),
                "integration_types": cmd.get("integration_types") or [0],
                "name_localizations": cmd.get("name_localizations"),
                "description_localizations": cmd.get("description_localizations"),
            }
            if guild_id is not None:
                out["guild_id"] = str(guild_id)
            result.append(out)
        if guild_id is None:
            self.commands = result
        else:
            self.guild_commands[guild_id] = result
        return _json_response(result)

    async def _h_guild(self, call: Call, gid: str) -> web.StreamResponse:
        if int(gid) != self.guild_id:
            raise _ApiError(404, "Unknown Guild", 10004)
        return _json_response(self._guild_payload(full=False))

    async def _h_guild_channels(self, call: Call, gid: str) -> web.StreamResponse:
        if int(gid) != self.guild_id:
            raise _ApiError(404, "Unknown Guild", 10004)
        return _json_response(
            [c for c in self.channels.values() if "guild_id" in c and c["type"] not in THREAD_TYPES]
        )

    async def _h_guild_roles(self, call: Call, gid: str) -> web.StreamResponse:
        if int(gid) != self.guild_id:
            raise _ApiError(404, "Unknown Guild", 10004)
        return _json_response([r.payload() for r in self.roles.values()])

    async def _h_member(self, call: Call, gid: str, uid: str) -> web.StreamResponse:
        user = self.users.get(int(uid))
        if int(gid) != self.guild_id or user is None or not user.is_member:
            raise _ApiError(404, "Unknown Member", 10007)
        return _json_response(user.member_payload())

    async def _h_get_channel(self, call: Call, cid: str) -> web.StreamResponse:
        return _json_response(self._channel(cid))

    async def _h_edit_channel(self, call: Call, cid: str) -> web.StreamResponse:
        ch = self._channel(cid)
        body = call.json or {}
        is_thread = ch["type"] in THREAD_TYPES
        if is_thread and int(ch["owner_id"]) != self.bot_user.id:
            self._require(int(cid), Perm.MANAGE_THREADS)
        elif not is_thread:
            self._require(int(cid), Perm.MANAGE_CHANNELS)
        for key in ("name", "topic", "rate_limit_per_user", "nsfw", "parent_id", "flags"):
            if key in body:
                ch[key] = body[key]
        if is_thread:
            for key in ("archived", "locked", "auto_archive_duration", "invitable"):
                if key in body:
                    ch["thread_metadata"][key] = body[key]
            if "archived" in body:
                ch["thread_metadata"]["archive_timestamp"] = _now_iso()
        await self.dispatch("THREAD_UPDATE" if is_thread else "CHANNEL_UPDATE", copy.deepcopy(ch))
        return _json_response(ch)

    async def _h_delete_channel(self, call: Call, cid: str) -> web.StreamResponse:
        ch = self._channel(cid)
        if ch["type"] in DM_TYPES:
            return _json_response(ch)
        is_thread = ch["type"] in THREAD_TYPES
        self._require(int(cid), Perm.MANAGE_THREADS if is_thread else Perm.MANAGE_CHANNELS)
        del self.channels[int(cid)]
        event = "THREAD_DELETE" if is_thread else "CHANNEL_DELETE"
        await self.dispatch(event, copy.deepcopy(ch))
        return _json_response(ch)

    async def _h_history(self, call: Call, cid: str) -> web.StreamResponse:
        self._channel(cid)
        self._require(int(cid), Perm.READ_MESSAGE_HISTORY)
        q = call.query
        limit = max(1, min(100, int(q.get("limit", 50))))
        ids = sorted(self._channel_messages.get(int(cid), []))
        if "around" in q:
            around = int(q["around"])
            older = [i for i in ids if i < around][-(limit // 2) :] if limit > 1 else []
            newer = [i for i in ids if i >= around][: limit - len(older)]
            picked = older + newer
        elif "after" in q:
            picked = [i for i in ids if i > int(q["after"])][:limit]
        else:
            before = int(q["before"]) if "before" in q else None
            eligible = [i for i in ids if before is None or i < before]
            picked = eligible[-limit:]
        return _json_response(
            [self._render(self._messages[i], gateway=False) for i in reversed(picked)]
        )

    async def _h_create_message(self, call: Call, cid: str) -> web.StreamResponse:
        channel_id = int(cid)
        ch = self._channel(cid)
        if ch["type"] in THREAD_TYPES:
            self._require(channel_id, Perm.SEND_MESSAGES_IN_THREADS)
            if ch["thread_metadata"]["locked"]:
                raise _ApiError(403, "Thread is locked", 160005)
            ch["thread_metadata"]["archived"] = False
        elif ch["type"] not in DM_TYPES:
            self._require(channel_id, Perm.VIEW_CHANNEL)
            self._require(channel_id, Perm.SEND_MESSAGES)
        headers = self._rate_check("send", f"send:{cid}", self.send_limit, self.send_window, call)
        msg = self._create_from_body(channel_id, call.json or {}, call.files)
        await self._dispatch_message("MESSAGE_CREATE", msg)
        return _json_response(self._render(msg, gateway=False), headers=headers)

    async def _h_get_message(self, call: Call, cid: str, mid: str) -> web.StreamResponse:
        self._channel(cid)
        return _json_response(self._render(self._message_in(int(cid), int(mid)), gateway=False))

    async def _h_edit_message(self, call: Call, cid: str, mid: str) -> web.StreamResponse:
        self._channel(cid)
        msg = self._message_in(int(cid), int(mid))
        body = call.json or {}
        if int(msg["author"]["id"]) != self.bot_user.id and set(body) - {"flags"}:
            raise _ApiError(403, "Cannot edit a message authored by another user", 50005)
        headers = self._rate_check("edit", f"edit:{cid}", self.edit_limit, self.edit_window, call)
        self._apply_edit(msg, body, call.files)
        await self._dispatch_message("MESSAGE_UPDATE", msg)
        return _json_response(self._render(msg, gateway=False), headers=headers)

    async def _h_delete_message(self, call: Call, cid: str, mid: str) -> web.StreamResponse:
        channel_id = int(cid)
        ch = self._channel(cid)
        msg = self._message_in(channel_id, int(mid))
        if int(msg["author"]["id"]) != self.bot_user.id and ch["type"] not in DM_TYPES:
            self._require(channel_id, Perm.MANAGE_MESSAGES)
        await self._delete(msg)
        return web.Response(status=204)

    async def _delete(self, msg: JSON) -> None:
        mid, channel_id = int(msg["id"]), int(msg["channel_id"])
        del self._messages[mid]
        with contextlib.suppress(ValueError):
            self._channel_messages.get(channel_id, []).remove(mid)
        if msg["flags"] & EPHEMERAL:
            return
        data: JSON = {"id": str(mid), "channel_id": str(channel_id)}
        gid = self._channel_guild_id(channel_id)
        if gid is not None:
            data["guild_id"] = str(gid)
        await self.dispatch("MESSAGE_DELETE", data)

    async def _h_typing(self, call: Call, cid: str) -> web.StreamResponse:
        self._channel(cid)
        return web.Response(status=204)

    async def _h_thread_from_message(self, call: Call, cid: str, mid: str) -> web.StreamResponse:
        channel_id = int(cid)
        msg = self._message_in(channel_id, int(mid))
        self._require(channel_id, Perm.CREATE_PUBLIC_THREADS)
        if int(mid) in self.channels:
            raise _ApiError(400, "A thread has already been created for this message", 160004)
        body = call.json or {}
        name = str(body.get("name") or "")
        if not 1 <= len(name) <= 100:
            raise _form_error(
                "name", "BASE_TYPE_BAD_LENGTH", "Must be between 1 and 100 in length."
            )
        # Like Discord: a thread started from a message has the message's id.
        thread = self._make_thread(
            channel_id,
            name,
            owner_id=self.bot_user.id,
            type=11,
            thread_id=int(msg["id"]),
            auto_archive_duration=int(body.get("auto_archive_duration") or 1440),
            rate_limit_per_user=int(body.get("rate_limit_per_user") or 0),
        )
        return await self._thread_created(thread)

    async def _h_thread_without_message(self, call: Call, cid: str) -> web.StreamResponse:
        channel_id = int(cid)
        self._channel(cid)
        body = call.json or {}
        ttype = int(body.get("type") or 12)
        self._require(
            channel_id, Perm.CREATE_PRIVATE_THREADS if ttype == 12 else Perm.CREATE_PUBLIC_THREADS
        )
        name = str(body.get("name") or "")
        if not 1 <= len(name) <= 100:
            raise _form_error(
                "name", "BASE_TYPE_BAD_LENGTH", "Must be between 1 and 100 in length."
            )
        thread = self._make_thread(
            channel_id,
            name,
            owner_id=self.bot_user.id,
            type=ttype,
            auto_archive_duration=int(body.get("auto_archive_duration") or 1440),
            rate_limit_per_user=int(body.get("rate_limit_per_user") or 0),
            invitable=bool(body.get("invitable", True)),
        )
        return await self._thread_created(thread)

    async def _thread_created(self, thread: JSON) -> web.StreamResponse:
        tid = int(thread["id"])
        self._created_threads.append(tid)
        member = {
            "id": str(tid),
            "user_id": str(self.bot_user.id),
            "join_timestamp": _now_iso(),
            "flags": 0,
        }
        payload = {**copy.deepcopy(thread), "member": member}
        await self.dispatch("THREAD_CREATE", {**payload, "newly_created": True})
        return _json_response(payload, 201)

    async def _h_add_reaction(
        self, call: Call, cid: str, mid: str, emoji: str
    ) -> web.StreamResponse:
        msg = self._message_in(int(cid), int(mid))
        self._require(int(cid), Perm.ADD_REACTIONS)
        for r in msg["reactions"]:
            if r["emoji"]["name"] == emoji:
                if not r["me"]:
                    r["me"], r["count"] = True, r["count"] + 1
                break
        else:
            msg["reactions"].append({"emoji": {"id": None, "name": emoji}, "count": 1, "me": True})
        return web.Response(status=204)

    async def _h_remove_reaction(
        self, call: Call, cid: str, mid: str, emoji: str
    ) -> web.StreamResponse:
        msg = self._message_in(int(cid), int(mid))
        for r in list(msg["reactions"]):
            if r["emoji"]["name"] == emoji and r["me"]:
                r["me"], r["count"] = False, r["count"] - 1
                if r["count"] <= 0:
                    msg["reactions"].remove(r)
        return web.Response(status=204)

    # ------------------------------------------------------------------ interactions REST

    def _interaction_by_token(self, app: str, token: str) -> _Interaction:
        if int(app) != self.application_id:
            raise _ApiError(404, "Unknown Webhook", 10015)
        for rec in self._interactions.values():
            if rec.token == token:
                return rec
        raise _ApiError(404, "Unknown Webhook", 10015)

    def _interaction_metadata(self, rec: _Interaction) -> JSON:
        meta: JSON = {
            "id": str(rec.id),
            "type": rec.type,
            "user": rec.user.payload(),
            "authorizing_integration_owners": {
                "0": str(self._channel_guild_id(rec.channel_id) or rec.user.id)
            },
        }
        if rec.message_id is not None:
            meta["interacted_message_id"] = str(rec.message_id)
        return meta

    async def _h_interaction_callback(self, call: Call, iid: str, token: str) -> web.StreamResponse:
        rec = self._interactions.get(int(iid))
        if rec is None or rec.token != token:
            raise _ApiError(404, "Unknown interaction", 10062)
        if (
            self.interaction_ack_timeout is not None
            and self.clock() - rec.created > self.interaction_ack_timeout
        ):
            raise _ApiError(404, "Unknown interaction", 10062)
        if rec.response_type is not None:
            raise _ApiError(400, "Interaction has already been acknowledged.", 40060)
        body = call.json or {}
        rtype = _as_int(body.get("type"))
        data: JSON = body.get("data") or {}
        valid = {1, 4, 5, 8, 9, 10, 12}
        if rec.message_id is not None:
            valid |= {6, 7}
        if rec.type == 5:
            valid.discard(9)
        if rtype not in valid:
            raise _form_error(
                "type", "INTERACTION_RESPONSE_TYPE_INVALID", "Invalid interaction response type"
            )
        message: JSON | None = None
        msg_type = 20 if rec.type == 2 else 0
        if rtype == 4:
            message = self._create_from_body(
                rec.channel_id,
                data,
                call.files,
                webhook=True,
                msg_type=msg_type,
                interaction_metadata=self._interaction_metadata(rec),
                allow_ephemeral=True,
            )
            rec.original_id = int(message["id"])
            await self._dispatch_message("MESSAGE_CREATE", message)
        elif rtype == 5:
            message = self._create_from_body(
                rec.channel_id,
                {"flags": data.get("flags", 0)},
                (),
                webhook=True,
                msg_type=msg_type,
                interaction_metadata=self._interaction_metadata(rec),
                allow_ephemeral=True,
                extra_flags=LOADING,
                allow_empty=True,
            )
            rec.original_id = int(message["id"])
            rec.loading_pending = True
            await self._dispatch_message("MESSAGE_CREATE", message)
        elif rtype in (6, 7) and rec.message_id is not None:
            rec.original_id = rec.message_id
            message = self._messages[rec.message_id]
            if rtype == 7:
                self._apply_edit(message, data, call.files)
                await self._dispatch_message("MESSAGE_UPDATE", message)
        assert rtype is not None
        rec.response_type = rtype
        self.interaction_responses.append(
            InteractionResponse(
                rec.id,
                rec.type,
                rtype,
                copy.deepcopy(body.get("data")),
                rec.original_id,
                time.monotonic(),
            )
        )
        if "with_response" not in call.query or call.query["with_response"] in ("0", "false"):
            return web.Response(status=204)
        result: JSON = {
            "interaction": {
                "id": str(rec.id),
                "type": rec.type,
                "activity_instance_id": None,
                "response_message_id": str(rec.original_id) if rec.original_id else None,
                "response_message_loading": rtype == 5,
                "response_message_ephemeral": bool(message and message["flags"] & EPHEMERAL),
            },
            "resource": {"type": rtype},
        }
        if message is not None and rtype in (4, 5, 7):
            result["resource"]["message"] = self._render(message, gateway=False)
        return _json_response(result)

    def _webhook_message(self, rec: _Interaction, mid: str) -> JSON:
        target = rec.original_id if mid == "@original" else int(mid)
        if target is None or (
            mid != "@original" and target not in (rec.original_id, *rec.followup_ids)
        ):
            raise _ApiError(404, "Unknown Message", 10008)
        msg = self._messages.get(target)
        if msg is None:
            raise _ApiError(404, "Unknown Message", 10008)
        return msg

    async def _h_followup(self, call: Call, app: str, token: str) -> web.StreamResponse:
        rec = self._interaction_by_token(app, token)
        if rec.response_type is None:
            raise _ApiError(404, "Unknown Webhook", 10015)
        body = call.json or {}
        if rec.loading_pending and rec.original_id is not None:
            # Discord: the first followup after a deferred (type 5) response edits the
            # "thinking" message instead of creating a new one.
            rec.loading_pending = False
            msg = self._messages[rec.original_id]
            self._apply_edit(msg, {k: v for k, v in body.items() if k != "flags"}, call.files)
            await self._dispatch_message("MESSAGE_UPDATE", msg)
        else:
            msg = self._create_from_body(
                rec.channel_id,
                body,
                call.files,
                webhook=True,
                msg_type=20 if rec.type == 2 else 0,
                interaction_metadata=self._interaction_metadata(rec),
                allow_ephemeral=True,
            )
            rec.followup_ids.append(int(msg["id"]))
            await self._dispatch_message("MESSAGE_CREATE", msg)
        self.followups.append(copy.deepcopy(msg))
        if call.query.get("wait") in ("1", "true", "True"):
            return _json_response(self._render(msg, gateway=False))
        return web.Response(status=204)

    async def _h_webhook_get(
        self, call: Call, app: str, token: str, mid: str
    ) -> web.StreamResponse:
        rec = self._interaction_by_token(app, token)
        return _json_response(self._render(self._webhook_message(rec, mid), gateway=False))

    async def _h_webhook_edit(
        self, call: Call, app: str, token: str, mid: str
    ) -> web.StreamResponse:
        rec = self._interaction_by_token(app, token)
        msg = self._webhook_message(rec, mid)
        headers = self._rate_check(
            "webhook-edit", f"webhook-edit:{token}", self.edit_limit, self.edit_window, call
        )
        if int(msg["id"]) == rec.original_id:
            rec.loading_pending = False
        self._apply_edit(msg, call.json or {}, call.files)
        await self._dispatch_message("MESSAGE_UPDATE", msg)
        return _json_response(self._render(msg, gateway=False), headers=headers)

    async def _h_webhook_delete(
        self, call: Call, app: str, token: str, mid: str
    ) -> web.StreamResponse:
        rec = self._interaction_by_token(app, token)
        msg = self._webhook_message(rec, mid)
        await self._delete(msg)
        return web.Response(status=204)
