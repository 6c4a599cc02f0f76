"""Slack's agent messaging experience, end to end against the fake Slack (which reads the
repository's manifest): the greeting and prompts of the Messages tab, DMs answered in threads
with a status, every streaming call within its workspace budget, and streams that end
cleanly."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import pytest
from slack_bolt.request.async_request import AsyncBoltRequest

from adapters.slack_bot.assistant import GREETING, SUGGESTED_PROMPTS
from adapters.slack_bot.budgets import WorkspaceBudgets
from adapters.slack_bot.client import web_client
from adapters.slack_bot.surface import THINKING, Place, SlackStreamingSurface
from bot.config import Settings
from bot.conversation import ConversationKey
from bot.drawing.pacing import LocalEditBudget
from bot.drawing.render import StreamRenderer
from bot.drawing.surface import SurfaceLimits
from tests.fakes.model_server import FakeModelServer, Reply, Slow, last_user_text
from tests.fakes.slack import (
    ADMIN_USER_ID,
    PLAIN_USER_ID,
    TEAM_ID,
    FakeSlack,
    NotSubscribed,
)
from tests.support.clock import FakeClock
from tests.test_slack_adapter import FAST, deliver, drawing_text, running

STREAM_METHODS = ("chat.startStream", "chat.appendStream", "chat.stopStream")


@pytest.fixture
async def fake() -> AsyncIterator[FakeSlack]:
    """Slack's limits per second instead of per minute, as FAST's budgets are."""
    async with FakeSlack(update_limit=20, update_window=1.0, tier_window=1.0) as server:
        yield server


def methods(fake: FakeSlack, *names: str) -> list[str]:
    """The methods of the recorded calls among `names`, in order."""
    return [call.method for call in fake.calls if call.method in names]


# --------------------------------------------------------------------------- the Messages tab


async def test_opening_the_messages_tab_greets_once_and_offers_prompts_without_thread_ts(
        make_settings: Callable[..., Settings], fake: FakeSlack,
        model_api: FakeModelServer) -> None:
    assert fake.manifest.view == "agent", "the repository's manifest makes an agent app"
    async with running(make_settings, fake) as (_, bot):
        visit = fake.app_home_opened(user=PLAIN_USER_ID, channel="D1")
        await deliver(bot, fake.event_request(visit, event_id="EvVisit1"))
        await deliver(bot, fake.event_request(visit, event_id="EvVisit1", retry_num=1))
        await deliver(bot, fake.event_request(fake.app_home_opened(channel="D1")))
        await deliver(bot, fake.event_request(fake.app_home_opened(channel="D1", tab="home")))
        await deliver(bot, fake.event_request(fake.app_home_opened(user=ADMIN_USER_ID,
                                                                   channel="D2")))

        assert fake.texts("D1") == [GREETING], "greeted on the first visit only"
        assert fake.texts("D2") == [GREETING]
        calls = fake.calls_of("assistant.threads.setSuggestedPrompts")
        assert [c.params["channel_id"] for c in calls] == ["D1", "D1", "D2"], "every visit"
        assert all("thread_ts" not in c.params for c in calls)
        assert [p["prompts"] for p in fake.suggested_prompts] == [list(SUGGESTED_PROMPTS)] * 3
        assert not model_api.requests
        with pytest.raises(NotSubscribed, match="assistant_thread_started"):
            fake.event_request(fake.assistant_thread_started(channel="D1"))


async def test_a_top_level_dm_is_answered_in_its_own_thread_streaming_under_a_status(
        make_settings: Callable[..., Settings], fake: FakeSlack,
        model_api: FakeModelServer) -> None:
    model_api.script("direct", Slow("Here is my answer for you.", 0.05),
                     Reply(text="And in the channel."))
    async with running(make_settings, fake) as (core, bot):
        question = fake.message(channel="D1", channel_type="im", text="hi")
        await deliver(bot, fake.event_request(question))
        mention = fake.app_mention(text="and here?", channel="C1")
        await deliver(bot, fake.event_request(mention))

        assert fake.texts("D1", question["ts"]) == ["Here is my answer for you."]
        assert fake.texts("C1", mention["ts"]) == ["And in the channel."]
        dm_stream, channel_stream = fake.streams
        assert (dm_stream.channel, dm_stream.thread_ts) == ("D1", question["ts"])
        assert (channel_stream.channel, channel_stream.thread_ts) == ("C1", mention["ts"])
        assert [(s["channel_id"], s["thread_ts"], s["status"]) for s in fake.assistant_statuses
                ][:1] == [("D1", question["ts"], THINKING)]
        assert ("C1", mention["ts"], THINKING) in [
            (s["channel_id"], s["thread_ts"], s["status"]) for s in fake.assistant_statuses]
        for channel in ("D1", "C1"):
            order = [c.method for c in fake.calls if c.params.get("channel", c.params.get(
                "channel_id")) == channel and c.method != "users.info"]
            assert order[0] == "assistant.threads.setStatus", "the status shows first"
            assert order[-3:] == ["chat.stopStream", "chat.delete", "chat.update"], (
                "the stream ends, then the Stop button gives way to the answer's buttons")
        assert all(s.state == "stopped" for s in fake.streams)
        assert not drawing_text(fake, "chat.postMessage")
        assert not drawing_text(fake, "chat.update")
        dm_thread = ConversationKey("slack", TEAM_ID, "D1", question["ts"])
        assert len(await core.store.history(dm_thread, 100_000, 8)) == 2


# --------------------------------------------------------------------------- budgets


def long_answer(question: str) -> str:
    """About 5,000 characters: two streamed messages of 3,500 at most."""
    return "\n\n".join(f"{question}, part {i}: " + "every call waits for its slot. " * 12
                       for i in range(12))


async def test_ten_concurrent_long_answers_in_one_workspace_arrive_whole_without_a_429(
        make_settings: Callable[..., Settings], fake: FakeSlack,
        model_api: FakeModelServer) -> None:
    """Five channel threads and five DMs answered at once: every stream call takes a slot of
    its method's workspace budget (Tier 2 for starting and stopping a stream, Tier 4 for
    appending), so the fake Slack, which enforces each tier per workspace, refuses none."""
    model_api.default_answer = lambda body: long_answer(last_user_text(body))
    model_api.script("direct", *[Reply(delay_between_chunks=0.002)] * 10)
    async with running(make_settings, fake) as (_, bot):
        events = [fake.app_mention(text=f"question {n}", channel="C1") for n in range(5)]
        events += [fake.message(channel=f"D{n + 20}", channel_type="im", text=f"question {n}",
                                user=f"UDM{n}") for n in range(5, 10)]
        await asyncio.gather(*(deliver(bot, fake.event_request(e)) for e in events))

        for n, event in enumerate(events):
            texts = fake.texts(event["channel"], event["ts"])
            assert "".join(texts) == long_answer(f"question {n}"), f"answer {n} whole"
            assert len(texts) == 2 and all(len(t) <= FAST.max_message_chars for t in texts)
        assert len(fake.streams) == 20 and all(s.state == "stopped" for s in fake.streams)
        assert fake.rate_limited_calls == [], "no method was refused"
        assert not drawing_text(fake, "chat.update"), "every answer streamed"


async def test_a_tight_append_budget_sends_fewer_larger_appends(fake: FakeSlack) -> None:
    """One append a second for the workspace, 40 words arriving 0.1 s apart (virtual time):
    each append carries everything that waited for its slot, so there are about as many
    appends as seconds, not as words, and none is lost or repeated."""
    clock = FakeClock()
    append_budget = LocalEditBudget(1, 1.0, 1, clock=clock, sleep=clock.sleep)
    surface = SlackStreamingSurface(
        web_client(fake.bot_token, fake.api_url),
        Place(TEAM_ID, "C1", fake.app_mention(text="go")["ts"], PLAIN_USER_ID, TEAM_ID),
        SurfaceLimits(3_500, 0.05), WorkspaceBudgets({"chat.appendStream": append_budget}),
        sleep=clock.sleep)
    renderer = StreamRenderer(surface, clock=clock, sleep=clock.sleep)
    words = [f"word{i} " for i in range(40)]

    async def answer() -> None:
        renderer.start()
        for word in words:
            renderer.feed(word)
            await clock.sleep(0.1)
        await renderer.finish()

    await clock.drive(answer())

    (stream,) = fake.streams
    assert stream.text == "".join(words) and stream.state == "stopped"
    appends = fake.calls_of("chat.appendStream")
    assert 2 <= len(appends) <= 1 + clock.now, "one a second"
    assert all(call.ok for call in fake.calls)


# --------------------------------------------------------------------------- stream ends


async def test_a_stream_that_expires_mid_answer_is_finished_by_update(
        make_settings: Callable[..., Settings], model_api: FakeModelServer) -> None:
    """Slack ends a stream left idle (here: 120 s on the fake's clock) with
    message_not_in_streaming_state; the bot then shows the whole page with chat.update,
    which Slack allows once the message no longer streams."""
    clock = FakeClock()
    answer = " ".join(f"w{i}" for i in range(60))
    model_api.script("direct", Slow(answer, 0.02))
    async with FakeSlack(tier_window=1.0, update_limit=None,
                         clock=clock) as fake, running(make_settings, fake) as (_, bot):
        event = fake.app_mention(text="go")
        body, headers = fake.event_request(event)
        await bot.app.async_dispatch(AsyncBoltRequest(body=body, headers=dict(headers)))
        await fake.wait_for_call("chat.startStream")
        clock.now += fake.stream_idle_timeout + 1
        await bot.idle()

        assert fake.texts("C1", event["ts"]) == [answer]
        (stream,) = fake.streams
        assert stream.state == "expired"
        refused = [c for c in fake.calls if c.method in STREAM_METHODS and not c.ok]
        assert [c.error for c in refused] == ["message_not_in_streaming_state"]
        updates = fake.calls_of("chat.update")
        assert updates and all(update.ok for update in updates)
