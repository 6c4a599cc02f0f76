"""End-to-end: the real bolt AsyncApp and AsyncWebClient against the fake Slack, the real core.

Events arrive as signed HTTP requests dispatched to the app (or POSTed to its real HTTP
server) and over the fake's Socket Mode websocket; the core talks to the fake model API and
a real SQLite file.
"""

from __future__ import annotations

import asyncio
import base64
import io
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import replace
from typing import Any

import httpx
import pytest
from PIL import Image
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_bolt.response import BoltResponse

from adapters.common import PlatformTuning
from adapters.slack_bot.app import SlackBot, build_slack_app, run_slack, serve_http, socket_mode
from adapters.slack_bot.budgets import WorkspaceBudgets
from adapters.slack_bot.client import web_client
from adapters.slack_bot.controls import Action
from adapters.slack_bot.settings import SlackSettings
from adapters.slack_bot.surface import SLACK_TUNING, Place, SlackSurface
from bot.app import Core, open_core
from bot.config import Settings
from bot.conversation import ConversationKey, Role
from bot.drawing.pacing import LocalEditBudget
from bot.drawing.render import EditRenderer
from launcher import http_server
from launcher.readiness import Readiness
from tests.fakes.model_server import FakeModelServer, Reply, Slow
from tests.fakes.slack import (
    ADMIN_USER_ID,
    BOT_ID,
    BOT_USER_ID,
    MAX_MARKDOWN_CHARS,
    OWNER_USER_ID,
    PLAIN_USER_ID,
    TEAM_ID,
    ApiCall,
    FakeSlack,
)
from tests.support.clock import FakeClock
from tests.support.waiting import until

FAST = replace(SLACK_TUNING, min_edit_interval=0.05, edit_rate=15, edit_period=1.0,
               edit_burst=3)
"""At most 15 + 3 - 1 = 17 chat.update calls in any second: within the fake's 20."""

PARAGRAPH = ("Slack threads keep a conversation together, and the bot remembers every turn "
             "of it. ") * 6


@pytest.fixture
async def fake() -> AsyncIterator[FakeSlack]:
    """Slack's limits per second instead of per minute, as FAST's budgets are."""
    async with FakeSlack(update_limit=20, update_window=1.0, tier_window=1.0,
                         retry_after=1) as server:
        yield server


@asynccontextmanager
async def running(make_settings: Callable[..., Settings], fake: FakeSlack,
                  tuning: PlatformTuning = FAST, **overrides: Any
                  ) -> AsyncIterator[tuple[Core, SlackBot]]:
    """The real core and Slack bot, pointed at the fakes; overrides by variable name,
    lower-cased (`slack_admin_ids` goes to the adapter's settings, the rest to the core's)."""
    adapter = {name.removeprefix("slack_"): value for name, value in overrides.items()
               if name.startswith("slack_")}
    core_overrides = {name: value for name, value in overrides.items()
                      if not name.startswith("slack_")}
    async with open_core(make_settings(**core_overrides)) as core:
        bot = build_slack_app(core, pointed_at(fake, **adapter), tuning=tuning)
        try:
            yield core, bot
        finally:
            await bot.close()


def pointed_at(fake: FakeSlack, **overrides: Any) -> SlackSettings:
    """The Slack adapter's settings for HTTP mode against `fake`; overrides by field name."""
    values: dict[str, Any] = {"bot_token": fake.bot_token,
                              "signing_secret": fake.signing_secret, "api_url": fake.api_url}
    return SlackSettings.load(_env_file=None, **(values | overrides))


async def deliver(bot: SlackBot, request: tuple[str, Mapping[str, str]]) -> BoltResponse:
    """Dispatch a signed HTTP-mode request and wait for the work it started."""
    body, headers = request
    response = await bot.app.async_dispatch(AsyncBoltRequest(body=body, headers=dict(headers)))
    await bot.idle()
    return response


def model_messages(model_api: FakeModelServer, index: int = -1) -> list[tuple[str, Any]]:
    """(role, content) of every message in one request the model received."""
    return [(m["role"], m["content"]) for m in model_api.requests[index].body["messages"]]


def png_bytes() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (4, 3), (200, 30, 30)).save(out, format="PNG")
    return out.getvalue()


def thread_key(channel: str, thread: str) -> ConversationKey:
    return ConversationKey("slack", TEAM_ID, channel, thread)


def drawing_text(fake: FakeSlack, method: str) -> list[ApiCall]:
    """Calls of `method` that drew answer text: not the Stop button's own message (posted
    while an answer streams), nor the update that puts the answer's buttons on it."""

    def buttons_only(call: ApiCall) -> bool:
        ids = {element.get("action_id") for block in call.params.get("blocks") or ()
               if block.get("type") == "actions" for element in block["elements"]}
        return (ids == {Action.STOP.value} and call.method == "chat.postMessage") or (
            Action.REGENERATE.value in ids)

    return [call for call in fake.calls_of(method) if not buttons_only(call)]


# --------------------------------------------------------------------------- answering


async def test_mention_answers_in_its_thread_with_native_stream(
        make_settings: Callable[..., Settings], fake: FakeSlack,
        model_api: FakeModelServer) -> None:
    answer = "Hello **there**, `x = 1`.\n\n- one\n- two"
    model_api.script("direct", Reply(text=answer))
    async with running(make_settings, fake) as (core, bot):
        event = fake.app_mention(text="hi &amp; <https://example.com|the site>")
        response = await deliver(bot, fake.event_request(event))

        assert response.status == 200
        assert fake.texts("C1", event["ts"]) == [answer]
        (stream,) = fake.streams
        assert stream.thread_ts == event["ts"] and stream.state == "stopped"
        assert (stream.recipient_user_id, stream.recipient_team_id) == (PLAIN_USER_ID, TEAM_ID)
        assert all("text" not in params for _, params in stream.requests)  # Markdown only
        assert not drawing_text(fake, "chat.update")
        assert model_messages(model_api) == [("user", "hi & the site (https://example.com)")]
        key = thread_key("C1", event["ts"])
        history = await core.store.history(key, 100_000, 8)
        assert [(t.role, t.text) for t in history] == [
            (Role.USER, "hi & the site (https://example.com)"), (Role.ASSISTANT, answer)]
        assert history[0].author_name == "bob"
        assert await core.service.conversation_of_message("slack", event["ts"]) == key
        assert await core.service.conversation_of_message("slack", stream.ts) == key


async def test_follow_up_in_thread_needs_no_mention_and_carries_history(
        make_settings: Callable[..., Settings], fake: FakeSlack,
        model_api: FakeModelServer) -> None:
    async with running(make_settings, fake) as (_, bot):
        first = fake.app_mention(text="What is 2+2?")
        await deliver(bot, fake.event_request(first))
        follow_up = fake.message(text="And times 3?", thread_ts=first["ts"])
        await deliver(bot, fake.event_request(follow_up))

        assert fake.texts("C1", first["ts"]) == ["echo: What is 2+2?", "echo: And times 3?"]
        assert model_messages(model_api) == [("user", "What is 2+2?"),
                                         ("assistant", "echo: What is 2+2?"),
                                         ("user", "And times 3?")]


async def test_mention_inside_a_known_thread_is_answered_once(
        make_settings: Callable[..., Settings], fake: FakeSlack,
        model_api: FakeModelServer) -> None:
    async with running(make_settings, fake) as (_, bot):
        first = fake.app_mention(text="first")
        await deliver(bot, fake.event_request(first))
        again = fake.app_mention(text="second", thread_ts=first["ts"])
        as_message = {**again, "type": "message", "channel_type": "channel"}
        await deliver(bot, fake.event_request(as_message))
        await deliver(bot, fake.event_request(again))

        assert fake.texts("C1", first["ts"]) == ["echo: first", "echo: second"]
        assert len(model_api.requests) == 2


async def test_messages_outside_the_bots_threads_are_ignored(
        make_settings: Callable[..., Settings], fake: FakeSlack,
        model_api: FakeModelServer) -> None:
    async with running(make_settings, fake) as (_, bot):
        top = fake.message(text="chatting among ourselves")
        reply = fake.message(text="still chatting", thread_ts=top["ts"])
        for event in (top, reply):
            assert (await deliver(bot, fake.event_request(event))).status == 200

        assert model_api.requests == []
        assert not fake.calls_of("chat.postMessage") and not fake.streams


async def test_bots_edits_and_deletions_are_ignored(
        make_settings: Callable[..., Settings], fake: FakeSlack,
        model_api: FakeModelServer) -> None:
    async with running(make_settings, fake) as (_, bot):
        first = fake.app_mention(text="start")
        await deliver(bot, fake.event_request(first))
        thread = first["ts"]
        noise = [
            fake.message(user="UOTHERBOT", text="I am a bot", thread_ts=thread, bot_id="BOTHER"),
            fake.message(user="UOTHERBOT", text="bot", thread_ts=thread, bot_id="BOTHER",
                         subtype="bot_message"),
            fake.message(user=BOT_USER_ID, text="my own words", thread_ts=thread,
                         bot_id=BOT_ID),
            fake.message(user=BOT_USER_ID, text="my own words", thread_ts=thread),
            {**fake.message(text="edited", thread_ts=thread), "subtype": "message_changed",
             "hidden": True},
            {**fake.message(text="", thread_ts=thread), "subtype": "message_deleted",
             "hidden": True},
            fake.app_mention(user="UOTHERBOT", text="bot mention") | {"bot_id": "BOTHER"},
        ]
        for event in noise:
            assert (await deliver(bot, fake.event_request(event))).status == 200

        assert len(model_api.requests) == 1
        assert len(fake.streams) == 1 and not drawing_text(fake, "chat.postMessage")


async def test_each_direct_message_starts_a_conversation_in_a_thread_of_its_own(
        make_settings: Callable[..., Settings], fake: FakeSlack,
        model_api: FakeModelServer) -> None:
    model_api.script("direct", Reply(text="first answer"), Reply(text="second answer"),
                     Reply(text="third answer"))
    async with running(make_settings, fake) as (core, bot):
        first = fake.message(channel="D1", channel_type="im", text="hello")
        await deliver(bot, fake.event_request(first))
        second = fake.message(channel="D1", channel_type="im", text="and again")
        await deliver(bot, fake.event_request(second))
        follow_up = fake.message(channel="D1", channel_type="im", text="more",
                                 thread_ts=first["ts"])
        await deliver(bot, fake.event_request(follow_up))

        assert fake.texts("D1", first["ts"]) == ["first answer", "third answer"]
        assert fake.texts("D1", second["ts"]) == ["second answer"]
        assert [s.thread_ts for s in fake.streams] == [first["ts"], second["ts"], first["ts"]]
        assert all(s.recipient_user_id == PLAIN_USER_ID for s in fake.streams)
        assert not drawing_text(fake, "chat.postMessage")
        assert not drawing_text(fake, "chat.update")
        assert model_messages(model_api, 1) == [("user", "and again")], "a conversation anew"
        assert model_messages(model_api) == [("user", "hello"), ("assistant", "first answer"),
                                             ("user", "more")]
        assert await core.service.knows(thread_key("D1", second["ts"]))


# --------------------------------------------------------------------------- files


async def test_an_image_reaches_the_model(make_settings: Callable[..., Settings],
                                          fake: FakeSlack, model_api: FakeModelServer) -> None:
    image = png_bytes()
    file = fake.add_file("red.png", image, "image/png")
    async with running(make_settings, fake) as (_, bot):
        event = fake.app_mention(text="what colour?", files=[file])
        await deliver(bot, fake.event_request(event))

        assert [(d.file_id, d.authorized) for d in fake.downloads] == [(file["id"], True)]
        (request,) = model_api.requests
        assert request.endpoint == "api"
        content = request.body["messages"][-1]["content"]
        assert content[0] == {"type": "text", "text": "what colour?"}
        expected = "data:image/png;base64," + base64.b64encode(image).decode()
        assert content[1] == {"type": "image_url", "image_url": {"url": expected}}
        assert len(fake.texts("C1", event["ts"])) == 1


async def test_an_archive_gets_a_note_and_the_question_is_answered(
        make_settings: Callable[..., Settings], fake: FakeSlack,
        model_api: FakeModelServer) -> None:
    file = fake.add_file("report.zip", b"PK\x03\x04 not really", "application/zip")
    async with running(make_settings, fake) as (_, bot):
        event = fake.app_mention(text="summarise this", files=[file])
        await deliver(bot, fake.event_request(event))

        assert not fake.downloads
        texts = fake.texts("C1", event["ts"])
        assert texts[0].startswith("Skipped report.zip: only images")
        assert texts[1:] == ["echo: summarise this"]
        assert model_messages(model_api) == [("user", "summarise this")]


async def test_an_oversized_image_gets_a_note(make_settings: Callable[..., Settings],
                                              fake: FakeSlack,
                                              model_api: FakeModelServer) -> None:
    file = fake.add_file("big.png", png_bytes(), "image/png")
    async with running(make_settings, fake, bot_max_attachment_bytes=10) as (_, bot):
        event = fake.app_mention(text="", files=[file])
        await deliver(bot, fake.event_request(event))

        assert not fake.downloads and not model_api.requests
        (note,) = fake.texts("C1", event["ts"])
        assert note.startswith("Skipped big.png:")


# --------------------------------------------------------------------------- long answers


async def test_a_long_answer_streams_whole_across_thread_messages(
        make_settings: Callable[..., Settings], fake: FakeSlack,
        model_api: FakeModelServer) -> None:
    answer = "\n\n".join(f"{i}. {PARAGRAPH}" for i in range(30))
    assert len(answer) > MAX_MARKDOWN_CHARS
    model_api.script("direct", Reply(text=answer))
    async with running(make_settings, fake) as (core, bot):
        event = fake.app_mention(text="tell me a lot")
        await deliver(bot, fake.event_request(event))

        texts = fake.texts("C1", event["ts"])
        assert len(texts) >= 5 and "".join(texts) == answer
        assert all(len(t) <= FAST.max_message_chars for t in texts)
        assert all(s.state == "stopped" for s in fake.streams)
        assert refused_as_malformed(fake) == []
        history = await core.store.history(thread_key("C1", event["ts"]), 100_000, 8)
        assert history[-1].text == answer


async def test_a_long_answer_edited_in_place_continues_in_new_messages(
        make_settings: Callable[..., Settings], fake: FakeSlack,
        model_api: FakeModelServer) -> None:
    """Where Slack will not stream, each page is posted and edited with chat.update."""
    answer = "\n\n".join(f"{i}. {PARAGRAPH}" for i in range(30))
    assert len(answer) > MAX_MARKDOWN_CHARS
    model_api.script("direct", Reply(chunks=[answer[i:i + 200] for i in range(0, len(answer), 200)],
                                     delay_between_chunks=0.002))
    fake.fail_next("chat.startStream", "not_allowed_for_this_app", times=100)
    async with running(make_settings, fake) as (_, bot):
        event = fake.message(channel="D1", channel_type="im", text="tell me a lot")
        await deliver(bot, fake.event_request(event))

        texts = fake.texts("D1", event["ts"])
        assert len(texts) >= 5 and "".join(texts) == answer
        assert all(len(t) <= FAST.max_message_chars for t in texts)
        assert not fake.streams and fake.calls_of("chat.update")
        assert refused_as_malformed(fake) == []


async def test_a_code_block_split_across_streamed_messages_is_closed_and_reopened(
        make_settings: Callable[..., Settings], fake: FakeSlack,
        model_api: FakeModelServer) -> None:
    code = "".join(f"value_{i:03d} = compute({i})\n" for i in range(150))
    answer = f"Here is the script:\n\n```python\n{code}```\nRun it once."
    assert FAST.max_message_chars < len(answer) < 2 * FAST.max_message_chars - 100
    model_api.script("direct", Reply(chunks=[answer[i:i + 150] for i in range(0, len(answer), 150)],
                                     delay_between_chunks=0.002))
    async with running(make_settings, fake) as (_, bot):
        event = fake.message(channel="D1", channel_type="im", text="write code")
        await deliver(bot, fake.event_request(event))

        first, second = fake.texts("D1", event["ts"])
        assert first.startswith("Here is the script:\n\n```python\nvalue_000 = compute(0)\n")
        assert first.endswith(")\n```") and second.startswith("```python\nvalue_")
        assert first.removesuffix("```") + second.removeprefix("```python\n") == answer
        assert [s.state for s in fake.streams] == ["stopped", "stopped"]


def refused_as_malformed(fake: FakeSlack) -> list[str]:
    """The errors of calls Slack refused as malformed (too long, conflicting fields)."""
    malformed = {"msg_too_long", "markdown_text_conflict", "no_text", "invalid_arguments"}
    return [f"{c.method}: {c.error}" for c in fake.calls if c.error in malformed]


# --------------------------------------------------------------------------- rate limits


async def test_ten_answers_slack_will_not_stream_share_the_workspace_update_budget(
        make_settings: Callable[..., Settings], fake: FakeSlack,
        model_api: FakeModelServer) -> None:
    answers = [" ".join(f"a{n}w{i}" for i in range(30)) for n in range(10)]
    model_api.script("direct", *(Slow(a, 0.03) for a in answers))
    fake.fail_next("chat.startStream", "not_allowed_for_this_app", times=10)
    async with running(make_settings, fake) as (_, bot):
        events = [fake.message(channel=f"D{n + 10}", channel_type="im", text=f"q{n}")
                  for n in range(10)]
        await asyncio.gather(*(deliver(bot, fake.event_request(e)) for e in events))

        finals = [fake.texts(f"D{n + 10}", e["ts"]) for n, e in enumerate(events)]
        assert sorted(finals) == sorted([a] for a in answers), "each answer whole, in one DM"
        edited = {c.params["channel"] for c in fake.calls_of("chat.update", ok=True)}
        assert edited == {f"D{n + 10}" for n in range(10)}, "every answer was drawn as it grew"
        assert not fake.streams and fake.rate_limited_calls == []


@pytest.mark.parametrize(("tuning", "slack_limit", "window"), [
    (FAST, 20, 1.0),  # the fake in these tests: 20 chat.update calls a second
    (SLACK_TUNING, 50, 60.0),  # Slack's Tier 3: 50 a minute
])
async def test_the_workspace_budget_never_grants_what_slack_would_refuse(
        tuning: PlatformTuning, slack_limit: int, window: float) -> None:
    """Ten replies drawing at once share one workspace budget; its grant times, on a virtual
    clock, put at most rate + burst - 1 chat.update calls in any window, under Slack's limit."""
    clock = FakeClock()
    budget = LocalEditBudget(tuning.edit_rate, tuning.edit_period, tuning.edit_burst, clock=clock,
                        sleep=clock.sleep)
    grants: dict[int, list[float]] = {reply: [] for reply in range(10)}

    async def draw(reply: int) -> None:
        for _ in range(10):
            await budget.acquire()
            grants[reply].append(clock.now)

    await clock.run(asyncio.gather(*(draw(reply) for reply in grants)), step=window / 100)

    times = sorted(t for each in grants.values() for t in each)
    busiest = max(sum(1 for t in times if start <= t < start + window - 1e-9) for start in times)
    assert busiest == tuning.edit_rate + tuning.edit_burst - 1 < slack_limit
    assert all(len(each) == 10 for each in grants.values())


async def test_a_429_on_update_slows_edits_and_keeps_the_final_text(
        make_settings: Callable[..., Settings], fake: FakeSlack,
        model_api: FakeModelServer) -> None:
    fake.set_rate_limit("chat.update", 2, 1.0)
    eager = replace(SLACK_TUNING, min_edit_interval=0.01, edit_rate=1000, edit_period=1.0,
                    edit_burst=1)
    answer = " ".join(f"w{i}" for i in range(60))
    model_api.script("direct", Slow(answer, 0.02))
    fake.fail_next("chat.startStream", "not_allowed_for_this_app")
    async with running(make_settings, fake, tuning=eager) as (_, bot):
        event = fake.message(channel="D1", channel_type="im", text="go")
        await deliver(bot, fake.event_request(event))

        assert fake.texts("D1") == [answer]
        assert fake.rate_limited >= 1
        assert fake.calls_of("chat.update")[-1].ok, "the final edit landed"


def dm_surface(fake: FakeSlack) -> SlackSurface:
    """The bot's post-then-chat.update surface for a thread in D1, on the bot's client."""
    place = Place(TEAM_ID, "D1", "1700000000.000001", PLAIN_USER_ID, TEAM_ID)
    return SlackSurface(web_client(fake.bot_token, fake.api_url), place, SLACK_TUNING.limits,
                        WorkspaceBudgets({}))


async def test_a_long_rate_limit_on_an_edit_is_waited_out_and_the_final_text_lands(
        fake: FakeSlack) -> None:
    """slack_sdk never retries chat.update for the bot: a 429 reaches the renderer as
    RateLimited, which waits as long as Slack asked (on a virtual clock here)."""
    clock, tuning = FakeClock(), SLACK_TUNING
    budget = LocalEditBudget(tuning.edit_rate, tuning.edit_period, tuning.edit_burst, clock=clock,
                        sleep=clock.sleep)
    renderer = EditRenderer(dm_surface(fake), budget, clock=clock, sleep=clock.sleep)
    renderer.start()
    renderer.feed("The first words ")
    await fake.wait_for_call("chat.postMessage")
    fake.fail_next("chat.update", "ratelimited", status=429, headers={"Retry-After": "45"})
    renderer.feed("and the rest.")

    result = await clock.drive(renderer.finish())

    assert result.delivered and fake.texts("D1") == ["The first words and the rest."]
    assert [c.status for c in fake.calls_of("chat.update")] == [429, 200]
    assert renderer.edit_times == pytest.approx([1.0, 46.0]), "waited the 45 s Slack asked for"


async def test_a_long_rate_limit_on_a_post_reaches_the_renderer(fake: FakeSlack) -> None:
    clock = FakeClock()
    renderer = EditRenderer(dm_surface(fake), clock=clock, sleep=clock.sleep)
    fake.fail_next("chat.postMessage", "ratelimited", status=429, headers={"Retry-After": "45"})
    renderer.start()
    renderer.feed("The whole answer.")

    async with asyncio.timeout(5):  # real seconds: the library must not sleep the 45 s
        result = await clock.drive(renderer.finish())

    assert result.delivered and fake.texts("D1") == ["The whole answer."]
    assert clock.sleeps and max(clock.sleeps) >= 45


async def test_refused_stream_falls_back_to_post_and_update(
        make_settings: Callable[..., Settings], fake: FakeSlack,
        model_api: FakeModelServer) -> None:
    answer = " ".join(f"w{i}" for i in range(40))
    model_api.script("direct", Slow(answer, 0.01))
    fake.fail_next("chat.startStream", "not_allowed_for_this_app")
    async with running(make_settings, fake) as (_, bot):
        event = fake.app_mention(text="go")
        await deliver(bot, fake.event_request(event))

        assert fake.texts("C1", event["ts"]) == [answer]
        assert len(fake.calls_of("chat.startStream")) == 1 and not fake.streams


async def test_an_expired_stream_is_finished_with_update(
        make_settings: Callable[..., Settings], fake: FakeSlack,
        model_api: FakeModelServer) -> None:
    answer = " ".join(f"w{i}" for i in range(60))
    model_api.script("direct", Slow(answer, 0.02))
    async with running(make_settings, fake) as (_, bot):
        event = fake.app_mention(text="go")
        body, headers = fake.event_request(event)
        await bot.app.async_dispatch(AsyncBoltRequest(body=body, headers=dict(headers)))
        started = await fake.wait_for_call("chat.startStream")
        fake.expire_stream(started.response["ts"])
        await bot.idle()

        assert fake.texts("C1", event["ts"]) == [answer]
        refused = fake.calls_of("chat.appendStream", ok=False) + fake.calls_of(
            "chat.stopStream", ok=False)
        assert [c.error for c in refused] == ["message_not_in_streaming_state"]
        assert fake.calls_of("chat.update") and not fake.calls_of("chat.update", ok=False)


@pytest.mark.parametrize("method", ["chat.appendStream", "chat.stopStream"])
async def test_a_stream_error_other_than_expiry_stops_the_stream_before_the_update(
        method: str, make_settings: Callable[..., Settings], fake: FakeSlack,
        model_api: FakeModelServer) -> None:
    """Slack refuses chat.update on a message still streaming: after an error that is not
    the stream's expiry, the bot stops the stream, then finishes the message by update."""
    answer = " ".join(f"w{i}" for i in range(60))
    model_api.script("direct", Slow(answer, 0.02))
    fake.fail_next(method, "invalid_arguments")
    async with running(make_settings, fake) as (_, bot):
        event = fake.app_mention(text="go")
        await deliver(bot, fake.event_request(event))

        assert fake.texts("C1", event["ts"]) == [answer]
        assert [s.state for s in fake.streams] == ["stopped"], "no message left streaming"
        updates = fake.calls_of("chat.update")
        assert updates and all(update.ok for update in updates)
        last_stop = fake.calls_of("chat.stopStream", ok=True)[-1]
        assert fake.calls.index(last_stop) < fake.calls.index(updates[0])


async def test_stream_hiccups_lose_and_repeat_nothing(make_settings: Callable[..., Settings],
                                                     fake: FakeSlack,
                                                     model_api: FakeModelServer) -> None:
    answer = " ".join(f"w{i}" for i in range(80))
    model_api.script("direct", Slow(answer, 0.01))
    fake.fail_next("chat.appendStream", "internal_error")
    fake.fail_next("chat.appendStream", "ratelimited", status=429, headers={"Retry-After": "0"},
                   times=3)
    async with running(make_settings, fake) as (_, bot):
        event = fake.app_mention(text="go")
        await deliver(bot, fake.event_request(event))

        assert fake.texts("C1", event["ts"]) == [answer]
        assert len(fake.calls_of("chat.appendStream", ok=False)) == 4
        assert not drawing_text(fake, "chat.update")


# --------------------------------------------------------------------------- delivery


async def test_a_redelivered_event_gets_no_second_answer_even_after_a_restart(
        make_settings: Callable[..., Settings], fake: FakeSlack,
        model_api: FakeModelServer) -> None:
    event = fake.app_mention(text="once please")
    async with running(make_settings, fake) as (_, bot):
        await deliver(bot, fake.event_request(event, event_id="EvOnce"))
        await deliver(bot, fake.event_request(event, event_id="EvOnce", retry_num=1))
    async with running(make_settings, fake) as (_, bot):
        await deliver(bot, fake.event_request(event, event_id="EvOnce", retry_num=2))

    assert len(model_api.requests) == 1
    assert fake.texts("C1", event["ts"]) == ["echo: once please"]


async def test_http_server_checks_signatures(make_settings: Callable[..., Settings],
                                             fake: FakeSlack,
                                             model_api: FakeModelServer) -> None:
    async with running(make_settings, fake) as (_, bot), \
            serve_http(bot, port=0, host="127.0.0.1") as port, httpx.AsyncClient() as http:
        url = f"http://127.0.0.1:{port}/slack/events"
        event = fake.app_mention(text="signed")
        forged_body, forged = fake.event_request(event, signing_secret="not-the-secret")
        refused = await http.post(url, content=forged_body, headers=forged)
        assert refused.status_code == 401

        status, _ = await fake.deliver(url, fake.event_request(event))
        assert status == 200
        await bot.idle()

    assert fake.missed_acks == []

    assert fake.texts("C1", event["ts"]) == ["echo: signed"]
    assert len(model_api.requests) == 1


async def test_events_and_commands_are_acknowledged_before_their_work(
        make_settings: Callable[..., Settings], fake: FakeSlack,
        model_api: FakeModelServer) -> None:
    """Slack wants an acknowledgement within 3 seconds. With the work held at its first
    Slack call (users.info), every event and command, over HTTP and Socket Mode, is already
    acknowledged: the ack does not wait for the work, however long it takes."""
    release = fake.hold("users.info")
    async with running(make_settings, fake, slack_app_token=fake.app_token) as (_, bot), \
            serve_http(bot, port=0, host="127.0.0.1") as port, socket_mode(bot, fake.app_token):
        url = f"http://127.0.0.1:{port}/slack/events"
        over_http = fake.app_mention(text="over http")
        statuses = [
            (await asyncio.wait_for(fake.deliver(url, request), 30))[0]  # a guard against a hang
            for request in (fake.event_request(over_http),
                            fake.slash_command_request(text="show"))
        ]
        over_socket = fake.app_mention(text="over the socket")
        for envelope in (await fake.push_event(over_socket),
                         await fake.push_slash_command(text="show")):
            await fake.wait_ack(envelope)

        assert statuses == [200, 200]
        await fake.wait_for(lambda: len(fake.calls_of("users.info")) == 4)  # all at work, held
        assert not fake.responses and not fake.streams and not model_api.requests
        release.set()
        await bot.idle()

    assert fake.missed_acks == []
    assert fake.texts("C1", over_http["ts"]) == ["echo: over http"]
    assert fake.texts("C1", over_socket["ts"]) == ["echo: over the socket"]
    assert len(fake.responses) == 2


async def test_socket_mode_mention_and_command(make_settings: Callable[..., Settings],
                                               fake: FakeSlack,
                                               model_api: FakeModelServer) -> None:
    async with running(make_settings, fake, slack_signing_secret=None,
                       slack_app_token=fake.app_token) as (_, bot), \
            socket_mode(bot, fake.app_token):
        event = fake.app_mention(text="over the socket")
        envelope = await fake.push_event(event)
        assert await fake.wait_ack(envelope) is None
        await bot.idle()
        command = await fake.push_slash_command(text="show")
        await fake.wait_ack(command)
        await bot.idle()

    assert fake.texts("C1", event["ts"]) == ["echo: over the socket"]
    assert fake.missed_acks == []
    (response,) = fake.responses
    assert response.body["response_type"] == "ephemeral"
    assert response.body["text"].startswith("*Settings for this channel*")


async def test_run_slack_serves_http_mode_on_the_bots_http_server_until_cancelled(
        make_settings: Callable[..., Settings], fake: FakeSlack,
        model_api: FakeModelServer) -> None:
    readiness = Readiness()
    async with open_core(make_settings()) as core, httpx.AsyncClient() as http, \
            http_server.serve_http(readiness, core.metrics, "127.0.0.1", 0) as server:
        task = asyncio.create_task(run_slack(core, pointed_at(fake), mount=server.mount,
                                             connected=readiness.reporter("slack")))
        await until(lambda: readiness.states()["slack"] == "connected", what="the route")
        event = fake.app_mention(text="via run_slack")
        body, headers = fake.event_request(event)
        response = await http.post(f"http://127.0.0.1:{server.port}/slack/events",
                                   content=body, headers=headers)
        assert response.status_code == 200
        await fake.wait_for_call("chat.stopStream")
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert fake.texts("C1", event["ts"]) == ["echo: via run_slack"]


async def test_run_slack_prefers_socket_mode_with_an_app_token(
        make_settings: Callable[..., Settings], fake: FakeSlack,
        model_api: FakeModelServer) -> None:
    settings = pointed_at(fake, app_token=fake.app_token)
    async with open_core(make_settings()) as core:
        task = asyncio.create_task(run_slack(core, settings, mount=lambda *route: None))
        event = fake.app_mention(text="via the socket")
        await fake.wait_ack(await fake.push_event(event))
        await fake.wait_for_call("chat.stopStream")
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await fake.wait_for(lambda: not fake.active_sockets)
    assert fake.texts("C1", event["ts"]) == ["echo: via the socket"]


# --------------------------------------------------------------------------- /gemini


async def run_command(bot: SlackBot, fake: FakeSlack, text: str, user: str = PLAIN_USER_ID,
                      channel: str = "C1") -> str:
    """Run `/gemini text` over HTTP; return the private reply the user sees."""
    before = len(fake.responses)
    response = await deliver(bot, fake.slash_command_request(text=text, user_id=user,
                                                             channel_id=channel))
    assert response.status == 200
    (reply,) = fake.responses[before:]
    assert reply.body["response_type"] == "ephemeral"
    return str(reply.body["text"])


async def test_commands_show_set_and_unset(make_settings: Callable[..., Settings],
                                           fake: FakeSlack, model_api: FakeModelServer) -> None:
    async with running(make_settings, fake) as (core, bot):
        shown = await run_command(bot, fake, "show")
        assert shown.startswith("*Settings for this channel*")
        assert "System prompt: (none)" in shown

        assert await run_command(bot, fake, "system Answer like a pirate.",
                                 user=ADMIN_USER_ID) == "System prompt set (21 characters)."
        assert await run_command(bot, fake, "set temperature 0.3",
                                 user=OWNER_USER_ID) == "`temperature` set to 0.3."
        refused = await run_command(bot, fake, "set temperature 0.9")
        assert refused.startswith("Only people who manage this channel")
        out_of_range = await run_command(bot, fake, "set temperature 5", user=ADMIN_USER_ID)
        assert out_of_range == ("`temperature`: 5 is out of range; allowed: 0 to 2. "
                                "Nothing changed.")
        shown = await run_command(bot, fake, "show")
        assert "System prompt: Answer like a pirate." in shown and "`temperature`: 0.3" in shown

        event = fake.app_mention(text="hello")
        await deliver(bot, fake.event_request(event))
        assert model_api.requests[-1].body["temperature"] == 0.3
        assert model_messages(model_api)[0] == ("system", "Answer like a pirate.")

        assert await run_command(bot, fake, "unset temperature",
                                 user=ADMIN_USER_ID) == "`temperature` unset; the default applies."
        assert await run_command(bot, fake, "system reset", user=ADMIN_USER_ID) == (
            "System prompt reset to the bot's default.")
        settings = await core.store.channel_settings(thread_key("C1", "").channel_key)
        assert settings.system_prompt is None and settings.parameters == {}


async def test_admin_list_may_configure(make_settings: Callable[..., Settings],
                                        fake: FakeSlack, model_api: FakeModelServer) -> None:
    async with running(make_settings, fake, slack_admin_ids=PLAIN_USER_ID) as (_, bot):
        assert await run_command(bot, fake, "set max_completion_tokens 100") == (
            "`max_completion_tokens` set to 100.")


async def test_when_slack_cannot_say_who_someone_is_they_may_not_configure(
        make_settings: Callable[..., Settings], fake: FakeSlack,
        model_api: FakeModelServer) -> None:
    """users.info failing: even a workspace admin is then an ordinary user; only the
    operator's SLACK_ADMIN_IDS need no lookup."""
    async with running(make_settings, fake, slack_admin_ids=OWNER_USER_ID) as (core, bot):
        fake.fail_next("users.info", "internal_error", times=2)
        refused = await run_command(bot, fake, "set temperature 0.3", user=ADMIN_USER_ID)
        operator = await run_command(bot, fake, "set temperature 0.4", user=OWNER_USER_ID)
        once_known = await run_command(bot, fake, "set temperature 0.5", user=ADMIN_USER_ID)

        assert [c.params["user"] for c in fake.calls_of("users.info", ok=False)] == [
            ADMIN_USER_ID, OWNER_USER_ID]
        assert refused.startswith("Only people who manage this channel")
        assert operator == "`temperature` set to 0.4."
        assert once_known == "`temperature` set to 0.5.", "Slack answered: a workspace admin"
        settings = await core.store.channel_settings(thread_key("C1", "").channel_key)
        assert settings.parameters == {"temperature": 0.5}


async def test_commands_reset_usage_and_help(make_settings: Callable[..., Settings],
                                             fake: FakeSlack,
                                             model_api: FakeModelServer) -> None:
    async with running(make_settings, fake) as (core, bot):
        dm = fake.message(channel="D1", channel_type="im", text="remember me")
        await deliver(bot, fake.event_request(dm))
        usage = await run_command(bot, fake, "usage", channel="D1")
        assert usage.startswith("*Usage in this channel*") and "1 replies" in usage

        for channel in ("D1", "C1"):  # each thread is a conversation; a command sees none
            reset = await run_command(bot, fake, "reset", channel=channel)
            assert reset.startswith("Slash commands cannot see threads")
        assert len(await core.store.history(thread_key("D1", dm["ts"]), 100_000, 8)) == 2

        assert (await run_command(bot, fake, "")).startswith("*/gemini commands*")
        assert "Unknown command 'frobnicate'" in await run_command(bot, fake, "frobnicate")

