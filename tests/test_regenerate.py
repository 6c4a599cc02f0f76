"""Regenerate, ratings and edited questions in the core: real store, real httpx client, the
fake model API over SSE, a recording surface that takes the answer buttons."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import httpx
import pytest

from bot.commands import CommandContext
from bot.conversation import Author, ConversationKey, Incoming, Role, TurnStatus
from bot.model.llm import ModelClient, create_http_client
from bot.service import BUSY_REGENERATING, UNKNOWN_ANSWER, Service, ServiceConfig
from bot.storage.store import Store
from tests.conftest import API_KEY
from tests.fakes.model_server import FakeModelServer, Hang, Reply, last_user_text
from tests.support.surfaces import RecordingSurface
from tests.support.waiting import until

KEY = ConversationKey("test", "team", "chan", "thread-1")
ANN = Author("u1", "Ann")
BOB = Author("u2", "Bob")
MANAGER = Author("u3", "Meg", can_configure=True)


MESSAGE_IDS = itertools.count(1)


@dataclass
class ButtonSurface(RecordingSurface):
    """A recording surface that also takes the finished answers' buttons; its message ids
    are unique across surfaces, as a platform's are."""

    controls: list[str] = field(default_factory=list)
    _ids: itertools.count[int] = field(default_factory=lambda: MESSAGE_IDS)

    async def show_answer_controls(self, message_id: str) -> None:
        self.controls.append(message_id)


@pytest.fixture
async def service(store: Store, model_api: FakeModelServer) -> AsyncIterator[Service]:
    async with create_http_client(connect_timeout=2.0, read_timeout=1.0) as http:
        yield make_service(store, http, model_api)


def make_service(store: Store, http: httpx.AsyncClient, model_api: FakeModelServer) -> Service:
    model = ModelClient(http, API_KEY, model_api.direct_url, model_api.api_url)
    return Service(store, model, ServiceConfig(default_model="gemini-3.1-flash-lite-preview"))


def ask(text: str, message_id: str, author: Author = ANN) -> Incoming:
    return Incoming(KEY, author, text, message_id=message_id, event_id=f"ev-{message_id}")


async def answered(service: Service, text: str, message_id: str) -> ButtonSurface:
    surface = ButtonSurface()
    outcome = await service.handle(ask(text, message_id), surface)
    assert outcome is not None and outcome.status is TurnStatus.COMPLETE
    return surface


def sent_history(model_api: FakeModelServer) -> list[tuple[str, str]]:
    """The roles and texts of the newest request's messages."""
    body = model_api.requests_to("direct")[-1].body
    return [(m["role"], m["content"] if isinstance(m["content"], str) else "")
            for m in body["messages"]]


async def test_a_finished_answer_gets_its_buttons_on_its_last_message(
    service: Service, model_api: FakeModelServer
) -> None:
    model_api.script("direct", Reply(text="first answer"))

    surface = await answered(service, "q1?", "q1")

    assert surface.controls == [list(surface.messages)[-1]]


async def test_regenerate_replaces_the_answer_in_the_history_sent_next(
    service: Service, store: Store, model_api: FakeModelServer
) -> None:
    model_api.script("direct", Reply(text="first answer"), Reply(text="second answer"))
    first = await answered(service, "What is up?", "q1")
    again = ButtonSurface()

    refusal = await service.regenerate(KEY, first.controls[0], ANN, again)

    assert refusal is None
    assert again.shown == ["second answer"] and again.controls
    assert sent_history(model_api)[-1] == ("user", "What is up?")
    await service.handle(ask("And then?", "q2"), ButtonSurface())
    assert sent_history(model_api) == [
        ("user", "What is up?"), ("assistant", "second answer"), ("user", "And then?"),
    ]
    history = await store.history(KEY, 10_000, 8)
    assert "first answer" not in [t.text for t in history]


async def test_only_the_asker_or_a_manager_may_regenerate(
    service: Service, model_api: FakeModelServer
) -> None:
    first = await answered(service, "mine", "q1")
    message = first.controls[0]

    refusal = await service.regenerate(KEY, message, BOB, ButtonSurface())
    by_manager = ButtonSurface()
    allowed = await service.regenerate(KEY, message, MANAGER, by_manager)

    assert refusal is not None and "person who asked" in refusal
    assert allowed is None and by_manager.shown == ["echo: mine"]
    assert len(model_api.requests_to("direct")) == 2


async def test_only_the_latest_answer_may_be_regenerated(
    service: Service, model_api: FakeModelServer
) -> None:
    older = await answered(service, "one", "q1")
    await answered(service, "two", "q2")

    refusal = await service.regenerate(KEY, older.controls[0], ANN, ButtonSurface())

    assert refusal is not None and "latest answer" in refusal
    assert len(model_api.requests_to("direct")) == 2


async def test_a_message_the_bot_does_not_remember_cannot_be_regenerated(
    service: Service, model_api: FakeModelServer
) -> None:
    await answered(service, "one", "q1")

    assert await service.regenerate(KEY, "no-such-message", ANN, ButtonSurface()) \
        == UNKNOWN_ANSWER
    assert await service.regenerate(KEY, "q1", ANN, ButtonSurface()) == UNKNOWN_ANSWER


async def test_regenerate_waits_for_no_answer_being_written(
    service: Service, model_api: FakeModelServer
) -> None:
    first = await answered(service, "one", "q1")
    model_api.script("direct", Hang(seconds=5, after_chunks=1, text="slow words to come"))
    writing = ButtonSurface()
    second = asyncio.create_task(service.handle(ask("two", "q2"), writing))
    await until(lambda: bool(writing.messages), what="the second answer's first words")

    refusal = await service.regenerate(KEY, first.controls[0], ANN, ButtonSurface())
    await service.stop(KEY, ANN)
    await second

    assert refusal == BUSY_REGENERATING


async def test_an_edited_latest_question_is_answered_again(
    service: Service, store: Store, model_api: FakeModelServer
) -> None:
    await answered(service, "capital of Frnace?", "q1")
    surface = ButtonSurface()

    outcome = await service.answer_edited(
        Incoming(KEY, ANN, "capital of France?", message_id="q1", event_id="edit-1"), surface)

    assert outcome is not None and surface.shown == ["echo: capital of France?"]
    history = await store.history(KEY, 10_000, 8)
    assert [(t.role, t.text) for t in history] == [
        (Role.USER, "capital of France?"), (Role.ASSISTANT, "echo: capital of France?"),
    ]


async def test_an_edit_that_changes_nothing_or_an_older_question_is_ignored(
    service: Service, store: Store, model_api: FakeModelServer
) -> None:
    await answered(service, "one", "q1")
    await answered(service, "two", "q2")

    unchanged = await service.answer_edited(
        Incoming(KEY, ANN, "two", message_id="q2", event_id="edit-1"), ButtonSurface())
    older = await service.answer_edited(
        Incoming(KEY, ANN, "one, edited", message_id="q1", event_id="edit-2"), ButtonSurface())
    by_someone_else = await service.answer_edited(
        Incoming(KEY, BOB, "two, edited", message_id="q2", event_id="edit-3"), ButtonSurface())

    assert (unchanged, older, by_someone_else) == (None, None, None)
    assert len(model_api.requests_to("direct")) == 2
    assert [t.text for t in await store.history(KEY, 10_000, 8)] == [
        "one", "echo: one", "two", "echo: two",
    ]
    assert last_user_text(model_api.requests_to("direct")[-1].body) == "two"


async def test_a_second_rating_replaces_the_first_and_usage_counts_them(
    service: Service, model_api: FakeModelServer
) -> None:
    first = await answered(service, "one", "q1")
    second = await answered(service, "two", "q2")

    thanks = await service.rate("test", first.controls[0], ANN, 1)
    await service.rate("test", first.controls[0], ANN, -1)
    await service.rate("test", first.controls[0], BOB, 1)
    await service.rate("test", second.controls[0], BOB, 1)
    unknown = await service.rate("test", "q1", BOB, 1)

    assert "👍" in thanks and unknown == UNKNOWN_ANSWER
    usage = await service.commands.usage(CommandContext(KEY, ANN))
    assert "Ratings, last 7 days: 👍 2 · 👎 1 (on 2 answers)" in usage
    assert "Ratings, last 30 days: 👍 2 · 👎 1 (on 2 answers)" in usage
