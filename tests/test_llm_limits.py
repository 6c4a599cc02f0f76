"""The model client's bounds against a misbehaving model API: answer length and time, silence
between events, oversized or malformed events, non-stream bodies, and secrets in error text.

Each scenario runs the real ModelClient over real sockets against the fake API, through the
real Service and a SQLite store where what the user sees and what is stored matters. Limits
are tiny; a stream that never ends on its own is bounded by `within` so a client that does
not cut it fails instead of hanging.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable
from typing import Any, TypeVar

import httpx
import pytest

from bot.conversation import Author, ConversationKey, Incoming, Role, TurnStatus
from bot.model.llm import ChatRequest, ModelClient, StreamEnd, TextDelta, create_http_client
from bot.service import ReplyOutcome, Service, ServiceConfig
from bot.storage.store import Store
from tests.conftest import API_KEY, migrated_store
from tests.fakes.model_server import (
    Endless,
    ErrorEvent,
    FakeModelServer,
    HtmlPage,
    HugeDelta,
    JsonPage,
    KeepAlive,
    LongLine,
    NotJsonEvent,
    Reply,
    Status,
)
from tests.support.surfaces import RecordingSurface

KEY = ConversationKey("test", "team", "chan", "thread-1")
ANN = Author("u1", "Ann")
T = TypeVar("T")

TOO_BIG = "The model API sent an event over 1 MB; the answer was cut here."
NOT_JSON = "The model API sent an event that is not JSON; the answer was cut here."
HTML_PAGE = "The model API answered with an HTML page instead of an answer stream (HTTP 200)."
STOPPED_SENDING = "The model stopped sending in the middle of the answer (timed out)."


@pytest.fixture
async def store(sqlite_url: str) -> AsyncIterator[Store]:
    """A store on a freshly migrated SQLite file."""
    async with migrated_store(sqlite_url) as opened:
        yield opened


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    """The bot's HTTP client with a 1 s read timeout (which keep-alives keep resetting)."""
    async with create_http_client(connect_timeout=2.0, read_timeout=1.0) as client:
        yield client


async def no_wait(seconds: float) -> None:
    """The client's sleep between 429 retries, skipped."""


def make_client(http: httpx.AsyncClient, model_api: FakeModelServer, *, one_endpoint: bool = False,
                **limits: Any) -> ModelClient:
    """The real client against the fake; `one_endpoint` sends text to api only (no fallback)."""
    direct = model_api.api_url if one_endpoint else model_api.direct_url
    return ModelClient(http, API_KEY, direct, model_api.api_url, sleep=no_wait, **limits)


def make_service(store: Store, model: ModelClient) -> Service:
    return Service(store, model, ServiceConfig(default_model="gemini-3.1-flash-lite-preview"))


async def within(seconds: float, work: Awaitable[T]) -> T:
    """`work`, failing the test if it has not finished after `seconds`."""
    return await asyncio.wait_for(work, timeout=seconds)


async def answer(store: Store, model: ModelClient, surface: RecordingSurface) -> ReplyOutcome:
    """Ask "q" through the service; the reply must end within 10 s."""
    outcome = await within(10, make_service(store, model).handle(
        Incoming(KEY, ANN, "q", message_id="q1"), surface))
    assert outcome is not None
    return outcome


async def collect(model: ModelClient) -> tuple[str, StreamEnd]:
    """The text and the end of one streamed answer, which must end within 10 s."""
    async def run() -> tuple[str, StreamEnd]:
        text = ""
        async for event in model.stream(ChatRequest([{"role": "user", "content": "q"}])):
            if isinstance(event, TextDelta):
                text += event.text
            else:
                return text, event
        raise AssertionError("the stream ended without a StreamEnd")

    return await within(10, run())


async def stored_answer(store: Store) -> tuple[str, TurnStatus, str | None]:
    turns = await store.history(KEY, 100_000, 8)
    assert [t.role for t in turns] == [Role.USER, Role.ASSISTANT]
    return turns[1].text, turns[1].status, turns[1].error


# -- 1. a hard ceiling on every answer: its length and its time ------------------------------


async def test_an_endless_answer_is_cut_exactly_at_the_length_limit(
    store: Store, http: httpx.AsyncClient, model_api: FakeModelServer
) -> None:
    model_api.script("direct", Endless(delta="word "))
    model = make_client(http, model_api, max_answer_chars=1002)
    surface = RecordingSurface()

    outcome = await answer(store, model, surface)

    message = "The answer passed 1,002 characters, this bot's limit, so it was cut here."
    assert outcome.text == ("word " * 201)[:1002], "the last delta is cut to land on the limit"
    assert outcome.status is TurnStatus.INTERRUPTED and outcome.error == message
    assert surface.shown == [f"{outcome.text}\n\n⚠️ {message}"]
    assert await stored_answer(store) == (outcome.text, TurnStatus.INTERRUPTED, message)
    assert await model_api.hung_up("direct"), "the client closed the stream"


async def test_an_endless_answer_is_cut_at_the_reply_timeout_with_its_text(
    store: Store, http: httpx.AsyncClient, model_api: FakeModelServer
) -> None:
    model_api.script("direct", Endless(delta="more ", interval=0.01))
    model = make_client(http, model_api, reply_timeout=0.5, max_answer_chars=1_000_000)
    surface = RecordingSurface()

    outcome = await answer(store, model, surface)

    message = "The answer took longer than 0.5 s, this bot's limit, so it was cut here."
    assert outcome.text.startswith("more more ") and outcome.error == message
    assert surface.shown == [f"{outcome.text}\n\n⚠️ {message}"]
    assert await stored_answer(store) == (outcome.text, TurnStatus.INTERRUPTED, message)
    assert await model_api.hung_up("direct")


async def test_the_reply_timeout_holds_while_only_keep_alives_arrive(
    http: httpx.AsyncClient, model_api: FakeModelServer
) -> None:
    model_api.script("direct", KeepAlive(after_chunks=1, text="first words then pings"))
    model = make_client(http, model_api, reply_timeout=0.5, idle_timeout=30)

    text, end = await collect(model)

    assert text == "first words "
    assert str(end.error) == (
        "The answer took longer than 0.5 s, this bot's limit, so it was cut here."
    )
    assert await model_api.hung_up("direct")


# -- 2. keep-alive comments are not answer events --------------------------------------------


async def test_keep_alives_do_not_keep_a_silent_answer_alive(
    store: Store, http: httpx.AsyncClient, model_api: FakeModelServer
) -> None:
    model_api.script("direct", KeepAlive(after_chunks=1, text="first words then pings"))
    model = make_client(http, model_api, idle_timeout=0.5)
    surface = RecordingSurface()

    outcome = await answer(store, model, surface)

    assert outcome.text == "first words " and outcome.error == STOPPED_SENDING
    assert surface.shown == [f"first words \n\n⚠️ {STOPPED_SENDING}"]
    assert await stored_answer(store) == ("first words ", TurnStatus.INTERRUPTED,
                                          STOPPED_SENDING)
    assert model_api.requests_to("api") == [], "text was received: no second endpoint"


async def test_keep_alives_before_any_event_fall_back_to_the_api_endpoint(
    store: Store, http: httpx.AsyncClient, model_api: FakeModelServer
) -> None:
    model_api.script("direct", KeepAlive())
    model_api.script("api", Reply(text="served by api"))
    model = make_client(http, model_api, idle_timeout=0.5)
    surface = RecordingSurface()

    outcome = await answer(store, model, surface)

    assert surface.shown == ["served by api"] and outcome.status is TurnStatus.COMPLETE
    assert [r.endpoint for r in model_api.requests] == ["direct", "api"]


# -- 3. no line or event over 1 MB -----------------------------------------------------------


async def test_a_10_mb_delta_ends_the_answer_with_a_clear_error(
    store: Store, http: httpx.AsyncClient, model_api: FakeModelServer
) -> None:
    model_api.script("direct", HugeDelta(text="before the flood ", size=10_000_000))
    model = make_client(http, model_api)
    surface = RecordingSurface()

    outcome = await answer(store, model, surface)

    assert outcome.text == "before the flood " and outcome.error == TOO_BIG
    assert surface.shown == [f"before the flood \n\n⚠️ {TOO_BIG}"]
    assert await stored_answer(store) == ("before the flood ", TurnStatus.INTERRUPTED, TOO_BIG)


async def test_a_2_mb_line_without_an_end_is_refused_without_waiting_for_its_end(
    http: httpx.AsyncClient, model_api: FakeModelServer
) -> None:
    model_api.script("direct", LongLine(text="a start ", size=2_000_000))
    model = make_client(http, model_api, idle_timeout=30)

    text, end = await collect(model)

    assert text == "a start " and str(end.error) == TOO_BIG
    assert await model_api.hung_up("direct")


async def test_an_event_of_many_lines_over_1_mb_is_refused(
    http: httpx.AsyncClient, model_api: FakeModelServer
) -> None:
    model_api.script("direct", LongLine(text="a start ", size=2_000_000, line_bytes=50_000))
    model = make_client(http, model_api, idle_timeout=30)

    text, end = await collect(model)

    assert text == "a start " and str(end.error) == TOO_BIG


# -- 4. bodies and events that are not what a stream should be -------------------------------


async def test_an_html_page_instead_of_a_stream_is_reported_and_stored_as_failed(
    store: Store, http: httpx.AsyncClient, model_api: FakeModelServer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="bot.model.llm")
    model_api.script("direct", HtmlPage())
    model_api.script("api", HtmlPage())
    surface = RecordingSurface()

    outcome = await answer(store, make_client(http, model_api), surface)

    assert outcome.text == "" and outcome.error == HTML_PAGE
    assert surface.shown == [f"⚠️ {HTML_PAGE}"]
    assert await stored_answer(store) == ("", TurnStatus.FAILED, HTML_PAGE)
    assert [r.endpoint for r in model_api.requests] == ["direct", "api"], (
        "nothing was received from direct, so api was tried")
    logged = [r.getMessage() for r in caplog.records if "instead of an event stream" in
              r.getMessage()]
    assert len(logged) == 2 and " 200 with text/html" in logged[0]
    assert "Checking your browser" in logged[0], "the first bytes of the page are logged"


async def test_a_json_body_instead_of_a_stream_is_reported(
    http: httpx.AsyncClient, model_api: FakeModelServer
) -> None:
    model_api.script("api", JsonPage(),
                     JsonPage({"error": {"message": "Insufficient balance", "code": 402}}))
    model = make_client(http, model_api, one_endpoint=True)

    completion = await collect(model)
    error_object = await collect(model)

    assert completion[0] == "" and error_object[0] == ""
    assert str(completion[1].error) == (
        "The model API answered with JSON instead of an answer stream (HTTP 200)."
    )
    assert str(error_object[1].error) == (
        "The model API answered with JSON instead of an answer stream (HTTP 200): "
        "Insufficient balance"
    )


async def test_a_non_json_event_ends_the_answer_and_keeps_the_text_before_it(
    store: Store, http: httpx.AsyncClient, model_api: FakeModelServer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="bot.model.llm")
    model_api.script("direct", NotJsonEvent(after_chunks=1, text="one two three four"))
    surface = RecordingSurface()

    outcome = await answer(store, make_client(http, model_api), surface)

    assert outcome.text == "one two " and outcome.error == NOT_JSON
    assert surface.shown == [f"one two \n\n⚠️ {NOT_JSON}"]
    assert await stored_answer(store) == ("one two ", TurnStatus.INTERRUPTED, NOT_JSON)
    assert "502 Bad Gateway" in caplog.text


# -- 5. secrets never reach the chat, the database or the log --------------------------------


async def test_a_key_echoed_in_a_400_body_is_masked_everywhere(
    store: Store, http: httpx.AsyncClient, model_api: FakeModelServer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    model_api.script("direct", Status(400, message="Incorrect API key provided.", echo_key=True))
    surface = RecordingSurface()

    outcome = await answer(store, make_client(http, model_api), surface)

    expected = ("The model API refused the request (HTTP 400): Incorrect API key provided. "
                "Key received: ***")
    assert outcome.error == expected and surface.shown == [f"⚠️ {expected}"]
    assert await stored_answer(store) == ("", TurnStatus.FAILED, expected)
    assert "Key received: ***" in caplog.text, "the raw detail is logged, masked"
    assert API_KEY not in caplog.text


async def test_a_key_echoed_in_an_error_event_is_masked_everywhere(
    store: Store, http: httpx.AsyncClient, model_api: FakeModelServer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    model_api.script("direct", ErrorEvent(text="alpha beta gamma", after_chunks=1,
                                          message="Upstream refused.", echo_key=True))
    surface = RecordingSurface()

    outcome = await answer(store, make_client(http, model_api), surface)

    expected = "The model API reported an error mid-answer: Upstream refused. Key received: ***"
    assert outcome.text == "alpha beta " and outcome.error == expected
    assert surface.shown == [f"alpha beta \n\n⚠️ {expected}"]
    assert await stored_answer(store) == ("alpha beta ", TurnStatus.INTERRUPTED, expected)
    assert "Upstream refused. Key received: ***" in caplog.text
    assert API_KEY not in caplog.text


async def test_other_secrets_given_to_the_client_are_masked_too(
    http: httpx.AsyncClient, model_api: FakeModelServer
) -> None:
    model_api.script("api", Status(400, message="project proj-7f3a9 has no access"))
    model = make_client(http, model_api, one_endpoint=True, secrets=["proj-7f3a9"])

    _, end = await collect(model)

    assert str(end.error) == (
        "The model API refused the request (HTTP 400): project *** has no access"
    )
