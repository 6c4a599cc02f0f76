"""Which Slack messages the bot answers, and in which conversation.

- A mention in a channel (its `app_mention` event): answered in that message's thread.
- Any message in a thread the bot already takes part in, without a mention (a message that
  does mention the bot is left to its `app_mention` event, so it gets one answer).
- Every message in a direct message with the bot (DMs come as `message` events; their
  `app_mention` is ignored). As in channels, each thread is a conversation, and a top-level
  message is answered in a thread of its own (Slack's agent messaging experience).
Bots (this one included), edits and deletions never get here: `events.parse_message` drops
them. The decision reads the message and the database only (through `Conversations`).
"""

from __future__ import annotations

from typing import Literal, Protocol

from adapters.slack_bot.events import SlackMessage
from bot import ConversationKey

Trigger = Literal["app_mention", "message"]
"""The event a message came in: Slack sends a mention as both."""


class Conversations(Protocol):
    """What routing asks the database (the core's Service answers it)."""

    async def knows(self, key: ConversationKey) -> bool:
        """Whether the bot has taken part in conversation `key`."""
        ...


async def route(message: SlackMessage, trigger: Trigger, conversations: Conversations
                ) -> ConversationKey | None:
    """The conversation `message` continues if the bot answers it (from this `trigger`), else
    None. Where the answer goes follows from the message itself (`reply_thread`)."""
    if trigger == "app_mention":
        return None if message.is_dm else message.key
    if message.is_dm:
        return message.key
    if message.thread_ts is None or message.mentions_bot:
        return None
    return message.key if await conversations.knows(message.key) else None
