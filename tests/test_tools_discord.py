"""Tools through the Discord adapter: read_channel reads the thread from Discord's history
(the fake's GET /channels/{id}/messages), fetch_url ends the answer with its source, the
status line shows in the message, and /gemini tools switches tools per channel."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable

import pytest

from tests.fakes.discord import FakeDiscord
from tests.fakes.model_server import FakeCall, FakeModelServer, Reply, ToolCalls
from tests.fakes.web_pages import FakeWebSite
from tests.test_discord_adapter import (  # noqa: F401 (fixtures)
    Bot,
    Configured,
    discord_settings,
    fake,
    no_error_logs,
    running,
)


@pytest.fixture
async def site() -> AsyncIterator[FakeWebSite]:
    async with FakeWebSite() as running_site:
        yield running_site


@pytest.fixture
async def bot(fake: FakeDiscord, discord_settings: Callable[..., Configured],  # noqa: F811
              site: FakeWebSite) -> AsyncIterator[Bot]:
    async with running(fake, discord_settings(bot_fetch_allow_private=site.host_port)) as started:
        yield started


def bot_texts(bot: Bot, channel_id: int) -> list[str]:
    """Every text the bot's messages in a channel showed, edits included, in order."""
    texts: list[str] = []
    for call in bot.fake.calls:
        if call.method in ("POST", "PATCH") and call.path.startswith(f"/channels/{channel_id}/"):
            content = (call.json or {}).get("content")
            if isinstance(content, str):
                texts.append(content)
    return texts


async def test_read_channel_catches_up_on_the_thread_it_was_asked_in(
    bot: Bot, model_api: FakeModelServer
) -> None:
    discord = bot.fake
    channel, person = discord.text_channel_id, discord.plain_user
    other = await discord.add_thread(channel, "elsewhere", owner=person)
    thread = await discord.add_thread(channel, "launch plans", owner=person)
    await discord.wait_until(lambda: bot.client.get_channel(thread) is not None)
    await bot.say(other, discord.plain_user, "a secret in another thread")
    await bot.say(thread, discord.plain_user, "we launch on Friday")
    await bot.say(thread, discord.admin_user, "the demo is at 3 pm")
    model_api.script("direct", ToolCalls([FakeCall("read_channel", '{"limit": 10}', "c1")]),
                     Reply(text="Launch Friday; demo at 3 pm."))

    await bot.say(thread, discord.plain_user, "catch me up", mentions_bot=True)

    (history_call,) = discord.calls_to("GET", r"/channels/\d+/messages")
    assert history_call.path == f"/channels/{thread}/messages"
    assert history_call.query["limit"] == "10"
    result = str(model_api.requests[1].body["messages"][-1]["content"])
    assert result.startswith("The last 3 messages, oldest first:\n[")
    assert "] Bob: we launch on Friday\n" in result
    assert "] Alice-Admin: the demo is at 3 pm\n" in result
    assert result.endswith("] Bob: @GeminiBot catch me up")
    assert "secret" not in result
    assert "🔧 Reading the last 10 messages…" in bot_texts(bot, thread)
    assert discord.messages_in(thread)[-1] == "Launch Friday; demo at 3 pm."
    assert "read_channel" in [t["function"]["name"] for t in model_api.requests[0].body["tools"]]


async def test_a_fetched_page_ends_the_answer_with_its_source(
    bot: Bot, model_api: FakeModelServer, site: FakeWebSite
) -> None:
    page = site.url("/page")
    model_api.script("direct", ToolCalls([FakeCall("fetch_url", json.dumps({"url": page}))]),
                     Reply(text="The harbour reopened."))

    question = await bot.say(bot.fake.text_channel_id, bot.fake.plain_user,
                             f"what does {page} say?", mentions_bot=True)

    thread = bot.thread_of(question)
    assert bot.fake.messages_in(thread) == [f"The harbour reopened.\n\nSources:\n- <{page}>"]
    assert "🔧 Reading 127.0.0.1…" in bot_texts(bot, thread)


async def test_tools_are_listed_and_switched_per_channel_by_managers(
    bot: Bot, model_api: FakeModelServer
) -> None:
    discord, channel = bot.fake, bot.fake.text_channel_id

    listed = await bot.command(channel, discord.plain_user, "gemini tools list")
    assert listed.splitlines()[1:5] == [
        "`fetch_url`: on: Fetch a public web page (http or https) and return its main text: "
        "use it when the person gives a link or asks what a page says",
        "`read_channel`: on: Read the latest messages of the thread or channel this "
        "conversation is in, with their authors and times (for example to catch up on or "
        "summarise a discussion)",
        "`current_time`: on: The current date, time and weekday in a time zone",
        "`calculate`: on: Evaluate an arithmetic expression exactly: numbers, + - * / // % ** "
        "and parentheses",
    ]
    refused = await bot.command(channel, discord.plain_user, "gemini tools disable",
                                {"name": "fetch_url"})
    assert refused.startswith("Only people who manage this channel")
    assert await bot.command(channel, discord.admin_user, "gemini tools disable",
                             {"name": "fetch_url"}) == "`fetch_url` is off in this channel."
    unknown = await bot.command(channel, discord.admin_user, "gemini tools enable",
                                {"name": "rm_rf"})
    assert unknown.startswith("There is no tool 'rm_rf' on this bot. Tools: fetch_url,")
    shown = await bot.command(channel, discord.plain_user, "gemini show")
    assert "Tools: `read_channel`, `current_time`, `calculate` (off: `fetch_url`)" in shown

    await bot.say(channel, discord.plain_user, "hello", mentions_bot=True)
    offered = [t["function"]["name"] for t in model_api.requests[-1].body["tools"]]
    assert offered == ["read_channel", "current_time", "calculate"]
