"""A fake Slack for end-to-end tests: Web API, Socket Mode websocket and file host.

Everything listens on 127.0.0.1 (one aiohttp server, one free port) and is meant to be
driven by the *real* ``slack_sdk`` / ``slack_bolt`` clients::

    async with FakeSlack() as fake:
        client = AsyncWebClient(base_url=fake.api_url, token=fake.bot_token)
        app = AsyncApp(client=client, signing_secret=fake.signing_secret)
        handler = AsyncSocketModeHandler(app, fake.app_token)  # uses app.client
        await handler.connect_async()
        envelope_id = await fake.push_event(fake.app_mention(text="hi"))
        await fake.wait_ack(envelope_id)

Routes (``fake.base_url`` = ``http://127.0.0.1:PORT/``):

* ``GET|POST /api/<method>`` - Web API (form, multipart, JSON and query parameters are
  merged; the token comes from ``Authorization: Bearer`` or a ``token`` parameter).
* ``GET /link/?ticket=...`` - Socket Mode websocket (URL handed out by
  ``apps.connections.open``).
* ``GET /files-pri/T1-F0001/<name>`` and ``.../download/<name>`` - ``url_private`` host.
* ``POST /respond/<id>`` - ``response_url`` sink (``fake.responses``).

Everything the clients do is recorded (``calls``, ``messages()``, ``streams``,
``downloads``, ``acks``, ``responses`` ...) so tests can assert on it.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import math
import mimetypes
import time
import uuid
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, TypeVar
from urllib.parse import parse_qsl, quote, urlencode

from aiohttp import ClientSession, WSCloseCode, WSMsgType, web
from slack_sdk.web.async_client import AsyncWebClient

JSONDict = dict[str, Any]
T = TypeVar("T")

TEAM_ID = "T1"
TEAM_NAME = "Fake Team"
TEAM_DOMAIN = "fake-team"
ENTERPRISE_ID: str | None = None
APP_ID = "A1"
BOT_USER_ID = "UBOT"
BOT_ID = "BBOT"
BOT_NAME = "gemini"
ADMIN_USER_ID = "UADMIN"
OWNER_USER_ID = "UOWNER"
PLAIN_USER_ID = "UUSER"
DEFAULT_BOT_TOKEN = "xoxb-test"
DEFAULT_APP_TOKEN = "xapp-test"
DEFAULT_SIGNING_SECRET = "fake-signing-secret"
VERIFICATION_TOKEN = "fake-verification-token"

SIGN_IN_PAGE = (
    '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
    f"<title>Sign in | {TEAM_NAME} | Slack</title></head><body>"
    "<h1>Sign in to your workspace</h1>"
    '<form action="/signin" method="post"><input type="email" name="email">'
    '<button type="submit">Sign in</button></form></body></html>'
)

# Parameters that form-encoded callers send as JSON strings.
_JSON_STRING_PARAMS = ("blocks", "attachments", "chunks", "prompts", "metadata", "loading_messages")


# ---------------------------------------------------------------------------
# Pure helpers for HTTP (Events API / slash command) mode
# ---------------------------------------------------------------------------


def signed_headers(
    body: str | bytes,
    signing_secret: str,
    timestamp: int | str | None = None,
    *,
    content_type: str | None = None,
    retry_num: int | None = None,
    retry_reason: str = "http_timeout",
) -> dict[str, str]:
    """Headers Slack would send with ``body``: signature, timestamp and content type.

    Same format as :class:`slack_sdk.signature.SignatureVerifier`:
    ``v0=hex(HMAC-SHA256(secret, "v0:{timestamp}:{body}"))``. The content type is guessed
    from the body (JSON if it starts with ``{``, else form-urlencoded) unless given.
    """
    ts = str(int(time.time())) if timestamp is None else str(timestamp)
    text = body.decode("utf-8") if isinstance(body, bytes) else body
    base = f"v0:{ts}:{text}".encode()
    signature = "v0=" + hmac.new(signing_secret.encode(), base, hashlib.sha256).hexdigest()
    if content_type is None:
        is_json = text.lstrip().startswith("{")
        content_type = "application/json" if is_json else "application/x-www-form-urlencoded"
    headers = {
        "Content-Type": content_type,
        "X-Slack-Request-Timestamp": ts,
        "X-Slack-Signature": signature,
    }
    if retry_num is not None:
        headers["X-Slack-Retry-Num"] = str(retry_num)
        headers["X-Slack-Retry-Reason"] = retry_reason
    return headers


def event_callback_payload(
    event: Mapping[str, Any],
    *,
    event_id: str | None = None,
    team_id: str = TEAM_ID,
    api_app_id: str = APP_ID,
    bot_user_id: str = BOT_USER_ID,
    event_time: int | None = None,
) -> JSONDict:
    """Wrap ``event`` in an ``event_callback`` envelope (the Events API body)."""
    return {
        "token": VERIFICATION_TOKEN,
        "team_id": team_id,
        "context_team_id": team_id,
        "context_enterprise_id": None,
        "api_app_id": api_app_id,
        "event": dict(event),
        "type": "event_callback",
        "event_id": event_id or "Ev" + uuid.uuid4().hex[:10].upper(),
        "event_time": int(time.time()) if event_time is None else event_time,
        "authorizations": [
            {
                "enterprise_id": None,
                "team_id": team_id,
                "user_id": bot_user_id,
                "is_bot": True,
                "is_enterprise_install": False,
            }
        ],
        "is_ext_shared_channel": False,
        "event_context": "4-" + uuid.uuid4().hex,
    }


def event_callback_body(
    event: Mapping[str, Any],
    *,
    event_id: str | None = None,
    team_id: str = TEAM_ID,
    api_app_id: str = APP_ID,
    bot_user_id: str = BOT_USER_ID,
    event_time: int | None = None,
) -> str:
    """JSON text of :func:`event_callback_payload` (what Slack POSTs to /slack/events)."""
    return json.dumps(
        event_callback_payload(
            event,
            event_id=event_id,
            team_id=team_id,
            api_app_id=api_app_id,
            bot_user_id=bot_user_id,
            event_time=event_time,
        )
    )


def slash_command_payload(
    *,
    command: str = "/gemini",
    text: str = "",
    user_id: str = PLAIN_USER_ID,
    user_name: str = "bob",
    channel_id: str = "C1",
    channel_name: str = "general",
    team_id: str = TEAM_ID,
    team_domain: str = TEAM_DOMAIN,
    response_url: str = "",
    trigger_id: str | None = None,
    api_app_id: str = APP_ID,
) -> dict[str, str]:
    """The fields of a slash-command request (all strings, as Slack sends them)."""
    return {
        "token": VERIFICATION_TOKEN,
        "team_id": team_id,
        "team_domain": team_domain,
        "channel_id": channel_id,
        "channel_name": channel_name,
        "user_id": user_id,
        "user_name": user_name,
        "command": command,
        "text": text,
        "api_app_id": api_app_id,
        "is_enterprise_install": "false",
        "response_url": response_url,
        "trigger_id": trigger_id or f"{int(time.time())}.1.{uuid.uuid4().hex[:16]}",
    }


def slash_command_body(
    *,
    command: str = "/gemini",
    text: str = "",
    user_id: str = PLAIN_USER_ID,
    user_name: str = "bob",
    channel_id: str = "C1",
    channel_name: str = "general",
    team_id: str = TEAM_ID,
    team_domain: str = TEAM_DOMAIN,
    response_url: str = "",
    trigger_id: str | None = None,
    api_app_id: str = APP_ID,
) -> str:
    """Form-urlencoded slash-command body. Use ``fake.response_url()`` for response_url."""
    return urlencode(
        slash_command_payload(
            command=command,
            text=text,
            user_id=user_id,
            user_name=user_name,
            channel_id=channel_id,
            channel_name=channel_name,
            team_id=team_id,
            team_domain=team_domain,
            response_url=response_url,
            trigger_id=trigger_id,
            api_app_id=api_app_id,
        )
    )


# ---------------------------------------------------------------------------
# Records
# ---------------------------------------------------------------------------


@dataclass
class ApiCall:
    """One Web API request as the fake saw it."""

    method: str
    params: JSONDict
    token: str | None
    http_method: str
    time: float
    status: int = 200
    response: JSONDict = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return bool(self.response.get("ok"))

    @property
    def error(self) -> str | None:
        err = self.response.get("error")
        return str(err) if err is not None else None


@dataclass
class MessageUpdate:
    """One accepted ``chat.update`` of a message."""

    time: float
    text: str | None
    blocks: list[JSONDict] | None
    markdown_text: str | None
    params: JSONDict


@dataclass
class Stream:
    """A ``chat.startStream`` .. ``chat.stopStream`` streaming message."""

    ts: str
    channel: str
    thread_ts: str
    recipient_user_id: str | None
    recipient_team_id: str | None
    started_at: float
    state: str = "streaming"  # "streaming" | "stopped" | "expired"
    pieces: list[str] = field(default_factory=list)  # markdown appended, in order
    chunks: list[JSONDict] = field(default_factory=list)  # every chunk received
    requests: list[tuple[str, JSONDict]] = field(default_factory=list)  # (method, params)
    stop_blocks: list[JSONDict] | None = None
    stopped_at: float | None = None

    @property
    def text(self) -> str:
        """The full markdown text streamed so far (final text once stopped)."""
        return "".join(self.pieces)

    @property
    def append_count(self) -> int:
        return sum(1 for method, _ in self.requests if method == "chat.appendStream")


@dataclass
class StoredMessage:
    """A message in the fake workspace (posted by the bot or built for an event)."""

    channel: str
    ts: str
    user: str | None
    text: str | None = None
    thread_ts: str | None = None
    bot_id: str | None = None
    subtype: str | None = None
    blocks: list[JSONDict] | None = None
    markdown_text: str | None = None
    attachments: list[JSONDict] | None = None
    files: list[JSONDict] | None = None
    metadata: JSONDict | None = None
    stream: Stream | None = None
    updates: list[MessageUpdate] = field(default_factory=list)
    reactions: list[str] = field(default_factory=list)
    deleted: bool = False

    @property
    def final_text(self) -> str:
        """What a reader would see: streamed text, else text, else markdown_text."""
        if self.stream is not None:
            return self.stream.text
        if self.text:
            return self.text
        return self.markdown_text or ""

    @property
    def is_bot(self) -> bool:
        return self.bot_id is not None or self.user == BOT_USER_ID

    def to_api(self) -> JSONDict:
        """The message as Slack returns it (chat.postMessage, conversations.replies)."""
        msg: JSONDict = {"type": "message", "ts": self.ts, "text": self.final_text}
        if self.user is not None:
            msg["user"] = self.user
        if self.bot_id is not None:
            msg["bot_id"] = self.bot_id
            msg["app_id"] = APP_ID
        if self.subtype is not None:
            msg["subtype"] = self.subtype
        if self.thread_ts is not None:
            msg["thread_ts"] = self.thread_ts
        if self.blocks is not None:
            msg["blocks"] = self.blocks
        if self.attachments is not None:
            msg["attachments"] = self.attachments
        if self.files is not None:
            msg["files"] = self.files
        if self.metadata is not None:
            msg["metadata"] = self.metadata
        if self.updates:
            msg["edited"] = {"user": BOT_USER_ID, "ts": self.ts}
        if self.reactions:
            msg["reactions"] = [
                {"name": name, "users": [BOT_USER_ID], "count": 1} for name in self.reactions
            ]
        msg["team"] = TEAM_ID
        return msg


@dataclass
class Download:
    """One GET on a ``url_private`` / ``url_private_download`` URL."""

    file_id: str
    path: str
    token: str | None
    authorized: bool
    time: float


@dataclass
class PostedResponse:
    """A POST to a ``response_url`` (bolt's ``respond()``)."""

    url: str
    body: JSONDict
    time: float


@dataclass
class Envelope:
    """A Socket Mode envelope pushed to the client."""

    envelope_id: str
    type: str
    payload: JSONDict
    accepts_response_payload: bool
    sent_at: float
    connection_id: int


@dataclass
class SocketConnection:
    """One accepted Socket Mode websocket connection."""

    id: int
    ws: web.WebSocketResponse
    ticket: str
    query: dict[str, str]
    opened_at: float
    closed_at: float | None = None
    received: list[str] = field(default_factory=list)

    @property
    def open(self) -> bool:
        return self.closed_at is None and not self.ws.closed


class _SlackError(Exception):
    """Raised by method handlers to produce ``{"ok": false, "error": ...}``."""

    def __init__(
        self,
        error: str,
        *,
        status: int = 200,
        headers: Mapping[str, str] | None = None,
        extra: JSONDict | None = None,
    ) -> None:
        super().__init__(error)
        self.error = error
        self.status = status
        self.headers = dict(headers or {})
        self.extra = extra or {}


@dataclass
class _Injected:
    error: str
    status: int
    headers: dict[str, str]
    remaining: int


_MethodHandler = Callable[[JSONDict], JSONDict]

MAX_MARKDOWN_CHARS = 12_000
"""Slack's limit for ``markdown_text`` (chat.postMessage, chat.update and the stream methods)."""
ACK_DEADLINE = 3.0
"""Seconds Slack waits for an app to acknowledge an event or command (HTTP or Socket Mode)."""


# ---------------------------------------------------------------------------
# The fake
# ---------------------------------------------------------------------------


class FakeSlack:
    """Fake Slack workspace ``T1`` with bot ``UBOT``/``BBOT`` on 127.0.0.1.

    Args:
        bot_token: Accepted bot token for Web API methods and file downloads.
        app_token: App-level token, only accepted by ``apps.connections.open``.
        signing_secret: Used by the ``*_request`` helpers to sign HTTP-mode requests.
        update_limit: ``chat.update`` calls allowed per ``update_window`` seconds per team
            (Slack: Tier 3, ~50/min). ``None`` disables the limit.
        update_window: Sliding window for ``update_limit``, in seconds.
        retry_after: ``Retry-After`` seconds sent with a 429; ``None`` = time until the
            oldest call leaves the window (rounded up, at least 1).
        rate_limits: Extra per-method limits, ``{"chat.postMessage": (limit, window)}``.
        max_update_chars: ``chat.update`` text longer than this -> ``msg_too_long``.
        max_post_chars: ``chat.postMessage`` text longer than this -> ``msg_too_long``.
            ``markdown_text`` longer than 12,000 characters gets ``msg_too_long`` too, and
            ``markdown_text`` with ``text`` or ``blocks`` gets ``markdown_text_conflict``.
        ack_deadline: an envelope (Socket Mode) or a request sent with :meth:`deliver`
            (HTTP mode) not acknowledged within this many seconds is noted in
            :attr:`missed_acks`, as Slack counts it a failed delivery.
        clock: the monotonic clock for that deadline (tests may pass a virtual one).
    """

    def __init__(
        self,
        *,
        bot_token: str = DEFAULT_BOT_TOKEN,
        app_token: str = DEFAULT_APP_TOKEN,
        signing_secret: str = DEFAULT_SIGNING_SECRET,
        update_limit: int | None = 50,
        update_window: float = 60.0,
        retry_after: int | None = None,
        rate_limits: Mapping[str, tuple[int, float]] | None = None,
        max_update_chars: int = 4000,
        max_post_chars: int = 40000,
        host: str = "127.0.0.1",
        ack_deadline: float = ACK_DEADLINE,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.bot_token = bot_token
        self.app_token = app_token
        self.signing_secret = signing_secret
        self.team_id = TEAM_ID
        self.bot_user_id = BOT_USER_ID
        self.bot_id = BOT_ID
        self.app_id = APP_ID
        self.retry_after = retry_after
        self.max_update_chars = max_update_chars
        self.max_post_chars = max_post_chars
        self.host = host
        self.ack_deadline = ack_deadline
        self.clock = clock
        self._ack_due: dict[str, float] = {}
        self._acked_at: dict[str, float] = {}
        self._holds: dict[str, asyncio.Event] = {}

        self.rate_limits: dict[str, tuple[int, float]] = dict(rate_limits or {})
        if update_limit is not None:
            self.rate_limits.setdefault("chat.update", (update_limit, update_window))
        self._hits: dict[tuple[str, str], deque[float]] = {}

        # Records
        self.calls: list[ApiCall] = []
        self.rate_limited = 0
        self.downloads: list[Download] = []
        self.responses: list[PostedResponse] = []
        self.ephemerals: list[JSONDict] = []
        self.assistant_statuses: list[JSONDict] = []
        self.suggested_prompts: list[JSONDict] = []
        self.thread_titles: list[JSONDict] = []
        self.envelopes: list[Envelope] = []
        self.acks: dict[str, JSONDict] = {}
        self.socket_connections: list[SocketConnection] = []

        # Workspace state
        self.users: dict[str, JSONDict] = {}
        self.channels: dict[str, JSONDict] = {}
        self._messages: dict[tuple[str, str], StoredMessage] = {}
        self._streams: list[Stream] = []
        self._files: dict[str, tuple[bytes, JSONDict]] = {}
        self._file_seq = 0
        self._last_ts_us = 1_700_000_000_000_000
        self._tickets: set[str] = set()
        self._injected: dict[str, list[_Injected]] = {}
        self._ack_waiters: dict[str, asyncio.Future[JSONDict]] = {}
        self._conn_seq = 0

        self._runner: web.AppRunner | None = None
        self._port: int | None = None
        self._cond: asyncio.Condition | None = None

        self._methods: dict[str, tuple[str, _MethodHandler]] = {
            "auth.test": ("bot", self._auth_test),
            "chat.postMessage": ("bot", self._chat_post_message),
            "chat.update": ("bot", self._chat_update),
            "chat.delete": ("bot", self._chat_delete),
            "chat.postEphemeral": ("bot", self._chat_post_ephemeral),
            "chat.startStream": ("bot", self._chat_start_stream),
            "chat.appendStream": ("bot", self._chat_append_stream),
            "chat.stopStream": ("bot", self._chat_stop_stream),
            "assistant.threads.setStatus": ("bot", self._assistant_set_status),
            "assistant.threads.setSuggestedPrompts": ("bot", self._assistant_set_prompts),
            "assistant.threads.setTitle": ("bot", self._assistant_set_title),
            "users.info": ("bot", self._users_info),
            "conversations.info": ("bot", self._conversations_info),
            "conversations.replies": ("bot", self._conversations_replies),
            "reactions.add": ("bot", self._reactions_add),
            "reactions.remove": ("bot", self._reactions_remove),
            "files.info": ("bot", self._files_info),
            "apps.connections.open": ("app", self._apps_connections_open),
        }
        self._seed_workspace()

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> FakeSlack:
        """Bind a free port on ``host`` and start serving."""
        if self._runner is not None:
            return self
        self._cond = asyncio.Condition()
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/api/{method}", self._handle_api)
        app.router.add_get("/link/", self._handle_socket)
        app.router.add_get("/link", self._handle_socket)
        app.router.add_get("/files-pri/{team_file}/{tail:.*}", self._handle_file)
        app.router.add_post("/respond/{rid}", self._handle_response_url)
        runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await runner.setup()
        site = web.TCPSite(runner, self.host, 0)
        await site.start()
        self._runner = runner
        self._port = int(runner.addresses[0][1])
        return self

    async def stop(self) -> None:
        """Close websockets, fail pending ack waiters and shut the server down."""
        for conn in self.socket_connections:
            if not conn.ws.closed:
                with contextlib.suppress(Exception):
                    await conn.ws.close(code=WSCloseCode.GOING_AWAY, message=b"server stopping")
        for fut in self._ack_waiters.values():
            if not fut.done():
                fut.cancel()
        if self._runner is not None:
            await self._runner.cleanup()
        self._runner = None

    async def __aenter__(self) -> FakeSlack:
        return await self.start()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    # ------------------------------------------------------------------ URLs

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("FakeSlack is not started")
        return self._port

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}/"

    @property
    def api_url(self) -> str:
        """Pass as ``AsyncWebClient(base_url=...)`` (has the trailing slash)."""
        return self.base_url + "api/"

    @property
    def socket_url(self) -> str:
        """Websocket endpoint; ``apps.connections.open`` returns it with a ``ticket``."""
        return f"ws://{self.host}:{self.port}/link/"

    @property
    def files_url(self) -> str:
        """Prefix of every ``url_private`` / ``url_private_download``."""
        return self.base_url + "files-pri/"

    def response_url(self) -> str:
        """A fresh ``response_url``; POSTs to it are recorded in ``fake.responses``."""
        return f"{self.base_url}respond/{uuid.uuid4().hex}"

    def client(self, **kwargs: Any) -> AsyncWebClient:
        """An ``AsyncWebClient`` pointed at the fake (bot token unless ``token=``)."""
        kwargs.setdefault("token", self.bot_token)
        return AsyncWebClient(base_url=self.api_url, **kwargs)

    # ------------------------------------------------------------------ workspace

    def _seed_workspace(self) -> None:
        self.add_user(ADMIN_USER_ID, "alice", is_admin=True)
        self.add_user(OWNER_USER_ID, "olivia", is_admin=True, is_owner=True, is_primary_owner=True)
        self.add_user(PLAIN_USER_ID, "bob")
        self.add_user(BOT_USER_ID, BOT_NAME, is_bot=True, bot_id=BOT_ID)
        self.add_channel("C1", "general")
        self.add_channel("C2", "random")
        self.add_channel("G1", "secret", is_private=True)
        self.add_channel("D1", is_im=True, user=PLAIN_USER_ID)
        self.add_channel("D2", is_im=True, user=ADMIN_USER_ID)
        self.add_channel("D3", is_im=True, user=OWNER_USER_ID)

    def add_user(
        self,
        user_id: str,
        name: str,
        *,
        is_admin: bool = False,
        is_owner: bool = False,
        is_primary_owner: bool = False,
        is_bot: bool = False,
        bot_id: str | None = None,
        **extra: Any,
    ) -> JSONDict:
        """Add (or replace) a workspace member returned by ``users.info``."""
        profile: JSONDict = {
            "real_name": name.title(),
            "display_name": name,
            "real_name_normalized": name.title(),
            "display_name_normalized": name,
            "team": TEAM_ID,
        }
        if not is_bot:
            profile["email"] = f"{name}@example.com"
        if bot_id is not None:
            profile["bot_id"] = bot_id
        user: JSONDict = {
            "id": user_id,
            "team_id": TEAM_ID,
            "name": name,
            "deleted": False,
            "real_name": name.title(),
            "tz": "Europe/London",
            "tz_label": "Greenwich Mean Time",
            "tz_offset": 0,
            "profile": profile,
            "is_admin": is_admin,
            "is_owner": is_owner,
            "is_primary_owner": is_primary_owner,
            "is_restricted": False,
            "is_ultra_restricted": False,
            "is_bot": is_bot,
            "is_app_user": False,
            "updated": 1_700_000_000,
        }
        user.update(extra)
        self.users[user_id] = user
        return user

    def add_channel(
        self,
        channel_id: str,
        name: str | None = None,
        *,
        is_im: bool = False,
        user: str | None = None,
        is_private: bool = False,
        is_mpim: bool = False,
    ) -> JSONDict:
        """Add (or replace) a conversation returned by ``conversations.info``."""
        info: JSONDict = {
            "id": channel_id,
            "created": 1_700_000_000,
            "is_archived": False,
            "is_im": is_im,
            "is_mpim": is_mpim,
            "is_private": is_private or is_im or is_mpim,
            "context_team_id": TEAM_ID,
        }
        if is_im:
            info.update({"user": user, "is_user_deleted": False, "is_open": True})
        else:
            info.update(
                {
                    "name": name or channel_id.lower(),
                    "is_channel": not is_private and not is_mpim,
                    "is_group": is_private,
                    "is_general": name == "general",
                    "is_member": True,
                    "is_shared": False,
                    "is_ext_shared": False,
                }
            )
        self.channels[channel_id] = info
        return info

    def is_dm(self, channel: str) -> bool:
        info = self.channels.get(channel)
        if info is not None:
            return bool(info.get("is_im"))
        return channel.startswith("D")

    def _resolve_channel(self, channel: Any) -> str:
        """Map a channel param (ID, ``#name`` or user ID) to a known channel ID."""
        if not isinstance(channel, str) or not channel:
            raise _SlackError("channel_not_found")
        if channel in self.channels:
            return channel
        if channel.startswith("#"):
            for cid, info in self.channels.items():
                if info.get("name") == channel[1:]:
                    return cid
        if channel in self.users:
            for cid, info in self.channels.items():
                if info.get("is_im") and info.get("user") == channel:
                    return cid
            cid = "D" + channel.lstrip("U")
            self.add_channel(cid, is_im=True, user=channel)
            return cid
        raise _SlackError("channel_not_found")

    # ------------------------------------------------------------------ ts / ids

    def next_ts(self) -> str:
        """A new message ts, strictly after every ts seen so far."""
        self._last_ts_us += 100
        return _format_ts(self._last_ts_us)

    def _see_ts(self, ts: str) -> None:
        with contextlib.suppress(ValueError):
            self._last_ts_us = max(self._last_ts_us, _parse_ts(ts))

    # ------------------------------------------------------------------ files

    def add_file(
        self,
        name: str,
        data: bytes,
        mimetype: str | None = None,
        filetype: str | None = None,
        *,
        title: str | None = None,
        user: str = PLAIN_USER_ID,
    ) -> JSONDict:
        """Host ``data`` and return the Slack file object to put in an event's ``files``."""
        self._file_seq += 1
        file_id = f"F{self._file_seq:04d}"
        if mimetype is None:
            mimetype = mimetypes.guess_type(name)[0] or "application/octet-stream"
        if filetype is None:
            filetype = name.rsplit(".", 1)[-1].lower() if "." in name else "binary"
        quoted = quote(name)
        base = f"{self.files_url}{TEAM_ID}-{file_id}/"
        now = int(time.time())
        obj: JSONDict = {
            "id": file_id,
            "created": now,
            "timestamp": now,
            "name": name,
            "title": title or name,
            "mimetype": mimetype,
            "filetype": filetype,
            "pretty_type": filetype.upper(),
            "user": user,
            "user_team": TEAM_ID,
            "editable": False,
            "size": len(data),
            "mode": "hosted",
            "is_external": False,
            "external_type": "",
            "is_public": False,
            "public_url_shared": False,
            "display_as_bot": False,
            "username": "",
            "url_private": base + quoted,
            "url_private_download": base + "download/" + quoted,
            "permalink": f"https://{TEAM_DOMAIN}.slack.com/files/{user}/{file_id}/{quoted}",
            "permalink_public": f"https://slack-files.com/{TEAM_ID}-{file_id}-fake",
            "is_starred": False,
            "has_rich_preview": False,
            "file_access": "visible",
        }
        self._files[file_id] = (data, obj)
        return dict(obj)

    # ------------------------------------------------------------------ event builders

    def app_mention(
        self,
        user: str = PLAIN_USER_ID,
        text: str = "",
        channel: str = "C1",
        ts: str | None = None,
        thread_ts: str | None = None,
        files: Sequence[JSONDict] | None = None,
    ) -> JSONDict:
        """An ``app_mention`` event. ``<@UBOT>`` is prefixed if ``text`` lacks it.

        The mentioning message is stored, so ``conversations.replies`` can see it.
        """
        ts = ts or self.next_ts()
        self._see_ts(ts)
        if f"<@{BOT_USER_ID}>" not in text:
            text = f"<@{BOT_USER_ID}> {text}".rstrip()
        if channel not in self.channels:
            self.add_channel(channel)
        event: JSONDict = {
            "type": "app_mention",
            "user": user,
            "text": text,
            "ts": ts,
            "channel": channel,
            "event_ts": ts,
            "team": TEAM_ID,
            "client_msg_id": str(uuid.uuid4()),
        }
        if thread_ts is not None:
            event["thread_ts"] = thread_ts
        if files:
            event["files"] = [dict(f) for f in files]
            event["upload"] = False
        self._store_incoming(channel, ts, user, text, thread_ts, files)
        return event

    def message(
        self,
        user: str = PLAIN_USER_ID,
        text: str = "",
        channel: str = "C1",
        ts: str | None = None,
        thread_ts: str | None = None,
        channel_type: str = "channel",
        files: Sequence[JSONDict] | None = None,
        bot_id: str | None = None,
        subtype: str | None = None,
    ) -> JSONDict:
        """A ``message`` event. ``subtype`` defaults to ``file_share`` when files are given.

        ``channel_type``: ``channel`` | ``group`` | ``im`` | ``mpim``. Unknown channels
        are registered with that type. The message is stored (not for ``bot_id``).
        """
        ts = ts or self.next_ts()
        self._see_ts(ts)
        if channel not in self.channels:
            self.add_channel(
                channel,
                is_im=channel_type == "im",
                user=user if channel_type == "im" else None,
                is_private=channel_type == "group",
                is_mpim=channel_type == "mpim",
            )
        if files and subtype is None:
            subtype = "file_share"
        event: JSONDict = {
            "type": "message",
            "channel": channel,
            "user": user,
            "text": text,
            "ts": ts,
            "event_ts": ts,
            "channel_type": channel_type,
            "team": TEAM_ID,
        }
        if bot_id is None:
            event["client_msg_id"] = str(uuid.uuid4())
        else:
            event["bot_id"] = bot_id
            event["app_id"] = APP_ID
        if subtype is not None:
            event["subtype"] = subtype
        if thread_ts is not None:
            event["thread_ts"] = thread_ts
            event["parent_user_id"] = self._parent_user(channel, thread_ts)
        if files:
            event["files"] = [dict(f) for f in files]
            event["upload"] = False
            event["display_as_bot"] = False
        if bot_id is None:
            self._store_incoming(channel, ts, user, text, thread_ts, files, subtype=subtype)
        return event

    def assistant_thread_started(
        self,
        user: str = PLAIN_USER_ID,
        channel: str = "D1",
        thread_ts: str | None = None,
        context_channel_id: str | None = None,
    ) -> JSONDict:
        """An ``assistant_thread_started`` event (a new AI-assistant thread in a DM).

        Stores the thread's parent message (subtype ``assistant_app_thread``, from the bot).
        """
        thread_ts = thread_ts or self.next_ts()
        self._see_ts(thread_ts)
        if channel not in self.channels:
            self.add_channel(channel, is_im=True, user=user)
        key = (channel, thread_ts)
        if key not in self._messages:
            self._messages[key] = StoredMessage(
                channel=channel,
                ts=thread_ts,
                user=BOT_USER_ID,
                bot_id=BOT_ID,
                text="",
                subtype="assistant_app_thread",
            )
        context: JSONDict = {"channel_id": context_channel_id, "team_id": TEAM_ID}
        context["enterprise_id"] = ENTERPRISE_ID
        return {
            "type": "assistant_thread_started",
            "assistant_thread": {
                "user_id": user,
                "context": context,
                "channel_id": channel,
                "thread_ts": thread_ts,
            },
            "event_ts": self.next_ts(),
        }

    def _parent_user(self, channel: str, thread_ts: str) -> str | None:
        parent = self._messages.get((channel, thread_ts))
        return parent.user if parent is not None else None

    def _store_incoming(
        self,
        channel: str,
        ts: str,
        user: str,
        text: str,
        thread_ts: str | None,
        files: Sequence[JSONDict] | None,
        *,
        subtype: str | None = None,
    ) -> None:
        key = (channel, ts)
        if key in self._messages:
            return
        self._messages[key] = StoredMessage(
            channel=channel,
            ts=ts,
            user=user,
            text=text,
            thread_ts=thread_ts,
            subtype=subtype,
            files=[dict(f) for f in files] if files else None,
        )

    # ------------------------------------------------------------------ HTTP-mode helpers

    def event_request(
        self,
        event: Mapping[str, Any],
        *,
        event_id: str | None = None,
        retry_num: int | None = None,
        signing_secret: str | None = None,
    ) -> tuple[str, dict[str, str]]:
        """``(body, headers)`` of a signed Events API POST carrying ``event``."""
        body = event_callback_body(event, event_id=event_id, team_id=self.team_id)
        headers = signed_headers(body, signing_secret or self.signing_secret, retry_num=retry_num)
        return body, headers

    def slash_command_request(
        self,
        *,
        command: str = "/gemini",
        text: str = "",
        user_id: str = PLAIN_USER_ID,
        channel_id: str = "C1",
        signing_secret: str | None = None,
    ) -> tuple[str, dict[str, str]]:
        """``(body, headers)`` of a signed slash-command POST; response_url is the fake's."""
        body = slash_command_body(
            command=command,
            text=text,
            user_id=user_id,
            user_name=str(self.users.get(user_id, {}).get("name", "someone")),
            channel_id=channel_id,
            channel_name=str(self.channels.get(channel_id, {}).get("name", "directmessage")),
            team_id=self.team_id,
            response_url=self.response_url(),
        )
        return body, signed_headers(body, signing_secret or self.signing_secret)

    # ------------------------------------------------------------------ accessors

    def messages(
        self, channel: str, thread_ts: str | None = None, *, include_deleted: bool = False
    ) -> list[StoredMessage]:
        """Messages in ``channel`` ordered by ts; with ``thread_ts``: parent + replies.

        Use ``.final_text`` for what a reader sees (a stream's full text, else text).
        """
        result = [
            m
            for (cid, _), m in self._messages.items()
            if cid == channel
            and (include_deleted or not m.deleted)
            and (thread_ts is None or m.ts == thread_ts or m.thread_ts == thread_ts)
        ]
        return sorted(result, key=lambda m: _parse_ts(m.ts))

    def bot_messages(self, channel: str, thread_ts: str | None = None) -> list[StoredMessage]:
        """Like :meth:`messages` but only what the bot posted/streamed."""
        return [m for m in self.messages(channel, thread_ts) if m.is_bot and m.subtype is None]

    def texts(self, channel: str, thread_ts: str | None = None) -> list[str]:
        """``final_text`` of every bot message in the channel/thread."""
        return [m.final_text for m in self.bot_messages(channel, thread_ts)]

    def message_at(self, ts: str, channel: str | None = None) -> StoredMessage | None:
        for (cid, mts), m in self._messages.items():
            if mts == ts and (channel is None or cid == channel):
                return m
        return None

    def updates_of(self, ts: str, channel: str | None = None) -> list[MessageUpdate]:
        """Accepted ``chat.update`` calls applied to message ``ts``."""
        msg = self.message_at(ts, channel)
        return list(msg.updates) if msg is not None else []

    @property
    def streams(self) -> list[Stream]:
        """Every stream started, in order."""
        return list(self._streams)

    def stream(self, ts: str) -> Stream | None:
        return next((s for s in self._streams if s.ts == ts), None)

    def calls_of(self, method: str, *, ok: bool | None = None) -> list[ApiCall]:
        """Recorded calls of one method (optionally only successful/failed ones)."""
        return [c for c in self.calls if c.method == method and (ok is None or c.ok == ok)]

    def expire_stream(self, ts: str) -> None:
        """Simulate Slack closing a stream server-side (appends then fail)."""
        stream = self.stream(ts)
        if stream is None:
            raise KeyError(ts)
        stream.state = "expired"

    def fail_next(
        self,
        method: str,
        error: str,
        *,
        status: int = 200,
        headers: Mapping[str, str] | None = None,
        times: int = 1,
    ) -> None:
        """Make the next ``times`` calls of ``method`` fail with ``error`` (after auth)."""
        self._injected.setdefault(method, []).append(
            _Injected(error=error, status=status, headers=dict(headers or {}), remaining=times)
        )

    def set_rate_limit(self, method: str, limit: int | None, window: float = 60.0) -> None:
        """Limit ``method`` to ``limit`` calls per ``window`` seconds (``None`` removes)."""
        if limit is None:
            self.rate_limits.pop(method, None)
        else:
            self.rate_limits[method] = (limit, window)
        self._hits = {k: v for k, v in self._hits.items() if k[1] != method}

    def hold(self, method: str) -> asyncio.Event:
        """Make calls of ``method`` wait (recorded, not yet answered) until the returned event
        is set: a test can keep the app mid-work and see what it did before."""
        return self._holds.setdefault(method, asyncio.Event())

    @property
    def missed_acks(self) -> list[str]:
        """Envelope ids (Socket Mode) and request labels (:meth:`deliver`) not acknowledged
        within ``ack_deadline``: acknowledged late, or not yet and past the deadline."""
        now = self.clock()
        return [key for key, due in self._ack_due.items() if self._acked_at.get(key, now) > due]

    async def deliver(
        self, url: str, request: tuple[str, Mapping[str, str]], *, label: str | None = None
    ) -> tuple[int, str]:
        """POST an HTTP-mode request (``event_request``, ``slash_command_request``) to the app
        at ``url`` as Slack does; return the answer's status and body. An answer later than
        ``ack_deadline`` is noted in :attr:`missed_acks` under ``label`` (default: a count)."""
        body, headers = request
        key = label or f"http-{len(self._ack_due) + 1}"
        self._ack_due[key] = self.clock() + self.ack_deadline
        async with ClientSession() as session, session.post(
            url, data=body.encode(), headers=dict(headers)
        ) as response:
            self._acked_at[key] = self.clock()
            return response.status, await response.text()

    # ------------------------------------------------------------------ waiting

    async def wait_for(
        self,
        predicate: Callable[[], T | None],
        timeout: float = 5.0,  # noqa: ASYNC109
    ) -> T:
        """Wait until ``predicate()`` is truthy (re-checked on every recorded change)."""
        cond = self._condition()
        async with asyncio.timeout(timeout), cond:
            while True:
                value = predicate()
                if value:
                    return value
                await cond.wait()

    async def wait_for_call(
        self,
        method: str,
        predicate: Callable[[ApiCall], bool] | None = None,
        *,
        timeout: float = 5.0,  # noqa: ASYNC109
        start: int = 0,
    ) -> ApiCall:
        """Wait for a call of ``method`` (index >= ``start``) matching ``predicate``."""

        def find() -> ApiCall | None:
            for call in self.calls[start:]:
                if (
                    call.method == method
                    and call.response
                    and (predicate is None or predicate(call))
                ):
                    return call
            return None

        return await self.wait_for(find, timeout)

    def _condition(self) -> asyncio.Condition:
        if self._cond is None:
            self._cond = asyncio.Condition()
        return self._cond

    async def _notify(self) -> None:
        cond = self._condition()
        async with cond:
            cond.notify_all()

    # ------------------------------------------------------------------ socket mode

    @property
    def active_sockets(self) -> list[SocketConnection]:
        return [c for c in self.socket_connections if c.open]

    async def wait_socket_connected(
        self,
        timeout: float = 5.0,  # noqa: ASYNC109
        *,
        count: int = 1,
    ) -> SocketConnection:
        """Wait until ``count`` connections were made in total and one is open; return
        the newest open one."""

        def ready() -> SocketConnection | None:
            if len(self.socket_connections) < count:
                return None
            active = self.active_sockets
            return active[-1] if active else None

        return await self.wait_for(ready, timeout)

    async def push_envelope(
        self,
        type_: str,
        payload: JSONDict,
        *,
        accepts_response_payload: bool = False,
        retry_attempt: int | None = None,
        retry_reason: str | None = None,
        timeout: float = 5.0,  # noqa: ASYNC109
    ) -> str:
        """Send a raw envelope on the newest open connection; return its envelope_id."""
        conn = await self.wait_socket_connected(timeout)
        envelope_id = str(uuid.uuid4())
        envelope: JSONDict = {
            "envelope_id": envelope_id,
            "payload": payload,
            "type": type_,
            "accepts_response_payload": accepts_response_payload,
        }
        if retry_attempt is not None:
            envelope["retry_attempt"] = retry_attempt
            envelope["retry_reason"] = retry_reason or ""
        self._ack_waiters[envelope_id] = asyncio.get_running_loop().create_future()
        self._ack_due[envelope_id] = self.clock() + self.ack_deadline
        self.envelopes.append(
            Envelope(
                envelope_id=envelope_id,
                type=type_,
                payload=payload,
                accepts_response_payload=accepts_response_payload,
                sent_at=time.time(),
                connection_id=conn.id,
            )
        )
        await conn.ws.send_str(json.dumps(envelope))
        return envelope_id

    async def push_event(
        self,
        event: Mapping[str, Any],
        *,
        event_id: str | None = None,
        retry_num: int | None = None,
        retry_reason: str = "timeout",
        timeout: float = 5.0,  # noqa: ASYNC109
    ) -> str:
        """Push an ``events_api`` envelope (like Slack, retry_attempt is 0 when not a retry)."""
        payload = event_callback_payload(event, event_id=event_id, team_id=self.team_id)
        return await self.push_envelope(
            "events_api",
            payload,
            accepts_response_payload=False,
            retry_attempt=retry_num or 0,
            retry_reason=retry_reason if retry_num else "",
            timeout=timeout,
        )

    async def push_slash_command(
        self,
        command: str = "/gemini",
        text: str = "",
        user_id: str = PLAIN_USER_ID,
        channel_id: str = "C1",
        *,
        response_url: str | None = None,
        trigger_id: str | None = None,
        timeout: float = 5.0,  # noqa: ASYNC109
    ) -> str:
        """Push a ``slash_commands`` envelope (response_url defaults to the fake's)."""
        payload = slash_command_payload(
            command=command,
            text=text,
            user_id=user_id,
            user_name=str(self.users.get(user_id, {}).get("name", "someone")),
            channel_id=channel_id,
            channel_name=str(self.channels.get(channel_id, {}).get("name", "directmessage")),
            team_id=self.team_id,
            response_url=response_url or self.response_url(),
            trigger_id=trigger_id,
        )
        return await self.push_envelope(
            "slash_commands", dict(payload), accepts_response_payload=True, timeout=timeout
        )

    async def push_interactive(
        self,
        payload: JSONDict,
        *,
        timeout: float = 5.0,  # noqa: ASYNC109
    ) -> str:
        """Push an ``interactive`` envelope (block_actions, view_submission, shortcut...)."""
        return await self.push_envelope(
            "interactive", payload, accepts_response_payload=True, timeout=timeout
        )

    async def wait_ack(
        self,
        envelope_id: str,
        timeout: float = 5.0,  # noqa: ASYNC109
    ) -> JSONDict | None:
        """Wait for the client's ack of ``envelope_id``; return its ``payload`` (or None).

        Note: bolt sends no ack at all when the app's response status is not 200
        (e.g. no listener matched -> 404), so this then times out.
        """
        fut = self._ack_waiters.get(envelope_id)
        if fut is None:
            raise KeyError(f"unknown envelope {envelope_id}")
        ack = await asyncio.wait_for(asyncio.shield(fut), timeout)
        payload = ack.get("payload")
        return payload if isinstance(payload, dict) else None

    async def request_reconnect(self, reason: str = "refresh_requested") -> None:
        """Send Slack's ``disconnect`` message; slack_sdk then fetches a new URL and
        reconnects (closing the old socket itself)."""
        for conn in self.active_sockets:
            await conn.ws.send_str(
                json.dumps(
                    {
                        "type": "disconnect",
                        "reason": reason,
                        "debug_info": {"host": "fake-applink"},
                    }
                )
            )

    async def drop_sockets(self) -> None:
        """Close every open websocket from the server side (abrupt disconnect)."""
        for conn in self.active_sockets:
            await conn.ws.close(code=WSCloseCode.GOING_AWAY, message=b"dropped")

    # ------------------------------------------------------------------ HTTP handlers

    async def _handle_api(self, request: web.Request) -> web.StreamResponse:
        method = request.match_info["method"]
        try:
            params = await _read_params(request)
        except ValueError:
            params = {"_invalid_body": True}
        token = _bearer(request.headers.get("Authorization"))
        body_token = params.pop("token", None)
        if token is None and isinstance(body_token, str) and body_token:
            token = body_token
        call = ApiCall(
            method=method,
            params=params,
            token=token,
            http_method=request.method,
            time=time.time(),
        )
        self.calls.append(call)
        held = self._holds.get(method)
        if held is not None:
            await self._notify()
            await held.wait()
        try:
            if params.get("_invalid_body") is True:
                raise _SlackError("invalid_json")
            result = self._dispatch(method, params, token)
            call.response = {"ok": True, **result}
            response = web.json_response(call.response)
        except _SlackError as err:
            call.status = err.status
            call.response = {"ok": False, "error": err.error, **err.extra}
            response = web.json_response(call.response, status=err.status, headers=err.headers)
        await self._notify()
        return response

    def _dispatch(self, method: str, params: JSONDict, token: str | None) -> JSONDict:
        entry = self._methods.get(method)
        if entry is None:
            raise _SlackError("unknown_method")
        kind, handler = entry
        self._check_token(kind, token)
        self._check_injected(method)
        self._check_rate_limit(method)
        return handler(params)

    def _check_token(self, kind: str, token: str | None) -> None:
        if not token:
            raise _SlackError("not_authed")
        if token not in (self.bot_token, self.app_token):
            raise _SlackError("invalid_auth")
        expected = self.app_token if kind == "app" else self.bot_token
        if token != expected:
            raise _SlackError("not_allowed_token_type")

    def _check_injected(self, method: str) -> None:
        queue = self._injected.get(method)
        if not queue:
            return
        injected = queue[0]
        injected.remaining -= 1
        if injected.remaining <= 0:
            queue.pop(0)
        if injected.error == "ratelimited":
            self.rate_limited += 1
        raise _SlackError(injected.error, status=injected.status, headers=injected.headers)

    def _check_rate_limit(self, method: str) -> None:
        limit = self.rate_limits.get(method)
        if limit is None:
            return
        max_calls, window = limit
        now = time.monotonic()
        hits = self._hits.setdefault((self.team_id, method), deque())
        while hits and now - hits[0] >= window:
            hits.popleft()
        if len(hits) >= max_calls:
            self.rate_limited += 1
            if self.retry_after is not None:
                retry = self.retry_after
            else:
                retry = max(1, math.ceil(hits[0] + window - now))
            raise _SlackError("ratelimited", status=429, headers={"Retry-After": str(retry)})
        hits.append(now)

    async def _handle_socket(self, request: web.Request) -> web.StreamResponse:
        ticket = request.query.get("ticket", "")
        if ticket not in self._tickets:
            return web.json_response({"ok": False, "error": "invalid_ticket"}, status=401)
        ws = web.WebSocketResponse(autoping=True)
        await ws.prepare(request)
        self._conn_seq += 1
        conn = SocketConnection(
            id=self._conn_seq,
            ws=ws,
            ticket=ticket,
            query=dict(request.query),
            opened_at=time.time(),
        )
        self.socket_connections.append(conn)
        hello = {
            "type": "hello",
            "num_connections": len(self.active_sockets),
            "debug_info": {
                "host": "fake-applink",
                "build_number": 1,
                "approximate_connection_time": 18060,
            },
            "connection_info": {"app_id": self.app_id},
        }
        await ws.send_str(json.dumps(hello))
        await self._notify()
        try:
            async for msg in ws:
                if msg.type == WSMsgType.TEXT:
                    conn.received.append(msg.data)
                    self._on_socket_text(msg.data)
                    await self._notify()
        finally:
            conn.closed_at = time.time()
            await self._notify()
        return ws

    def _on_socket_text(self, data: str) -> None:
        try:
            message = json.loads(data)
        except ValueError:
            return
        if not isinstance(message, dict) or "envelope_id" not in message:
            return
        envelope_id = str(message["envelope_id"])
        self.acks[envelope_id] = message
        self._acked_at.setdefault(envelope_id, self.clock())
        fut = self._ack_waiters.get(envelope_id)
        if fut is not None and not fut.done():
            fut.set_result(message)

    async def _handle_file(self, request: web.Request) -> web.StreamResponse:
        team_file = request.match_info["team_file"]
        file_id = team_file.split("-", 1)[-1]
        token = _bearer(request.headers.get("Authorization"))
        stored = self._files.get(file_id)
        authorized = token == self.bot_token
        self.downloads.append(
            Download(
                file_id=file_id,
                path=request.path,
                token=token,
                authorized=authorized and stored is not None,
                time=time.time(),
            )
        )
        await self._notify()
        if not authorized:
            # What Slack does for an unauthenticated url_private fetch: a sign-in page.
            return web.Response(text=SIGN_IN_PAGE, content_type="text/html", charset="utf-8")
        if stored is None:
            return web.Response(status=404, text="file not found")
        data, obj = stored
        headers = {}
        if request.match_info["tail"].startswith("download/"):
            headers["Content-Disposition"] = f'attachment; filename="{obj["name"]}"'
        return web.Response(body=data, content_type=obj["mimetype"], headers=headers)

    async def _handle_response_url(self, request: web.Request) -> web.StreamResponse:
        raw = await request.text()
        try:
            body = json.loads(raw) if raw else {}
        except ValueError:
            body = {"_raw": raw}
        self.responses.append(PostedResponse(url=str(request.url), body=body, time=time.time()))
        await self._notify()
        return web.json_response({"ok": True})

    # ------------------------------------------------------------------ Web API methods

    def _auth_test(self, p: JSONDict) -> JSONDict:
        return {
            "url": f"https://{TEAM_DOMAIN}.slack.com/",
            "team": TEAM_NAME,
            "user": BOT_NAME,
            "team_id": self.team_id,
            "user_id": self.bot_user_id,
            "bot_id": self.bot_id,
            "is_enterprise_install": False,
        }

    def _bot_message(self, channel: str, p: JSONDict) -> StoredMessage:
        ts = self.next_ts()
        msg = StoredMessage(
            channel=channel,
            ts=ts,
            user=self.bot_user_id,
            bot_id=self.bot_id,
            text=_opt_str(p.get("text")),
            thread_ts=_opt_str(p.get("thread_ts")),
            blocks=_opt_list(p.get("blocks")),
            markdown_text=_opt_str(p.get("markdown_text")),
            attachments=_opt_list(p.get("attachments")),
            metadata=p.get("metadata") if isinstance(p.get("metadata"), dict) else None,
        )
        self._messages[(channel, ts)] = msg
        return msg

    def _chat_post_message(self, p: JSONDict) -> JSONDict:
        channel = self._resolve_channel(p.get("channel"))
        if not _has_content(p):
            raise _SlackError("no_text")
        _check_markdown_text(p)
        if len(str(p.get("text") or "")) > self.max_post_chars:
            raise _SlackError("msg_too_long")
        msg = self._bot_message(channel, p)
        return {"channel": channel, "ts": msg.ts, "message": msg.to_api()}

    def _find_message(self, p: JSONDict, ts_key: str = "ts") -> StoredMessage:
        channel = self._resolve_channel(p.get("channel"))
        ts = p.get(ts_key)
        msg = self._messages.get((channel, str(ts)))
        if msg is None or msg.deleted:
            raise _SlackError("message_not_found")
        return msg

    def _chat_update(self, p: JSONDict) -> JSONDict:
        msg = self._find_message(p)
        if not msg.is_bot:
            raise _SlackError("cant_update_message")
        if not _has_content(p):
            raise _SlackError("no_text")
        _check_markdown_text(p)
        text = _opt_str(p.get("text"))
        if text is not None and len(text) > self.max_update_chars:
            raise _SlackError("msg_too_long")
        blocks = _opt_list(p.get("blocks"))
        markdown_text = _opt_str(p.get("markdown_text"))
        msg.updates.append(
            MessageUpdate(
                time=time.time(),
                text=text,
                blocks=blocks,
                markdown_text=markdown_text,
                params=dict(p),
            )
        )
        if text is not None:
            msg.text = text
        if blocks is not None:
            msg.blocks = blocks
        if markdown_text is not None:
            msg.markdown_text = markdown_text
        attachments = _opt_list(p.get("attachments"))
        if attachments is not None:
            msg.attachments = attachments
        if msg.stream is not None:
            # An update replaces what was streamed.
            msg.stream.pieces = [text or markdown_text or ""]
        return {
            "channel": msg.channel,
            "ts": msg.ts,
            "text": msg.final_text,
            "message": msg.to_api(),
        }

    def _chat_delete(self, p: JSONDict) -> JSONDict:
        msg = self._find_message(p)
        if not msg.is_bot:
            raise _SlackError("cant_delete_message")
        msg.deleted = True
        return {"channel": msg.channel, "ts": msg.ts}

    def _chat_post_ephemeral(self, p: JSONDict) -> JSONDict:
        channel = self._resolve_channel(p.get("channel"))
        user = p.get("user")
        if not isinstance(user, str) or user not in self.users:
            raise _SlackError("user_not_found")
        if not _has_content(p):
            raise _SlackError("no_text")
        message_ts = self.next_ts()
        self.ephemerals.append({**p, "channel": channel, "message_ts": message_ts})
        return {"message_ts": message_ts}

    def _chat_start_stream(self, p: JSONDict) -> JSONDict:
        channel = self._resolve_channel(p.get("channel"))
        thread_ts = _opt_str(p.get("thread_ts"))
        if not thread_ts:
            raise _SlackError(
                "invalid_arguments",
                extra={
                    "response_metadata": {"messages": ["[ERROR] missing required field: thread_ts"]}
                },
            )
        if not self.is_dm(channel):
            if not p.get("recipient_team_id"):
                raise _SlackError("missing_recipient_team_id")
            if not p.get("recipient_user_id"):
                raise _SlackError("missing_recipient_user_id")
        msg = self._bot_message(channel, {"thread_ts": thread_ts})
        stream = Stream(
            ts=msg.ts,
            channel=channel,
            thread_ts=thread_ts,
            recipient_user_id=_opt_str(p.get("recipient_user_id")),
            recipient_team_id=_opt_str(p.get("recipient_team_id")),
            started_at=time.time(),
        )
        msg.stream = stream
        self._streams.append(stream)
        self._stream_content(stream, "chat.startStream", p)
        return {"channel": channel, "ts": msg.ts}

    def _live_stream(self, p: JSONDict) -> tuple[StoredMessage, Stream]:
        msg = self._find_message(p)
        if msg.stream is None:
            raise _SlackError("message_not_in_streaming_state")
        if msg.stream.state != "streaming":
            raise _SlackError("message_not_in_streaming_state")
        return msg, msg.stream

    def _chat_append_stream(self, p: JSONDict) -> JSONDict:
        msg, stream = self._live_stream(p)
        self._stream_content(stream, "chat.appendStream", p)
        return {"channel": msg.channel, "ts": msg.ts}

    def _chat_stop_stream(self, p: JSONDict) -> JSONDict:
        msg, stream = self._live_stream(p)
        self._stream_content(stream, "chat.stopStream", p)
        blocks = _opt_list(p.get("blocks"))
        if blocks is not None:
            stream.stop_blocks = blocks
            msg.blocks = blocks
        if isinstance(p.get("metadata"), dict):
            msg.metadata = p["metadata"]
        stream.state = "stopped"
        stream.stopped_at = time.time()
        return {"channel": msg.channel, "ts": msg.ts, "message": msg.to_api()}

    @staticmethod
    def _stream_content(stream: Stream, method: str, p: JSONDict) -> None:
        stream.requests.append((method, dict(p)))
        markdown_text = p.get("markdown_text")
        if isinstance(markdown_text, str) and len(markdown_text) > MAX_MARKDOWN_CHARS:
            raise _SlackError("msg_too_long")
        if isinstance(markdown_text, str) and markdown_text:
            stream.pieces.append(markdown_text)
        chunks = p.get("chunks")
        if chunks is not None and not isinstance(chunks, list):
            raise _SlackError("invalid_chunks")
        for chunk in chunks or []:
            if not isinstance(chunk, dict) or "type" not in chunk:
                raise _SlackError("invalid_chunks")
            stream.chunks.append(chunk)
            if chunk["type"] == "markdown_text":
                stream.pieces.append(str(chunk.get("text", "")))

    def _assistant_thread_args(self, p: JSONDict, *, thread_required: bool = True) -> JSONDict:
        channel_id = self._resolve_channel(p.get("channel_id"))
        if thread_required and not p.get("thread_ts"):
            raise _SlackError("invalid_arguments")
        return {**p, "channel_id": channel_id}

    def _assistant_set_status(self, p: JSONDict) -> JSONDict:
        self.assistant_statuses.append(self._assistant_thread_args(p))
        return {}

    def _assistant_set_prompts(self, p: JSONDict) -> JSONDict:
        args = self._assistant_thread_args(p, thread_required=False)
        if not isinstance(p.get("prompts"), list):
            raise _SlackError("invalid_arguments")
        self.suggested_prompts.append(args)
        return {}

    def _assistant_set_title(self, p: JSONDict) -> JSONDict:
        self.thread_titles.append(self._assistant_thread_args(p))
        return {}

    def _users_info(self, p: JSONDict) -> JSONDict:
        user = self.users.get(str(p.get("user")))
        if user is None:
            raise _SlackError("user_not_found")
        return {"user": user}

    def _conversations_info(self, p: JSONDict) -> JSONDict:
        channel = self._resolve_channel(p.get("channel"))
        return {"channel": self.channels[channel]}

    def _conversations_replies(self, p: JSONDict) -> JSONDict:
        channel = self._resolve_channel(p.get("channel"))
        ts = str(p.get("ts"))
        if (channel, ts) not in self._messages:
            raise _SlackError("thread_not_found")
        thread = [m.to_api() for m in self.messages(channel, ts)]
        if thread and thread[0]["ts"] == ts and len(thread) > 1:
            thread[0]["thread_ts"] = ts
            thread[0]["reply_count"] = len(thread) - 1
            thread[0]["latest_reply"] = thread[-1]["ts"]
        limit = int(p.get("limit") or 1000)
        offset = int(p.get("cursor") or 0)
        page = thread[offset : offset + limit]
        next_cursor = str(offset + limit) if offset + limit < len(thread) else ""
        return {
            "messages": page,
            "has_more": bool(next_cursor),
            "response_metadata": {"next_cursor": next_cursor},
        }

    def _reactions_add(self, p: JSONDict) -> JSONDict:
        msg = self._find_message(p, "timestamp")
        name = str(p.get("name") or "")
        if not name:
            raise _SlackError("invalid_name")
        if name in msg.reactions:
            raise _SlackError("already_reacted")
        msg.reactions.append(name)
        return {}

    def _reactions_remove(self, p: JSONDict) -> JSONDict:
        msg = self._find_message(p, "timestamp")
        name = str(p.get("name") or "")
        if name not in msg.reactions:
            raise _SlackError("no_reaction")
        msg.reactions.remove(name)
        return {}

    def _files_info(self, p: JSONDict) -> JSONDict:
        stored = self._files.get(str(p.get("file")))
        if stored is None:
            raise _SlackError("file_not_found")
        return {"file": dict(stored[1]), "comments": [], "response_metadata": {"next_cursor": ""}}

    def _apps_connections_open(self, p: JSONDict) -> JSONDict:
        ticket = uuid.uuid4().hex
        self._tickets.add(ticket)
        return {"url": f"{self.socket_url}?ticket={ticket}&app_id={self.app_id}"}


# ---------------------------------------------------------------------------
# Internals
# ---------------------------------------------------------------------------


def _format_ts(micros: int) -> str:
    return f"{micros // 1_000_000}.{micros % 1_000_000:06d}"


def _parse_ts(ts: str) -> int:
    seconds, _, frac = ts.partition(".")
    return int(seconds) * 1_000_000 + int((frac or "0").ljust(6, "0")[:6])


def _bearer(header: str | None) -> str | None:
    if header and header.lower().startswith("bearer "):
        return header[7:].strip() or None
    return None


def _opt_str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _opt_list(value: Any) -> list[JSONDict] | None:
    return value if isinstance(value, list) else None


def _has_content(p: JSONDict) -> bool:
    return any(p.get(k) for k in ("text", "blocks", "attachments", "markdown_text"))


def _check_markdown_text(p: JSONDict) -> None:
    """Slack's rules for ``markdown_text``: never with ``text`` or ``blocks``
    (``markdown_text_conflict``), at most 12,000 characters (``msg_too_long``)."""
    markdown_text = p.get("markdown_text")
    if markdown_text is None:
        return
    if p.get("text") is not None or p.get("blocks") is not None:
        raise _SlackError("markdown_text_conflict")
    if len(str(markdown_text)) > MAX_MARKDOWN_CHARS:
        raise _SlackError("msg_too_long")


async def _read_params(request: web.Request) -> JSONDict:
    """Merge query string and body (JSON, form or multipart) into one dict."""
    params: JSONDict = dict(request.query)
    ctype = request.content_type
    if request.can_read_body:
        if ctype == "application/json":
            raw = await request.text()
            if raw.strip():
                data = json.loads(raw)
                if isinstance(data, dict):
                    params.update(data)
        elif ctype in ("application/x-www-form-urlencoded", "multipart/form-data"):
            form = await request.post()
            for key, value in form.items():
                if isinstance(value, str):
                    params[key] = value
                elif isinstance(value, (bytes, bytearray)):
                    params[key] = bytes(value)
                else:  # uploaded file part
                    params[key] = {"filename": value.filename, "content": value.file.read()}
        else:
            raw = await request.text()
            if raw.strip().startswith("{"):
                params.update(json.loads(raw))
            elif raw:
                params.update(dict(parse_qsl(raw)))
    for key in _JSON_STRING_PARAMS:
        text = params.get(key)
        if isinstance(text, str) and text[:1] in ("[", "{"):
            with contextlib.suppress(ValueError):
                params[key] = json.loads(text)
    return params


__all__ = [
    "ADMIN_USER_ID",
    "APP_ID",
    "BOT_ID",
    "BOT_USER_ID",
    "DEFAULT_APP_TOKEN",
    "DEFAULT_BOT_TOKEN",
    "DEFAULT_SIGNING_SECRET",
    "OWNER_USER_ID",
    "PLAIN_USER_ID",
    "SIGN_IN_PAGE",
    "TEAM_ID",
    "ApiCall",
    "Download",
    "Envelope",
    "FakeSlack",
    "MessageUpdate",
    "PostedResponse",
    "SocketConnection",
    "StoredMessage",
    "Stream",
    "event_callback_body",
    "event_callback_payload",
    "signed_headers",
    "slash_command_body",
    "slash_command_payload",
]
