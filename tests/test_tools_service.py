"""Tool answers through the service: the fake model API calls tools the way the API does
(split deltas, parallel calls, thought signatures) and refuses a follow-up without them; the
tools run for real (a local web site for fetch_url); the store keeps the calls and results."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import httpx
import pytest

from bot import defaults
from bot.conversation import Author, ConversationKey, Incoming, Role, TurnStatus
from bot.model.llm import ModelClient, create_http_client
from bot.model.parameters import ChannelSettings
from bot.service import Service, ServiceConfig
from bot.storage.store import Store
from bot.tools.registry import Toolbox, open_toolbox
from tests.conftest import API_KEY, migrated_store
from tests.fakes.model_server import FakeCall, FakeModelServer, Reply, ToolCalls
from tests.fakes.tool_calls import MISSING_SIGNATURE
from tests.fakes.web_pages import FakeWebSite
from tests.support.surfaces import RecordingSurface

KEY = ConversationKey("test", "team", "chan", "thread-1")
ANN = Author("u1", "Ann", can_configure=True)
MODEL = "gemini-3.1-flash-lite-preview"
SIGNATURE = "c2lnbmF0dXJlLW9mLWEtdGhvdWdodA=="


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with create_http_client(connect_timeout=2.0, read_timeout=5.0) as client:
        yield client


@pytest.fixture
async def sqlite_store(sqlite_url: str) -> AsyncIterator[Store]:
    async with migrated_store(sqlite_url) as opened:
        yield opened


@pytest.fixture
async def site() -> AsyncIterator[FakeWebSite]:
    async with FakeWebSite() as running:
        yield running


@pytest.fixture
async def toolbox(site: FakeWebSite) -> AsyncIterator[Toolbox]:
    opened = await open_toolbox(defaults.TOOLS, allow_private=[site.host_port])
    yield opened
    await opened.aclose()


def make_service(store: Store, http: httpx.AsyncClient, model_api: FakeModelServer,
                 toolbox: Toolbox, **config: object) -> Service:
    model = ModelClient(http, API_KEY, model_api.direct_url, model_api.api_url)
    return Service(store, model, ServiceConfig(default_model=MODEL, **config),  # type: ignore[arg-type]
                   tools=toolbox)


def ask(text: str, message_id: str = "q1") -> Incoming:
    return Incoming(KEY, ANN, text, message_id=message_id)


def fetch_call(url: str, call_id: str = "call_fetch") -> FakeCall:
    return FakeCall("fetch_url", json.dumps({"url": url}), call_id)


def messages(model_api: FakeModelServer, index: int) -> list[dict[str, object]]:
    return model_api.requests[index].body["messages"]  # type: ignore[no-any-return]


async def test_a_page_is_fetched_shown_with_a_status_line_and_ends_with_its_source(
    store: Store, http: httpx.AsyncClient, model_api: FakeModelServer, site: FakeWebSite,
    toolbox: Toolbox,
) -> None:
    page = site.url("/page")
    model_api.script("direct", ToolCalls([fetch_call(page)], usage=(30, 5)),
                     Reply(text="The old harbour reopened on Monday.", usage=(90, 8)))
    surface = RecordingSurface()

    outcome = await make_service(store, http, model_api, toolbox).handle(
        ask(f"What does {page} say?"), surface)

    assert outcome is not None and outcome.status is TurnStatus.COMPLETE
    assert "🔧 Reading 127.0.0.1…" in [call[2] for call in surface.calls]
    assert surface.shown == [f"The old harbour reopened on Monday.\n\nSources:\n- <{page}>"]
    first, _ = model_api.requests
    assert first.body["tool_choice"] == "auto"
    # read_channel is not offered: this surface cannot read its channel
    assert [t["function"]["name"] for t in first.body["tools"]] == [
        "fetch_url", "current_time", "calculate"]
    assert messages(model_api, 1)[1:] == [
        {"role": "assistant", "content": None, "tool_calls": [{
            "extra_content": {"google": {"thought_signature": SIGNATURE}},
            "id": "call_fetch", "type": "function",
            "function": {"name": "fetch_url", "arguments": json.dumps({"url": page})}}]},
        {"role": "tool", "tool_call_id": "call_fetch",
         "content": messages(model_api, 1)[2]["content"]},
    ]
    assert "the old harbour reopened on Monday." in str(messages(model_api, 1)[2]["content"])
    turns = await store.history(KEY, 10_000, 8)
    assert [(t.role, t.status) for t in turns] == [
        (Role.USER, TurnStatus.COMPLETE), (Role.ASSISTANT, TurnStatus.COMPLETE),
        (Role.TOOL, TurnStatus.COMPLETE), (Role.ASSISTANT, TurnStatus.COMPLETE)]
    assert turns[1].tool_calls[0].extra == {
        "extra_content": {"google": {"thought_signature": SIGNATURE}}}
    assert turns[2].tool_call_id == "call_fetch" and "old harbour" in turns[2].text
    assert turns[3].text.endswith(f"Sources:\n- <{page}>")
    usage = await store.usage_totals(KEY.channel_key)
    assert (usage.replies, usage.prompt_tokens, usage.completion_tokens) == (2, 120, 13)


async def test_a_follow_up_sends_the_stored_calls_back_with_their_signature(
    store: Store, http: httpx.AsyncClient, model_api: FakeModelServer, site: FakeWebSite,
    toolbox: Toolbox,
) -> None:
    page = site.url("/page")
    model_api.script("direct", ToolCalls([fetch_call(page)], text="Let me look.",
                                         message_extra={"extra_content": {"note": "kept"}}),
                     Reply(text="It reopened."), Reply(text="At noon."))
    service = make_service(store, http, model_api, toolbox)
    first = RecordingSurface()
    await service.handle(ask(f"Read {page}"), first)
    assert "Let me look.\n\n🔧 Reading 127.0.0.1…" in [call[2] for call in first.calls]
    assert first.shown == [f"Let me look.\n\nIt reopened.\n\nSources:\n- <{page}>"]

    surface = RecordingSurface()
    outcome = await service.handle(ask("When was the ribbon cut?", "q2"), surface)

    assert outcome is not None and outcome.status is TurnStatus.COMPLETE
    assert surface.shown == ["At noon."]
    history = messages(model_api, 2)
    assert [m["role"] for m in history] == ["user", "assistant", "tool", "assistant", "user"]
    assert history[1]["content"] == "Let me look."
    assert history[1]["extra_content"] == {"note": "kept"}
    assert history[1]["tool_calls"][0]["extra_content"] == {  # type: ignore[index]
        "google": {"thought_signature": SIGNATURE}}
    assert "The mayor cut the ribbon at noon." in str(history[2]["content"])
    assert history[3]["content"] == f"It reopened.\n\nSources:\n- <{page}>"


async def test_the_api_refuses_a_follow_up_without_the_signature_or_a_tool_message(
    http: httpx.AsyncClient, model_api: FakeModelServer
) -> None:
    model_api.script("direct", ToolCalls([FakeCall("calculate", '{"expression": "1+1"}', "c1")]))
    url = model_api.direct_url + "/v1/chat/completions"
    headers = {"Authorization": f"Bearer {API_KEY}"}
    await http.post(url, json={"model": MODEL, "stream": True, "messages": [
        {"role": "user", "content": "1+1?"}]}, headers=headers)
    call = {"id": "c1", "type": "function",
            "function": {"name": "calculate", "arguments": '{"expression": "1+1"}'}}
    question = {"role": "user", "content": "1+1?"}

    unsigned = await http.post(url, headers=headers, json={"model": MODEL, "messages": [
        question, {"role": "assistant", "content": None, "tool_calls": [call]},
        {"role": "tool", "tool_call_id": "c1", "content": "2"}]})
    unanswered = await http.post(url, headers=headers, json={"model": MODEL, "messages": [
        question, {"role": "assistant", "content": None, "tool_calls": [
            {**call, "extra_content": {"google": {"thought_signature": SIGNATURE}}}]},
        {"role": "user", "content": "and?"}]})

    assert unsigned.status_code == 400
    assert unsigned.json()["error"]["message"] == MISSING_SIGNATURE
    assert unanswered.status_code == 400
    assert "did not have response messages: c1" in unanswered.json()["error"]["message"]


async def test_two_parallel_calls_run_and_answer_in_order(
    sqlite_store: Store, http: httpx.AsyncClient, model_api: FakeModelServer, toolbox: Toolbox,
) -> None:
    model_api.script("direct", ToolCalls([
        FakeCall("calculate", '{"expression": "12 * 12"}', "c1"),
        FakeCall("current_time", '{"timezone": "Europe/Paris"}', "c2"),
    ], piece_chars=3), Reply(text="144, and it is evening in Paris."))
    surface = RecordingSurface()

    await make_service(sqlite_store, http, model_api, toolbox).handle(ask("12*12, and time?"),
                                                                       surface)

    follow_up = messages(model_api, 1)
    assert [m.get("tool_call_id") for m in follow_up[2:]] == ["c1", "c2"]
    assert follow_up[2]["content"] == "12 * 12 = 144"
    assert "in Europe/Paris" in str(follow_up[3]["content"])
    assert [c["function"]["arguments"] for c in follow_up[1]["tool_calls"]] == [  # type: ignore[index]
        '{"expression": "12 * 12"}', '{"timezone": "Europe/Paris"}']
    assert surface.shown == ["144, and it is evening in Paris."]


async def test_a_refused_address_and_malformed_arguments_reach_the_model_as_errors(
    sqlite_store: Store, http: httpx.AsyncClient, model_api: FakeModelServer,
    site: FakeWebSite, toolbox: Toolbox,
) -> None:
    model_api.script("direct", ToolCalls([
        fetch_call("http://169.254.169.254/latest/meta-data/", "c1"),
        fetch_call(site.url("/redirect?to=http://10.0.0.1/admin"), "c2"),
        FakeCall("calculate", '{"expression": "2 +', "c3"),
        FakeCall("delete_everything", "{}", "c4"),
    ]), Reply(text="I could not read those."))
    surface = RecordingSurface()

    outcome = await make_service(sqlite_store, http, model_api, toolbox).handle(
        ask("read them"), surface)

    assert outcome is not None and outcome.status is TurnStatus.COMPLETE
    results = [m["content"] for m in messages(model_api, 1)[2:]]
    assert str(results[0]).startswith("Error: refused: 169.254.169.254")
    assert str(results[1]).startswith("Error: refused: 10.0.0.1")
    assert str(results[2]).startswith("Error: the arguments are not a JSON object")
    assert str(results[3]).startswith("Error: there is no tool 'delete_everything'")
    assert surface.shown == ["I could not read those."]


async def test_a_slow_tool_times_out_and_a_long_result_is_cut(
    sqlite_store: Store, http: httpx.AsyncClient, model_api: FakeModelServer,
    site: FakeWebSite, toolbox: Toolbox,
) -> None:
    model_api.script("direct", ToolCalls([fetch_call(site.url("/hang"), "c1"),
                                          fetch_call(site.url("/page"), "c2")]),
                     Reply(text="done"))

    outcome = await make_service(sqlite_store, http, model_api, toolbox, tool_timeout=0.5,
                                 tool_result_chars=100).handle(ask("read"), RecordingSurface())

    assert outcome is not None and outcome.status is TurnStatus.COMPLETE
    slow, long = (m["content"] for m in messages(model_api, 1)[2:])
    assert slow == "Error: the tool took longer than 0.5 s and was stopped"
    assert str(long).startswith(f"URL: {site.url('/page')}\nTitle: Fake Weekly")
    assert str(long).endswith(" characters; the first 100 are shown]")
    assert len(str(long)) < 200


async def test_after_the_round_limit_the_model_must_answer_in_words(
    sqlite_store: Store, http: httpx.AsyncClient, model_api: FakeModelServer, toolbox: Toolbox,
) -> None:
    calc = FakeCall("calculate", '{"expression": "1 + 1"}')
    model_api.script("direct", ToolCalls([calc], text="One."), ToolCalls([calc], text="Two."),
                     ToolCalls([calc], text="Three."))
    surface = RecordingSurface()

    outcome = await make_service(sqlite_store, http, model_api, toolbox,
                                 max_tool_rounds=2).handle(ask("loop"), surface)

    assert [r.body["tool_choice"] for r in model_api.requests] == ["auto", "auto", "none"]
    assert outcome is not None
    assert surface.shown == ["One.\n\nTwo.\n\nThree.\n\n"
                             "(I stopped using tools after 2 rounds, this bot's limit.)"]
    turns = await sqlite_store.history(KEY, 10_000, 8)
    assert [t.role for t in turns] == [Role.USER, Role.ASSISTANT, Role.TOOL, Role.ASSISTANT,
                                       Role.TOOL, Role.ASSISTANT]
    assert turns[-1].tool_calls == () and turns[-1].text == "Three."


async def test_no_tools_are_sent_with_json_answers_or_tool_choice_none(
    sqlite_store: Store, http: httpx.AsyncClient, model_api: FakeModelServer, toolbox: Toolbox,
) -> None:
    service = make_service(sqlite_store, http, model_api, toolbox)
    for parameters in ({"response_format": "json"}, {"tool_choice": "none"}):
        await sqlite_store.save_channel_settings(
            KEY.channel_key, ChannelSettings(parameters=parameters), "u1")
        await service.handle(ask("hi"), RecordingSurface())
        body = model_api.requests[-1].body
        assert "tools" not in body and "tool_choice" not in body
    await sqlite_store.save_channel_settings(
        KEY.channel_key, ChannelSettings(tools={"fetch_url": False, "calculate": False}), "u1")
    await service.handle(ask("hi"), RecordingSurface())
    assert [t["function"]["name"] for t in model_api.requests[-1].body["tools"]] == [
        "current_time"]
