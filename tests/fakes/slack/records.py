"""What the fake stores and records: messages, streams, and every call, download and ack."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from tests.fakes.slack.workspace import APP_ID, BOT_USER_ID, TEAM_ID

JSONDict = dict[str, Any]


@dataclass
class ApiCall:
    """One Web API request as the fake saw it (``response`` is empty until answered)."""

    method: str
    params: JSONDict
    token: str | None
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
class Stream:
    """A ``chat.startStream`` .. ``chat.stopStream`` streaming message."""

    ts: str
    channel: str
    thread_ts: str
    recipient_user_id: str | None
    recipient_team_id: str | None
    state: str = "streaming"  # "streaming" | "stopped" | "expired"
    pieces: list[str] = field(default_factory=list)  # markdown appended, in order
    requests: list[tuple[str, JSONDict]] = field(default_factory=list)  # (method, params)
    started_at: float = 0.0  # the fake's clock at chat.startStream
    last_active: float = 0.0  # ... at the last call that reached the stream

    @property
    def text(self) -> str:
        """The full markdown text streamed so far (final text once stopped)."""
        return "".join(self.pieces)


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
    markdown_text: str | None = None
    stream: Stream | None = None
    blocks: list[JSONDict] | None = None

    @property
    def final_text(self) -> str:
        """What a reader would see: streamed text, else the text of its blocks, else text,
        else markdown_text (buttons aside)."""
        if self.stream is not None:
            return self.stream.text
        return shown_text(self.blocks) or self.text or self.markdown_text or ""

    @property
    def is_bot(self) -> bool:
        return self.bot_id is not None or self.user == BOT_USER_ID

    def to_api(self) -> JSONDict:
        """The message as Slack returns it (chat.postMessage, chat.update)."""
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
        if self.blocks:
            msg["blocks"] = [dict(block) for block in self.blocks]
        msg["team"] = TEAM_ID
        return msg


def shown_text(blocks: list[JSONDict] | None) -> str:
    """The text a reader sees in `blocks` (markdown blocks, and text objects of the others)."""
    texts = []
    for block in blocks or ():
        text = block.get("text")
        if block.get("type") == "markdown":
            texts.append(str(text))
        elif isinstance(text, dict):
            texts.append(str(text.get("text") or ""))
    return "\n".join(texts)


@dataclass
class Download:
    """One GET on a ``url_private`` / ``url_private_download`` URL."""

    file_id: str
    authorized: bool


@dataclass
class PostedResponse:
    """A POST to a ``response_url`` (bolt's ``respond()``)."""

    url: str
    body: JSONDict


@dataclass
class Envelope:
    """A Socket Mode envelope pushed to the app."""

    envelope_id: str
    type: str
    payload: JSONDict
    accepts_response_payload: bool


@dataclass
class SocketConnection:
    """One accepted Socket Mode websocket connection."""

    id: int
    ws: web.WebSocketResponse
    closed: bool = False

    @property
    def open(self) -> bool:
        return not self.closed and not self.ws.closed


class SlackError(Exception):
    """Raised by Web API handlers to answer ``{"ok": false, "error": ...}``."""

    def __init__(
        self,
        error: str,
        *,
        status: int = 200,
        headers: dict[str, str] | None = None,
        extra: JSONDict | None = None,
    ) -> None:
        super().__init__(error)
        self.error = error
        self.status = status
        self.headers = headers or {}
        self.extra = extra or {}
