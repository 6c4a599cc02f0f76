"""End-to-end checks of the fake chat-completions server with httpx + httpx-sse."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from httpx_sse import ServerSentEvent, aconnect_sse

from tests.fakes.model_server import (
    LONG_ANSWER,
    MODEL,
    Cut,
    ErrorEvent,
    FakeModelServer,
    Hang,
    HangBeforeHeaders,
    Reply,
    Slow,
    Status,
    unused_url,
)

KEY = "test-key"


def make_body(content: Any = "hello there, model", **extra: Any) -> dict[str, Any]:
    """A streaming request body like the bot sends."""
    return {
        "model": MODEL,
        "messages": [
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": content},
        ],
        "stream": True,
        "stream_options": {"include_usage": True},
        "temperature": 0.7,
        **extra,
    }


def auth(key: str = KEY) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture
async def fake() -> AsyncIterator[FakeModelServer]:
    async with FakeModelServer(api_key=KEY) as server:
        yield server


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=httpx.Timeout(5.0, read=2.0)) as c:
        yield c


async def stream_events(
    client: httpx.AsyncClient,
    base_url: str,
    events: list[ServerSentEvent],
    body: dict[str, Any] | None = None,
    key: str = KEY,
) -> httpx.Response:
    """POST a streaming request, appending events to ``events`` as they arrive."""
    async with aconnect_sse(
        client,
        "POST",
        f"{base_url}/v1/chat/completions",
        json=body or make_body(),
        headers=auth(key),
    ) as source:
        async for event in source.aiter_sse():
            events.append(event)
        return source.response


def payloads(events: list[ServerSentEvent]) -> list[dict[str, Any]]:
    """JSON payloads of all events except ``[DONE]``."""
    return [json.loads(e.data) for e in events if e.data != "[DONE]"]


def content_of(events: list[ServerSentEvent]) -> str:
    return "".join(
        c["delta"].get("content") or "" for p in payloads(events) for c in p.get("choices", [])
    )


def shape(events: list[ServerSentEvent]) -> list[Any]:
    """Events without the per-response id/created, for comparing two responses."""
    out: list[Any] = []
    for e in events:
        if e.data == "[DONE]":
            out.append(e.data)
        else:
            p = json.loads(e.data)
            out.append({k: v for k, v in p.items() if k not in ("id", "created")})
    return out


async def test_plain_reply_stream(fake: FakeModelServer, client: httpx.AsyncClient) -> None:
    fake.script("direct", Reply("The answer is forty two, of course.", usage=(11, 7)))
    events: list[ServerSentEvent] = []
    resp = await stream_events(client, fake.direct_url, events)

    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("text/event-stream")
    assert events[-1].data == "[DONE]"
    chunks = payloads(events)
    assert content_of(events) == "The answer is forty two, of course."
    content_chunks, usage_chunk = chunks[:-1], chunks[-1]
    assert len(content_chunks) > 2
    assert {c["id"] for c in chunks} == {chunks[0]["id"]}
    assert chunks[0]["id"].startswith("chatcmpl-")
    for c in content_chunks:
        assert c["object"] == "chat.completion.chunk"
        assert c["model"] == MODEL
        assert isinstance(c["created"], int)
        assert c["choices"][0]["delta"]["role"] == "assistant"
    assert [c["choices"][0]["finish_reason"] for c in content_chunks[:-1]] == [None] * (
        len(content_chunks) - 1
    )
    assert content_chunks[-1]["choices"][0]["finish_reason"] == "stop"
    assert usage_chunk["choices"] == []
    assert usage_chunk["usage"] == {
        "prompt_tokens": 11,
        "completion_tokens": 7,
        "total_tokens": 18,
        "completion_tokens_details": {"reasoning_tokens": 0},
    }


async def test_default_answer_echoes_last_user_text(
    fake: FakeModelServer, client: httpx.AsyncClient
) -> None:
    parts = [
        {"type": "text", "text": "what is"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
        {"type": "text", "text": "in this picture?"},
    ]
    events: list[ServerSentEvent] = []
    await stream_events(client, fake.api_url, events, make_body(parts))
    assert content_of(events) == "echo: what is in this picture?"
    usage = payloads(events)[-1]["usage"]
    assert usage["prompt_tokens"] > 0
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]

    fake.default_answer = lambda body: f"custom {len(body['messages'])}"
    events.clear()
    await stream_events(client, fake.api_url, events)
    assert content_of(events) == "custom 2"


async def test_long_answers_flag(client: httpx.AsyncClient) -> None:
    async with FakeModelServer(long_answers=True) as server:
        events: list[ServerSentEvent] = []
        await stream_events(client, server.direct_url, events, make_body("hi"))
    assert content_of(events) == f"echo: hi {LONG_ANSWER}"
    assert len(events) > 100


async def test_no_usage_chunk_unless_requested(
    fake: FakeModelServer, client: httpx.AsyncClient
) -> None:
    body = make_body()
    del body["stream_options"]
    events: list[ServerSentEvent] = []
    await stream_events(client, fake.direct_url, events, body)
    assert events[-1].data == "[DONE]"
    assert all(p["choices"] for p in payloads(events))
    assert "usage" not in payloads(events)[0]

    fake.script("direct", Reply("x", include_usage_chunk=False, finish_reason="length"))
    events.clear()
    await stream_events(client, fake.direct_url, events)
    assert [p["choices"][0]["finish_reason"] for p in payloads(events)] == ["length"]


@pytest.mark.parametrize("coalesce", [1, 3])
async def test_split_writes_give_same_events(
    fake: FakeModelServer, client: httpx.AsyncClient, coalesce: int
) -> None:
    text = "Grüße aus Köln 🌍 — streaming déjà vu, naïve café"
    fake.script(
        "direct",
        Reply(text, usage=(5, 9)),
        Reply(text, usage=(5, 9), split_writes=True, coalesce=coalesce),
    )
    plain: list[ServerSentEvent] = []
    split: list[ServerSentEvent] = []
    await stream_events(client, fake.direct_url, plain)
    await stream_events(client, fake.direct_url, split)
    assert content_of(split) == text
    assert shape(split) == shape(plain)


async def test_coalesced_writes_without_split(
    fake: FakeModelServer, client: httpx.AsyncClient
) -> None:
    fake.script("direct", Reply("one two three four five six", coalesce=100))
    events: list[ServerSentEvent] = []
    await stream_events(client, fake.direct_url, events)
    assert content_of(events) == "one two three four five six"
    assert events[-1].data == "[DONE]"


async def test_split_writes_really_arrive_in_pieces(
    fake: FakeModelServer, client: httpx.AsyncClient
) -> None:
    # Pieces 50 ms apart: the reader, in this event loop, takes each before the next is sent.
    fake.script("direct", Reply("a b c d", split_writes=True, split_pause=0.05))
    async with client.stream(
        "POST", f"{fake.direct_url}/v1/chat/completions", json=make_body(), headers=auth()
    ) as resp:
        reads = [piece async for piece in resp.aiter_raw()]
    assert b"".join(reads).endswith(b"data: [DONE]\n\n")
    assert any(not r.endswith(b"\n\n") for r in reads), "a read ended inside an event"
    assert len(reads) > 4, "more reads than events"


async def test_slow_reply_spaces_events(fake: FakeModelServer, client: httpx.AsyncClient) -> None:
    fake.script("direct", Slow("a b c d", delay_between_chunks=0.03))
    stamps: list[float] = []
    async with aconnect_sse(
        client, "POST", f"{fake.direct_url}/v1/chat/completions", json=make_body(), headers=auth()
    ) as source:
        async for _ in source.aiter_sse():
            stamps.append(time.monotonic())
    assert len(stamps) == 4  # two content chunks, usage, [DONE]
    # Measured from the server's side: the fake recorded the request before it sent a byte,
    # then slept three times between the four events (a sleep never ends early).
    assert stamps[-1] - fake.requests[0].time >= 3 * 0.03


async def test_status_429_with_retry_after(
    fake: FakeModelServer, client: httpx.AsyncClient
) -> None:
    fake.script("direct", Status(429, retry_after=1))
    resp = await client.post(
        f"{fake.direct_url}/v1/chat/completions", json=make_body(), headers=auth()
    )
    assert resp.status_code == 429
    assert resp.headers["Retry-After"] == "1"
    error = resp.json()["error"]
    assert error["type"] == "rate_limit_error"
    assert error["code"] == 429
    assert error["message"]


@pytest.mark.parametrize("code", [400, 403, 500, 503])
async def test_status_codes_through_sse_client(
    fake: FakeModelServer, client: httpx.AsyncClient, code: int
) -> None:
    fake.script("api", Status(code, "nope", retry_after=0.25))
    async with aconnect_sse(
        client, "POST", f"{fake.api_url}/v1/chat/completions", json=make_body(), headers=auth()
    ) as source:
        resp = source.response
        assert resp.status_code == code
        assert resp.headers["Retry-After"] == "0.25"
        await resp.aread()
    assert resp.json()["error"]["message"] == "nope"


async def test_cut_raises_remote_protocol_error(
    fake: FakeModelServer, client: httpx.AsyncClient
) -> None:
    fake.script("direct", Cut("one two three four five six seven", after_chunks=2))
    events: list[ServerSentEvent] = []
    with pytest.raises(httpx.RemoteProtocolError, match="incomplete chunked read"):
        await stream_events(client, fake.direct_url, events)
    assert content_of(events) == "one two three four "
    assert all(p["choices"][0]["finish_reason"] is None for p in payloads(events))
    # The client's pool recovers: the next request works on a fresh connection.
    events.clear()
    await stream_events(client, fake.direct_url, events)
    assert events[-1].data == "[DONE]"


async def test_graceful_cut_just_ends(fake: FakeModelServer, client: httpx.AsyncClient) -> None:
    fake.script("direct", Cut("one two three four", after_chunks=1, graceful=True))
    events: list[ServerSentEvent] = []
    resp = await stream_events(client, fake.direct_url, events)
    assert resp.status_code == 200
    assert content_of(events) == "one two "
    assert all(e.data != "[DONE]" for e in events)


async def test_error_event_mid_stream(fake: FakeModelServer, client: httpx.AsyncClient) -> None:
    fake.script("direct", ErrorEvent("partial answer here", after_chunks=1, message="overloaded"))
    events: list[ServerSentEvent] = []
    resp = await stream_events(client, fake.direct_url, events)
    assert resp.status_code == 200
    assert content_of(events[:-1]) == "partial answer "
    last = json.loads(events[-1].data)
    assert last == {"error": {"message": "overloaded", "type": "server_error", "code": 500}}
    assert all(e.data != "[DONE]" for e in events)


async def test_hang_after_headers_hits_read_timeout(fake: FakeModelServer) -> None:
    fake.script("direct", Hang(3600, after_chunks=1))
    events: list[ServerSentEvent] = []
    async with httpx.AsyncClient(timeout=httpx.Timeout(5.0, read=0.2)) as c:
        with pytest.raises(httpx.ReadTimeout):  # long before the hour is up
            await stream_events(c, fake.direct_url, events)
    assert len(events) == 1


async def test_hang_within_timeout_completes(
    fake: FakeModelServer, client: httpx.AsyncClient
) -> None:
    fake.script("direct", Hang(0.1, after_chunks=2, text="a b c d e f"))
    events: list[ServerSentEvent] = []
    await stream_events(client, fake.direct_url, events)
    assert content_of(events) == "a b c d e f"
    assert events[-1].data == "[DONE]"


async def test_hang_before_headers_hits_read_timeout(fake: FakeModelServer) -> None:
    fake.script("direct", HangBeforeHeaders(30))
    async with httpx.AsyncClient(timeout=httpx.Timeout(5.0, read=0.2)) as c:
        with pytest.raises(httpx.ReadTimeout):
            await stream_events(c, fake.direct_url, [])


async def test_stop_does_not_wait_for_hanging_handlers(client: httpx.AsyncClient) -> None:
    server = FakeModelServer()
    await server.start()
    server.script("direct", Hang(3600, after_chunks=1))
    async with aconnect_sse(
        client, "POST", f"{server.direct_url}/v1/chat/completions", json=make_body(), headers=auth()
    ) as source:
        events = source.aiter_sse()
        try:
            await anext(events)  # the handler is now stalled inside an hour-long Hang
            # Only a guard against a hang: stop() returning at all shows it did not wait.
            await asyncio.wait_for(server.stop(), timeout=60)
            with pytest.raises(httpx.RemoteProtocolError):  # cut, not finished
                await anext(events)
        finally:
            await events.aclose()


async def test_requests_are_recorded(fake: FakeModelServer, client: httpx.AsyncClient) -> None:
    await stream_events(client, fake.direct_url, [], make_body("first"))
    await stream_events(client, fake.api_url, [], make_body("second"))
    assert [r.endpoint for r in fake.requests] == ["direct", "api"]
    direct, api = fake.requests_to("direct"), fake.requests_to("api")
    assert len(direct) == 1 and len(api) == 1
    assert direct[0].body == make_body("first")
    assert direct[0].body["temperature"] == 0.7
    assert direct[0].headers["authorization"] == f"Bearer {KEY}"
    assert direct[0].api_key == KEY
    assert direct[0].headers["accept"] == "text/event-stream"
    assert direct[0].time <= api[0].time


async def test_queues_are_per_endpoint(fake: FakeModelServer, client: httpx.AsyncClient) -> None:
    fake.script("direct", Status(503), Reply("second try"))
    fake.script("api", Reply("from api"))
    assert fake.pending("direct") == 2
    first = await client.post(
        f"{fake.direct_url}/v1/chat/completions", json=make_body(), headers=auth()
    )
    assert first.status_code == 503
    events: list[ServerSentEvent] = []
    await stream_events(client, fake.api_url, events)
    assert content_of(events) == "from api"
    events.clear()
    await stream_events(client, fake.direct_url, events)
    assert content_of(events) == "second try"
    events.clear()
    await stream_events(client, fake.direct_url, events, make_body("again"))
    assert content_of(events) == "echo: again"
    assert fake.pending("direct") == 0


async def test_wrong_or_missing_key_gets_401(
    fake: FakeModelServer, client: httpx.AsyncClient
) -> None:
    fake.script("direct", Reply("kept for the good request"))
    url = f"{fake.direct_url}/v1/chat/completions"
    wrong = await client.post(url, json=make_body(), headers=auth("wrong"))
    missing = await client.post(url, json=make_body())
    for resp in (wrong, missing):
        assert resp.status_code == 401
        assert resp.json()["error"]["type"] == "authentication_error"
    # A rejected request does not consume the scripted reply.
    events: list[ServerSentEvent] = []
    await stream_events(client, fake.direct_url, events)
    assert content_of(events) == "kept for the good request"
    assert [r.api_key for r in fake.requests] == ["wrong", None, KEY]


async def test_scripted_status_overrides_auth(
    fake: FakeModelServer, client: httpx.AsyncClient
) -> None:
    fake.script("api", Status(401, "key revoked"))
    resp = await client.post(
        f"{fake.api_url}/v1/chat/completions", json=make_body(), headers=auth()
    )
    assert resp.status_code == 401
    assert resp.json()["error"]["message"] == "key revoked"


async def test_invalid_json_gets_400(fake: FakeModelServer, client: httpx.AsyncClient) -> None:
    resp = await client.post(
        f"{fake.api_url}/v1/chat/completions", content=b"{not json", headers=auth()
    )
    assert resp.status_code == 400
    assert fake.requests[0].body == {}
    assert fake.requests[0].raw == b"{not json"


async def test_non_streaming_reply(fake: FakeModelServer, client: httpx.AsyncClient) -> None:
    fake.script("direct", Reply("plain answer", usage=(3, 2)))
    resp = await client.post(
        f"{fake.direct_url}/v1/chat/completions", json=make_body(stream=False), headers=auth()
    )
    data = resp.json()
    assert data["object"] == "chat.completion"
    assert data["choices"][0]["message"] == {"role": "assistant", "content": "plain answer"}
    assert data["usage"]["total_tokens"] == 5


async def test_unused_url_gives_connect_error(client: httpx.AsyncClient) -> None:
    url = unused_url()
    assert url.startswith("http://127.0.0.1:") and url.endswith("/direct")
    with pytest.raises(httpx.ConnectError):
        await stream_events(client, url, [])
