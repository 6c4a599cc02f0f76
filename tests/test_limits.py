"""Limits on cost and abuse, through the real service, store and model client against the fake
model API: a person's message rate, daily token quotas, replies at once, messages waiting in
one conversation, the models and answer length a channel may choose, and answers that are
saved while they are written."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from bot.commands import CommandContext
from bot.conversation import Attachment, Author, ConversationKey, Incoming, Role, TurnStatus
from bot.limits import Limits, LimitSettings
from bot.model.llm import ChatRequest, ModelClient, StreamEvent, create_http_client
from bot.service import Service, ServiceConfig
from bot.storage.store import Store
from tests.conftest import API_KEY
from tests.fakes.model_server import FakeModelServer, Hang, Reply, Status
from tests.support.clock import FakeClock
from tests.support.surfaces import RecordingSurface
from tests.support.waiting import until

ANN = Author("u-ann", "Ann")
BOB = Author("u-bob", "Bob")
MANAGER = Author("u-meg", "Meg", can_configure=True)
MODEL = "gemini-3.1-flash-lite-preview"
NOON = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)


def key(thread: str = "t1", channel: str = "chan") -> ConversationKey:
    return ConversationKey("test", "team", channel, thread)


def ask(text: str, author: Author = ANN, *, thread: str = "t1", channel: str = "chan",
        attachments: tuple[Attachment, ...] = ()) -> Incoming:
    return Incoming(key(thread, channel), author, text, attachments)


class GatedModel:
    """The real model client, held at a gate before each request until the test opens it."""

    def __init__(self, client: ModelClient) -> None:
        self._client = client
        self.arrived = 0
        self.gates: list[asyncio.Event] = []

    async def stream(self, request: ChatRequest) -> AsyncIterator[StreamEvent]:
        gate = asyncio.Event()
        self.gates.append(gate)
        self.arrived += 1
        await gate.wait()
        async for event in self._client.stream(request):
            yield event


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with create_http_client(connect_timeout=2.0, read_timeout=5.0) as client:
        yield client


def client(http: httpx.AsyncClient, model_api: FakeModelServer) -> ModelClient:
    return ModelClient(http, API_KEY, model_api.direct_url, model_api.api_url)


def service(store: Store, model: ModelClient | GatedModel, clock: FakeClock | None = None,
            *, wall: datetime = NOON, **config: object) -> Service:
    limits = config.pop("limits", LimitSettings())
    assert isinstance(limits, LimitSettings)
    settings = replace(ServiceConfig(default_model=MODEL), limits=limits, **config)
    clock = clock or FakeClock()
    return Service(store, model, settings, clock=clock, sleep=clock.sleep,
                   limits=Limits(store, limits, clock=clock, wall_clock=lambda: wall))


async def test_a_person_over_the_message_rate_gets_a_notice_and_no_model_call(
    store: Store, http: httpx.AsyncClient, model_api: FakeModelServer
) -> None:
    clock = FakeClock()
    bot = service(store, client(http, model_api), clock,
                  limits=LimitSettings(user_messages_per_minute=2))
    for n in range(2):
        assert await bot.handle(ask(f"q{n}", thread=f"t{n}"), RecordingSurface()) is not None
    refused = RecordingSurface()

    assert await bot.handle(ask("third", thread="t3"), refused) is None

    assert refused.notices == [
        "⚠️ You are sending me messages faster than I may answer them (the limit is 2 a "
        "minute). Please try again in 1 min."
    ]
    assert refused.shown == []
    assert len(model_api.requests) == 2
    flooded = RecordingSurface()
    for n in range(20):
        assert await bot.handle(ask(f"flood {n}", thread="t3"), flooded) is None
    assert flooded.notices == [], "one notice per window, not one per message"
    assert await store.history(key("t3"), 10_000, 8) == []
    assert await bot.handle(ask("from Bob", BOB, thread="t4"), RecordingSurface()) is not None
    await clock.advance(60)
    assert await bot.handle(ask("later", thread="t3"), RecordingSurface()) is not None
    assert len(model_api.requests) == 4


async def test_daily_quotas_count_stored_usage_and_say_when_they_reset(
    store: Store, http: httpx.AsyncClient, model_api: FakeModelServer
) -> None:
    bot = service(store, client(http, model_api),
                  limits=LimitSettings(user_daily_tokens=100, channel_daily_tokens=250))
    model_api.script("direct", Reply(text="one", usage=(80, 30)))
    await bot.handle(ask("first"), RecordingSurface())
    over = RecordingSurface()

    await bot.handle(ask("second"), over)

    assert over.notices == [
        "⚠️ You have used your 100 tokens for today. The quota resets at 00:00 UTC, in "
        "12 h 0 min."
    ]
    assert len(model_api.requests) == 1
    model_api.script("direct", Reply(text="two", usage=(100, 40)))
    await bot.handle(ask("from Bob", BOB, thread="t2"), RecordingSurface())
    channel_over = RecordingSurface()
    await bot.handle(ask("from Meg", MANAGER, thread="t3"), channel_over)
    assert channel_over.notices[0].startswith("⚠️ This channel has used its 250 tokens for today.")
    assert len(model_api.requests) == 2
    other_channel = RecordingSurface()
    await bot.handle(ask("elsewhere", MANAGER, channel="other"), other_channel)
    assert other_channel.notices == [] and len(model_api.requests) == 3


async def test_usage_shows_my_use_and_managers_see_the_top_users(
    store: Store, http: httpx.AsyncClient, model_api: FakeModelServer
) -> None:
    bot = service(store, client(http, model_api), limits=LimitSettings(user_daily_tokens=1000))
    model_api.script("direct", Reply(text="a", usage=(50, 10)), Reply(text="b", usage=(5, 5)))
    await bot.handle(ask("big"), RecordingSurface())
    await bot.handle(ask("small", BOB, thread="t2"), RecordingSurface())

    mine = await bot.commands.usage(CommandContext(key(), BOB))
    theirs = await bot.commands.usage(CommandContext(key(), MANAGER))

    assert "You today (UTC): 10 tokens of your 1,000" in mine
    assert "Top users" not in mine
    assert "Top users today: `u-ann` 60, `u-bob` 10" in theirs


async def test_replies_beyond_the_process_bound_wait_for_a_slot(
    store: Store, http: httpx.AsyncClient, model_api: FakeModelServer
) -> None:
    model = GatedModel(client(http, model_api))
    bot = service(store, model, limits=LimitSettings(max_concurrent_replies=1))
    first = asyncio.create_task(bot.handle(ask("one", thread="a"), RecordingSurface()))
    await until(lambda: model.arrived == 1, what="the first request")
    second = asyncio.create_task(bot.handle(ask("two", thread="b"), RecordingSurface()))
    await until(lambda: bot.limits.waiting_for_slot == 1, what="the second reply waiting")

    assert model.arrived == 1
    model.gates[0].set()
    assert (await first) is not None
    await until(lambda: model.arrived == 2, what="the second request")
    model.gates[1].set()
    outcome = await second
    assert outcome is not None and outcome.status is TurnStatus.COMPLETE


async def test_at_most_the_set_number_wait_in_one_conversation_and_files_wait_too(
    store: Store, http: httpx.AsyncClient, model_api: FakeModelServer
) -> None:
    model = GatedModel(client(http, model_api))
    bot = service(store, model, limits=LimitSettings(max_waiting_per_conversation=1))
    downloads: list[str] = []

    def text_file(name: str) -> Attachment:
        async def fetch() -> bytes:
            downloads.append(name)
            return b"file text"

        return Attachment(name, "text/plain", 9, fetch)

    writing = asyncio.create_task(bot.handle(ask("one"), RecordingSurface()))
    await until(lambda: model.arrived == 1, what="the first request")
    waiting = asyncio.create_task(
        bot.handle(ask("two", attachments=(text_file("two.txt"),)), RecordingSurface()))
    await asyncio.sleep(0)
    refused = RecordingSurface()
    await bot.handle(ask("three"), refused)

    assert refused.notices == [
        "⚠️ I am still answering 2 earlier messages in this conversation. Please ask again "
        "when they are done."
    ]
    assert downloads == []
    model.gates[0].set()
    await writing
    await until(lambda: model.arrived == 2, what="the second request")
    assert downloads == ["two.txt"]
    model.gates[1].set()
    await waiting
    turns = await store.history(key(), 10_000, 8)
    assert [t.text for t in turns if t.role is Role.USER] == [
        "one", "two\n[file two.txt]\nfile text"]


async def test_models_and_answer_length_stay_within_the_operators_bounds(
    store: Store, http: httpx.AsyncClient, model_api: FakeModelServer
) -> None:
    bot = service(store, client(http, model_api), allowed_models=("gemini-2.5-pro",),
                  max_completion_tokens=4096)
    ctx = CommandContext(key(), MANAGER)

    refused = await bot.commands.run(ctx, "set model gpt-9")
    too_long = await bot.commands.run(ctx, "set max_completion_tokens 5000")
    assert refused == ("`model`: 'gpt-9' is not offered by this bot; allowed: "
                       f"{MODEL}, gemini-2.5-pro. Nothing changed.")
    assert too_long == ("`max_completion_tokens`: 5000 is out of range; allowed on this bot: "
                        "1 to 4096. Nothing changed.")
    await bot.handle(ask("default"), RecordingSurface())
    assert model_api.requests[-1].body["model"] == MODEL
    assert model_api.requests[-1].body["max_completion_tokens"] == 4096

    assert await bot.commands.run(ctx, "set model gemini-2.5-pro") == (
        "`model` set to gemini-2.5-pro.")
    await bot.commands.run(ctx, "set max_completion_tokens 100")
    await bot.handle(ask("chosen"), RecordingSurface())
    assert model_api.requests[-1].body["model"] == "gemini-2.5-pro"
    assert model_api.requests[-1].body["max_completion_tokens"] == 100

    narrower = service(store, client(http, model_api))
    await narrower.handle(ask("after the list changed"), RecordingSurface())
    assert model_api.requests[-1].body["model"] == MODEL


async def test_an_answer_is_saved_while_it_is_written(
    store: Store, http: httpx.AsyncClient, model_api: FakeModelServer
) -> None:
    clock = FakeClock()
    bot = service(store, client(http, model_api), clock, partial_save_seconds=3.0)
    model_api.script("direct", Hang(seconds=1.0, after_chunks=2, text="alpha beta gamma delta"))
    surface = RecordingSurface()
    reply = asyncio.create_task(bot.handle(ask("tell me"), surface))
    await until(lambda: bool(surface.shown), what="the first text")

    async def saved() -> bool:
        await clock.advance(3.0)
        return len(await store.history(key(), 10_000, 8)) == 2

    await until(saved, what="the answer saved")

    partial = (await store.history(key(), 10_000, 8))[-1]
    assert partial.role is Role.ASSISTANT and partial.status is TurnStatus.INTERRUPTED
    assert partial.text and "alpha beta gamma delta".startswith(partial.text)

    outcome = await reply
    assert outcome is not None and outcome.status is TurnStatus.COMPLETE
    turns = await store.history(key(), 10_000, 8)
    assert [(t.role, t.text, t.status) for t in turns] == [
        (Role.USER, "tell me", TurnStatus.COMPLETE),
        (Role.ASSISTANT, "alpha beta gamma delta", TurnStatus.COMPLETE),
    ]


async def test_an_image_the_api_refused_is_not_sent_again(
    store: Store, http: httpx.AsyncClient, model_api: FakeModelServer, png: bytes
) -> None:
    bot = service(store, client(http, model_api))

    async def fetch() -> bytes:
        return png

    picture = Attachment("x.png", "image/png", len(png), fetch)
    model_api.script("api", Status(400, "Unable to process input image."))
    refused = RecordingSurface()
    await bot.handle(ask("what is this?", attachments=(picture,)), refused)
    assert "Unable to process input image." in refused.shown[-1]

    await bot.handle(ask("and now?"), RecordingSurface())

    messages = model_api.requests[-1].body["messages"]
    assert all(isinstance(m["content"], str) or all(
        part["type"] == "text" for part in m["content"]) for m in messages)
    assert model_api.requests[-1].endpoint == "direct"


@pytest.fixture
def png() -> bytes:
    import io

    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (8, 8), "blue").save(out, format="PNG")
    return out.getvalue()


def test_the_quota_day_starts_at_midnight_utc(store: Store) -> None:
    late = datetime(2026, 11, 28, 23, 59, tzinfo=UTC)
    limits = Limits(store, LimitSettings(), wall_clock=lambda: late)
    assert limits.day_start() == late.replace(hour=0, minute=0)
    assert limits.day_start() + timedelta(days=1) - late == timedelta(minutes=1)
