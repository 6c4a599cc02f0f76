"""End-to-end: the buttons on Slack answers (Stop while written; Regenerate, 👍, 👎 once
finished), clicked as people click them: real bolt and slack_sdk against the fake Slack, over
Socket Mode and signed HTTP forms, the real core on a SQLite file, the fake model API."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import timedelta

import pytest
from slack_bolt.request.async_request import AsyncBoltRequest

from adapters.slack_bot.app import serve_http, socket_mode
from adapters.slack_bot.budgets import WorkspaceBudgets
from adapters.slack_bot.client import web_client
from adapters.slack_bot.controls import Action, parse_click
from adapters.slack_bot.surface import Place, SlackSurface
from bot.config import Settings
from bot.conversation import Role, TurnStatus
from bot.drawing.render import EditRenderer
from tests.fakes.model_server import FakeModelServer, Hang, Reply
from tests.fakes.slack import ADMIN_USER_ID, PLAIN_USER_ID, TEAM_ID, FakeSlack, StoredMessage
from tests.fakes.slack.blocks import buttons
from tests.test_slack_adapter import (
    FAST,
    deliver,
    model_messages,
    run_command,
    running,
    thread_key,
)

STOP, REGENERATE, UP, DOWN = (action.value for action in Action)
STRANGER = "USTRANGER"
LONG_ANSWER = " ".join(f"word{i}" for i in range(40))


@pytest.fixture
async def fake() -> AsyncIterator[FakeSlack]:
    """Slack's limits per second instead of per minute, as FAST's budgets are."""
    async with FakeSlack(update_limit=20, update_window=1.0, tier_window=1.0,
                         retry_after=1) as server:
        yield server


def shown_buttons(message: StoredMessage) -> list[str]:
    """The action ids of the buttons a message shows, in order."""
    return [button["action_id"] for _, button in buttons(message.blocks)]


def with_button(fake: FakeSlack, channel: str, thread: str, action: str) -> StoredMessage | None:
    """The message of the thread that shows the button `action`, if one does."""
    return next((m for m in fake.messages(channel, thread) if action in shown_buttons(m)), None)


def private_replies(fake: FakeSlack) -> list[str]:
    """What the bot told clickers through response_url: each ephemeral, in the thread, the
    clicked message left as it was."""
    for response in fake.responses:
        assert response.body["response_type"] == "ephemeral"
        assert response.body["replace_original"] is False
    return [str(response.body["text"]) for response in fake.responses]


async def streaming(fake: FakeSlack, thread: str) -> StoredMessage:
    """Once the answer streams some text in `thread` of C1: the message with its Stop."""
    await fake.wait_for(lambda: fake.streams and fake.streams[0].text)
    stop = await fake.wait_for(lambda: with_button(fake, "C1", thread, STOP))
    assert fake.streams[0].state == "streaming"
    return stop


# --------------------------------------------------------------------------- Stop


async def test_the_asker_stops_an_answer_over_socket_mode(
        make_settings: Callable[..., Settings], fake: FakeSlack,
        model_api: FakeModelServer) -> None:
    model_api.script("direct", Hang(seconds=30, after_chunks=3, text=LONG_ANSWER))
    async with running(make_settings, fake, slack_signing_secret=None,
                       slack_app_token=fake.app_token) as (core, bot), \
            socket_mode(bot, fake.app_token):
        event = fake.app_mention(text="tell me a long story")
        await fake.wait_ack(await fake.push_event(event))
        stop = await streaming(fake, event["ts"])
        assert stop.ts > fake.streams[0].ts, "the Stop button shows under the answer"
        assert [b["value"] for _, b in buttons(stop.blocks)] == [str(thread_key("C1",
                                                                                event["ts"]))]

        await fake.wait_ack(await fake.push_click("C1", stop.ts, STOP, user=PLAIN_USER_ID))
        await bot.idle()

        (stream,) = fake.streams
        (shown,) = fake.texts("C1", event["ts"])
        assert stream.state == "stopped" and shown.startswith("word0 word1")
        assert shown.endswith("(Stopped.)") and len(shown) < len(LONG_ANSWER)
        assert stop in fake.deleted and with_button(fake, "C1", event["ts"], STOP) is None
        answer = fake.stored("C1", stream.ts)
        assert shown_buttons(answer) == [REGENERATE, UP, DOWN] and answer.final_text == shown
        history = await core.store.history(thread_key("C1", event["ts"]), 100_000, 8)
        assert (history[-1].role, history[-1].status) == (Role.ASSISTANT, TurnStatus.STOPPED)
        assert history[-1].text in shown
        assert private_replies(fake) == ["Stopped. The text so far is kept."]
        assert fake.responses[0].body["thread_ts"] == event["ts"]
    assert fake.missed_acks == []


async def test_over_http_a_strangers_stop_is_refused_and_an_admins_stops_the_answer(
        make_settings: Callable[..., Settings], fake: FakeSlack,
        model_api: FakeModelServer) -> None:
    fake.add_user(STRANGER, "sam")
    model_api.script("direct", Hang(seconds=30, after_chunks=3, text=LONG_ANSWER))
    async with running(make_settings, fake) as (core, bot), \
            serve_http(bot, port=0, host="127.0.0.1") as port:
        url = f"http://127.0.0.1:{port}/slack/events"
        event = fake.app_mention(text="tell me a long story")
        assert (await fake.deliver(url, fake.event_request(event)))[0] == 200
        stop = await streaming(fake, event["ts"])

        status, _ = await fake.deliver(url, fake.click_request("C1", stop.ts, STOP,
                                                               user=STRANGER))
        assert status == 200
        await fake.wait_for(lambda: fake.responses)
        assert private_replies(fake) == [
            "Only the person who asked, or a channel manager, can stop this answer."]
        assert fake.streams[0].state == "streaming", "the answer goes on"

        status, _ = await fake.deliver(url, fake.click_request("C1", stop.ts, STOP,
                                                               user=ADMIN_USER_ID))
        assert status == 200
        await bot.idle()

        assert private_replies(fake)[1:] == ["Stopped. The text so far is kept."]
        (shown,) = fake.texts("C1", event["ts"])
        assert shown.endswith("(Stopped.)") and fake.streams[0].state == "stopped"
        assert with_button(fake, "C1", event["ts"], STOP) is None
        history = await core.store.history(thread_key("C1", event["ts"]), 100_000, 8)
        assert history[-1].status is TurnStatus.STOPPED
    assert fake.missed_acks == []


async def test_a_posted_answer_carries_its_stop_button_until_its_final_edit(
        fake: FakeSlack) -> None:
    """Where the answer is posted and edited (no native stream), the message being written
    carries the Stop button itself; the final edit removes it even when the text is already
    complete, and the answer's buttons then come in its place, the text kept."""
    event = fake.app_mention(text="go")
    place = Place(TEAM_ID, "C1", event["ts"], PLAIN_USER_ID, TEAM_ID)
    surface = SlackSurface(web_client(fake.bot_token, fake.api_url), place, FAST.limits,
                           WorkspaceBudgets({}))
    renderer = EditRenderer(surface)
    renderer.start()
    renderer.feed("The whole **answer**.")
    posted = await fake.wait_for_call("chat.postMessage")
    message = fake.stored("C1", posted.response["ts"])
    assert shown_buttons(message) == [STOP] and message.final_text == "The whole **answer**."

    rendered = await renderer.finish()

    assert rendered.message_ids == (message.ts,) and shown_buttons(message) == []
    assert message.final_text == "The whole **answer**."
    await surface.show_answer_controls(message.ts)
    assert shown_buttons(message) == [REGENERATE, UP, DOWN]
    assert message.final_text == "The whole **answer**."
    assert all(call.ok for call in fake.calls)


# --------------------------------------------------------------------------- answer buttons


async def test_a_finished_answer_carries_regenerate_and_ratings(
        make_settings: Callable[..., Settings], fake: FakeSlack,
        model_api: FakeModelServer) -> None:
    answer = "A **short** answer.\n\n- with a list"
    model_api.script("direct", Reply(text=answer))
    async with running(make_settings, fake) as (_, bot):
        event = fake.app_mention(text="hello")
        await deliver(bot, fake.event_request(event))

    (stream,) = fake.streams
    message = fake.stored("C1", stream.ts)
    assert message.final_text == answer and fake.texts("C1", event["ts"]) == [answer]
    assert shown_buttons(message) == [REGENERATE, UP, DOWN]
    key = str(thread_key("C1", event["ts"]))
    assert {b["value"] for _, b in buttons(message.blocks)} == {key}
    assert len(fake.deleted) == 1 and shown_buttons(fake.deleted[0]) == [STOP]
    assert all(call.ok for call in fake.calls)


async def test_regenerate_replaces_the_answer_and_the_history_sent_next(
        make_settings: Callable[..., Settings], fake: FakeSlack,
        model_api: FakeModelServer) -> None:
    fake.add_user(STRANGER, "sam")
    model_api.script("direct", Reply(text="first answer"), Reply(text="second answer"))
    async with running(make_settings, fake) as (core, bot):
        event = fake.app_mention(text="what is new?")
        await deliver(bot, fake.event_request(event))
        first = fake.streams[0].ts

        await deliver(bot, fake.click_request("C1", first, REGENERATE, user=STRANGER))
        assert private_replies(fake) == [
            "Only the person who asked, or a channel manager, can regenerate this answer."]
        assert len(model_api.requests) == 1

        await deliver(bot, fake.click_request("C1", first, REGENERATE, user=PLAIN_USER_ID))
        assert fake.texts("C1", event["ts"]) == ["first answer", "second answer"]
        second = fake.streams[1]
        assert shown_buttons(fake.stored("C1", second.ts)) == [REGENERATE, UP, DOWN]
        assert second.recipient_user_id == PLAIN_USER_ID
        assert model_messages(model_api) == [("user", "what is new?")]

        await deliver(bot, fake.click_request("C1", first, REGENERATE, user=PLAIN_USER_ID))
        assert private_replies(fake)[1:] == [
            "Only the conversation's latest answer can be regenerated."]

        follow_up = fake.message(text="and then?", thread_ts=event["ts"])
        await deliver(bot, fake.event_request(follow_up))
        assert model_messages(model_api) == [("user", "what is new?"),
                                             ("assistant", "second answer"),
                                             ("user", "and then?")]
        history = await core.store.history(thread_key("C1", event["ts"]), 100_000, 8)
        assert [t.text for t in history] == ["what is new?", "second answer", "and then?",
                                             "echo: and then?"]
    assert len(model_api.requests) == 3


async def test_ratings_are_stored_a_second_click_changes_them_and_usage_shows_them(
        make_settings: Callable[..., Settings], fake: FakeSlack,
        model_api: FakeModelServer) -> None:
    async with running(make_settings, fake) as (core, bot):
        event = fake.app_mention(text="rate me")
        await deliver(bot, fake.event_request(event))
        answer = fake.streams[0].ts

        await deliver(bot, fake.click_request("C1", answer, UP))
        channel = thread_key("C1", event["ts"]).channel_key
        up = await core.store.rating_totals(channel, timedelta(days=7))
        await deliver(bot, fake.click_request("C1", answer, DOWN))
        down = await core.store.rating_totals(channel, timedelta(days=7))
        await deliver(bot, fake.click_request("C1", answer, UP, user=ADMIN_USER_ID))
        both = await core.store.rating_totals(channel, timedelta(days=7))
        replies = private_replies(fake)
        usage = await run_command(bot, fake, "usage")

    assert (up.up, up.down, up.answers) == (1, 0, 1)
    assert (down.up, down.down, down.answers) == (0, 1, 1), "the second click replaced the first"
    assert (both.up, both.down, both.answers) == (1, 1, 1)
    assert len(replies) == 3
    assert replies[0] == "Thanks, noted: 👍." and replies[2] == "Thanks, noted: 👍."
    assert replies[1].startswith("Thanks, noted: 👎.") and "`/gemini usage`" in replies[1]
    assert "👍 1 · 👎 1" in usage


async def test_buttons_work_after_the_bot_restarts(make_settings: Callable[..., Settings],
                                                   fake: FakeSlack,
                                                   model_api: FakeModelServer) -> None:
    model_api.script("direct", Reply(text="before the restart"), Reply(text="after it"))
    async with running(make_settings, fake) as (_, bot):
        event = fake.app_mention(text="remember this")
        await deliver(bot, fake.event_request(event))
    answer = fake.streams[0].ts

    async with running(make_settings, fake) as (core, bot):  # same database, new process
        await deliver(bot, fake.click_request("C1", answer, UP))
        await deliver(bot, fake.click_request("C1", answer, REGENERATE))
        channel = thread_key("C1", event["ts"]).channel_key
        ratings = await core.store.rating_totals(channel, timedelta(days=7))

    assert private_replies(fake) == ["Thanks, noted: 👍."]
    assert (ratings.up, ratings.answers) == (1, 1)
    assert fake.texts("C1", event["ts"]) == ["before the restart", "after it"]
    assert model_messages(model_api) == [("user", "remember this")]


# --------------------------------------------------------------------------- delivery


async def test_a_slash_command_that_says_payload_still_reaches_its_listener_over_http(
        make_settings: Callable[..., Settings], fake: FakeSlack,
        model_api: FakeModelServer) -> None:
    """bolt reads a form whose text contains "payload" as a click's form (and finds no
    click in it): the bot's HTTP route hands such a command to bolt read already."""
    prompt = "Answer with a JSON payload only."
    request = fake.slash_command_request(text=f"system {prompt}", user_id=ADMIN_USER_ID)
    async with running(make_settings, fake) as (core, bot), \
            serve_http(bot, port=0, host="127.0.0.1") as port:
        body, headers = request
        as_bolt_reads_it = await bot.app.async_dispatch(AsyncBoltRequest(
            body=body, headers=dict(headers)))
        assert as_bolt_reads_it.status == 404 and not fake.responses, "the trap is real"

        status, _ = await fake.deliver(f"http://127.0.0.1:{port}/slack/events", request)
        await bot.idle()
        settings = await core.store.channel_settings(thread_key("C1", "").channel_key)

    assert status == 200 and fake.missed_acks == []
    assert [r.body["text"] for r in fake.responses] == [
        f"System prompt set ({len(prompt)} characters)."]
    assert settings.system_prompt == prompt


async def test_a_click_counts_only_in_the_conversation_its_button_names(
        fake: FakeSlack) -> None:
    question = fake.app_mention(text="q")
    other = fake.app_mention(text="elsewhere")
    bot_message = fake.stored("C1", question["ts"])
    bot_message.blocks = [{"type": "actions", "block_id": "b", "elements": [{
        "type": "button", "action_id": UP, "value": str(thread_key("C1", question["ts"])),
        "text": {"type": "plain_text", "text": "👍"}}]}]
    click = fake.click_payload("C1", question["ts"], UP)

    parsed = parse_click(click)
    assert parsed is not None and parsed.key == thread_key("C1", question["ts"])
    assert (parsed.action, parsed.user, parsed.message_ts) == (Action.RATE_UP, PLAIN_USER_ID,
                                                               question["ts"])
    moved = {**click, "container": {**click["container"], "channel_id": "C2"},
             "channel": {"id": "C2"}}
    elsewhere = {**click, "actions": [{**click["actions"][0],
                                       "value": str(thread_key("C1", other["ts"]))}]}
    forged = {**click, "actions": [{**click["actions"][0], "value": "slack:T1:C1:<@U1>"}]}
    unknown = {**click, "actions": [{**click["actions"][0], "action_id": "someone:else"}]}
    assert [parse_click(c) for c in (moved, elsewhere, forged, unknown)] == [None] * 4
