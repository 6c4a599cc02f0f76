"""Reading Slack payloads (events, edits, slash commands) into plain values; pure functions only."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

from bot import ConversationKey

PLATFORM = "slack"
MESSAGES_TAB = "messages"
"""The App Home tab that is a person's direct message with the bot."""

ANSWERED_SUBTYPES = (None, "file_share", "thread_broadcast")
"""Message subtypes written by a person; edits, deletions, joins and bot posts are noise."""
EDITED = "message_changed"
"""The subtype of the `message` event that tells of an edit (`parse_edit`)."""

SLACK_MARKUP = re.compile(r"<([^<>]*)>")


@dataclass(frozen=True, slots=True)
class SlackMessage:
    """A person's message that may be for the bot: where it is, who wrote it, what it says.

    `text` has the bot's mention removed and Slack's markup turned into plain text.
    """

    team_id: str
    user_team: str
    channel: str
    user: str
    text: str
    ts: str
    thread_ts: str | None
    is_dm: bool
    mentions_bot: bool
    files: tuple[Mapping[str, Any], ...]
    event_id: str | None

    @property
    def reply_thread(self) -> str:
        """The thread the answer goes to: the message's thread, or (a top-level message, in a
        channel or a DM) the thread the answer starts on it."""
        return self.thread_ts or self.ts

    @property
    def key(self) -> ConversationKey:
        """The conversation: the thread."""
        return ConversationKey(PLATFORM, self.team_id, self.channel, self.reply_thread)


@dataclass(frozen=True, slots=True)
class HomeOpened:
    """A person opened a tab of the bot's App Home (the Messages tab is their DM with it)."""

    team_id: str
    channel: str
    user: str
    tab: str
    event_id: str | None

    @property
    def greeting_id(self) -> str:
        """The id under which greeting this person is remembered, like an event's."""
        return f"greeting:{self.team_id}:{self.user}"


@dataclass(frozen=True, slots=True)
class SlashCommand:
    """A `/gemini` invocation: who, where, and the text after the command."""

    team_id: str
    channel: str
    user: str
    text: str

    @property
    def key(self) -> ConversationKey:
        """The channel it applies to (slash commands cannot name a thread)."""
        return ConversationKey(PLATFORM, self.team_id, self.channel, "")


def is_dm_channel(channel: str) -> bool:
    """Whether a channel ID is a direct message (Slack gives DMs IDs starting with D)."""
    return channel.startswith("D")


def plain_text(text: str, bot_user_id: str) -> str:
    """Slack message text as a person would read it, without the bot's own mention.

    `<@U1|ann>` becomes `@ann`, `<#C1|general>` `#general`, `<!here>` `@here`, a date its
    fallback text, a link `<https://x|label>` `label (https://x)`; `&amp;`, `&lt;` and
    `&gt;` are unescaped.
    """

    def replace(match: re.Match[str]) -> str:
        target, _, label = match.group(1).partition("|")
        if target.startswith("@"):
            if target[1:] == bot_user_id:
                return ""
            return "@" + (label or target[1:])
        if target.startswith("#"):
            return "#" + (label or target[1:])
        if target.startswith("!"):
            command = target[1:].split("^", 1)[0]
            return label if command == "date" else "@" + (label or command).lstrip("@")
        if label and label != target:
            return f"{label} ({target})"
        return target

    return unescape(SLACK_MARKUP.sub(replace, text))


def unescape(text: str) -> str:
    """Undo Slack's escaping of &, < and > (the only characters it escapes)."""
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def mentions(text: str, user_id: str) -> bool:
    """Whether Slack message text mentions `user_id`."""
    return f"<@{user_id}>" in text or f"<@{user_id}|" in text


def parse_message(body: Mapping[str, Any], bot_user_id: str) -> SlackMessage | None:
    """The message in an `app_mention` or `message` event; None for bots, edits and noise."""
    event = body.get("event")
    if not isinstance(event, Mapping) or event.get("type") not in ("message", "app_mention"):
        return None
    if event.get("subtype") not in ANSWERED_SUBTYPES or event.get("bot_id") \
            or event.get("hidden"):
        return None
    user, channel, ts = (_text(event.get(name)) for name in ("user", "channel", "ts"))
    if not (user and channel and ts) or user == bot_user_id:
        return None
    team_id = _text(body.get("team_id")) or _text(event.get("team"))
    raw = _text(event.get("text"))
    files = event.get("files")
    return SlackMessage(
        team_id=team_id,
        user_team=_text(event.get("user_team")) or _text(event.get("team")) or team_id,
        channel=channel,
        user=user,
        text=plain_text(raw, bot_user_id).strip(),
        ts=ts,
        thread_ts=_text(event.get("thread_ts")) or None,
        is_dm=event.get("channel_type") == "im" or is_dm_channel(channel),
        mentions_bot=mentions(raw, bot_user_id),
        files=tuple(f for f in files if isinstance(f, Mapping)) if isinstance(files, list) else (),
        event_id=_text(body.get("event_id")) or None,
    )


def parse_edit(body: Mapping[str, Any], bot_user_id: str) -> SlackMessage | None:
    """The new version of a person's message in a `message_changed` event; None for a bot's
    edit (the bot's own edits of its answers included), for an edit that changed neither
    text nor files (Slack adding a link preview, or a thread's reply count), and for noise.

    The message is read as `parse_message` reads a new one; its event id is the event's
    (unique per edit, kept by Slack's retries).
    """
    event = body.get("event")
    if not isinstance(event, Mapping) or event.get("type") != "message" \
            or event.get("subtype") != EDITED:
        return None
    new, old = event.get("message"), event.get("previous_message")
    if not isinstance(new, Mapping) or new.get("subtype") not in ANSWERED_SUBTYPES \
            or new.get("bot_id"):
        return None
    if isinstance(old, Mapping) and (old.get("text"), _file_ids(old)) == (new.get("text"),
                                                                          _file_ids(new)):
        return None
    edited = _mapping(new.get("edited"))
    event_id = _text(body.get("event_id")) or (
        f"edit:{_text(event.get('channel'))}:{_text(new.get('ts'))}:{_text(edited.get('ts'))}")
    message = {**new, "channel": event.get("channel"), "channel_type": event.get("channel_type"),
               "type": "message", "subtype": None}
    return parse_message({**body, "event": message, "event_id": event_id}, bot_user_id)


def parse_home_opened(body: Mapping[str, Any]) -> HomeOpened | None:
    """The visit an `app_home_opened` event reports, if the payload is complete."""
    event = body.get("event")
    if not isinstance(event, Mapping) or event.get("type") != "app_home_opened":
        return None
    channel, user = _text(event.get("channel")), _text(event.get("user"))
    if not channel or not user:
        return None
    view = event.get("view")
    view_team = _text(view.get("team_id")) if isinstance(view, Mapping) else ""
    return HomeOpened(
        team_id=_text(body.get("team_id")) or view_team,
        channel=channel,
        user=user,
        tab=_text(event.get("tab")),
        event_id=_text(body.get("event_id")) or None,
    )


def parse_command(body: Mapping[str, Any]) -> SlashCommand:
    """A slash command's fields; Slack escapes &, < and > in the text as it does in messages."""
    return SlashCommand(
        team_id=_text(body.get("team_id")),
        channel=_text(body.get("channel_id")),
        user=_text(body.get("user_id")),
        text=unescape(_text(body.get("text"))).strip(),
    )


def is_ssl_check(body: str) -> bool:
    """Whether a form body is Slack's `ssl_check` probe (answered without a signature)."""
    return dict(parse_qsl(body)).get("ssl_check") == "1"


def payloadless_form(body: str, content_type: str | None) -> dict[str, str] | None:
    """The fields of a form body (a slash command) that has no `payload` field but says
    "payload" somewhere, which bolt would misread as a click's form; None for any other."""
    if "payload" not in body or _is_json(body, content_type):
        return None
    fields = dict(parse_qsl(body, keep_blank_values=True))
    return None if "payload" in fields else fields


def _is_json(body: str, content_type: str | None) -> bool:
    """Whether bolt reads `body` as JSON (by its content type, or its first character)."""
    return (content_type or "").split(";")[0].strip().lower() == "application/json" \
        or body.startswith("{")


def request_problem(body: str, content_type: str | None) -> str | None:
    """Why an HTTP request body cannot be a Slack event, command or action; None if it can.

    Read as bolt reads it: JSON when the content type says so or it starts with `{`, else a
    form that carries a slash command, an action's JSON `payload` or Slack's `ssl_check`.
    The fields bolt reaches into (`event`, `authorizations`) must have the right shape.
    """
    if _is_json(body, content_type):
        text, what = body, "the body"
    else:
        fields = dict(parse_qsl(body, keep_blank_values=True))
        if "payload" not in fields:
            if "command" in fields or fields.get("ssl_check") == "1":
                return None
            return "a form without a command or a payload"
        text, what = fields["payload"], "the payload"
    try:
        payload = json.loads(text)
    except (ValueError, RecursionError):
        return f"{what} is not JSON"
    if not isinstance(payload, dict):
        return f"{what} is not a JSON object"
    if not isinstance(payload.get("event", {}), dict):
        return "its event is not an object"
    authorizations = payload.get("authorizations", [])
    if not isinstance(authorizations, list) or not all(
            isinstance(item, dict) for item in authorizations):
        return "its authorizations are not a list of objects"
    return None


def _file_ids(message: Mapping[str, Any]) -> list[str]:
    files = message.get("files")
    return [_text(f.get("id")) for f in files if isinstance(f, Mapping)] \
        if isinstance(files, list) else []


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""
