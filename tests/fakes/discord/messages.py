"""Messages as Discord keeps them: stored with their mentions and reply reference, posted and
edited by the bot from a REST body, with Discord's checks (length, empty, unknown message)."""

from __future__ import annotations

import copy
import re
import time
from collections.abc import Sequence
from typing import Any

from tests.fakes.discord.models import (
    EPHEMERAL,
    JSON,
    LOADING,
    MAX_CONTENT,
    THREAD_TYPES,
    Edit,
    FakeUser,
    Interaction,
    now_iso,
)
from tests.fakes.discord.state import DiscordState
from tests.fakes.discord.wire import ApiError, form_error


def _mentions(state: DiscordState, content: str) -> tuple[list[JSON], list[str]]:
    users: list[JSON] = []
    for m in re.finditer(r"<@!?(\d+)>", content):
        uid = int(m.group(1))
        if uid in state.users and all(int(u["id"]) != uid for u in users):
            users.append(state.users[uid].payload())
    roles = [m for m in re.findall(r"<@&(\d+)>", content) if int(m) in state.roles]
    return users, roles


def store(
    state: DiscordState,
    channel_id: int,
    author: FakeUser,
    content: str,
    *,
    attachments: Sequence[JSON] = (),
    components: Sequence[JSON] = (),
    reference: JSON | None = None,
    flags: int = 0,
    msg_type: int = 0,
    extra_mentions: Sequence[FakeUser] = (),
    interaction_metadata: JSON | None = None,
) -> JSON:
    """Store a message (an ephemeral one is kept out of the channel's list)."""
    ch = state.channel(channel_id)
    mid = state.next_id()
    mentions, mention_roles = _mentions(state, content)
    for u in extra_mentions:
        if all(int(m["id"]) != u.id for m in mentions):
            mentions.append(u.payload())
    is_reply = reference is not None and reference["type"] == 0 and msg_type == 0
    msg: JSON = {
        "id": str(mid),
        "channel_id": str(channel_id),
        "type": 19 if is_reply else msg_type,
        "content": content,
        "author": author.payload(),
        "timestamp": now_iso(),
        "edited_timestamp": None,
        "tts": False,
        "mention_everyone": False,
        "mentions": mentions,
        "mention_roles": mention_roles,
        "attachments": list(attachments),
        "embeds": [],
        "components": list(components),
        "reactions": [],
        "pinned": False,
        "flags": flags,
    }
    if reference is not None:
        msg["message_reference"] = reference
    if interaction_metadata is not None:
        msg["webhook_id"] = msg["application_id"] = str(state.application_id)
        msg["interaction_metadata"] = interaction_metadata
    state.messages[mid] = msg
    if not flags & EPHEMERAL:
        state.channel_messages.setdefault(channel_id, []).append(mid)
        ch["last_message_id"] = str(mid)
        if ch["type"] in THREAD_TYPES:
            ch["message_count"] = ch.get("message_count", 0) + 1
            ch["total_message_sent"] = ch.get("total_message_sent", 0) + 1
            msg["position"] = ch["total_message_sent"] - 1
    state.notify()
    return msg


def reference(state: DiscordState, ref: Any) -> JSON | None:
    """A ``message_reference`` (0 reply, 1 forward) to a stored message, as Discord keeps it."""
    if not isinstance(ref, dict) or ref.get("message_id") is None:
        return None
    mid = int(ref["message_id"])
    target = state.messages.get(mid)
    if target is None or target["flags"] & EPHEMERAL:
        if ref.get("fail_if_not_exists") is False:
            return None
        raise form_error("message_reference", "REPLIES_UNKNOWN_MESSAGE", "Unknown message")
    out: JSON = {
        "type": int(ref.get("type") or 0),
        "message_id": str(mid),
        "channel_id": target["channel_id"],
    }
    gid = state.channel_guild_id(int(target["channel_id"]))
    if gid is not None:
        out["guild_id"] = str(gid)
    return out


def post(
    state: DiscordState,
    channel_id: int,
    body: JSON,
    *,
    interaction: Interaction | None = None,
    loading: bool = False,
) -> JSON:
    """A message the bot posts with a REST ``body`` (an interaction answer if given)."""
    content = body.get("content") or ""
    components = body.get("components") or []
    _check_content(content)
    if not (loading or content or components):
        raise ApiError(400, "Cannot send an empty message", 50006)
    flags = int(body.get("flags") or 0)
    if interaction is None:
        flags &= ~EPHEMERAL
    return store(
        state,
        channel_id,
        state.bot_user,
        content,
        components=components,
        reference=reference(state, body.get("message_reference")),
        flags=flags | (LOADING if loading else 0),
        msg_type=20 if interaction is not None and interaction.type == 2 else 0,
        interaction_metadata=_interaction_metadata(state, interaction) if interaction else None,
    )


def edit(state: DiscordState, msg: JSON, body: JSON) -> None:
    """Apply a REST edit ``body`` to a stored message and record it."""
    content = (body["content"] if "content" in body else msg["content"]) or ""
    components = body["components"] if "components" in body else msg["components"]
    _check_content(content)
    if not (content or components or msg["attachments"]):
        raise ApiError(400, "Cannot send an empty message", 50006)
    msg["content"] = content
    msg["components"] = list(components or [])
    msg["flags"] &= ~LOADING
    msg["mentions"], msg["mention_roles"] = _mentions(state, content)
    msg["edited_timestamp"] = now_iso()
    state.edits.setdefault(int(msg["id"]), []).append(
        Edit(int(msg["id"]), content, time.monotonic(), copy.deepcopy(body))
    )
    state.notify()


def revise(state: DiscordState, msg: JSON, content: str) -> None:
    """A person's edit of their own message's text, as the Discord client makes it: new
    mentions, a new ``edited_timestamp``; files and the reply reference (with its ping)
    stay."""
    _check_content(content)
    if not (content or msg["attachments"]):
        raise ValueError("Discord's client does not save an edit that empties a message")
    mentions, msg["mention_roles"] = _mentions(state, content)
    ref = msg.get("message_reference")
    replied = state.messages.get(int(ref["message_id"])) if ref and msg["type"] == 19 else None
    ping = replied["author"] if replied is not None else None
    if ping is not None and all(m["id"] != ping["id"] for m in mentions):
        mentions.append(copy.deepcopy(ping))
    msg["content"], msg["mentions"] = content, mentions
    msg["edited_timestamp"] = now_iso()
    state.notify()


def message_in(state: DiscordState, channel_id: int, message_id: int) -> JSON:
    msg = state.messages.get(message_id)
    if msg is None or int(msg["channel_id"]) != channel_id or msg["flags"] & EPHEMERAL:
        raise ApiError(404, "Unknown Message", 10008)
    return msg


def _check_content(content: str) -> None:
    if len(content) > MAX_CONTENT:
        raise form_error(
            "content", "BASE_TYPE_MAX_LENGTH", f"Must be {MAX_CONTENT} or fewer in length."
        )


def _interaction_metadata(state: DiscordState, rec: Interaction) -> JSON:
    meta: JSON = {
        "id": str(rec.id),
        "type": rec.type,
        "user": rec.user.payload(),
        "authorizing_integration_owners": {
            "0": str(state.channel_guild_id(rec.channel_id) or rec.user.id)
        },
    }
    if rec.message_id is not None:
        meta["interacted_message_id"] = str(rec.message_id)
    return meta
