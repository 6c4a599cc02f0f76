"""Tools through the Slack adapter: read_channel reads the thread (conversations.replies) or,
for a question that began its thread, the channel (conversations.history); the status line is
the thread's status; /gemini tools switches tools per channel."""

from __future__ import annotations

import json
from collections.abc import Callable

from bot.config import Settings
from tests.fakes.model_server import FakeCall, FakeModelServer, Reply, ToolCalls
from tests.fakes.slack import ADMIN_USER_ID, FakeSlack
from tests.fakes.web_pages import FakeWebSite
from tests.test_slack_adapter import deliver, fake, run_command, running

__all__ = ["fake"]


def read_call(limit: int) -> ToolCalls:
    return ToolCalls([FakeCall("read_channel", json.dumps({"limit": limit}), "c1")])


def tool_result(model_api: FakeModelServer) -> str:
    return str(model_api.requests[-1].body["messages"][-1]["content"])


async def test_read_channel_reads_the_thread_it_was_asked_in(
        make_settings: Callable[..., Settings], fake: FakeSlack,
        model_api: FakeModelServer) -> None:
    model_api.script("direct", Reply(text="Noted."), read_call(20),
                     Reply(text="You agreed on Friday."))
    async with running(make_settings, fake) as (_, bot):
        first = fake.app_mention(text="remember this thread")
        await deliver(bot, fake.event_request(first))
        fake.message(text="shall we ship on Friday?", thread_ts=first["ts"])
        fake.message(user=ADMIN_USER_ID, text="yes, Friday", thread_ts=first["ts"])
        fake.message(text="in another thread", thread_ts=fake.app_mention(text="x")["ts"])

        asked = fake.app_mention(text="catch me up", thread_ts=first["ts"])
        await deliver(bot, fake.event_request(asked))

    (replies,) = fake.calls_of("conversations.replies")
    assert (replies.params["channel"], replies.params["ts"]) == ("C1", first["ts"])
    assert not fake.calls_of("conversations.history")
    result = tool_result(model_api)
    assert result.startswith("The last 5 messages, oldest first:\n[")
    assert ": Noted.\n" in result
    assert "] bob: <@UBOT> remember this thread\n" in result
    assert "] bob: shall we ship on Friday?\n" in result
    assert "] alice: yes, Friday\n" in result
    assert "in another thread" not in result
    statuses = [s["status"] for s in fake.assistant_statuses if s["thread_ts"] == first["ts"]]
    assert "🔧 Reading the last 20 messages…" in statuses
    assert statuses[statuses.index("🔧 Reading the last 20 messages…") + 1] == ""
    assert fake.texts("C1", first["ts"])[-1] == "You agreed on Friday."


async def test_a_question_that_begins_a_thread_reads_the_channel(
        make_settings: Callable[..., Settings], fake: FakeSlack,
        model_api: FakeModelServer) -> None:
    model_api.script("direct", read_call(2), Reply(text="Two messages."))
    async with running(make_settings, fake) as (_, bot):
        fake.message(text="the office is closed Monday")
        fake.message(user=ADMIN_USER_ID, text="noted")
        event = fake.app_mention(text="summarise the channel")
        await deliver(bot, fake.event_request(event))

    (history,) = fake.calls_of("conversations.history")
    assert history.params["channel"] == "C1"
    result = tool_result(model_api)
    assert result.startswith("The last 2 messages, oldest first:\n")
    assert result.splitlines()[1].endswith("] alice: noted")
    assert result.splitlines()[2].endswith("] bob: <@UBOT> summarise the channel")


async def test_a_fetched_page_ends_the_streamed_answer_with_its_source(
        make_settings: Callable[..., Settings], fake: FakeSlack,
        model_api: FakeModelServer) -> None:
    async with FakeWebSite() as site:
        page = site.url("/page")
        model_api.script("direct", ToolCalls([FakeCall("fetch_url", json.dumps({"url": page}))]),
                         Reply(text="The harbour reopened."))
        async with running(make_settings, fake, bot_fetch_allow_private=site.host_port) as (
                _, bot):
            event = fake.app_mention(text=f"read {page}")
            await deliver(bot, fake.event_request(event))

    assert fake.texts("C1", event["ts"]) == [f"The harbour reopened.\n\nSources:\n- <{page}>"]


async def test_tools_commands_list_and_switch(
        make_settings: Callable[..., Settings], fake: FakeSlack,
        model_api: FakeModelServer) -> None:
    async with running(make_settings, fake) as (_, bot):
        listed = await run_command(bot, fake, "tools")
        assert listed.startswith("*Tools in this channel*\n`fetch_url`: on: ")
        assert (await run_command(bot, fake, "tools disable read_channel")).startswith(
            "Only people who manage this channel")
        assert await run_command(bot, fake, "tools disable read_channel",
                                 user=ADMIN_USER_ID) == "`read_channel` is off in this channel."
        assert "`read_channel`: off:" in await run_command(bot, fake, "tools list")

        await deliver(bot, fake.event_request(fake.app_mention(text="hello")))

    offered = [t["function"]["name"] for t in model_api.requests[-1].body["tools"]]
    assert offered == ["fetch_url", "current_time", "calculate"]
