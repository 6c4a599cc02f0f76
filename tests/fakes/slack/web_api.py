"""The Web API methods the bot calls, as a table: method name → (token kind, handler), and
how a request's parameters and token are read."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl

from aiohttp import web

from tests.fakes.slack.records import JSONDict, SlackError, StoredMessage, Stream
from tests.fakes.slack.workspace import (
    BOT_NAME,
    MAX_MARKDOWN_CHARS,
    MAX_POST_CHARS,
    MAX_UPDATE_CHARS,
    TEAM_DOMAIN,
    TEAM_NAME,
)

if TYPE_CHECKING:
    from tests.fakes.slack.server import FakeSlack

Handler = Callable[["FakeSlack", JSONDict], JSONDict]


# ---------------------------------------------------------------------- Slack's rules


def _opt_str(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _require_content(p: JSONDict) -> None:
    if not any(p.get(k) for k in ("text", "blocks", "attachments", "markdown_text")):
        raise SlackError("no_text")


def _check_content(p: JSONDict, max_text: int) -> None:
    """Something to show (``no_text``); ``markdown_text`` never with ``text`` or ``blocks``
    (``markdown_text_conflict``); ``msg_too_long`` past the text and markdown limits."""
    _require_content(p)
    if p.get("markdown_text") is not None:
        if p.get("text") is not None or p.get("blocks") is not None:
            raise SlackError("markdown_text_conflict")
        if len(str(p["markdown_text"])) > MAX_MARKDOWN_CHARS:
            raise SlackError("msg_too_long")
    if len(str(p.get("text") or "")) > max_text:
        raise SlackError("msg_too_long")


def _bot_message(fake: FakeSlack, channel: str, p: JSONDict) -> StoredMessage:
    return fake.store(StoredMessage(
        channel,
        fake.next_ts(),
        fake.bot_user_id,
        text=_opt_str(p.get("text")),
        thread_ts=_opt_str(p.get("thread_ts")),
        bot_id=fake.bot_id,
        markdown_text=_opt_str(p.get("markdown_text")),
    ))


def _bots_message(fake: FakeSlack, p: JSONDict) -> StoredMessage:
    msg = fake.stored(fake.channel(p.get("channel")), p.get("ts"))
    if not msg.is_bot:
        raise SlackError("cant_update_message")
    return msg


# ---------------------------------------------------------------------- methods


def auth_test(fake: FakeSlack, p: JSONDict) -> JSONDict:
    return {
        "url": f"https://{TEAM_DOMAIN}.slack.com/",
        "team": TEAM_NAME,
        "user": BOT_NAME,
        "team_id": fake.team_id,
        "user_id": fake.bot_user_id,
        "bot_id": fake.bot_id,
        "is_enterprise_install": False,
    }


def apps_connections_open(fake: FakeSlack, p: JSONDict) -> JSONDict:
    ticket = fake.socket_mode.new_ticket()
    return {"url": f"{fake.socket_url}?ticket={ticket}&app_id={fake.app_id}"}


def chat_post_message(fake: FakeSlack, p: JSONDict) -> JSONDict:
    channel = fake.channel(p.get("channel"))
    _check_content(p, MAX_POST_CHARS)
    msg = _bot_message(fake, channel, p)
    return {"channel": channel, "ts": msg.ts, "message": msg.to_api()}


def chat_update(fake: FakeSlack, p: JSONDict) -> JSONDict:
    """Replace a bot message's text (an update of a stream replaces what was streamed)."""
    msg = _bots_message(fake, p)
    _check_content(p, MAX_UPDATE_CHARS)
    text, markdown_text = _opt_str(p.get("text")), _opt_str(p.get("markdown_text"))
    msg.text = text if text is not None else msg.text
    msg.markdown_text = markdown_text if markdown_text is not None else msg.markdown_text
    if msg.stream is not None:
        msg.stream.pieces = [text or markdown_text or ""]
    return {"channel": msg.channel, "ts": msg.ts, "text": msg.final_text, "message": msg.to_api()}


def chat_post_ephemeral(fake: FakeSlack, p: JSONDict) -> JSONDict:
    channel = fake.channel(p.get("channel"))
    if p.get("user") not in fake.users:
        raise SlackError("user_not_found")
    _require_content(p)
    message_ts = fake.next_ts()
    fake.ephemerals.append({**p, "channel": channel, "message_ts": message_ts})
    return {"message_ts": message_ts}


def _stream_content(stream: Stream, method: str, p: JSONDict) -> None:
    stream.requests.append((method, dict(p)))
    markdown_text = p.get("markdown_text")
    if isinstance(markdown_text, str) and len(markdown_text) > MAX_MARKDOWN_CHARS:
        raise SlackError("msg_too_long")
    if isinstance(markdown_text, str) and markdown_text:
        stream.pieces.append(markdown_text)


def chat_start_stream(fake: FakeSlack, p: JSONDict) -> JSONDict:
    """A streamed reply in a thread; outside DMs Slack needs to know who it is for."""
    channel = fake.channel(p.get("channel"))
    thread_ts = _opt_str(p.get("thread_ts"))
    if not thread_ts:
        message = "[ERROR] missing required field: thread_ts"
        raise SlackError("invalid_arguments", extra={"response_metadata": {"messages": [message]}})
    if not fake.is_dm(channel):
        if not p.get("recipient_team_id"):
            raise SlackError("missing_recipient_team_id")
        if not p.get("recipient_user_id"):
            raise SlackError("missing_recipient_user_id")
    msg = _bot_message(fake, channel, {"thread_ts": thread_ts})
    stream = fake.start_stream(msg, _opt_str(p.get("recipient_user_id")),
                               _opt_str(p.get("recipient_team_id")))
    _stream_content(stream, "chat.startStream", p)
    return {"channel": channel, "ts": msg.ts}


def _live_stream(fake: FakeSlack, p: JSONDict) -> tuple[StoredMessage, Stream]:
    msg = fake.stored(fake.channel(p.get("channel")), p.get("ts"))
    if msg.stream is None or msg.stream.state != "streaming":
        raise SlackError("message_not_in_streaming_state")
    return msg, msg.stream


def chat_append_stream(fake: FakeSlack, p: JSONDict) -> JSONDict:
    msg, stream = _live_stream(fake, p)
    _stream_content(stream, "chat.appendStream", p)
    return {"channel": msg.channel, "ts": msg.ts}


def chat_stop_stream(fake: FakeSlack, p: JSONDict) -> JSONDict:
    msg, stream = _live_stream(fake, p)
    _stream_content(stream, "chat.stopStream", p)
    stream.state = "stopped"
    return {"channel": msg.channel, "ts": msg.ts, "message": msg.to_api()}


def assistant_threads_set_status(fake: FakeSlack, p: JSONDict) -> JSONDict:
    channel_id = fake.channel(p.get("channel_id"))
    if not p.get("thread_ts"):
        raise SlackError("invalid_arguments")
    fake.assistant_statuses.append({**p, "channel_id": channel_id})
    return {}


def assistant_threads_set_suggested_prompts(fake: FakeSlack, p: JSONDict) -> JSONDict:
    channel_id = fake.channel(p.get("channel_id"))
    if not isinstance(p.get("prompts"), list):
        raise SlackError("invalid_arguments")
    fake.suggested_prompts.append({**p, "channel_id": channel_id})
    return {}


def users_info(fake: FakeSlack, p: JSONDict) -> JSONDict:
    user = fake.users.get(str(p.get("user")))
    if user is None:
        raise SlackError("user_not_found")
    return {"user": user}


def files_info(fake: FakeSlack, p: JSONDict) -> JSONDict:
    stored = fake.file(str(p.get("file")))
    if stored is None:
        raise SlackError("file_not_found")
    return {"file": dict(stored[1]), "comments": [], "response_metadata": {"next_cursor": ""}}


METHODS: dict[str, tuple[str, Handler]] = {
    "auth.test": ("bot", auth_test),
    "apps.connections.open": ("app", apps_connections_open),
    "chat.postMessage": ("bot", chat_post_message),
    "chat.update": ("bot", chat_update),
    "chat.postEphemeral": ("bot", chat_post_ephemeral),
    "chat.startStream": ("bot", chat_start_stream),
    "chat.appendStream": ("bot", chat_append_stream),
    "chat.stopStream": ("bot", chat_stop_stream),
    "assistant.threads.setStatus": ("bot", assistant_threads_set_status),
    "assistant.threads.setSuggestedPrompts": ("bot", assistant_threads_set_suggested_prompts),
    "users.info": ("bot", users_info),
    "files.info": ("bot", files_info),
}


# ---------------------------------------------------------------------- requests


def bearer(header: str | None) -> str | None:
    if header and header.lower().startswith("bearer "):
        return header[7:].strip() or None
    return None


async def read_params(request: web.Request) -> JSONDict:
    """Query string and body (JSON or form) in one dict; form fields holding JSON (blocks,
    prompts) are decoded. ``ValueError`` for a body that is not valid JSON."""
    params: JSONDict = dict(request.query)
    if request.content_type == "application/json":
        raw = await request.text()
        if raw.strip():
            data = json.loads(raw)
            if isinstance(data, dict):
                params.update(data)
    elif request.can_read_body:
        params.update(parse_qsl(await request.text()))
    for key in ("blocks", "prompts"):
        text = params.get(key)
        if isinstance(text, str) and text[:1] in ("[", "{"):
            with contextlib.suppress(ValueError):
                params[key] = json.loads(text)
    return params
