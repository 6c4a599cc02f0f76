"""Which Slack messages the bot answers: one answer per mention, threads it knows, every DM."""

from __future__ import annotations

from typing import Any

from adapters.slack_bot.events import SlackMessage, parse_message
from adapters.slack_bot.routing import route
from bot.conversation import ConversationKey
from tests.fakes.slack import BOT_USER_ID, FakeSlack, event_callback_payload

slack = FakeSlack()  # only its event builders: no server is started


class Known:
    """The database's answer to `knows`, for the threads given."""

    def __init__(self, *threads: str) -> None:
        self.threads = set(threads)

    async def knows(self, key: ConversationKey) -> bool:
        return key.thread in self.threads


def message(event: dict[str, Any]) -> SlackMessage:
    parsed = parse_message(event_callback_payload(event, event_id="Ev1"), BOT_USER_ID)
    assert parsed is not None
    return parsed


async def test_a_channel_mention_is_answered_once_from_its_app_mention() -> None:
    mention = message(slack.app_mention(text="hi", channel="C1"))
    assert await route(mention, "app_mention", Known()) == mention.key
    assert await route(mention, "message", Known(mention.ts)) is None


async def test_a_thread_without_a_mention_is_answered_where_the_bot_takes_part() -> None:
    reply = message(slack.message(text="more", channel="C1", thread_ts="1.1"))
    assert await route(reply, "message", Known("1.1")) == reply.key
    assert await route(reply, "message", Known()) is None
    top_level = message(slack.message(text="chatter", channel="C1"))
    assert await route(top_level, "message", Known(top_level.ts)) is None


async def test_every_direct_message_is_answered_from_its_message_event() -> None:
    dm = message(slack.message(text="hi", channel="D1", channel_type="im"))
    assert await route(dm, "message", Known()) == dm.key
    assert await route(dm, "app_mention", Known()) is None
