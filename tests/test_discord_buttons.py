"""The buttons on a finished Discord answer, end to end: the real discord.py client against the
fake Discord, a real core on a SQLite file, and the fake model API.

Regenerate answers the question again in place of the latest answer (asker or channel
manager only); 👍 and 👎 store one rating per person and answer; every button keeps working in
a bot process that never drew it.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import discord
import pytest

from adapters.discord_bot.app import MAX_RATELIMIT_WAIT
from adapters.discord_bot.controls import (
    MAX_CUSTOM_ID,
    RATE_TEMPLATE,
    REGENERATE_TEMPLATE,
    STOP_TEMPLATE,
    rate_custom_id,
    regenerate_custom_id,
    stop_custom_id,
)
from adapters.discord_bot.events import conversation_key
from adapters.discord_bot.surface import DISCORD_TUNING, DiscordSurface
from bot import RateLimited
from bot.config import Settings
from bot.conversation import ConversationKey, Role
from bot.service import RATED_DOWN, RATED_UP
from tests.fakes.discord import FakeDiscord, FakeUser
from tests.fakes.model_server import FakeModelServer, Reply
from tests.test_discord_adapter import (
    Bot,
    Configured,
    answer_buttons,
    configured,
    custom_ids,
    running,
    sent_messages,
)

JSON = dict[str, Any]
DEFERRED_UPDATE = 6
NOT_ASKER = "Only the person who asked, or a channel manager, can regenerate this answer."
NOT_LATEST = "Only the conversation's latest answer can be regenerated."


@pytest.fixture(autouse=True)
def no_error_logs(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """discord.py and the adapter log failures instead of raising them: any is a failure."""
    caplog.set_level(logging.INFO)
    yield
    errors = [r for r in caplog.get_records("call") if r.levelno >= logging.ERROR]
    assert not errors, [r.getMessage() for r in errors]


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


@pytest.fixture
async def bot(fake: FakeDiscord, discord_settings: Callable[..., Configured]
              ) -> AsyncIterator[Bot]:
    async with running(fake, discord_settings()) as started:
        yield started


async def click(bot: Bot, message_id: int | str, custom_id: str, user: FakeUser) -> JSON:
    """A person clicks a button; returns once the bot has answered the click and finished
    what it started."""
    interaction = await bot.fake.click_button(message_id, custom_id, user)
    await bot.fake.wait_for_interaction_response(interaction)
    await bot.client.idle()
    return interaction


def followups(fake: FakeDiscord, interaction: JSON) -> list[JSON]:
    """The messages sent in answer to `interaction` after it was acknowledged."""
    return [m for m in fake.messages.values()
            if (m.get("interaction_metadata") or {}).get("id") == interaction["id"]]


def acknowledged_quietly(fake: FakeDiscord, interaction: JSON) -> bool:
    """Whether the bot acknowledged `interaction` with a deferred update (nothing shown)."""
    return [r.type for r in fake.interaction_responses
            if r.interaction_id == int(interaction["id"])] == [DEFERRED_UPDATE]


def only_to_the_clicker(fake: FakeDiscord, interaction: JSON) -> list[str]:
    """The texts of the ephemeral followups to `interaction` (checked to be all of them)."""
    sent = followups(fake, interaction)
    assert all(m["flags"] & 64 for m in sent)
    return [m["content"] for m in sent]


async def asked(bot: Bot, text: str, user: FakeUser | None = None
                ) -> tuple[int, ConversationKey, str]:
    """A person mentions the bot in the channel: the thread, its key, the answer's id."""
    question = await bot.say(bot.fake.text_channel_id, user or bot.fake.plain_user, text,
                             mentions_bot=True)
    thread = bot.thread_of(question)
    key = conversation_key(bot.fake.guild_id, thread, bot.fake.text_channel_id)
    return thread, key, bot.fake.message_payloads_in(thread)[-1]["id"]


async def usage_ratings(bot: Bot, channel_id: int) -> list[str]:
    """The rating lines of `/gemini usage`."""
    usage = await bot.command(channel_id, bot.fake.plain_user, "gemini usage")
    return [line for line in usage.splitlines() if line.startswith("Ratings")]


# --------------------------------------------------------------------------- the buttons


def test_custom_ids_fit_discords_limit_and_name_the_conversation() -> None:
    longest = ConversationKey("discord", "9" * 20, "9" * 20, "9" * 20)
    dm = ConversationKey("discord", "dm", "12", "12")
    ids = [stop_custom_id(longest), regenerate_custom_id(longest),
           rate_custom_id(longest, 1), rate_custom_id(longest, -1)]
    assert max(map(len, ids)) == len(rate_custom_id(longest, -1)) <= MAX_CUSTOM_ID

    for template, custom_id in ((REGENERATE_TEMPLATE, regenerate_custom_id(dm)),
                                (RATE_TEMPLATE, rate_custom_id(dm, -1))):
        match = template.fullmatch(custom_id)
        assert match is not None and (match["workspace"], match["thread"]) == ("dm", "12")
    assert RATE_TEMPLATE.fullmatch(rate_custom_id(dm, 1).replace("up", "sideways")) is None
    assert STOP_TEMPLATE.fullmatch(stop_custom_id(ConversationKey(
        "discord", "1" * 21, "2", "3"))) is None, "an id longer than a snowflake is no key"


async def test_a_finished_answer_carries_regenerate_and_the_ratings(
    bot: Bot, model_api: FakeModelServer
) -> None:
    _, key, answer_id = await asked(bot, "hello")

    (row,) = bot.fake.get_message(answer_id)["components"]
    assert [(b.get("label"), (b.get("emoji") or {}).get("name")) for b in row["components"]] == [
        ("Regenerate", "🔁"), (None, "👍"), (None, "👎")]
    assert custom_ids(bot.fake, answer_id) == answer_buttons(key)
    assert bot.client.persistent_views == [], "nothing about the buttons is kept in memory"


async def test_the_buttons_edit_waits_for_the_channels_edit_budget_and_a_429_holds_it(
    bot: Bot
) -> None:
    """The edit that adds the buttons takes a slot of the channel's edit budget like the
    renderer's edits; a rate limit longer than discord.py waits holds the budget back and
    leaves the buttons out."""
    fake = bot.fake
    channel = bot.client.get_channel(fake.text_channel_id)
    assert isinstance(channel, discord.TextChannel)
    key = conversation_key(fake.guild_id, fake.text_channel_id, None)
    budget = RecordingBudget()
    surface = DiscordSurface(channel, DISCORD_TUNING, key, budget=budget)
    first = await surface.post("An answer.", final=True)
    second = await surface.post("Another answer.", final=True)

    await surface.show_answer_controls(first)
    assert budget.calls == ["acquire"]
    assert custom_ids(fake, first) == answer_buttons(key)

    wait = MAX_RATELIMIT_WAIT + 30
    fake.rate_limit_next("PATCH", rf"/channels/{fake.text_channel_id}/messages/{second}", wait)
    with pytest.raises(RateLimited):
        await surface.show_answer_controls(second)
    assert budget.calls == ["acquire", "acquire", f"pause {wait:g}"]
    assert custom_ids(fake, second) == []


class RecordingBudget:
    """An edit budget that never waits and notes what it was asked."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    async def acquire(self) -> None:
        self.calls.append("acquire")

    async def pause(self, seconds: float) -> None:
        self.calls.append(f"pause {seconds:g}")


# --------------------------------------------------------------------------- Regenerate


async def test_regenerate_by_the_asker_replaces_the_answer_in_the_history(
    bot: Bot, model_api: FakeModelServer
) -> None:
    model_api.script("direct", Reply(text="A dull answer."), Reply(text="A better answer."))
    thread, key, first = await asked(bot, "tell me about owls")

    clicked = await click(bot, first, regenerate_custom_id(key), bot.fake.plain_user)
    await bot.say(thread, bot.fake.plain_user, "and their eyes?")

    assert acknowledged_quietly(bot.fake, clicked) and followups(bot.fake, clicked) == []
    assert bot.fake.messages_in(thread) == [
        "A dull answer.", "A better answer.", "and their eyes?", "echo: and their eyes?"]
    assert sent_messages(model_api.requests[1].body) == [("user", "tell me about owls")]
    assert sent_messages(model_api.requests[2].body) == [
        ("user", "tell me about owls"), ("assistant", "A better answer."),
        ("user", "and their eyes?")]
    second = bot.fake.message_payloads_in(thread)[1]["id"]
    assert custom_ids(bot.fake, second) == answer_buttons(key)
    assert await bot.core.store.conversation_of_message("discord", second) == key
    history = await bot.core.store.history(key, 100_000, 8)
    assert [(t.role, t.text) for t in history] == [
        (Role.USER, "tell me about owls"), (Role.ASSISTANT, "A better answer."),
        (Role.USER, "and their eyes?"), (Role.ASSISTANT, "echo: and their eyes?")]


async def test_regenerate_is_refused_to_others_but_a_channel_manager_may(
    bot: Bot, model_api: FakeModelServer
) -> None:
    thread, key, answer = await asked(bot, "a question")
    carol = bot.fake.add_user("carol")

    refused = await click(bot, answer, regenerate_custom_id(key), carol)
    assert only_to_the_clicker(bot.fake, refused) == [NOT_ASKER]
    assert len(model_api.requests) == 1 and bot.fake.messages_in(thread) == [
        "echo: a question"]

    managed = await click(bot, answer, regenerate_custom_id(key), bot.fake.admin_user)
    assert followups(bot.fake, managed) == []
    assert len(model_api.requests) == 2
    assert bot.fake.messages_in(thread) == ["echo: a question", "echo: a question"]


async def test_regenerate_on_an_older_answer_is_refused(
    bot: Bot, model_api: FakeModelServer
) -> None:
    thread, key, first = await asked(bot, "one")
    await bot.say(thread, bot.fake.plain_user, "two")

    refused = await click(bot, first, regenerate_custom_id(key), bot.fake.plain_user)

    assert only_to_the_clicker(bot.fake, refused) == [NOT_LATEST]
    assert len(model_api.requests) == 2
    assert bot.fake.messages_in(thread) == ["echo: one", "two", "echo: two"]


async def test_a_regenerated_answer_can_be_stopped_like_any_answer(
    bot: Bot, model_api: FakeModelServer
) -> None:
    words = [f"w{i} " for i in range(400)]
    model_api.script("direct", Reply(text="Short."),
                     Reply(chunks=words, delay_between_chunks=0.01))
    thread, key, first = await asked(bot, "go")

    interaction = await bot.fake.click_button(first, regenerate_custom_id(key),
                                              bot.fake.plain_user)
    (writing,) = await bot.fake.wait_until(lambda: [
        m for m in bot.fake.message_payloads_in(thread)
        if stop_custom_id(key) in custom_ids(bot.fake, m["id"])])
    stop = await bot.fake.click_button(writing["id"], stop_custom_id(key), bot.fake.plain_user)
    assert await bot.ephemeral_answer(stop) == "Stopped. The text so far is kept."
    await bot.client.idle()

    assert acknowledged_quietly(bot.fake, interaction)
    shown = bot.fake.get_message(writing["id"])["content"]
    assert shown.startswith("w0 ") and shown.endswith("(Stopped.)")
    assert custom_ids(bot.fake, writing["id"]) == answer_buttons(key)


# --------------------------------------------------------------------------- ratings


async def test_ratings_count_one_per_person_and_the_last_click_counts(
    bot: Bot, model_api: FakeModelServer
) -> None:
    thread, key, answer = await asked(bot, "rate me")
    up, down = rate_custom_id(key, 1), rate_custom_id(key, -1)
    assert await usage_ratings(bot, thread) == [
        "Ratings, last 7 days: none yet", "Ratings, last 30 days: none yet"]

    first = await click(bot, answer, up, bot.fake.plain_user)
    changed = await click(bot, answer, down, bot.fake.plain_user)
    assert [await bot.ephemeral_answer(i) for i in (first, changed)] == [RATED_UP, RATED_DOWN]
    assert await usage_ratings(bot, thread) == [
        "Ratings, last 7 days: 👍 0 · 👎 1 (on 1 answer)",
        "Ratings, last 30 days: 👍 0 · 👎 1 (on 1 answer)"]

    for person in (bot.fake.admin_user, bot.fake.add_user("carol")):
        assert await bot.ephemeral_answer(await click(bot, answer, up, person)) == RATED_UP
    assert (await usage_ratings(bot, bot.fake.text_channel_id))[0] == (
        "Ratings, last 7 days: 👍 2 · 👎 1 (on 1 answer)"), "the channel's thread counts"
    assert len(model_api.requests) == 1


# --------------------------------------------------------------------------- restarts


async def test_the_buttons_work_in_a_process_that_never_drew_them(
    fake: FakeDiscord, discord_settings: Callable[..., Configured], model_api: FakeModelServer
) -> None:
    settings = discord_settings()
    model_api.script("direct", Reply(text="Before the restart."),
                     Reply(text="After the restart."))
    async with running(fake, settings) as bot:
        thread, key, answer = await asked(bot, "survive this")

    async with running(fake, settings) as bot:
        rated = await click(bot, answer, rate_custom_id(key, 1), fake.plain_user)
        assert await bot.ephemeral_answer(rated) == RATED_UP
        refused = await click(bot, answer, regenerate_custom_id(key), fake.add_user("carol"))
        assert only_to_the_clicker(fake, refused) == [NOT_ASKER]
        regenerated = await click(bot, answer, regenerate_custom_id(key), fake.plain_user)
        assert acknowledged_quietly(fake, regenerated)
        assert (await usage_ratings(bot, thread))[0] == (
            "Ratings, last 7 days: 👍 1 · 👎 0 (on 1 answer)")

    assert fake.messages_in(thread) == ["Before the restart.", "After the restart."]
    latest = fake.message_payloads_in(thread)[-1]["id"]
    assert custom_ids(fake, latest) == answer_buttons(key)
