"""Running summaries of long conversations, end to end: a real store (SQLite and PostgreSQL),
the real httpx model client against the fake model API, the service answering on a recording
surface. The earlier talk of a scenario is stored directly; the question that overflows the
history budget goes through the service."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from bot.commands import CommandContext
from bot.conversation import Author, ConversationKey, Incoming, Role, TextPart, Turn, TurnStatus
from bot.metrics import Metrics
from bot.model.llm import ModelClient, create_http_client
from bot.model.prompt import SUMMARY_HEADING, summary_tokens
from bot.model.tokens import estimate_tokens
from bot.service import Service, ServiceConfig
from bot.storage.store import Store
from bot.summaries import INSTRUCTION
from tests.conftest import API_KEY
from tests.fakes.model_server import (
    MODEL,
    FakeModelServer,
    Hang,
    RecordedRequest,
    Reply,
    Status,
    message_text,
)
from tests.support.surfaces import RecordingSurface

KEY = ConversationKey("test", "team", "chan", "thread-1")
ANN = Author("u1", "Ann")
HISTORY_TOKENS = 400
SUMMARY_TOKENS = 100
MESSAGE_CHARS = 400
"""A stored message of about 104 tokens: four of them overflow the history budget."""


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with create_http_client(connect_timeout=2.0, read_timeout=2.0) as client:
        yield client


def make_service(store: Store, http: httpx.AsyncClient, model_api: FakeModelServer, *,
                 summary_tokens: int = SUMMARY_TOKENS, summary_timeout: float = 30.0,
                 metrics: Metrics | None = None) -> Service:
    model = ModelClient(http, API_KEY, model_api.direct_url, model_api.api_url)
    config = ServiceConfig(default_model=MODEL, history_tokens=HISTORY_TOKENS,
                           summary_tokens=summary_tokens, summary_timeout=summary_timeout)
    return Service(store, model, config, metrics=metrics)


def long_message(label: str) -> str:
    return (f"{label} " + "lorem ipsum dolor " * 40)[:MESSAGE_CHARS]


async def earlier_talk(store: Store, *labels: str) -> list[int]:
    """Store a long message per label, Ann's and the assistant's in turn; their ids."""
    ids = []
    for index, label in enumerate(labels):
        role = Role.USER if index % 2 == 0 else Role.ASSISTANT
        author = (ANN.id, ANN.name) if role is Role.USER else ("", "")
        ids.append(await store.add_turn(KEY, Turn(role=role, parts=(TextPart(long_message(label)),),
                                                  author_id=author[0], author_name=author[1])))
    return ids


async def ask(service: Service, text: str) -> RecordingSurface:
    surface = RecordingSurface()
    outcome = await service.handle(Incoming(KEY, ANN, text), surface)
    assert outcome is not None and outcome.status is TurnStatus.COMPLETE
    return surface


def is_summary_request(request: RecordedRequest) -> bool:
    return bool(request.body["messages"][0]["content"] == INSTRUCTION)


def summary_requests(model_api: FakeModelServer) -> list[RecordedRequest]:
    return [r for r in model_api.requests if is_summary_request(r)]


def answer_requests(model_api: FakeModelServer) -> list[RecordedRequest]:
    return [r for r in model_api.requests if not is_summary_request(r)]


def sent_text(request: RecordedRequest) -> str:
    return "\n".join(message_text(m.get("content")) for m in request.body["messages"])


def system_message(request: RecordedRequest) -> str:
    first = request.body["messages"][0]
    return str(first["content"]) if first["role"] == "system" else ""


async def test_past_the_budget_one_summary_is_made_and_sent_ahead_of_the_recent_turns(
    store: Store, http: httpx.AsyncClient, model_api: FakeModelServer
) -> None:
    stored = await earlier_talk(store, "alpha", "beta", "gamma", "delta", "epsilon", "zeta")
    written = "SUMMARY-ONE: Ann asked about alpha to zeta."
    model_api.script("direct", Reply(text=written), Reply(text="It was alpha."))
    service = make_service(store, http, model_api)

    surface = await ask(service, "What did I ask first?")

    assert surface.shown == ["It was alpha."]
    assert len(summary_requests(model_api)) == 1
    summarising = summary_requests(model_api)[0]
    assert summarising.body["model"] == MODEL
    assert summarising.body["max_completion_tokens"] == SUMMARY_TOKENS
    assert "tools" not in summarising.body
    quoted = message_text(summarising.body["messages"][1]["content"])
    assert quoted.startswith("<conversation>\nAnn: alpha ")
    assert all(label in quoted for label in ("beta", "gamma", "delta", "epsilon", "zeta"))
    assert "What did I ask first?" not in quoted
    answering = answer_requests(model_api)[0]
    assert system_message(answering) == f"{SUMMARY_HEADING}\n{written}"
    assert answering.body["messages"][1:] == [{"role": "user", "content": "What did I ask first?"}]
    summary = await store.summary_of(KEY)
    assert summary is not None
    assert summary[0].covers_turn_id == stored[-1] and summary[1] == 6


async def test_later_requests_carry_the_summary_without_summarising_until_more_turns_fall_out(
    store: Store, http: httpx.AsyncClient, model_api: FakeModelServer
) -> None:
    await earlier_talk(store, "alpha", "beta", "gamma", "delta", "epsilon", "zeta")
    model_api.script("direct", Reply(text="SUMMARY-ONE"), Reply(text="first answer"),
                     Reply(text="second answer"))
    service = make_service(store, http, model_api)
    await ask(service, "First question?")

    await ask(service, "Second question?")

    assert len(summary_requests(model_api)) == 1
    later = answer_requests(model_api)[-1]
    assert system_message(later) == f"{SUMMARY_HEADING}\nSUMMARY-ONE"
    assert [(m["role"], m["content"]) for m in later.body["messages"][1:]] == [
        ("user", "First question?"), ("assistant", "first answer"), ("user", "Second question?"),
    ]

    await earlier_talk(store, "eta", "theta", "iota")
    model_api.script("direct", Reply(text="SUMMARY-TWO"), Reply(text="third answer"))
    await ask(service, "Third question?")

    assert len(summary_requests(model_api)) == 2
    quoted = message_text(summary_requests(model_api)[1].body["messages"][1]["content"])
    assert quoted.startswith("<previous_summary>\nSUMMARY-ONE\n</previous_summary>")
    assert "First question?" in quoted and "eta" in quoted and "alpha" not in quoted
    assert system_message(answer_requests(model_api)[-1]) == f"{SUMMARY_HEADING}\nSUMMARY-TWO"
    assert "theta" not in sent_text(answer_requests(model_api)[-1])


async def test_a_failing_summary_request_still_answers_the_question(
    store: Store, http: httpx.AsyncClient, model_api: FakeModelServer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    await earlier_talk(store, "alpha", "beta", "gamma", "delta", "epsilon", "zeta")
    model_api.script("direct", Status(503), Reply(text="answered anyway"))
    model_api.script("api", Status(503))
    metrics = Metrics()
    service = make_service(store, http, model_api, metrics=metrics)

    surface = await ask(service, "Still there?")

    assert surface.shown == ["answered anyway"]
    assert surface.notices == []
    answering = answer_requests(model_api)[-1]
    assert SUMMARY_HEADING not in sent_text(answering)
    assert "alpha" not in sent_text(answering) and "zeta" in sent_text(answering)
    assert await store.summary_of(KEY) is None
    assert "summarising the earlier conversation failed" in caplog.text
    failed = metrics.registry.get_sample_value("bot_summaries_total", {"outcome": "failed"})
    assert failed == 1


async def test_a_summary_that_takes_too_long_is_given_up_and_the_question_answered(
    store: Store, http: httpx.AsyncClient, model_api: FakeModelServer
) -> None:
    await earlier_talk(store, "alpha", "beta", "gamma", "delta", "epsilon", "zeta")
    model_api.script("direct", Hang(seconds=10), Reply(text="answered anyway"))
    service = make_service(store, http, model_api, summary_timeout=0.2)

    surface = await ask(service, "Still there?")

    assert surface.shown == ["answered anyway"]
    assert await store.summary_of(KEY) is None
    assert len(summary_requests(model_api)) == 1


async def test_superseded_answers_never_reach_a_summary(
    store: Store, http: httpx.AsyncClient, model_api: FakeModelServer
) -> None:
    question, _ = await earlier_talk(store, "alpha", "REPLACED-ANSWER")
    await store.answer_again(KEY, question, HISTORY_TOKENS, 8)
    await earlier_talk(store, "beta", "gamma", "delta", "epsilon", "zeta")
    model_api.script("direct", Reply(text="SUMMARY"), Reply(text="answer"))

    await ask(make_service(store, http, model_api), "And now?")

    quoted = message_text(summary_requests(model_api)[0].body["messages"][1]["content"])
    assert "alpha" in quoted and "epsilon" in quoted and "zeta" not in quoted
    assert "REPLACED-ANSWER" not in quoted
    summary = await store.summary_of(KEY)
    assert summary is not None and summary[1] == 5


async def test_show_tells_the_summary_is_in_use_and_reset_forgets_it(
    store: Store, http: httpx.AsyncClient, model_api: FakeModelServer
) -> None:
    await earlier_talk(store, "alpha", "beta", "gamma", "delta", "epsilon", "zeta")
    model_api.script("direct", Reply(text="SUMMARY"), Reply(text="answer"))
    service = make_service(store, http, model_api)
    await ask(service, "Hello?")
    ctx = CommandContext(KEY, ANN)

    shown = await service.commands.run(ctx, "show")
    reset = await service.commands.run(ctx, "reset")

    assert "its 6 earlier messages are sent as a summary" in shown
    assert reset.startswith("Forgot this conversation (8 messages and the summary")
    assert await store.summary_of(KEY) is None
    assert "summary" not in await service.commands.run(ctx, "show")
    await ask(service, "Hello again?")
    assert answer_requests(model_api)[-1].body["messages"] == [
        {"role": "user", "content": "Hello again?"}
    ]


async def test_summary_tokens_count_in_usage_billed_to_the_asker(
    store: Store, http: httpx.AsyncClient, model_api: FakeModelServer
) -> None:
    await earlier_talk(store, "alpha", "beta", "gamma", "delta", "epsilon", "zeta")
    model_api.script("direct", Reply(text="SUMMARY", usage=(700, 30)),
                     Reply(text="answer", usage=(90, 5)))

    await ask(make_service(store, http, model_api), "Hello?")

    totals = await store.usage_totals(KEY.channel_key)
    assert (totals.replies, totals.prompt_tokens, totals.completion_tokens) == (2, 790, 35)
    since = (await store.history(KEY, HISTORY_TOKENS, 0))[0].created_at.replace(year=2000)
    assert await store.tokens_used_by_user("test", ANN.id, since) == 825


async def test_an_overlong_summary_is_cut_to_its_token_cap(
    store: Store, http: httpx.AsyncClient, model_api: FakeModelServer
) -> None:
    await earlier_talk(store, "alpha", "beta", "gamma", "delta", "epsilon", "zeta")
    model_api.script("direct", Reply(text="word " * 500), Reply(text="answer"))

    await ask(make_service(store, http, model_api), "Hello?")

    summary = await store.summary_of(KEY)
    assert summary is not None
    assert len(summary[0].text) <= SUMMARY_TOKENS * 4 and summary[0].text.endswith("…")
    assert summary[0].tokens == summary_tokens(summary[0].text)
    assert summary[0].tokens <= SUMMARY_TOKENS + summary_tokens("")
    sent = answer_requests(model_api)[0].body["messages"]
    assert sum(estimate_tokens([TextPart(message_text(m["content"]))]) for m in sent) \
        <= HISTORY_TOKENS


async def test_with_summaries_off_no_summary_is_made_or_sent(
    store: Store, http: httpx.AsyncClient, model_api: FakeModelServer
) -> None:
    stored = await earlier_talk(store, "alpha", "beta", "gamma", "delta", "epsilon", "zeta")
    await store.save_summary(KEY, "AN OLD SUMMARY", 20, stored[1])
    model_api.script("direct", Reply(text="answer"))

    await ask(make_service(store, http, model_api, summary_tokens=0), "Hello?")

    assert summary_requests(model_api) == []
    answering = answer_requests(model_api)[0]
    assert "AN OLD SUMMARY" not in sent_text(answering)
    assert "delta" in sent_text(answering) and "beta" not in sent_text(answering)


async def test_a_question_that_leaves_no_room_for_the_summary_is_sent_without_it(
    store: Store, http: httpx.AsyncClient, model_api: FakeModelServer
) -> None:
    stored = await earlier_talk(store, "alpha", "beta")
    await store.save_summary(KEY, "A BIG SUMMARY", 300, stored[0])
    question = "omega " * 140
    model_api.script("direct", Reply(text="answer"))

    await ask(make_service(store, http, model_api), question)

    assert summary_requests(model_api) == []
    assert answer_requests(model_api)[0].body["messages"] == [
        {"role": "assistant", "content": long_message("beta")},
        {"role": "user", "content": question.strip()},
    ]
