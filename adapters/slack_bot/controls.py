"""The buttons on the bot's answers, as Block Kit, and the clicks on them read into plain values.

Stop shows while an answer is written; Regenerate, 👍 and 👎 once it is finished. Each
button's `value` carries the conversation key, so any process of the bot, one started after
the button was drawn included, knows what a click means: nothing about a button is kept in
memory. A click counts only on a message in the conversation its value names.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any

from adapters.slack_bot.events import PLATFORM
from bot import ConversationKey

KEY_VALUE = re.compile(r"slack:(?P<team>[A-Z0-9]{1,32}):(?P<channel>[A-Z0-9]{1,32}):"
                       r"(?P<thread>[0-9]{1,12}\.[0-9]{1,9})")
"""A button's value: `slack:<team>:<channel>:<thread ts>` (`str` of the conversation key)."""


class Action(Enum):
    """What a button does; its value is the button's `action_id`."""

    STOP = "gemini:stop"
    REGENERATE = "gemini:regenerate"
    RATE_UP = "gemini:rate:up"
    RATE_DOWN = "gemini:rate:down"


RATINGS = {Action.RATE_UP: 1, Action.RATE_DOWN: -1}
STOP_FALLBACK = "Writing the answer… (Stop ends it)"
"""The Stop message's text where blocks cannot show (notifications)."""


@dataclass(frozen=True, slots=True)
class Click:
    """A person pressed one of the bot's buttons on message `message_ts` in `key`."""

    action: Action
    key: ConversationKey
    user: str
    user_team: str
    message_ts: str


def _button(action: Action, label: str, key: ConversationKey) -> dict[str, Any]:
    return {"type": "button", "action_id": action.value, "value": str(key),
            "text": {"type": "plain_text", "text": label, "emoji": True}}


def stop_actions(key: ConversationKey) -> dict[str, Any]:
    """The actions block of a message being written: its Stop button."""
    return {"type": "actions", "elements": [_button(Action.STOP, "⏹️ Stop", key)]}


def answer_actions(key: ConversationKey) -> dict[str, Any]:
    """The actions block of a finished answer: Regenerate, 👍 and 👎."""
    return {"type": "actions", "elements": [
        _button(Action.REGENERATE, "🔁 Regenerate", key),
        _button(Action.RATE_UP, "👍", key),
        _button(Action.RATE_DOWN, "👎", key),
    ]}


def text_blocks(text: str, actions: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """A message's blocks: `text` (standard Markdown, already `quiet`) as a markdown block,
    then `actions` if given."""
    blocks = [{"type": "markdown", "text": text}] if text.strip() else []
    return blocks + ([actions] if actions is not None else [])


def key_of(value: Any) -> ConversationKey | None:
    """The conversation a button's value names; None if it is not one of ours."""
    match = KEY_VALUE.fullmatch(value) if isinstance(value, str) else None
    if match is None:
        return None
    return ConversationKey(PLATFORM, match["team"], match["channel"], match["thread"])


def parse_click(body: Mapping[str, Any]) -> Click | None:
    """The click in a `block_actions` payload; None unless it is one of the bot's buttons on
    a message in the very conversation the button names."""
    actions = body.get("actions")
    action = actions[0] if isinstance(actions, list) and actions else None
    if body.get("type") != "block_actions" or not isinstance(action, Mapping):
        return None
    try:
        kind = Action(action.get("action_id"))
    except ValueError:
        return None
    key = key_of(action.get("value"))
    user = _mapping(body.get("user"))
    container = _mapping(body.get("container"))
    message = _mapping(body.get("message"))
    channel = _text(container.get("channel_id")) or _text(_mapping(body.get("channel")).get("id"))
    message_ts = _text(container.get("message_ts")) or _text(message.get("ts"))
    thread = _text(message.get("thread_ts")) or _text(container.get("thread_ts")) or message_ts
    user_id = _text(user.get("id"))
    if key is None or not user_id or not message_ts or (channel, thread) != (key.channel,
                                                                              key.thread):
        return None
    user_team = _text(user.get("team_id")) or _text(_mapping(body.get("team")).get("id"))
    return Click(kind, key, user_id, user_team or key.workspace, message_ts)


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""
