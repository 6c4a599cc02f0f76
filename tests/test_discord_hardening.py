"""The Discord adapter's guards, end to end against the fake Discord: which replies continue a
conversation, which servers and DMs are served, who configures in a DM, and what a person
sees when the database fails before the answer starts."""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest

from bot.config import Settings
from tests.fakes.discord import FakeDiscord, Perm
from tests.fakes.model_server import FakeModelServer
from tests.test_discord_adapter import Configured, configured, running, sent_messages

DATABASE_DOWN = ("⚠️ The database is unavailable right now (it may be locked or full), so "
                 "nothing was changed. Please try again in a moment.")
UNLISTED_GUILD = "4242"


@pytest.fixture(autouse=True)
def no_tracebacks(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """Every failure here is expected and handled: no traceback, and no error line but the
    store's own report of a broken database."""
    caplog.set_level(logging.INFO)
    yield
    bad = [r for r in caplog.get_records("call")
           if r.exc_info or (r.levelno >= logging.ERROR and r.name != "bot.storage.store")]
    assert not bad, [r.getMessage() for r in bad]


@pytest.fixture
async def fake() -> AsyncIterator[FakeDiscord]:
    async with FakeDiscord(edit_limit=5, edit_window=0.5) as server:
        with server.patch_discord():
            yield server


@pytest.fixture
def discord_settings(make_settings: Callable[..., Settings], fake: FakeDiscord
                     ) -> Callable[..., Configured]:
    """Settings with the Discord adapter pointed at the fake; overrides by variable name."""

    def make(**overrides: Any) -> Configured:
        return configured(make_settings, fake, **overrides)

    return make


def sqlite_file(settings: Configured) -> str:
    return settings.core.database_url.split(":///", 1)[1]


# --------------------------------------------------------------------------- replies


async def test_a_forward_of_the_bots_answer_continues_nothing(
    fake: FakeDiscord, discord_settings: Callable[..., Configured], model_api: FakeModelServer
) -> None:
    channel = fake.text_channel_id
    await fake.set_overwrite(channel, fake.bot_role_id, deny=Perm.CREATE_PUBLIC_THREADS)
    async with running(fake, discord_settings()) as bot:
        await bot.say(channel, fake.plain_user, "the secret is 42", mentions_bot=True)
        answer = fake.message_payloads_in(channel)[1]

        forwarded = await bot.say(channel, fake.admin_user, reference_message_id=answer["id"],
                                  forward=True)
        await bot.say(channel, fake.admin_user, "what is the secret?",
                      reference_message_id=forwarded["id"])

    assert forwarded["message_reference"]["type"] == 1
    assert len(model_api.requests) == 1
    assert fake.messages_in(channel)[-2:] == ["", "what is the secret?"]


async def test_a_reply_to_a_message_in_another_channel_starts_afresh(
    fake: FakeDiscord, discord_settings: Callable[..., Configured], model_api: FakeModelServer
) -> None:
    private = fake.text_channel_id
    await fake.set_overwrite(private, fake.bot_role_id, deny=Perm.CREATE_PUBLIC_THREADS)
    elsewhere = await fake.add_channel("elsewhere")
    async with running(fake, discord_settings()) as bot:
        await bot.say(private, fake.admin_user, "the secret is 42", mentions_bot=True)
        answer = fake.message_payloads_in(private)[1]

        quiet = await bot.say(elsewhere, fake.plain_user, "go on",
                              reference_message_id=answer["id"])
        loud = await bot.say(elsewhere, fake.plain_user, "what is the secret?",
                             mentions_bot=True, reference_message_id=answer["id"])

    assert quiet["type"] == 19 and quiet["message_reference"]["channel_id"] == str(private)
    assert len(model_api.requests) == 2
    assert sent_messages(model_api.requests[1].body) == [("user", "what is the secret?")]
    assert fake.messages_in(bot.thread_of(loud)) == ["echo: what is the secret?"]


# --------------------------------------------------------------------------- guilds and DMs


async def test_a_guild_off_the_allow_list_is_ignored_and_dms_follow_their_own_setting(
    fake: FakeDiscord, discord_settings: Callable[..., Configured], model_api: FakeModelServer
) -> None:
    channel = fake.text_channel_id
    async with running(fake, discord_settings(discord_guild_allowlist=UNLISTED_GUILD)) as bot:
        question = await bot.say(channel, fake.plain_user, "hello?", mentions_bot=True)
        refused = await bot.command(channel, fake.admin_user, "gemini show")
        refused_help = await bot.command(channel, fake.admin_user, "gemini help")
        await bot.say(fake.dm_channel_id, fake.plain_user, "and in private?")
        dm_shown = await bot.command(fake.dm_channel_id, fake.plain_user, "gemini show")

    assert model_api.requests[0].body["messages"][-1]["content"] == "and in private?"
    assert len(model_api.requests) == 1
    assert fake.messages_in(channel) == [question["content"]] and fake.threads == []
    assert not fake.calls_to("POST", rf"/channels/{channel}/(messages|typing)")
    assert refused == refused_help == (
        "I'm not available here: the bot's operator limits it to some servers.")
    assert dm_shown.startswith("**Settings for this channel**")

    listed = f"{UNLISTED_GUILD},{fake.guild_id}"
    async with running(fake, discord_settings(discord_guild_allowlist=listed)) as bot:
        question = await bot.say(channel, fake.plain_user, "and now?", mentions_bot=True)
    assert fake.messages_in(bot.thread_of(question)) == ["echo: and now?"]


async def test_with_dms_off_dms_are_ignored_and_dm_commands_refused(
    fake: FakeDiscord, discord_settings: Callable[..., Configured], model_api: FakeModelServer
) -> None:
    dm = fake.dm_channel_for(fake.owner_user)
    settings = discord_settings(discord_allow_dms=False, discord_admin_ids=str(fake.owner_user.id),
                                discord_guild_allowlist=str(fake.guild_id))
    async with running(fake, settings) as bot:
        await bot.say(dm, fake.owner_user, "hello in private")
        refused = await bot.command(dm, fake.owner_user, "gemini show")
        question = await bot.say(fake.text_channel_id, fake.plain_user, "hi",
                                 mentions_bot=True)

    assert refused == ("I'm not available in direct messages: the bot's operator turned "
                       "them off.")
    assert fake.messages_in(dm) == ["hello in private"]
    assert [sent_messages(r.body)[-1] for r in model_api.requests] == [("user", "hi")]
    assert fake.messages_in(bot.thread_of(question)) == ["echo: hi"]


async def test_in_a_dm_only_the_bots_admins_change_settings(
    fake: FakeDiscord, discord_settings: Callable[..., Configured], model_api: FakeModelServer
) -> None:
    operator_dm = fake.dm_channel_for(fake.owner_user)
    async with running(fake, discord_settings(discord_admin_ids=str(fake.owner_user.id))) as bot:
        refused = await bot.command(fake.dm_channel_id, fake.plain_user, "gemini set",
                                    {"name": "temperature", "value": "0.3"})
        shown = await bot.command(fake.dm_channel_id, fake.plain_user, "gemini show")
        allowed = await bot.command(operator_dm, fake.owner_user, "gemini set",
                                    {"name": "temperature", "value": "0.3"})

    assert refused.startswith("Only people who manage this channel")
    assert "`temperature`" not in shown
    assert allowed == "`temperature` set to 0.3."


# --------------------------------------------------------------------------- database failures


async def test_a_database_failure_before_the_answer_gets_a_notice_where_it_was_asked(
    fake: FakeDiscord, discord_settings: Callable[..., Configured], model_api: FakeModelServer
) -> None:
    channel = fake.text_channel_id
    await fake.set_overwrite(channel, fake.bot_role_id, deny=Perm.CREATE_PUBLIC_THREADS)
    settings = discord_settings()
    async with running(fake, settings) as bot:
        await bot.say(channel, fake.plain_user, "inline please", mentions_bot=True)
        answer = fake.message_payloads_in(channel)[1]
        lunch = await bot.say(channel, fake.plain_user, "lunch, anyone?")
        bots_thread = await fake.add_thread(channel, "the bot's own", owner=fake.bot_user)
        await fake.wait_until(lambda: bot.client.get_channel(bots_thread) is not None)
        with sqlite3.connect(sqlite_file(settings)) as database:
            database.execute("DROP TABLE platform_messages")
            database.execute("DROP TABLE processed_events")

        follow_up = await bot.say(channel, fake.plain_user, "go on",
                                  reference_message_id=answer["id"])
        await bot.say(channel, fake.admin_user, "sure", reference_message_id=lunch["id"])
        in_thread = await bot.say(bots_thread, fake.plain_user, "anyone there?")

    assert fake.messages_in(channel)[1:] == [
        "echo: inline please", "lunch, anyone?", "go on", DATABASE_DOWN, "sure"]
    notice = fake.message_payloads_in(channel)[4]
    assert notice["message_reference"]["message_id"] == follow_up["id"]
    assert fake.messages_in(bots_thread) == ["anyone there?", DATABASE_DOWN]
    notice = fake.message_payloads_in(bots_thread)[1]
    assert notice["message_reference"]["message_id"] == in_thread["id"]
    assert len(model_api.requests) == 1
