"""The Web API methods the bot calls, as a table: method name → (token kind, handler), each
method's rate-limit tier and the scopes it needs, how a request's parameters and token are
read, and the scopes a token reports."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl

import yaml
from aiohttp import web

import adapters.slack_bot
from tests.fakes.slack.blocks import checked_blocks
from tests.fakes.slack.records import JSONDict, SlackError, StoredMessage, Stream, shown_text
from tests.fakes.slack.workspace import (
    BOT_NAME,
    MAX_MARKDOWN_CHARS,
    MAX_POST_CHARS,
    MAX_SUGGESTED_PROMPTS,
    MAX_UPDATE_CHARS,
    TEAM_DOMAIN,
    TEAM_NAME,
)

if TYPE_CHECKING:
    from tests.fakes.slack.server import FakeSlack

Handler = Callable[["FakeSlack", JSONDict], JSONDict]

MANIFEST = Path(adapters.slack_bot.__file__).with_name("manifest.yml")
APP_TOKEN_SCOPES = ("connections:write",)


# ---------------------------------------------------------------------- Slack's rules


def _opt_str(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _require_content(p: JSONDict) -> None:
    if not any(p.get(k) for k in ("text", "blocks", "attachments", "markdown_text")):
        raise SlackError("no_text")


def _check_content(p: JSONDict, max_text: int) -> list[JSONDict] | None:
    """Something to show (``no_text``); ``markdown_text`` never with ``text`` or ``blocks``
    (``markdown_text_conflict``); ``msg_too_long`` past the text and markdown limits; the
    blocks as stored (``blocks.checked_blocks``), None without."""
    _require_content(p)
    if p.get("markdown_text") is not None:
        if p.get("text") is not None or p.get("blocks") is not None:
            raise SlackError("markdown_text_conflict")
        if len(str(p["markdown_text"])) > MAX_MARKDOWN_CHARS:
            raise SlackError("msg_too_long")
    if len(str(p.get("text") or "")) > max_text:
        raise SlackError("msg_too_long")
    return None if p.get("blocks") is None else checked_blocks(p["blocks"])


def _bot_message(fake: FakeSlack, channel: str, p: JSONDict,
                 blocks: list[JSONDict] | None = None) -> StoredMessage:
    return fake.store(StoredMessage(
        channel,
        fake.next_ts(),
        fake.bot_user_id,
        text=_opt_str(p.get("text")),
        thread_ts=_opt_str(p.get("thread_ts")),
        bot_id=fake.bot_id,
        markdown_text=_opt_str(p.get("markdown_text")),
        blocks=blocks or None,
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
    blocks = _check_content(p, MAX_POST_CHARS)
    msg = _bot_message(fake, channel, p, blocks)
    return {"channel": channel, "ts": msg.ts, "message": msg.to_api()}


def chat_update(fake: FakeSlack, p: JSONDict) -> JSONDict:
    """Replace a bot message's text (an update of a stream replaces what was streamed). A
    message still streaming cannot be updated: it must be stopped (or have expired) first.
    As Slack's docs say, an update without ``blocks`` keeps the message's blocks (buttons
    included); ``blocks`` replaces them, ``[]`` removes them; ``markdown_text`` replaces the
    whole message."""
    msg = _bots_message(fake, p)
    if msg.stream is not None and fake.streaming(msg.stream):
        raise SlackError("cant_update_message")
    blocks = _check_content(p, MAX_UPDATE_CHARS)
    text, markdown_text = _opt_str(p.get("text")), _opt_str(p.get("markdown_text"))
    msg.text = text if text is not None else msg.text
    if markdown_text is not None:
        msg.markdown_text, msg.blocks = markdown_text, None
    if blocks is not None:
        msg.blocks = blocks or None
    if msg.stream is not None:
        msg.stream.pieces = [shown_text(msg.blocks) or markdown_text or text or ""]
    return {"channel": msg.channel, "ts": msg.ts, "text": msg.final_text, "message": msg.to_api()}


def chat_delete(fake: FakeSlack, p: JSONDict) -> JSONDict:
    """Delete one of the bot's messages (``cant_delete_message`` for anyone else's)."""
    channel = fake.channel(p.get("channel"))
    msg = fake.stored(channel, p.get("ts"))
    if not msg.is_bot:
        raise SlackError("cant_delete_message")
    fake.delete(msg)
    return {"channel": channel, "ts": msg.ts}


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


def _no_blocks(p: JSONDict) -> None:
    """chat.startStream and chat.appendStream take text (and append-only chunks), never
    ``blocks``: only chat.stopStream does (docs.slack.dev method pages). The fake refuses
    them rather than drop them silently, so a bot that counts on them fails a test."""
    if p.get("blocks") is not None:
        raise SlackError("invalid_arguments", extra={"response_metadata": {"messages": [
            "[ERROR] unsupported argument: blocks"]}})


def chat_start_stream(fake: FakeSlack, p: JSONDict) -> JSONDict:
    """A streamed reply in a thread; outside DMs Slack needs to know who it is for."""
    _no_blocks(p)
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
    """The streaming message ``p`` names, kept alive by this call; an expired or stopped one
    is ``message_not_in_streaming_state``."""
    msg = fake.stored(fake.channel(p.get("channel")), p.get("ts"))
    if msg.stream is None or not fake.streaming(msg.stream):
        raise SlackError("message_not_in_streaming_state")
    msg.stream.last_active = fake.clock()
    return msg, msg.stream


def chat_append_stream(fake: FakeSlack, p: JSONDict) -> JSONDict:
    _no_blocks(p)
    msg, stream = _live_stream(fake, p)
    _stream_content(stream, "chat.appendStream", p)
    return {"channel": msg.channel, "ts": msg.ts}


def chat_stop_stream(fake: FakeSlack, p: JSONDict) -> JSONDict:
    """End a stream; its ``blocks`` go at the bottom of the finished message."""
    msg, stream = _live_stream(fake, p)
    blocks = None if p.get("blocks") is None else checked_blocks(p["blocks"])
    _stream_content(stream, "chat.stopStream", p)
    stream.state = "stopped"
    msg.blocks = blocks or msg.blocks
    return {"channel": msg.channel, "ts": msg.ts, "message": msg.to_api()}


def assistant_threads_set_status(fake: FakeSlack, p: JSONDict) -> JSONDict:
    channel_id = fake.channel(p.get("channel_id"))
    if not p.get("thread_ts"):
        raise SlackError("invalid_arguments")
    fake.assistant_statuses.append({**p, "channel_id": channel_id})
    return {}


def assistant_threads_set_suggested_prompts(fake: FakeSlack, p: JSONDict) -> JSONDict:
    """Prompts for a thread (assistant apps) or, without ``thread_ts``, for the channel's
    latest message. An agent app's call with ``thread_ts`` answers ok and changes nothing."""
    channel_id = fake.channel(p.get("channel_id"))
    prompts = p.get("prompts")
    if not isinstance(prompts, list) or not 1 <= len(prompts) <= MAX_SUGGESTED_PROMPTS:
        raise SlackError("invalid_arguments")
    if fake.manifest.view == "agent" and p.get("thread_ts"):
        return {}
    fake.suggested_prompts.append({**p, "channel_id": channel_id})
    return {}


def users_info(fake: FakeSlack, p: JSONDict) -> JSONDict:
    user = fake.users.get(str(p.get("user")))
    if user is None:
        raise SlackError("user_not_found")
    return {"user": user}


def _page(messages: list[StoredMessage], p: JSONDict, default: int, most: int) -> JSONDict:
    """One page of ``messages`` from ``cursor`` (an offset), ``limit`` long."""
    try:
        limit = int(p.get("limit") or default)
        start = int(p.get("cursor") or 0)
    except ValueError:
        raise SlackError("invalid_arguments") from None
    limit = max(1, min(limit, most))
    page = messages[start : start + limit]
    more = start + limit < len(messages)
    return {"messages": [m.to_api() for m in page], "has_more": more,
            "response_metadata": {"next_cursor": str(start + limit) if more else ""}}


def conversations_replies(fake: FakeSlack, p: JSONDict) -> JSONDict:
    """A thread: its parent, then its replies, oldest first, a page at a time."""
    channel = fake.channel(p.get("channel"))
    thread = fake.stored(channel, p.get("ts")).ts
    return _page(fake.messages(channel, thread), p, 1000, 1000)


def conversations_history(fake: FakeSlack, p: JSONDict) -> JSONDict:
    """A channel's top-level messages (thread parents included, replies not), newest first."""
    channel = fake.channel(p.get("channel"))
    top = [m for m in fake.messages(channel) if m.thread_ts in (None, m.ts)]
    return _page(list(reversed(top)), p, 100, 999)


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
    "chat.delete": ("bot", chat_delete),
    "chat.startStream": ("bot", chat_start_stream),
    "chat.appendStream": ("bot", chat_append_stream),
    "chat.stopStream": ("bot", chat_stop_stream),
    "assistant.threads.setStatus": ("bot", assistant_threads_set_status),
    "assistant.threads.setSuggestedPrompts": ("bot", assistant_threads_set_suggested_prompts),
    "users.info": ("bot", users_info),
    "files.info": ("bot", files_info),
    "conversations.replies": ("bot", conversations_replies),
    "conversations.history": ("bot", conversations_history),
}


# ---------------------------------------------------------------------- limits and scopes


TIERS: dict[str, int] = {
    "chat.postEphemeral": 4,
    "chat.delete": 3,
    "chat.startStream": 2,
    "chat.appendStream": 4,
    "chat.stopStream": 2,
    "assistant.threads.setStatus": 3,
    "assistant.threads.setSuggestedPrompts": 4,
    "users.info": 4,
    "files.info": 4,
    "conversations.replies": 3,
    "conversations.history": 3,
}
"""Each method's rate-limit tier (docs.slack.dev method pages). chat.update's Tier 3 limit
is ``FakeSlack(update_limit=...)``; chat.postMessage (about one a second per channel),
auth.test and apps.connections.open are not limited here. assistant.threads.setStatus has
"special" limits: Tier 3 stands in for them."""

HISTORY_SCOPES = frozenset({"channels:history", "groups:history", "im:history", "mpim:history"})
SCOPES: dict[str, frozenset[str]] = {
    "chat.postMessage": frozenset({"chat:write"}),
    "chat.update": frozenset({"chat:write"}),
    "chat.postEphemeral": frozenset({"chat:write"}),
    "chat.delete": frozenset({"chat:write"}),
    "chat.startStream": frozenset({"chat:write"}),
    "chat.appendStream": frozenset({"chat:write"}),
    "chat.stopStream": frozenset({"chat:write"}),
    "assistant.threads.setStatus": frozenset({"chat:write", "assistant:write"}),
    "assistant.threads.setSuggestedPrompts": frozenset({"assistant:write"}),
    "users.info": frozenset({"users:read"}),
    "files.info": frozenset({"files:read"}),
    "conversations.replies": HISTORY_SCOPES,
    "conversations.history": HISTORY_SCOPES,
}
"""The bot scopes that allow each method (any one of them): a token without one gets
``missing_scope``."""


def check_scope(fake: FakeSlack, method: str) -> None:
    """``missing_scope`` (with Slack's ``needed`` and ``provided``) when the bot token has
    none of the scopes ``method`` needs."""
    needed = SCOPES.get(method)
    if needed and not needed & fake.bot_scopes:
        raise SlackError("missing_scope", extra={"needed": ",".join(sorted(needed)),
                                                 "provided": ",".join(sorted(fake.bot_scopes))})


def manifest_bot_scopes() -> set[str]:
    """The bot scopes the app's manifest asks for: what installing the app grants."""
    manifest = yaml.safe_load(MANIFEST.read_text())
    return {str(scope) for scope in manifest["oauth_config"]["scopes"]["bot"]}


def scope_headers(fake: FakeSlack, token: str | None) -> dict[str, str]:
    """``x-oauth-scopes``, which Slack sends with every answer: the calling token's scopes,
    comma-separated."""
    if token == fake.bot_token:
        scopes: tuple[str, ...] = tuple(sorted(fake.bot_scopes))
    elif token == fake.app_token:
        scopes = APP_TOKEN_SCOPES
    else:
        return {}
    return {"x-oauth-scopes": ",".join(scopes)}


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
