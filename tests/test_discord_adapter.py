"""The Discord adapter end to end: the real discord.py client against the fake Discord, a real
core on a SQLite file, and the fake model API.

Each scenario checks what people see in Discord, what the model received, and where it
matters what the database holds.
"""

from __future__ import annotations

import asyncio
import base64
import io
import json
import logging
import os
import re
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from typing import Any

import discord
import pytest
from aiohttp import web
from PIL import Image

from adapters.common import PlatformTuning
from adapters.discord_bot.app import MAX_RATELIMIT_WAIT, GeminiClient, invite_url, run_discord
from adapters.discord_bot.controls import rate_custom_id, regenerate_custom_id, stop_custom_id
from adapters.discord_bot.events import conversation_key
from adapters.discord_bot.replies import FINISHED
from adapters.discord_bot.settings import DiscordSettings
from adapters.discord_bot.surface import DISCORD_TUNING, DiscordSurface
from bot.app import Core, open_core
from bot.attachments import format_sizes
from bot.config import Settings
from bot.conversation import ConversationKey, Role, TurnStatus
from bot.drawing.pacing import LocalEditBudget
from bot.drawing.render import EditRenderer
from bot.errors import ConfigError
from tests.fakes.discord import FakeDiscord, FakeUser, Perm
from tests.fakes.model_server import FakeModelServer, Reply, message_text, split_text
from tests.support.clock import FakeClock
from tests.support.surfaces import TimedSurface

FAST = replace(DISCORD_TUNING, min_edit_interval=0.05, edit_rate=10, edit_period=0.5,
               edit_burst=2)
JSON = dict[str, Any]


class RecordingClient(GeminiClient):
    """The bot's client, noting each message it has taken in (so tests know when to look)."""

    def __init__(self, core: Core, settings: DiscordSettings, tuning: PlatformTuning = FAST
                 ) -> None:
        super().__init__(core, settings, tuning, guild_ready_timeout=0.05)
        self.seen: set[int] = set()

    async def on_message(self, message: discord.Message) -> None:
        await super().on_message(message)
        self.seen.add(message.id)


@dataclass
class Bot:
    """A running bot: the fake Discord, the client and the core behind it."""

    fake: FakeDiscord
    client: RecordingClient
    core: Core

    async def say(self, channel_id: int, author: FakeUser, content: str = "", **options: Any
                  ) -> JSON:
        """A person posts a message; returns once the bot has finished with it."""
        payload = await self.fake.send_message(channel_id, author, content, **options)
        await self.fake.wait_until(lambda: int(payload["id"]) in self.client.seen)
        await self.client.idle()
        return payload

    async def command(self, channel_id: int, user: FakeUser, name: str,
                      options: dict[str, Any] | None = None) -> str:
        """Run a slash command and return the (ephemeral) answer's text."""
        interaction = await self.fake.slash_command(channel_id, user, name, options)
        return await self.ephemeral_answer(interaction)

    async def ephemeral_answer(self, interaction: JSON) -> str:
        """The text the person sees in answer to `interaction`, checked to be ephemeral."""
        response = await self.fake.wait_for_interaction_response(interaction)
        assert response.ephemeral
        if response.type == 4:
            assert response.data is not None
            return str(response.data["content"])
        message_id = response.message_id
        assert response.type == 5 and message_id is not None
        message = await self.fake.wait_until(
            lambda: (m := self.fake.get_message(message_id))["content"] and m
        )
        assert message["flags"] & 64
        return str(message["content"])

    def thread_of(self, message: JSON) -> int:
        """The thread the bot started on `message` (a thread has its message's id)."""
        thread_ids = [int(t["id"]) for t in self.fake.threads]
        assert int(message["id"]) in thread_ids
        return int(message["id"])


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


@dataclass(frozen=True)
class Configured:
    """What the launcher would read: the core's settings and the Discord adapter's."""

    core: Settings
    discord: DiscordSettings


def pointed_at(fake: FakeDiscord, **overrides: Any) -> DiscordSettings:
    """The Discord adapter's settings, pointed at `fake`; overrides by field name."""
    values: dict[str, Any] = {"bot_token": fake.token, "api_url": fake.api_url,
                              "gateway_url": fake.gateway_url}
    return DiscordSettings.load(_env_file=None, **(values | overrides))


def configured(make_settings: Callable[..., Settings], fake: FakeDiscord, **overrides: Any
               ) -> Configured:
    """Settings for a bot pointed at `fake`; overrides by variable name, lower-cased
    (`discord_role_ids` goes to the adapter's settings, `bot_max_images` to the core's)."""
    adapter = {name.removeprefix("discord_"): value for name, value in overrides.items()
               if name.startswith("discord_")}
    core = {name: value for name, value in overrides.items() if not name.startswith("discord_")}
    return Configured(make_settings(**core), pointed_at(fake, **adapter))


@pytest.fixture
def discord_settings(make_settings: Callable[..., Settings], fake: FakeDiscord
                     ) -> Callable[..., Configured]:
    """Settings with the Discord adapter pointed at the fake; overrides by variable name."""

    def make(**overrides: Any) -> Configured:
        return configured(make_settings, fake, **overrides)

    return make


@asynccontextmanager
async def running(fake: FakeDiscord, settings: Configured, tuning: PlatformTuning = FAST
                  ) -> AsyncIterator[Bot]:
    async with open_core(settings.core) as core:
        client = RecordingClient(core, settings.discord, tuning)
        async with fake.client_running(client):
            yield Bot(fake, client, core)


@pytest.fixture
async def bot(fake: FakeDiscord, discord_settings: Callable[..., Configured]
              ) -> AsyncIterator[Bot]:
    async with running(fake, discord_settings()) as started:
        yield started


def png(color: str = "red") -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (8, 8), color).save(out, format="PNG")
    return out.getvalue()


def jpeg(color: str = "blue") -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (8, 8), color).save(out, format="JPEG")
    return out.getvalue()


def sent_messages(request_body: JSON) -> list[tuple[str, str]]:
    """(role, text) of each message the model received."""
    return [(m["role"], message_text(m["content"])) for m in request_body["messages"]]


def components(fake: FakeDiscord, message_id: int | str) -> list[JSON]:
    return list(fake.get_message(message_id)["components"])


def custom_ids(fake: FakeDiscord, message_id: int | str) -> list[str]:
    """The custom ids of a message's buttons, row by row."""
    return [item["custom_id"] for row in components(fake, message_id)
            for item in row["components"]]


def answer_buttons(key: ConversationKey) -> list[str]:
    """The custom ids of a finished answer's buttons: Regenerate, 👍, 👎."""
    return [regenerate_custom_id(key), rate_custom_id(key, 1), rate_custom_id(key, -1)]


def stop_buttons_in(fake: FakeDiscord, channel_id: int) -> list[JSON]:
    """The messages in a channel that carry a Stop button (answers being written)."""
    return [m for m in fake.message_payloads_in(channel_id)
            if any(i.startswith("gemini:stop") for i in custom_ids(fake, m["id"]))]


# --------------------------------------------------------------------------- conversations


async def test_mention_starts_a_thread_and_streams_the_answer_there(
    bot: Bot, model_api: FakeModelServer
) -> None:
    answer = "Paris is the capital of France. It sits on the Seine, " * 3
    model_api.script("direct", Reply(text=answer, delay_between_chunks=0.01))

    question = await bot.say(bot.fake.text_channel_id, bot.fake.plain_user,
                             "what is the capital of France?", mentions_bot=True)

    thread = bot.thread_of(question)
    (created,) = bot.fake.threads
    assert created["name"] == "what is the capital of France?"
    assert created["parent_id"] == str(bot.fake.text_channel_id)
    assert bot.fake.messages_in(thread) == [answer]
    assert bot.fake.messages_in(bot.fake.text_channel_id) == [question["content"]]
    (request,) = model_api.requests
    assert sent_messages(request.body) == [("user", "what is the capital of France?")]

    (post,) = bot.fake.calls_to("POST", rf"/channels/{thread}/messages")
    assert post.json["allowed_mentions"] == {"parse": []}
    key = conversation_key(bot.fake.guild_id, thread, bot.fake.text_channel_id)
    assert post.json["components"][0]["components"][0]["custom_id"] == stop_custom_id(key)
    typing = bot.fake.calls_to("POST", rf"/channels/{thread}/typing")
    assert typing and bot.fake.calls.index(typing[0]) < bot.fake.calls.index(post)
    (answer_id,) = [m["id"] for m in bot.fake.message_payloads_in(thread)]
    *_, final, buttons = bot.fake.edits_of(answer_id)
    assert final.payload["content"] == answer and final.payload["components"] == []
    assert "content" not in buttons.payload
    assert custom_ids(bot.fake, answer_id) == answer_buttons(key)

    turns = await bot.core.store.history(key, 100_000, 8)
    assert [(t.role, t.text) for t in turns] == [
        (Role.USER, "what is the capital of France?"), (Role.ASSISTANT, answer)]
    for message_id in (question["id"], answer_id):
        assert await bot.core.store.conversation_of_message("discord", message_id) == key


async def test_a_follow_up_in_the_bots_thread_needs_no_mention_and_carries_the_history(
    bot: Bot, model_api: FakeModelServer
) -> None:
    model_api.script("direct", Reply(text="First answer."), Reply(text="Second answer."))
    question = await bot.say(bot.fake.text_channel_id, bot.fake.plain_user, "first question",
                             mentions_bot=True)
    thread = bot.thread_of(question)

    await bot.say(thread, bot.fake.admin_user, "and a follow-up")

    assert bot.fake.messages_in(thread) == ["First answer.", "and a follow-up", "Second answer."]
    assert sent_messages(model_api.requests[1].body) == [
        ("user", "first question"), ("assistant", "First answer."), ("user", "and a follow-up")]


async def test_a_mention_in_another_thread_answers_there_with_history_from_the_mention_on(
    bot: Bot, model_api: FakeModelServer
) -> None:
    thread = await bot.fake.add_thread(bot.fake.text_channel_id, "people talking",
                                       owner=bot.fake.plain_user)
    await bot.fake.wait_until(lambda: bot.client.get_channel(thread) is not None)
    await bot.say(thread, bot.fake.plain_user, "just chatting among ourselves")
    assert model_api.requests == []

    await bot.say(thread, bot.fake.admin_user, "what do you think?", mentions_bot=True)
    await bot.say(thread, bot.fake.plain_user, "and now?")

    assert bot.fake.messages_in(thread)[1:] == [
        f"{bot.fake.bot_user.mention} what do you think?", "echo: what do you think?",
        "and now?", "echo: and now?"]
    assert sent_messages(model_api.requests[0].body) == [("user", "what do you think?")]
    assert sent_messages(model_api.requests[1].body) == [
        ("user", "what do you think?"), ("assistant", "echo: what do you think?"),
        ("user", "and now?")]
    assert bot.fake.threads == []


async def test_a_dm_is_one_conversation(bot: Bot, model_api: FakeModelServer) -> None:
    dm = bot.fake.dm_channel_id
    await bot.say(dm, bot.fake.plain_user, "hello there")
    await bot.say(dm, bot.fake.plain_user, "again")

    assert bot.fake.messages_in(dm) == ["hello there", "echo: hello there", "again",
                                        "echo: again"]
    assert sent_messages(model_api.requests[1].body) == [
        ("user", "hello there"), ("assistant", "echo: hello there"), ("user", "again")]
    assert bot.fake.threads == []


async def test_without_thread_permission_it_answers_inline_and_a_reply_continues(
    bot: Bot, model_api: FakeModelServer
) -> None:
    channel = bot.fake.text_channel_id
    await bot.fake.set_overwrite(channel, bot.fake.bot_role_id, deny=Perm.CREATE_PUBLIC_THREADS)

    question = await bot.say(channel, bot.fake.plain_user, "inline please", mentions_bot=True)
    answer = bot.fake.message_payloads_in(channel)[1]
    assert answer["content"] == "echo: inline please"
    assert answer["message_reference"]["message_id"] == question["id"]

    await bot.say(channel, bot.fake.plain_user, "not for the bot")
    await bot.say(channel, bot.fake.plain_user, "go on", reference_message_id=answer["id"])

    assert bot.fake.threads == []
    assert len(model_api.requests) == 2
    assert sent_messages(model_api.requests[1].body) == [
        ("user", "inline please"), ("assistant", "echo: inline please"), ("user", "go on")]
    assert bot.fake.messages_in(channel)[-1] == "echo: go on"


async def test_mentioning_the_bots_role_works_like_mentioning_the_bot(
    bot: Bot, model_api: FakeModelServer
) -> None:
    question = await bot.say(bot.fake.text_channel_id, bot.fake.plain_user,
                             f"<@&{bot.fake.bot_role_id}> which role am I?")

    assert bot.fake.messages_in(bot.thread_of(question)) == ["echo: which role am I?"]


async def test_messages_from_bots_are_ignored(bot: Bot, model_api: FakeModelServer) -> None:
    question = await bot.say(bot.fake.text_channel_id, bot.fake.plain_user, "hi",
                             mentions_bot=True)
    thread = bot.thread_of(question)

    await bot.say(bot.fake.text_channel_id, bot.fake.other_bot, "hello bot", mentions_bot=True)
    await bot.say(thread, bot.fake.other_bot, "beep boop")

    assert len(model_api.requests) == 1
    assert bot.fake.messages_in(thread) == ["echo: hi", "beep boop"]
    assert len(bot.fake.threads) == 1
    own = [int(m["id"]) for m in bot.fake.message_payloads_in(thread)][:1]
    assert set(own) <= bot.client.seen  # the bot saw its own answer and left it alone


# --------------------------------------------------------------------------- attachments


async def test_images_reach_the_model_as_image_parts(bot: Bot, model_api: FakeModelServer
                                                     ) -> None:
    model_api.script("api", Reply(text="Red and blue squares."))
    gif = io.BytesIO()
    Image.new("RGB", (4, 4), "green").save(gif, format="GIF")

    question = await bot.say(
        bot.fake.text_channel_id, bot.fake.plain_user, "compare these", mentions_bot=True,
        attachments=[("red.png", png(), "image/png"), ("blue.jpg", jpeg(), "image/jpeg"),
                     ("green.gif", gif.getvalue(), "image/gif")],
    )

    assert bot.fake.messages_in(bot.thread_of(question)) == ["Red and blue squares."]
    (request,) = model_api.requests_to("api")
    content = request.body["messages"][-1]["content"]
    assert content[0] == {"type": "text", "text": "compare these"}
    urls = [part["image_url"]["url"] for part in content[1:]]
    assert urls[:2] == [f"data:image/png;base64,{base64.b64encode(png()).decode()}",
                        f"data:image/jpeg;base64,{base64.b64encode(jpeg()).decode()}"]
    assert urls[2].startswith("data:image/png;base64,")  # the GIF, as a PNG of its frame


async def test_other_files_get_a_note_and_small_text_files_are_read(
    bot: Bot, model_api: FakeModelServer
) -> None:
    question = await bot.say(
        bot.fake.text_channel_id, bot.fake.plain_user, "read these", mentions_bot=True,
        attachments=[("report.zip", b"PK\x03\x04 not an image", "application/zip"),
                     ("notes.txt", b"remember the milk", "text/plain")],
    )

    thread = bot.thread_of(question)
    assert bot.fake.messages_in(thread) == [
        "Skipped report.zip: only images (PNG, JPEG, WebP, GIF, HEIC/HEIF), PDF and Word "
        "(.docx) documents, and text files are read.",
        "echo: read these\n[file notes.txt]\nremember the milk",
    ]
    (request,) = model_api.requests
    assert sent_messages(request.body) == [
        ("user", "read these\n[file notes.txt]\nremember the milk")]
    downloads = [c.path for c in bot.fake.calls if not c.api and c.method == "GET"]
    assert [p.rsplit("/", 1)[-1] for p in downloads] == ["notes.txt"]


async def test_oversized_files_are_skipped_even_when_the_payload_understates_them(
    fake: FakeDiscord, discord_settings: Callable[..., Configured], model_api: FakeModelServer
) -> None:
    data = io.BytesIO()
    Image.frombytes("RGB", (300, 300), os.urandom(300 * 300 * 3)).save(data, format="PNG")
    large = fake.add_attachment_file("large.png", data.getvalue(), "image/png")
    understated = fake.add_attachment_file("sly.png", data.getvalue(), "image/png", size=100)
    limit = 200_000

    async with running(fake, discord_settings(bot_max_attachment_bytes=limit)) as bot:
        question = await bot.say(fake.text_channel_id, fake.plain_user, "look",
                                 mentions_bot=True, attachments=[large, understated])

    notes = fake.messages_in(bot.thread_of(question))[:2]
    size, allowed = format_sizes(len(data.getvalue()), limit)
    assert notes == [f"Skipped large.png: it is {size}; the limit is {allowed}.",
                     f"Skipped sly.png: it is larger than the limit, {allowed}."]
    assert sent_messages(model_api.requests[0].body) == [("user", "look")]


@asynccontextmanager
async def file_host(host: str, port: int, data: bytes) -> AsyncIterator[list[str]]:
    """A live web server on `host`:`port` serving `data` at every path; yields the paths
    it was asked for."""
    asked: list[str] = []

    async def serve(request: web.Request) -> web.Response:
        asked.append(request.path)
        return web.Response(body=data, content_type="image/png")

    app = web.Application()
    app.router.add_get("/{tail:.*}", serve)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port).start()
        yield asked
    finally:
        await runner.cleanup()


async def test_attachments_are_only_downloaded_from_discord_hosts(
    bot: Bot, model_api: FakeModelServer
) -> None:
    image = bot.fake.add_attachment_file("elsewhere.png", png(), "image/png")
    image["url"] = image["url"].replace("127.0.0.1", "127.0.0.2")

    async with file_host("127.0.0.2", bot.fake.port, png()) as asked_elsewhere:
        question = await bot.say(bot.fake.text_channel_id, bot.fake.plain_user,
                                 "what is this?", mentions_bot=True, attachments=[image])

    assert asked_elsewhere == [], "the other host serves the file, but nobody asked it"
    assert bot.fake.messages_in(bot.thread_of(question))[0] == (
        "Skipped elsewhere.png: it could not be downloaded.")
    assert [c for c in bot.fake.calls if not c.api] == []
    assert sent_messages(model_api.requests[0].body) == [("user", "what is this?")]


# --------------------------------------------------------------------------- streaming


async def test_a_5000_character_answer_arrives_whole_over_three_messages(
    bot: Bot, model_api: FakeModelServer
) -> None:
    paragraph = "A sentence that keeps going for a while, and then some more words. " * 6
    answer = ("\n\n".join([paragraph.strip()] * 20))[:4999] + "."
    assert len(answer) == 5000
    model_api.script("direct", Reply(chunks=[answer[i:i + 97] for i in range(0, 5000, 97)],
                                     delay_between_chunks=0.002))

    question = await bot.say(bot.fake.text_channel_id, bot.fake.plain_user, "write a lot",
                             mentions_bot=True)

    thread = bot.thread_of(question)
    texts = bot.fake.messages_in(thread)
    assert len(texts) == 3 and all(len(t) <= 2000 for t in texts)
    assert "".join(texts) == answer
    key = conversation_key(bot.fake.guild_id, thread, bot.fake.text_channel_id)
    assert [custom_ids(bot.fake, m["id"]) for m in bot.fake.message_payloads_in(thread)] == [
        [], [], answer_buttons(key)], "the buttons are on the answer's last message only"


def fence_lines(text: str) -> int:
    return len(re.findall(r"^```", text, flags=re.MULTILINE))


async def test_a_code_block_split_across_messages_is_closed_and_reopened(
    bot: Bot, model_api: FakeModelServer
) -> None:
    code = "".join(f"value_{i:03d} = compute({i})\n" for i in range(120))
    answer = f"Here is the script:\n\n```python\n{code}```\nRun it once."
    assert 2000 < len(answer) < 3900, "two messages"
    model_api.script("direct", Reply(chunks=[answer[i:i + 150] for i in range(0, len(answer), 150)],
                                     delay_between_chunks=0.01))

    question = await bot.say(bot.fake.text_channel_id, bot.fake.plain_user, "write code",
                             mentions_bot=True)

    thread = bot.thread_of(question)
    first, second = bot.fake.messages_in(thread)
    assert first.startswith("Here is the script:\n\n```python\nvalue_000 = compute(0)\n")
    assert first.endswith(")\n```") and second.startswith("```python\nvalue_")
    assert first.removesuffix("```") + second.removeprefix("```python\n") == answer
    assert second.endswith("```\nRun it once.")
    versions = [c.json["content"] for c in bot.fake.calls
                if c.status == 200 and re.fullmatch(rf"/channels/{thread}/messages(/\d+)?", c.path)
                and c.method in ("POST", "PATCH") and c.json and "content" in c.json]
    assert len(versions) > 3, "posted, then edited as it grew"
    assert all(fence_lines(v) % 2 == 0 for v in versions), "no version showed an open fence"


async def test_a_rate_limit_longer_than_discord_py_waits_reaches_the_renderer(
    bot: Bot
) -> None:
    """discord.py waits out a 429 of up to MAX_RATELIMIT_WAIT seconds itself; a longer one it
    raises, the surface turns into RateLimited, and the renderer waits (on a virtual clock
    here) and still delivers the final text."""
    fake, clock = bot.fake, FakeClock()
    channel = bot.client.get_channel(fake.text_channel_id)
    assert isinstance(channel, discord.TextChannel)
    key = conversation_key(fake.guild_id, fake.text_channel_id, None)
    surface = DiscordSurface(channel, DISCORD_TUNING, key)
    renderer = EditRenderer(surface, clock=clock, sleep=clock.sleep)
    wait = MAX_RATELIMIT_WAIT + 30
    renderer.start()
    renderer.feed("The first words ")
    (posted,) = await fake.wait_until(lambda: fake.message_payloads_in(fake.text_channel_id))
    fake.rate_limit_next("PATCH", rf"/channels/{fake.text_channel_id}/messages/\d+", wait)
    renderer.feed("and the rest.")

    result = await clock.drive(renderer.finish())

    assert result.delivered and result.message_ids == (posted["id"],)
    (limited,) = fake.rate_limited
    assert limited.retry_after == wait
    assert renderer.edit_times == pytest.approx([1.0, 1.0 + wait]), "waited as long as asked"
    assert fake.messages_in(fake.text_channel_id) == ["The first words and the rest."]
    assert components(fake, posted["id"]) == [], "the final edit removed the Stop button"


async def test_a_rate_limited_edit_waits_and_loses_nothing(
    make_settings: Callable[..., Settings], model_api: FakeModelServer
) -> None:
    eager = replace(DISCORD_TUNING, min_edit_interval=0.01, edit_rate=100, edit_period=1.0,
                    edit_burst=10)
    words = [f"w{i} " for i in range(60)]
    model_api.script("direct", Reply(chunks=words, delay_between_chunks=0.01))
    async with FakeDiscord(edit_limit=2, edit_window=0.25, ratelimit_headers=False) as fake:
        with fake.patch_discord():
            async with running(fake, configured(make_settings, fake), eager) as bot:
                question = await bot.say(fake.text_channel_id, fake.plain_user, "count",
                                         mentions_bot=True)
            thread = bot.thread_of(question)
            assert fake.messages_in(thread) == ["".join(words)]
            assert fake.rate_limited, "the fake never answered 429"
            patches = fake.calls_to("PATCH", rf"/channels/{thread}/messages/\d+")
            assert {c.status for c in patches} == {200, 429}
            (answer_id,) = [m["id"] for m in fake.message_payloads_in(thread)]
            edits = fake.edits_of(answer_id)
            assert [len(e.content or "") for e in edits] == sorted(len(e.content or "")
                                                                    for e in edits)


async def test_at_discords_pace_edits_come_a_second_apart_and_no_text_waits_longer(
) -> None:
    """The renderer's own schedule at Discord's real pace (the default tuning: one edit a
    second per message, 5 per 5 s per channel), on a virtual clock: 35 chunks 0.1 s apart.
    Figures against the fake Discord in real time: bench/discord_edit_pace.py."""
    tuning, clock = DISCORD_TUNING, FakeClock()
    surface = TimedSurface(limits=tuning.limits, clock=clock)
    budget = LocalEditBudget(tuning.edit_rate, tuning.edit_period, tuning.edit_burst, clock=clock,
                        sleep=clock.sleep)
    renderer = EditRenderer(surface, budget, clock=clock, sleep=clock.sleep)
    chunks = split_text(" ".join(f"word{i}" for i in range(70)), 2)
    fed_at = [index * 0.1 for index in range(len(chunks))]

    renderer.start()
    for chunk in chunks:
        renderer.feed(chunk)
        await clock.advance(0.1)
    await clock.run(renderer.finish())

    shown = surface.timeline
    assert [kind for kind, *_ in surface.calls] == ["post"] + ["edit"] * 4
    assert [at for at, _ in shown] == pytest.approx([0.0, 1.0, 2.0, 3.0, 4.0])
    assert shown[-1][1] == "".join(chunks) and surface.calls[-1][3], "the final edit"
    assert renderer.edit_times == pytest.approx([1.0, 2.0, 3.0, 4.0])
    for index, at in enumerate(fed_at):
        needed = len("".join(chunks[: index + 1]))
        visible = next(when for when, text in shown if len(text) >= needed)
        assert visible - at <= tuning.min_edit_interval + 1e-9, f"chunk {index} waited"


# --------------------------------------------------------------------------- the Stop button


async def test_the_stop_button_ends_the_answer_and_keeps_the_text(
    bot: Bot, model_api: FakeModelServer
) -> None:
    words = [f"word{i} " for i in range(300)]
    model_api.script("direct", Reply(chunks=words, delay_between_chunks=0.01))
    question = await bot.fake.send_message(bot.fake.text_channel_id, bot.fake.plain_user,
                                           "tell me a long story", mentions_bot=True)
    thread = int(question["id"])
    first = await bot.fake.wait_until(
        lambda: [m for m in bot.fake.message_payloads_in(thread) if m["components"]])
    message_id = first[0]["id"]
    await bot.fake.wait_until(lambda: bot.fake.edits_of(message_id))
    bystander = bot.fake.add_user("carol")
    stop = stop_custom_id(conversation_key(bot.fake.guild_id, thread, bot.fake.text_channel_id))

    refused = await bot.fake.click_button(message_id, stop, bystander)
    assert await bot.ephemeral_answer(refused) == (
        "Only the person who asked, or a channel manager, can stop this answer.")
    clicked = await bot.fake.click_button(message_id, stop, bot.fake.plain_user)
    assert await bot.ephemeral_answer(clicked) == "Stopped. The text so far is kept."
    await bot.client.idle()

    (shown,) = bot.fake.messages_in(thread)
    assert shown.endswith("\n\n(Stopped.)") and shown.startswith("word0 word1 ")
    kept = shown.removesuffix("\n\n(Stopped.)")
    assert len(kept) < len("".join(words))
    key = conversation_key(bot.fake.guild_id, thread, bot.fake.text_channel_id)
    assert custom_ids(bot.fake, message_id) == answer_buttons(key)
    answer = (await bot.core.store.history(key, 100_000, 8))[-1]
    assert (answer.role, answer.status, answer.text) == (Role.ASSISTANT, TurnStatus.STOPPED,
                                                         kept)


async def test_a_stop_button_works_in_a_process_that_never_drew_it(
    fake: FakeDiscord, discord_settings: Callable[..., Configured], model_api: FakeModelServer
) -> None:
    """Nothing about a Stop button is kept in memory: its custom id names the conversation,
    so a fresh client acts on a button an earlier process drew. With an answer being
    written there, a click stops it; with none, the click gets a note saying so."""
    settings = discord_settings()
    words = [f"w{i} " for i in range(400)]
    model_api.script("direct", Reply(chunks=words, delay_between_chunks=0.01),
                     Reply(chunks=words, delay_between_chunks=0.01))
    async with running(fake, settings):
        question = await fake.send_message(fake.text_channel_id, fake.plain_user, "a long one",
                                           mentions_bot=True)
        thread = int(question["id"])
        (drawn,) = await fake.wait_until(
            lambda: [m for m in fake.message_payloads_in(thread) if m["components"]])
    key = conversation_key(fake.guild_id, thread, fake.text_channel_id)
    stop = stop_custom_id(key)
    assert components(fake, drawn["id"])[0]["components"][0]["custom_id"] == stop, \
        "the button the first process left behind carries the conversation key"

    async with running(fake, settings) as bot:
        finished = await fake.click_button(drawn["id"], stop, fake.plain_user)
        assert await bot.ephemeral_answer(finished) == FINISHED

        await fake.send_message(thread, fake.plain_user, "another long one")
        (writing,) = await fake.wait_until(lambda: [
            m for m in fake.message_payloads_in(thread) if m["components"] and m != drawn])
        assert bot.client.persistent_views == [], "no view is kept for the new button either"
        clicked = await fake.click_button(drawn["id"], stop, fake.plain_user)
        assert await bot.ephemeral_answer(clicked) == "Stopped. The text so far is kept."
        await bot.client.idle()
        again = await fake.click_button(drawn["id"], stop, fake.plain_user)
        assert await bot.ephemeral_answer(again) == FINISHED
        answer = (await bot.core.store.history(key, 100_000, 8))[-1]

    shown = fake.get_message(writing["id"])["content"]
    assert shown.endswith("\n\n(Stopped.)")
    assert custom_ids(fake, writing["id"]) == answer_buttons(key)
    assert (answer.status, answer.text) == (TurnStatus.STOPPED,
                                            shown.removesuffix("\n\n(Stopped.)"))


# --------------------------------------------------------------------------- slash commands


async def test_commands_show_set_unset_with_permission_and_range_checks(bot: Bot) -> None:
    channel, fake = bot.fake.text_channel_id, bot.fake

    shown = await bot.command(channel, fake.plain_user, "gemini show")
    assert shown.startswith("**Settings for this channel**")
    refused = await bot.command(channel, fake.plain_user, "gemini set",
                                {"name": "temperature", "value": "0.3"})
    assert refused.startswith("Only people who manage this channel")
    out_of_range = await bot.command(channel, fake.admin_user, "gemini set",
                                     {"name": "temperature", "value": "5"})
    assert out_of_range == "`temperature`: 5 is out of range; allowed: 0 to 2. Nothing changed."
    assert await bot.command(channel, fake.admin_user, "gemini set",
                             {"name": "temperature", "value": "0.3"}) == (
        "`temperature` set to 0.3.")
    assert "`temperature`: 0.3" in await bot.command(channel, fake.plain_user, "gemini show")
    assert await bot.command(channel, fake.plain_user, "gemini unset",
                             {"name": "temperature"}) == refused
    assert await bot.command(channel, fake.owner_user, "gemini unset",
                             {"name": "temperature"}) == (
        "`temperature` unset; the default applies.")
    assert "/gemini commands" in await bot.command(channel, fake.plain_user, "gemini help")
    assert fake.messages_in(channel) == []


async def test_commands_are_acknowledged_at_once_within_discords_deadline(bot: Bot) -> None:
    """The fake refuses a callback later than 3 s with 10062, as Discord does. The bot defers
    first and answers in a follow-up, so its work never counts against the deadline."""
    fake = bot.fake
    assert fake.interaction_ack_timeout == 3.0

    interaction = await fake.slash_command(fake.text_channel_id, fake.plain_user, "gemini usage")
    answer = await bot.ephemeral_answer(interaction)

    assert answer.startswith("**Usage")
    (response,) = [r for r in fake.interaction_responses
                   if r.interaction_id == int(interaction["id"])]
    assert response.type == 5 and response.ephemeral, "deferred before the work"
    paths = [c.path for c in fake.calls if interaction["token"] in c.path]
    assert paths[0].endswith("/callback") and len(paths) > 1, "acknowledged, then answered"
    assert all(c.status in (200, 204) for c in fake.calls if interaction["token"] in c.path)


async def test_settings_set_in_a_thread_apply_to_its_channel_and_reach_the_model(
    bot: Bot, model_api: FakeModelServer
) -> None:
    fake = bot.fake
    question = await bot.say(fake.text_channel_id, fake.plain_user, "hi", mentions_bot=True)
    thread = bot.thread_of(question)

    await bot.command(thread, fake.admin_user, "gemini set",
                      {"name": "max_completion_tokens", "value": "123"})
    await bot.say(thread, fake.plain_user, "short answer please")

    assert model_api.requests[-1].body["max_completion_tokens"] == 123
    assert "`max_completion_tokens`: 123" in await bot.command(
        fake.text_channel_id, fake.plain_user, "gemini show")


async def test_the_system_prompt_is_set_in_a_form_and_reset(
    bot: Bot, model_api: FakeModelServer
) -> None:
    fake, channel = bot.fake, bot.fake.text_channel_id
    refused = await bot.command(channel, fake.plain_user, "gemini system set")
    assert refused.startswith("Only people who manage this channel")
    assert fake.modals == []

    opened = await fake.slash_command(channel, fake.admin_user, "gemini system set")
    assert (await fake.wait_for_interaction_response(opened)).type == 9
    (form,) = fake.modals
    first, second = "You are a pirate. " * 200, "Always answer in rhyme."
    submitted = await fake.submit_modal(form["custom_id"], fake.admin_user,
                                        {"prompt-1": first, "prompt-2": second})
    prompt = (first + second).strip()
    assert await bot.ephemeral_answer(submitted) == (
        f"System prompt set ({len(prompt):,} characters).")

    question = await bot.say(channel, fake.plain_user, "ahoy?", mentions_bot=True)
    assert sent_messages(model_api.requests[-1].body)[0] == ("system", prompt)

    reopened = await fake.slash_command(channel, fake.admin_user, "gemini system set")
    await fake.wait_for_interaction_response(reopened)
    assert json.dumps(prompt)[1:-1] in json.dumps(fake.modals[-1]), "the form shows the prompt"

    assert await bot.command(bot.thread_of(question), fake.admin_user,
                             "gemini system reset") == "System prompt reset to the bot's default."
    assert "System prompt: (none)" in await bot.command(channel, fake.plain_user, "gemini show")


async def test_reset_forgets_the_thread_and_usage_counts_it(
    bot: Bot, model_api: FakeModelServer
) -> None:
    fake = bot.fake
    model_api.script("direct", Reply(text="one", usage=(10, 2)), Reply(text="two"))
    question = await bot.say(fake.text_channel_id, fake.plain_user, "first", mentions_bot=True)
    thread = bot.thread_of(question)

    usage = await bot.command(thread, fake.plain_user, "gemini usage")
    assert "Last 24 hours: 1 replies, 10 prompt tokens, 2 answer tokens" in usage
    assert await bot.command(thread, fake.plain_user, "gemini reset") == (
        "Forgot this conversation (2 messages). The next message starts afresh.")
    await bot.say(thread, fake.plain_user, "second")

    assert sent_messages(model_api.requests[-1].body) == [("user", "second")]


async def test_commands_are_synced_globally_and_to_the_listed_guilds(
    fake: FakeDiscord, discord_settings: Callable[..., Configured]
) -> None:
    async with running(fake, discord_settings(discord_guild_ids=str(fake.guild_id))):
        pass

    for commands in (fake.commands, fake.guild_commands[fake.guild_id]):
        (gemini,) = commands
        assert gemini["name"] == "gemini"
        assert {o["name"] for o in gemini["options"]} == {
            "show", "system", "set", "unset", "reset", "usage", "tools", "help"}


# --------------------------------------------------------------------------- allow-lists


async def test_the_channel_allow_list_limits_where_the_bot_answers(
    fake: FakeDiscord, discord_settings: Callable[..., Configured], model_api: FakeModelServer
) -> None:
    elsewhere = await fake.add_channel("random")
    settings = discord_settings(discord_channel_ids=str(fake.text_channel_id))
    async with running(fake, settings) as bot:
        await bot.say(elsewhere, fake.plain_user, "hello?", mentions_bot=True)
        question = await bot.say(fake.text_channel_id, fake.plain_user, "hi", mentions_bot=True)
        await bot.say(bot.thread_of(question), fake.plain_user, "in the thread")
        refused = await bot.command(elsewhere, fake.admin_user, "gemini show")

    assert [sent_messages(r.body)[-1] for r in model_api.requests] == [
        ("user", "hi"), ("user", "in the thread")]
    assert refused.startswith("I'm not available to you here")


async def test_the_role_allow_list_limits_who_may_use_the_bot(
    fake: FakeDiscord, discord_settings: Callable[..., Configured], model_api: FakeModelServer
) -> None:
    settings = discord_settings(discord_role_ids=str(fake.admin_role_id),
                                discord_admin_ids=str(fake.owner_user.id))
    async with running(fake, settings) as bot:
        await bot.say(fake.text_channel_id, fake.plain_user, "me too?", mentions_bot=True)
        await bot.say(fake.dm_channel_id, fake.plain_user, "in private?")
        await bot.say(fake.text_channel_id, fake.admin_user, "moderator here", mentions_bot=True)
        await bot.say(fake.dm_channel_for(fake.owner_user), fake.owner_user, "operator here")
        refused = await bot.command(fake.text_channel_id, fake.plain_user, "gemini show")

    assert [sent_messages(r.body)[-1] for r in model_api.requests] == [
        ("user", "moderator here"), ("user", "operator here")]
    assert refused.startswith("I'm not available to you here")


# --------------------------------------------------------------------------- restarts


async def test_after_a_restart_the_thread_continues_from_the_database(
    fake: FakeDiscord, discord_settings: Callable[..., Configured], model_api: FakeModelServer
) -> None:
    settings = discord_settings()
    model_api.script("direct", Reply(text="Before the restart."),
                     Reply(chunks=[f"w{i} " for i in range(400)], delay_between_chunks=0.01))
    async with running(fake, settings) as bot:
        question = await bot.say(fake.text_channel_id, fake.plain_user, "remember 42",
                                 mentions_bot=True)
        thread = bot.thread_of(question)
        await fake.send_message(thread, fake.plain_user, "a long one, please")
        cut = await fake.wait_until(lambda: stop_buttons_in(fake, thread))
    fake.channels[thread]["thread_metadata"]["archived"] = True  # not in the next GUILD_CREATE

    async with running(fake, settings) as bot:
        stop = stop_custom_id(conversation_key(fake.guild_id, thread, fake.text_channel_id))
        stale = await fake.click_button(cut[0]["id"], stop, fake.plain_user)
        assert await bot.ephemeral_answer(stale) == (
            "This answer is no longer being written, so there is nothing to stop.")
        await bot.say(thread, fake.plain_user, "what did I ask you to remember?")

    assert fake.calls_to("GET", rf"/channels/{thread}")  # looked up: it was not in the cache
    sent = sent_messages(model_api.requests[-1].body)
    assert sent[:3] == [("user", "remember 42"), ("assistant", "Before the restart."),
                        ("user", "a long one, please")]
    role, partial = sent[3]
    assert role == "assistant" and partial.startswith("w0 ") and len(partial) < 400 * 4, \
        "the answer cut by the shutdown was kept as far as it got"
    assert sent[4:] == [("user", "what did I ask you to remember?")]
    assert fake.messages_in(thread)[-1] == "echo: what did I ask you to remember?"


# --------------------------------------------------------------------------- start-up


async def test_a_refused_token_stops_with_a_configuration_error(
    make_settings: Callable[..., Settings]
) -> None:
    async with FakeDiscord(token="the-right-token") as fake:
        settings = pointed_at(fake, bot_token="a-wrong-token")
        async with open_core(make_settings()) as core:
            with pytest.raises(ConfigError, match="DISCORD_BOT_TOKEN was refused"):
                await run_discord(core, settings)


async def test_a_refused_message_content_intent_stops_with_a_clear_error(
    make_settings: Callable[..., Settings]
) -> None:
    async with (
        FakeDiscord(message_content_allowed=False) as fake,
        open_core(make_settings()) as core,
    ):
        with pytest.raises(ConfigError, match="Message Content intent"):
            await asyncio.wait_for(run_discord(core, pointed_at(fake)), timeout=20)


async def test_run_discord_uses_the_configured_urls_and_logs_the_invite(
    make_settings: Callable[..., Settings], caplog: pytest.LogCaptureFixture
) -> None:
    default_base = discord.http.Route.BASE
    async with FakeDiscord() as fake:
        settings = pointed_at(fake, guild_ids=str(fake.guild_id))
        async with open_core(make_settings()) as core:
            task = asyncio.create_task(run_discord(core, settings))
            await fake.wait_until(lambda: fake.connected_sessions == 1)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
    assert default_base == discord.http.Route.BASE
    assert [c["name"] for c in fake.guild_commands[fake.guild_id]] == ["gemini"]
    invite = invite_url(fake.application_id)
    assert "scope=bot+applications.commands" in invite
    needed = (Perm.VIEW_CHANNEL | Perm.SEND_MESSAGES | Perm.READ_MESSAGE_HISTORY
              | Perm.CREATE_PUBLIC_THREADS | Perm.SEND_MESSAGES_IN_THREADS)
    assert f"permissions={needed}" in invite
    assert any(invite in r.getMessage() for r in caplog.records)
    assert fake.token not in caplog.text
