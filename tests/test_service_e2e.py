"""The reply service end to end: real store, real httpx client, a fake model API over SSE.

Each scenario checks what the user sees on the surface and what the database holds after.
"""

from __future__ import annotations

import asyncio
import base64
import io
import re
import sqlite3
from collections.abc import AsyncIterator

import httpx
import pytest
from PIL import Image

from bot.conversation import (
    Attachment,
    Author,
    ConversationKey,
    Incoming,
    Role,
    TurnStatus,
)
from bot.errors import DeliveryFailed
from bot.model.llm import ModelClient, create_http_client
from bot.service import Service, ServiceConfig
from bot.storage.database import migrate, open_database
from bot.storage.store import Store
from tests.conftest import API_KEY
from tests.fakes.model_server import (
    Cut,
    ErrorEvent,
    FakeModelServer,
    Hang,
    Reply,
    Status,
    unused_url,
)
from tests.support.surfaces import RecordingSurface

KEY = ConversationKey("test", "team", "chan", "thread-1")
ANN = Author("u1", "Ann")


class Sleeps:
    """Records the waits the model client asked for, without waiting."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with create_http_client(connect_timeout=2.0, read_timeout=1.0) as client:
        yield client


def make_service(
    store: Store, http: httpx.AsyncClient, model_api: FakeModelServer, *,
    direct_url: str | None = None, sleeps: Sleeps | None = None,
) -> Service:
    model = ModelClient(
        http, API_KEY, direct_url or model_api.direct_url, model_api.api_url,
        sleep=sleeps or Sleeps(),
    )
    return Service(store, model, ServiceConfig(default_model="gemini-3.1-flash-lite-preview"))


def ask(text: str, *attachments: Attachment, message_id: str = "q1") -> Incoming:
    return Incoming(KEY, ANN, text, attachments, message_id=message_id)


def png_bytes(color: str = "red") -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (4, 4), color).save(out, format="PNG")
    return out.getvalue()


def attachment(name: str, data: bytes, content_type: str) -> Attachment:
    async def fetch() -> bytes:
        return data

    return Attachment(name, content_type, len(data), fetch)


async def test_plain_streamed_answer(
    store: Store, http: httpx.AsyncClient, model_api: FakeModelServer
) -> None:
    answer = "Paris is the capital of France. It lies on the Seine."
    model_api.script("direct", Reply(text=answer, usage=(12, 9)))
    surface = RecordingSurface()

    outcome = await make_service(store, http, model_api).handle(ask("Capital of France?"),
                                                                surface)

    assert outcome is not None and outcome.status is TurnStatus.COMPLETE
    assert surface.shown == [answer]
    request = model_api.requests_to("direct")[0]
    assert request.body["stream"] is True
    assert request.body["stream_options"] == {"include_usage": True}
    assert request.body["messages"] == [{"role": "user", "content": "Capital of France?"}]
    turns = await store.history(KEY, 10_000, 8)
    assert [(t.role, t.text) for t in turns] == [
        (Role.USER, "Capital of France?"), (Role.ASSISTANT, answer)
    ]
    assert turns[1].usage is not None and turns[1].usage.prompt_tokens == 12
    assert turns[1].usage.completion_tokens == 9
    usage = await store.usage_totals(KEY.channel_key)
    assert (usage.replies, usage.prompt_tokens, usage.completion_tokens) == (1, 12, 9)
    assert await store.conversation_of_message("test", "q1") == KEY


async def test_events_split_across_network_writes(
    store: Store, http: httpx.AsyncClient, model_api: FakeModelServer
) -> None:
    answer = "Ünïcode survives — split writes 🎉 and coalesced ones too."
    model_api.script("direct", Reply(text=answer, split_writes=True, coalesce=3))
    surface = RecordingSurface()

    await make_service(store, http, model_api).handle(ask("go"), surface)

    assert surface.shown == [answer]
    assert (await store.history(KEY, 10_000, 8))[-1].text == answer


async def test_usage_only_last_chunk_is_recorded(
    store: Store, http: httpx.AsyncClient, model_api: FakeModelServer
) -> None:
    model_api.script("direct", Reply(text="short", usage=(100, 2)))

    await make_service(store, http, model_api).handle(ask("q"), RecordingSurface())

    totals = await store.usage_totals(KEY.channel_key)
    assert (totals.prompt_tokens, totals.completion_tokens) == (100, 2)


async def test_429_then_success_honours_retry_after(
    store: Store, http: httpx.AsyncClient, model_api: FakeModelServer
) -> None:
    model_api.script("direct", Status(429, retry_after=2), Reply(text="after the wait"))
    sleeps = Sleeps()
    surface = RecordingSurface()

    await make_service(store, http, model_api, sleeps=sleeps).handle(ask("q"), surface)

    assert sleeps.waits == [2.0]
    assert surface.shown == ["after the wait"]
    assert len(model_api.requests_to("direct")) == 2
    assert (await store.history(KEY, 10_000, 8))[-1].status is TurnStatus.COMPLETE


async def test_429_beyond_the_retry_budget_tells_the_user(
    store: Store, http: httpx.AsyncClient, model_api: FakeModelServer
) -> None:
    model_api.script("direct", *[Status(429, retry_after=1)] * 4)
    surface = RecordingSurface()

    await make_service(store, http, model_api).handle(ask("q"), surface)

    assert "rate-limiting" in surface.shown[0]
    assert len(model_api.requests_to("direct")) == 4
    turns = await store.history(KEY, 10_000, 8)
    assert turns[0].text == "q" and turns[1].status is TurnStatus.FAILED


async def test_direct_down_falls_back_to_api(
    store: Store, http: httpx.AsyncClient, model_api: FakeModelServer
) -> None:
    model_api.script("api", Reply(text="served by api"))
    surface = RecordingSurface()

    await make_service(store, http, model_api, direct_url=unused_url()).handle(ask("q"),
                                                                               surface)

    assert surface.shown == ["served by api"]
    assert len(model_api.requests_to("api")) == 1


async def test_direct_5xx_before_first_chunk_falls_back_to_api(
    store: Store, http: httpx.AsyncClient, model_api: FakeModelServer
) -> None:
    model_api.script("direct", Status(503))
    model_api.script("api", Reply(text="fallback answer"))
    surface = RecordingSurface()

    await make_service(store, http, model_api).handle(ask("q"), surface)

    assert surface.shown == ["fallback answer"]
    assert [r.endpoint for r in model_api.requests] == ["direct", "api"]


async def test_image_goes_to_api_as_data_url(
    store: Store, http: httpx.AsyncClient, model_api: FakeModelServer
) -> None:
    image = png_bytes()
    model_api.script("api", Reply(text="A red square."))
    surface = RecordingSurface()

    await make_service(store, http, model_api).handle(
        ask("What is this?", attachment("sq.png", image, "image/png")), surface
    )

    assert model_api.requests_to("direct") == []
    content = model_api.requests_to("api")[0].body["messages"][-1]["content"]
    assert content[0] == {"type": "text", "text": "What is this?"}
    url = content[1]["image_url"]["url"]
    assert url.startswith("data:image/png;base64,")
    assert base64.b64decode(url.split(",", 1)[1]) == image
    assert surface.shown == ["A red square."]
    stored = (await store.history(KEY, 10_000, 8))[0]
    assert stored.images[0].data == image


async def test_rejected_key_is_explained(
    store: Store, http: httpx.AsyncClient, model_api: FakeModelServer
) -> None:
    model_api.script("direct", Status(401))
    surface = RecordingSurface()

    outcome = await make_service(store, http, model_api).handle(ask("q"), surface)

    assert outcome is not None and "API key was rejected" in surface.shown[0]
    assert len(model_api.requests) == 1, "a rejected key is not retried elsewhere"
    turns = await store.history(KEY, 10_000, 8)
    assert [t.role for t in turns] == [Role.USER, Role.ASSISTANT]
    assert turns[1].status is TurnStatus.FAILED and "API key" in (turns[1].error or "")


async def test_bad_request_shows_the_apis_message(
    store: Store, http: httpx.AsyncClient, model_api: FakeModelServer
) -> None:
    model_api.script("direct", Status(400, message="temperature must be at most 2"))
    surface = RecordingSurface()

    await make_service(store, http, model_api).handle(ask("q"), surface)

    assert "temperature must be at most 2" in surface.shown[0]


async def test_stream_cut_midway_keeps_partial_text(
    store: Store, http: httpx.AsyncClient, model_api: FakeModelServer
) -> None:
    model_api.script("direct", Cut(text="one two three four five six", after_chunks=2))
    model_api.script("api", Reply(text="a second answer from the other host"))
    surface = RecordingSurface()

    outcome = await make_service(store, http, model_api).handle(ask("q"), surface)

    assert outcome is not None and outcome.status is TurnStatus.INTERRUPTED
    (shown,) = surface.shown
    assert shown.startswith("one two three four \n\n⚠️ ") and "lost mid-answer" in shown
    assert model_api.requests_to("api") == [], "no fallback once the first chunk arrived"
    stored = (await store.history(KEY, 10_000, 8))[-1]
    assert stored.text == "one two three four " and stored.status is TurnStatus.INTERRUPTED


async def test_error_event_mid_stream_keeps_partial_text(
    store: Store, http: httpx.AsyncClient, model_api: FakeModelServer
) -> None:
    model_api.script("direct", ErrorEvent(text="alpha beta gamma delta", after_chunks=1,
                                          message="upstream overloaded"))
    surface = RecordingSurface()

    outcome = await make_service(store, http, model_api).handle(ask("q"), surface)

    assert outcome is not None
    (shown,) = surface.shown
    assert shown.startswith("alpha beta \n\n⚠️ ") and "upstream overloaded" in shown
    assert model_api.requests_to("api") == []
    stored = (await store.history(KEY, 10_000, 8))[-1]
    assert stored.text == "alpha beta "
    assert stored.status is TurnStatus.INTERRUPTED and "upstream overloaded" in (
        stored.error or "")


async def test_idle_stream_times_out_as_interrupted(
    store: Store, http: httpx.AsyncClient, model_api: FakeModelServer
) -> None:
    model_api.script("direct", Hang(seconds=3, after_chunks=1, text="first words then silence"))
    surface = RecordingSurface()

    outcome = await make_service(store, http, model_api).handle(ask("q"), surface)

    assert outcome is not None and outcome.status is TurnStatus.INTERRUPTED
    (shown,) = surface.shown
    assert shown.startswith("first words \n\n⚠️ ") and "timed out" in shown
    assert model_api.requests_to("api") == [], "no fallback once the first chunk arrived"


async def test_a_timeout_after_the_headers_before_any_chunk_falls_back_to_api(
    store: Store, http: httpx.AsyncClient, model_api: FakeModelServer
) -> None:
    model_api.script("direct", Hang(seconds=3, after_chunks=0, text="never sent in time"))
    model_api.script("api", Reply(text="served by api"))
    surface = RecordingSurface()

    outcome = await make_service(store, http, model_api).handle(ask("q"), surface)

    assert outcome is not None and outcome.status is TurnStatus.COMPLETE
    assert surface.shown == ["served by api"]
    assert [r.endpoint for r in model_api.requests] == ["direct", "api"]
    assert (await store.history(KEY, 10_000, 8))[-1].text == "served by api"


async def test_follow_up_carries_history(
    store: Store, http: httpx.AsyncClient, model_api: FakeModelServer
) -> None:
    service = make_service(store, http, model_api)
    await service.handle(ask("My name is Ann.", message_id="q1"), RecordingSurface())

    await service.handle(ask("What is my name?", message_id="q2"), RecordingSurface())

    messages = model_api.requests[-1].body["messages"]
    assert [m["role"] for m in messages] == ["user", "assistant", "user"]
    assert messages[0]["content"] == "My name is Ann."
    assert messages[1]["content"] == "echo: My name is Ann."


async def test_concurrent_messages_in_one_conversation_keep_order(
    store: Store, http: httpx.AsyncClient, model_api: FakeModelServer
) -> None:
    model_api.script("direct", *[Reply(text=f"answer {i}", delay_between_chunks=0.02)
                                 for i in range(4)])
    service = make_service(store, http, model_api)

    # One answer is written while three wait: as many as a conversation's queue holds.
    await asyncio.gather(*(
        service.handle(ask(f"question {i}", message_id=f"q{i}"), RecordingSurface())
        for i in range(4)
    ))

    turns = await store.history(KEY, 100_000, 8)
    roles = [t.role for t in turns]
    assert roles == [Role.USER, Role.ASSISTANT] * 4
    assert [t.text for t in turns[1::2]] == [f"answer {i}" for i in range(4)]
    assert sorted(t.text for t in turns[::2]) == [f"question {i}" for i in range(4)]
    for index, request in enumerate(model_api.requests):
        seen = [m["content"] for m in request.body["messages"]]
        assert seen == [t.text for t in turns[: 2 * index + 1]], "the model saw stored order"


async def test_many_conversations_run_at_once(
    store: Store, http: httpx.AsyncClient, model_api: FakeModelServer
) -> None:
    model_api.script("direct", *[Reply(text="slow answer", delay_between_chunks=0.3)] * 4)
    service = make_service(store, http, model_api)
    keys = [ConversationKey("test", "team", "chan", f"t{i}") for i in range(4)]
    requests_when_a_reply_ended: list[int] = []

    async def answer(key: ConversationKey) -> None:
        await service.handle(Incoming(key, ANN, "hi"), RecordingSurface())
        requests_when_a_reply_ended.append(len(model_api.requests))

    await asyncio.gather(*(answer(k) for k in keys))

    assert requests_when_a_reply_ended[0] == 4, \
        "every conversation's request reached the model before the first reply ended"
    for k in keys:
        assert [t.text for t in await store.history(k, 10_000, 8)] == ["hi", "slow answer"]


async def test_non_image_attachment_gets_a_note_and_question_still_answered(
    store: Store, http: httpx.AsyncClient, model_api: FakeModelServer
) -> None:
    surface = RecordingSurface()

    await make_service(store, http, model_api).handle(
        ask("Summarise", attachment("report.zip", b"PK\x03\x04 ...", "application/zip")), surface
    )

    assert surface.notices == [
        "Skipped report.zip: only images (PNG, JPEG, WebP, GIF, HEIC/HEIF), PDF and Word "
        "(.docx) documents, and text files are read."
    ]
    assert surface.shown == ["echo: Summarise"]


async def test_empty_message_gets_a_prompt_and_no_model_call(
    store: Store, http: httpx.AsyncClient, model_api: FakeModelServer
) -> None:
    surface = RecordingSurface()

    assert await make_service(store, http, model_api).handle(ask("   "), surface) is None

    assert surface.notices and "Ask me something" in surface.notices[0]
    assert model_api.requests == []
    assert await store.history(KEY, 10_000, 8) == []


async def test_redelivered_event_gets_no_second_answer(
    store: Store, http: httpx.AsyncClient, model_api: FakeModelServer
) -> None:
    service = make_service(store, http, model_api)
    incoming = Incoming(KEY, ANN, "once", event_id="Ev1")

    first = await service.handle(incoming, RecordingSurface())
    again = RecordingSurface()
    second = await service.handle(incoming, again)

    assert first is not None and second is None
    assert again.calls == [] and len(model_api.requests) == 1


async def test_bot_authors_are_ignored(
    store: Store, http: httpx.AsyncClient, model_api: FakeModelServer
) -> None:
    surface = RecordingSurface()
    bot = Author("b1", "Other bot", is_bot=True)

    assert await make_service(store, http, model_api).handle(
        Incoming(KEY, bot, "hello"), surface) is None

    assert surface.calls == [] and model_api.requests == []


async def test_channel_settings_shape_the_request(
    store: Store, http: httpx.AsyncClient, model_api: FakeModelServer
) -> None:
    service = make_service(store, http, model_api)
    admin = Author("a1", "Admin", can_configure=True)
    from bot.commands import CommandContext

    ctx = CommandContext(KEY, admin)
    await service.commands.run(ctx, "system You are terse.")
    await service.commands.run(ctx, "set temperature 0.2")
    await service.commands.run(ctx, "set response_format json")
    await service.commands.run(ctx, "set stop [\"END\", \"STOP\"]")

    await service.handle(ask("q"), RecordingSurface())

    body = model_api.requests[0].body
    assert body["messages"][0] == {"role": "system", "content": "You are terse."}
    assert body["temperature"] == 0.2
    assert body["response_format"] == {"type": "json_object"}
    assert body["stop"] == ["END", "STOP"]
    assert body["model"] == "gemini-3.1-flash-lite-preview"


async def test_stop_keeps_the_text_so_far(
    store: Store, http: httpx.AsyncClient, model_api: FakeModelServer
) -> None:
    model_api.script("direct", Reply(chunks=["first part. "] + ["more "] * 50,
                                     delay_between_chunks=0.05))
    service = make_service(store, http, model_api)
    first_post = asyncio.Event()

    class WatchedSurface(RecordingSurface):
        async def post(self, text: str, *, final: bool) -> str:
            first_post.set()
            return await super().post(text, final=final)

    surface = WatchedSurface()
    task = asyncio.create_task(service.handle(ask("long one"), surface))
    await asyncio.wait_for(first_post.wait(), timeout=10)

    refused = await service.stop(KEY, Author("u2", "Bob"))
    message = await service.stop(KEY, ANN)
    outcome = await task

    assert "Only the person who asked" in refused
    assert message.startswith("Stopped")
    assert outcome is not None and outcome.status is TurnStatus.STOPPED
    (shown,) = surface.shown
    assert re.fullmatch(r"first part\. (more ){0,49}\n\n\(Stopped\.\)", shown), \
        "the chunks the fake sent before the stop, none lost or repeated, then the note"
    stored = (await store.history(KEY, 10_000, 8))[-1]
    assert stored.text == shown.removesuffix("\n\n(Stopped.)")
    assert stored.status is TurnStatus.STOPPED


async def test_a_thread_deleted_mid_reply_stops_generation_and_keeps_the_text(
    store: Store, http: httpx.AsyncClient, model_api: FakeModelServer
) -> None:
    model_api.script("direct", Reply(chunks=["kept "] + ["lost "] * 40,
                                     delay_between_chunks=0.03))

    class VanishingSurface(RecordingSurface):
        async def edit(self, message_id: str, text: str, *, final: bool) -> None:
            raise DeliveryFailed("Unknown Channel")

    surface = VanishingSurface()
    outcome = await make_service(store, http, model_api).handle(ask("q"), surface)

    assert outcome is not None and outcome.status is TurnStatus.INTERRUPTED
    stored = (await store.history(KEY, 10_000, 8))[-1]
    assert re.fullmatch(r"kept (lost ){0,39}", stored.text), "generation stopped early"
    assert "no longer be shown" in (stored.error or "")


async def test_shutting_down_mid_answer_keeps_the_partial_text(
    store: Store, http: httpx.AsyncClient, model_api: FakeModelServer
) -> None:
    model_api.script("direct", Reply(chunks=["before "] + ["after "] * 50,
                                     delay_between_chunks=0.05))
    first_post = asyncio.Event()

    class WatchedSurface(RecordingSurface):
        async def post(self, text: str, *, final: bool) -> str:
            first_post.set()
            return await super().post(text, final=final)

    task = asyncio.create_task(make_service(store, http, model_api).handle(ask("q"),
                                                                           WatchedSurface()))
    await asyncio.wait_for(first_post.wait(), timeout=10)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task

    stored = (await store.history(KEY, 10_000, 8))[-1]
    assert stored.role is Role.ASSISTANT and stored.status is TurnStatus.INTERRUPTED
    assert stored.text.startswith("before ") and "shut down" in (stored.error or "")


async def test_a_locked_database_gets_a_clear_notice_and_no_model_call(
    sqlite_url: str, http: httpx.AsyncClient, model_api: FakeModelServer
) -> None:
    database = open_database(sqlite_url, busy_timeout_ms=100)
    await migrate(database)
    store = Store(database)
    path = sqlite_url.removeprefix("sqlite+aiosqlite:///")
    other_writer = sqlite3.connect(path)
    other_writer.execute("BEGIN IMMEDIATE")
    surface = RecordingSurface()
    try:
        outcome = await make_service(store, http, model_api).handle(ask("q"), surface)
    finally:
        other_writer.rollback()
        other_writer.close()

    assert outcome is None and model_api.requests == []
    assert surface.notices == [
        "⚠️ The database is unavailable right now (it may be locked or full), so nothing was "
        "changed. Please try again in a moment."
    ]
    answered = await make_service(store, http, model_api).handle(ask("q again"), surface)
    assert answered is not None and answered.text == "echo: q again"
    await store.close()
