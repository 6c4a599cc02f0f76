"""End-to-end: a person edits a question they asked in Slack (a `message_changed` event):
the latest question is answered again, anything else changes nothing. Real bolt and
slack_sdk against the fake Slack, the real core on a SQLite file, the fake model API."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import pytest

from adapters.slack_bot.app import socket_mode
from adapters.slack_bot.controls import Action
from bot.config import Settings
from bot.conversation import Role
from tests.fakes.model_server import FakeModelServer
from tests.fakes.slack import FakeSlack
from tests.fakes.slack.blocks import buttons
from tests.test_slack_adapter import deliver, model_messages, running, thread_key


@pytest.fixture
async def fake() -> AsyncIterator[FakeSlack]:
    """Slack's limits per second instead of per minute, as the tests' budgets are."""
    async with FakeSlack(update_limit=20, update_window=1.0, tier_window=1.0,
                         retry_after=1) as server:
        yield server


async def test_an_edited_latest_question_is_answered_again(
        make_settings: Callable[..., Settings], fake: FakeSlack,
        model_api: FakeModelServer) -> None:
    async with running(make_settings, fake) as (core, bot):
        question = fake.app_mention(text="what is 2+2?")
        await deliver(bot, fake.event_request(question))
        edit = fake.edit("C1", question["ts"], "<@UBOT> what is 3+3?")
        assert edit["message"]["thread_ts"] == question["ts"], "the thread's parent"
        await deliver(bot, fake.event_request(edit))

        assert model_messages(model_api) == [("user", "what is 3+3?")]
        assert fake.texts("C1", question["ts"]) == ["echo: what is 2+2?", "echo: what is 3+3?"]
        newest = fake.stored("C1", fake.streams[-1].ts)
        assert [b["action_id"] for _, b in buttons(newest.blocks)] == [
            Action.REGENERATE.value, Action.RATE_UP.value, Action.RATE_DOWN.value]
        history = await core.store.history(thread_key("C1", question["ts"]), 100_000, 8)
        assert [(t.role, t.text) for t in history] == [(Role.USER, "what is 3+3?"),
                                                       (Role.ASSISTANT, "echo: what is 3+3?")]

        follow_up = fake.message(text="and doubled?", thread_ts=question["ts"])
        await deliver(bot, fake.event_request(follow_up))
        assert model_messages(model_api) == [("user", "what is 3+3?"),
                                             ("assistant", "echo: what is 3+3?"),
                                             ("user", "and doubled?")]


async def test_an_edit_of_an_older_question_changes_nothing(
        make_settings: Callable[..., Settings], fake: FakeSlack,
        model_api: FakeModelServer) -> None:
    async with running(make_settings, fake, slack_signing_secret=None,
                       slack_app_token=fake.app_token) as (core, bot), \
            socket_mode(bot, fake.app_token):
        first = fake.message(channel="D1", channel_type="im", text="first question")
        await fake.wait_ack(await fake.push_event(first))
        await bot.idle()
        second = fake.message(channel="D1", channel_type="im", text="second question",
                              thread_ts=first["ts"])
        await fake.wait_ack(await fake.push_event(second))
        await bot.idle()

        await fake.wait_ack(await fake.push_event(fake.edit("D1", first["ts"], "rewritten")))
        await bot.idle()

        assert len(model_api.requests) == 2
        assert fake.texts("D1", first["ts"]) == ["echo: first question", "echo: second question"]
        history = await core.store.history(thread_key("D1", first["ts"]), 100_000, 8)
        assert [t.text for t in history] == ["first question", "echo: first question",
                                             "second question", "echo: second question"]

        await fake.wait_ack(await fake.push_event(fake.edit("D1", second["ts"], "third one")))
        await bot.idle()
        assert model_messages(model_api)[-1] == ("user", "third one"), "the latest one is"
    assert fake.missed_acks == []


async def test_the_bots_own_edits_and_changes_that_keep_the_text_are_ignored(
        make_settings: Callable[..., Settings], fake: FakeSlack,
        model_api: FakeModelServer) -> None:
    async with running(make_settings, fake) as (_, bot):
        question = fake.app_mention(text="look at https://a.example/")
        await deliver(bot, fake.event_request(question))
        answer = fake.streams[0].ts
        noise = [
            fake.edit("C1", answer, "the bot rewrote its answer"),  # its own chat.update
            fake.edit("C1", question["ts"], preview=True),  # Slack added a link preview
            fake.edit("C1", question["ts"]),  # the thread's reply count changed
        ]
        assert all(event["message"].get("bot_id") for event in noise[:1])
        for event in noise:
            assert (await deliver(bot, fake.event_request(event))).status == 200

        assert len(model_api.requests) == 1 and len(fake.streams) == 1
        assert fake.texts("C1", question["ts"]) == ["echo: look at https://a.example/"]


async def test_a_redelivered_edit_is_answered_once(make_settings: Callable[..., Settings],
                                                   fake: FakeSlack,
                                                   model_api: FakeModelServer) -> None:
    async with running(make_settings, fake) as (_, bot):
        question = fake.app_mention(text="typo hree")
        await deliver(bot, fake.event_request(question))
        edit = fake.edit("C1", question["ts"], "<@UBOT> typo here")
        await deliver(bot, fake.event_request(edit, event_id="EvEdit1"))
        await deliver(bot, fake.event_request(edit, event_id="EvEdit1", retry_num=1))

    assert len(model_api.requests) == 2
    assert fake.texts("C1", question["ts"]) == ["echo: typo hree", "echo: typo here"]
