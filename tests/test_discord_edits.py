"""Edited questions on Discord, end to end: the real discord.py client against the fake
Discord, a real core on a SQLite file, and the fake model API.

A person who edits the conversation's latest question gets it answered again, in place of the
earlier answer; an edit to an older message, a link preview and a repeated delivery change
nothing.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import discord
import pytest

from adapters.discord_bot.events import conversation_key
from bot.app import open_core
from bot.conversation import ConversationKey, Role
from tests.fakes.discord import FakeDiscord, Perm
from tests.fakes.model_server import FakeModelServer, Reply
from tests.test_discord_adapter import (
    FAST,
    Bot,
    Configured,
    RecordingClient,
    answer_buttons,
    custom_ids,
    sent_messages,
)
from tests.test_discord_buttons import discord_settings, fake, no_error_logs

__all__ = ["discord_settings", "fake", "no_error_logs"]  # fixtures shared with the buttons

JSON = dict[str, Any]


class WatchingClient(RecordingClient):
    """The bot's client, noting each message update it has taken in."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.updates: list[int] = []

    async def on_raw_message_edit(self, update: discord.RawMessageUpdateEvent) -> None:
        await super().on_raw_message_edit(update)
        self.updates.append(update.message_id)


@asynccontextmanager
async def watching(fake: FakeDiscord, settings: Configured) -> AsyncIterator[Bot]:
    async with open_core(settings.core) as core:
        client = WatchingClient(core, settings.discord, FAST)
        async with fake.client_running(client):
            yield Bot(fake, client, core)


@pytest.fixture
async def bot(fake: FakeDiscord, discord_settings: Callable[..., Configured]
              ) -> AsyncIterator[Bot]:
    async with watching(fake, discord_settings()) as started:
        yield started


async def taken_in(bot: Bot, update: JSON) -> None:
    """Wait until the bot has taken in the message update `update` and finished with it."""
    client = bot.client
    assert isinstance(client, WatchingClient)
    await bot.fake.wait_until(lambda: int(update["id"]) in client.updates)
    await bot.client.idle()


async def edited(bot: Bot, message: JSON, content: str, **options: Any) -> JSON:
    """The author edits `message`; returns once the bot has finished with the edit."""
    update = await bot.fake.edit_message(message["id"], content, **options)
    await taken_in(bot, update)
    return update


async def history(bot: Bot, key: ConversationKey) -> list[tuple[Role, str]]:
    return [(t.role, t.text) for t in await bot.core.store.history(key, 100_000, 8)]


async def test_an_edited_latest_question_is_answered_again_in_its_thread(
    bot: Bot, model_api: FakeModelServer
) -> None:
    fake = bot.fake
    question = await bot.say(fake.text_channel_id, fake.plain_user, "what is 2+2?",
                             mentions_bot=True)
    thread = bot.thread_of(question)
    key = conversation_key(fake.guild_id, thread, fake.text_channel_id)

    update = await edited(bot, question, "what is 3+3?", mentions_bot=True)
    await bot.say(thread, fake.plain_user, "and 4+4?")

    assert update["edited_timestamp"] is not None
    assert fake.messages_in(thread) == [
        "echo: what is 2+2?", "echo: what is 3+3?", "and 4+4?", "echo: and 4+4?"]
    assert fake.messages_in(fake.text_channel_id) == [f"{fake.bot_user.mention} what is 3+3?"]
    assert sent_messages(model_api.requests[1].body) == [("user", "what is 3+3?")]
    assert sent_messages(model_api.requests[2].body) == [
        ("user", "what is 3+3?"), ("assistant", "echo: what is 3+3?"), ("user", "and 4+4?")]
    assert await history(bot, key) == [
        (Role.USER, "what is 3+3?"), (Role.ASSISTANT, "echo: what is 3+3?"),
        (Role.USER, "and 4+4?"), (Role.ASSISTANT, "echo: and 4+4?")]
    again = fake.message_payloads_in(thread)[1]["id"]
    assert custom_ids(fake, again) == answer_buttons(key)


async def test_an_edit_of_an_older_question_changes_nothing(
    bot: Bot, model_api: FakeModelServer
) -> None:
    fake = bot.fake
    question = await bot.say(fake.text_channel_id, fake.plain_user, "first",
                             mentions_bot=True)
    thread = bot.thread_of(question)
    follow_up = await bot.say(thread, fake.plain_user, "second")
    key = conversation_key(fake.guild_id, thread, fake.text_channel_id)
    before = await history(bot, key)

    await edited(bot, question, "first, rewritten", mentions_bot=True)

    assert len(model_api.requests) == 2
    assert fake.messages_in(thread) == ["echo: first", "second", "echo: second"]
    assert await history(bot, key) == before

    await edited(bot, follow_up, "second, rewritten")
    assert len(model_api.requests) == 3, "the latest question is still answered again"
    assert await history(bot, key) == [
        (Role.USER, "first"), (Role.ASSISTANT, "echo: first"),
        (Role.USER, "second, rewritten"), (Role.ASSISTANT, "echo: second, rewritten")]


async def test_a_link_preview_and_unchanged_text_are_no_edit(
    bot: Bot, model_api: FakeModelServer
) -> None:
    fake = bot.fake
    question = await bot.say(fake.dm_channel_id, fake.plain_user, "see https://example.com")

    preview = await fake.add_link_preview(question["id"], "https://example.com")
    await taken_in(bot, preview)
    same = await edited(bot, question, "see https://example.com")

    assert preview["edited_timestamp"] is None and same["edited_timestamp"] is not None
    assert len(model_api.requests) == 1
    assert fake.messages_in(fake.dm_channel_id) == [
        "see https://example.com", "echo: see https://example.com"]


async def test_an_edit_in_a_dm_and_an_inline_conversation_is_answered_where_it_lives(
    bot: Bot, model_api: FakeModelServer
) -> None:
    fake = bot.fake
    dm_question = await bot.say(fake.dm_channel_id, fake.plain_user, "hi")
    await edited(bot, dm_question, "hello")
    assert fake.messages_in(fake.dm_channel_id) == ["hello", "echo: hi", "echo: hello"]

    channel = fake.text_channel_id
    await fake.set_overwrite(channel, fake.bot_role_id, deny=Perm.CREATE_PUBLIC_THREADS)
    question = await bot.say(channel, fake.plain_user, "inline", mentions_bot=True)
    await edited(bot, question, "inline, edited", mentions_bot=True)

    answers = fake.message_payloads_in(channel)[1:]
    assert [m["content"] for m in answers] == ["echo: inline", "echo: inline, edited"]
    assert answers[1]["message_reference"]["message_id"] == question["id"]
    assert fake.threads == []


async def test_an_edit_reaches_a_process_that_never_saw_the_message_once(
    fake: FakeDiscord, discord_settings: Callable[..., Configured], model_api: FakeModelServer
) -> None:
    """discord.py's message cache is empty after a restart: the edit is still answered, and
    the same MESSAGE_UPDATE delivered again is answered once."""
    settings = discord_settings()
    model_api.script("direct", Reply(text="Before."), Reply(text="After."))
    async with watching(fake, settings) as bot:
        question = await bot.say(fake.text_channel_id, fake.plain_user, "old words",
                                 mentions_bot=True)
    thread = int(question["id"])

    async with watching(fake, settings) as bot:
        update = await edited(bot, question, "new words", mentions_bot=True)
        await fake.gateway.dispatch("MESSAGE_UPDATE", update)
        client = bot.client
        assert isinstance(client, WatchingClient)
        await fake.wait_until(lambda: client.updates.count(int(question["id"])) == 2)
        await bot.client.idle()
        key = conversation_key(fake.guild_id, thread, fake.text_channel_id)
        assert await history(bot, key) == [(Role.USER, "new words"), (Role.ASSISTANT, "After.")]

    assert len(model_api.requests) == 2
    assert fake.messages_in(thread) == ["Before.", "After."]
