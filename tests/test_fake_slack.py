"""The fake Slack works against the real slack_sdk / slack_bolt clients."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

import aiohttp
import aiohttp.web
import pytest
from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
from slack_bolt.app.async_app import AsyncApp
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_async_handlers import AsyncRateLimitErrorRetryHandler
from slack_sdk.signature import SignatureVerifier
from slack_sdk.web.async_client import AsyncWebClient

from tests.fakes.slack import (
    ADMIN_USER_ID,
    BOT_USER_ID,
    OWNER_USER_ID,
    PLAIN_USER_ID,
    SIGN_IN_PAGE,
    AppManifest,
    FakeSlack,
    NotSubscribed,
    event_callback_body,
    signed_headers,
    slash_command_body,
)
from tests.support.clock import FakeClock


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    # slack_sdk routes *every* request through HTTP(S)_PROXY and ignores NO_PROXY.
    for name in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
async def fake() -> AsyncIterator[FakeSlack]:
    async with FakeSlack() as server:
        yield server


def make_app(fake: FakeSlack, **kwargs: Any) -> AsyncApp:
    # client= (not token=): AsyncApp(token=...) would build a client for slack.com.
    return AsyncApp(
        name="fake-slack-test",
        client=fake.client(),
        signing_secret=fake.signing_secret,
        **kwargs,
    )


def bolt_request(body: str, headers: Mapping[str, str]) -> AsyncBoltRequest:
    """An HTTP-mode bolt request, as the bot's /slack/events route would build it."""
    bolt_headers: dict[str, str | Sequence[str]] = dict(headers)
    return AsyncBoltRequest(body=body, headers=bolt_headers)


# --------------------------------------------------------------------------- Web API


async def test_web_api_basics(fake: FakeSlack) -> None:
    client = AsyncWebClient(base_url=fake.api_url, token=fake.bot_token)

    auth = await client.auth_test()
    assert (auth["team_id"], auth["user_id"], auth["bot_id"]) == ("T1", "UBOT", "BBOT")

    parent = fake.app_mention(text="question", channel="C1")
    posted = await client.chat_postMessage(
        channel="C1",
        thread_ts=parent["ts"],
        text="thinking…",
        blocks=[{"type": "section", "text": {"type": "mrkdwn", "text": "thinking…"}}],
    )
    assert posted["channel"] == "C1"
    assert posted["message"]["bot_id"] == "BBOT"
    kept = await client.chat_update(channel="C1", ts=posted["ts"], text="not shown")
    assert kept["text"] == "thinking…", "an update without blocks keeps the message's blocks"
    updated = await client.chat_update(channel="C1", ts=posted["ts"], text="the answer",
                                       blocks=[])
    assert updated["text"] == "the answer"

    call = fake.calls_of("chat.postMessage")[0]
    assert call.token == fake.bot_token
    assert call.params["blocks"][0]["type"] == "section"  # JSON body kept its structure
    assert [c.params["text"] for c in fake.calls_of("chat.update")] == ["not shown",
                                                                       "the answer"]
    assert [m.final_text for m in fake.messages("C1", parent["ts"])] == [
        "<@UBOT> question",
        "the answer",
    ]
    assert fake.texts("C1") == ["the answer"]

    users = {u: (await client.users_info(user=u))["user"] for u in (ADMIN_USER_ID, OWNER_USER_ID)}
    plain = (await client.users_info(user=PLAIN_USER_ID))["user"]
    assert users[ADMIN_USER_ID]["is_admin"] and not users[ADMIN_USER_ID]["is_owner"]
    assert users[OWNER_USER_ID]["is_owner"]
    assert not plain["is_admin"] and not plain["is_owner"]

    eph = await client.chat_postEphemeral(channel="C1", user=PLAIN_USER_ID, text="psst")
    assert fake.ephemerals[0]["message_ts"] == eph["message_ts"]

    # form-encoded body and token in the body are accepted too
    form = await AsyncWebClient(base_url=fake.api_url).api_call(
        "chat.postMessage", data={"channel": "C2", "text": "form", "token": fake.bot_token}
    )
    assert form["ok"] and fake.texts("C2") == ["form"]

    with pytest.raises(SlackApiError) as bad_token:
        await AsyncWebClient(base_url=fake.api_url, token="xoxb-wrong").auth_test()
    assert bad_token.value.response["error"] == "invalid_auth"
    with pytest.raises(SlackApiError) as unknown:
        await client.api_call("chat.doesNotExist", json={"x": 1})
    assert unknown.value.response["error"] == "unknown_method"
    assert fake.calls[-1].method == "chat.doesNotExist"
    with pytest.raises(SlackApiError) as too_long:
        await client.chat_update(channel="C1", ts=posted["ts"], text="x" * 4001)
    assert too_long.value.response["error"] == "msg_too_long"
    with pytest.raises(SlackApiError) as not_bot:
        await client.chat_update(channel="C1", ts=parent["ts"], text="hijack")
    assert not_bot.value.response["error"] == "cant_update_message"

    fake.fail_next("chat.postMessage", "channel_not_found")
    with pytest.raises(SlackApiError) as injected:
        await client.chat_postMessage(channel="C1", text="x")
    assert injected.value.response["error"] == "channel_not_found"


async def test_update_rate_limit_and_retry_handler() -> None:
    async with FakeSlack(update_limit=2, update_window=1.0, retry_after=1) as fake:
        client = fake.client()
        posted = await client.chat_postMessage(channel="C1", text="0")
        await client.chat_update(channel="C1", ts=posted["ts"], text="1")
        await client.chat_update(channel="C1", ts=posted["ts"], text="2")
        with pytest.raises(SlackApiError) as exc:
            await client.chat_update(channel="C1", ts=posted["ts"], text="3")
        assert exc.value.response.status_code == 429
        assert exc.value.response["error"] == "ratelimited"
        assert exc.value.response.headers["Retry-After"] == "1"
        assert fake.rate_limited == 1

        retrying = fake.client(retry_handlers=[AsyncRateLimitErrorRetryHandler(max_retry_count=2)])
        started = time.monotonic()
        await retrying.chat_update(channel="C1", ts=posted["ts"], text="4")
        assert time.monotonic() - started >= 1.0  # honoured Retry-After
        assert fake.rate_limited == 2
        assert fake.messages("C1")[0].final_text == "4"
        assert [c.status for c in fake.calls_of("chat.update")] == [200, 200, 429, 429, 200]


# --------------------------------------------------------------------------- streaming


async def test_streams_need_a_recipient_outside_dms_and_end_when_slack_ends_them(
    fake: FakeSlack,
) -> None:
    client = fake.client()
    parent = fake.app_mention(text="stream please", channel="C1")
    started = await client.chat_startStream(
        channel="C1",
        thread_ts=parent["ts"],
        recipient_team_id="T1",
        recipient_user_id=PLAIN_USER_ID,
        markdown_text="Hello",
    )
    for piece in (", ", "world", "!"):
        await client.chat_appendStream(channel="C1", ts=started["ts"], markdown_text=piece)
    await client.chat_stopStream(channel="C1", ts=started["ts"], markdown_text=" Bye.")

    (stream,) = fake.streams
    assert stream.ts == started["ts"] and stream.thread_ts == parent["ts"]
    assert stream.text == "Hello, world! Bye."
    assert stream.state == "stopped" and stream.recipient_user_id == PLAIN_USER_ID
    methods = [m for m, _ in stream.requests]
    assert methods[0] == "chat.startStream" and methods[-1] == "chat.stopStream"
    assert fake.texts("C1", parent["ts"]) == ["Hello, world! Bye."]

    with pytest.raises(SlackApiError) as missing:
        await client.chat_startStream(channel="C1", thread_ts=parent["ts"], markdown_text="x")
    assert missing.value.response["error"] == "missing_recipient_team_id"

    # DMs need no recipient; an expired stream rejects appends
    dm = await client.chat_startStream(channel="D1", thread_ts=parent["ts"], markdown_text="a")
    fake.expire_stream(dm["ts"])
    with pytest.raises(SlackApiError) as expired:
        await client.chat_appendStream(channel="D1", ts=dm["ts"], markdown_text="b")
    assert expired.value.response["error"] == "message_not_in_streaming_state"


async def test_streams_end_when_idle_or_old_and_cannot_be_updated_while_streaming() -> None:
    clock = FakeClock()
    async with FakeSlack(clock=clock, stream_idle_timeout=10, stream_max_age=30) as fake:
        client = fake.client()
        thread = fake.message(channel="D1", channel_type="im", text="q")["ts"]
        live = await client.chat_startStream(channel="D1", thread_ts=thread, markdown_text="a")
        with pytest.raises(SlackApiError) as streaming:
            await client.chat_update(channel="D1", ts=live["ts"], markdown_text="replaced")
        assert streaming.value.response["error"] == "cant_update_message"
        for piece in "bcd":  # each call keeps it alive...
            clock.now += 9
            await client.chat_appendStream(channel="D1", ts=live["ts"], markdown_text=piece)
        clock.now += 4  # ... until it is 31 s old
        with pytest.raises(SlackApiError) as too_old:
            await client.chat_appendStream(channel="D1", ts=live["ts"], markdown_text="e")
        assert too_old.value.response["error"] == "message_not_in_streaming_state"

        idle = await client.chat_startStream(channel="D1", thread_ts=thread, markdown_text="x")
        clock.now += 11
        with pytest.raises(SlackApiError) as gone_quiet:
            await client.chat_stopStream(channel="D1", ts=idle["ts"], markdown_text="y")
        assert gone_quiet.value.response["error"] == "message_not_in_streaming_state"
        await client.chat_update(channel="D1", ts=idle["ts"], markdown_text="whole text")

        assert [s.state for s in fake.streams] == ["expired", "expired"]
        assert fake.texts("D1", thread) == ["abcd", "whole text"]


async def test_each_method_keeps_to_its_tier_per_workspace() -> None:
    """Tier 2 (chat.startStream): 20 calls a window after a burst of 5; Tier 4
    (chat.appendStream): 100 after 25. A call past it gets 429 and the seconds to wait."""
    clock = FakeClock()
    async with FakeSlack(clock=clock, tier_window=60.0) as fake:
        client = fake.client()
        thread = fake.app_mention(text="q")["ts"]

        async def start() -> str:
            started = await client.chat_startStream(
                channel="C1", thread_ts=thread, markdown_text="x",
                recipient_user_id=PLAIN_USER_ID, recipient_team_id=fake.team_id)
            return str(started["ts"])

        streams = [await start() for _ in range(5)]
        with pytest.raises(SlackApiError) as refused:
            await start()
        assert refused.value.response.status_code == 429
        assert refused.value.response.headers["Retry-After"] == "3"  # 60 s / 20 calls
        for _ in range(25):
            await client.chat_appendStream(channel="C1", ts=streams[0], markdown_text="y")
        with pytest.raises(SlackApiError) as appends:
            await client.chat_appendStream(channel="C1", ts=streams[0], markdown_text="y")
        assert appends.value.response.headers["Retry-After"] == "1"  # 60 s / 100 calls

        clock.now += 3
        await start()
        assert [c.status for c in fake.calls if c.status != 200] == [429, 429]
        assert fake.rate_limited == 2 and len(fake.rate_limited_calls) == 2


async def test_methods_need_their_scopes(fake: FakeSlack) -> None:
    fake.bot_scopes.discard("chat:write")
    client = fake.client()
    with pytest.raises(SlackApiError) as missing:
        await client.chat_postMessage(channel="C1", markdown_text="hi")
    assert missing.value.response["error"] == "missing_scope"
    assert missing.value.response["needed"] == "chat:write"
    assert (await client.assistant_threads_setStatus(channel_id="C1", thread_ts="1.2",
                                                     status="is thinking…"))["ok"], \
        "assistant:write still allows setting a status"


ASSISTANT_MANIFEST = AppManifest(
    view="assistant",
    bot_events=frozenset({"assistant_thread_started", "message.im"}),
    bot_scopes=frozenset({"assistant:write", "chat:write", "im:history"}),
)


async def test_the_manifest_decides_the_events_and_the_prompts_of_the_app() -> None:
    """An agent app (the repository's manifest) gets app_home_opened, no assistant_thread_*
    events, and its prompts set with thread_ts are silently dropped; an assistant app gets
    assistant_thread_started and prompts per thread."""
    async with FakeSlack() as agent, FakeSlack(manifest=ASSISTANT_MANIFEST) as assistant:
        assert agent.manifest.view == "agent" and "app_home_opened" in agent.manifest.bot_events
        agent.event_request(agent.app_home_opened())
        with pytest.raises(NotSubscribed, match="assistant_thread_started"):
            agent.event_request(agent.assistant_thread_started())
        with pytest.raises(NotSubscribed, match="app_home_opened"):
            assistant.event_request(assistant.app_home_opened())
        with pytest.raises(NotSubscribed, match=r"message\.channels"):
            await assistant.push_event(assistant.message(text="in a channel"))
        started = assistant.assistant_thread_started()
        assistant.event_request(started)

        prompts = [{"title": "Try", "message": "this"}]
        for fake, thread_ts in ((agent, "1700000000.000100"),
                                (assistant, started["assistant_thread"]["thread_ts"])):
            client = fake.client()
            answer = await client.assistant_threads_setSuggestedPrompts(
                channel_id="D1", thread_ts=thread_ts, prompts=prompts)
            assert answer["ok"]
        await agent.client().assistant_threads_setSuggestedPrompts(channel_id="D1",
                                                                   prompts=prompts)

        assert [p.get("thread_ts") for p in agent.suggested_prompts] == [None]
        assert [p["thread_ts"] for p in assistant.suggested_prompts] == [
            started["assistant_thread"]["thread_ts"]]


# --------------------------------------------------------------------------- files


async def test_file_downloads_need_bearer(fake: FakeSlack) -> None:
    obj = fake.add_file("notes.txt", b"secret bytes", "text/plain")
    assert obj["url_private"].startswith(fake.files_url) and obj["size"] == 12
    async with aiohttp.ClientSession() as session:
        auth = {"Authorization": f"Bearer {fake.bot_token}"}
        async with session.get(obj["url_private_download"], headers=auth) as resp:
            assert resp.status == 200 and await resp.read() == b"secret bytes"
        async with session.get(obj["url_private"]) as resp:
            assert resp.status == 200 and resp.content_type == "text/html"
            assert await resp.text() == SIGN_IN_PAGE
        bad = {"Authorization": "Bearer xoxb-wrong"}
        async with session.get(obj["url_private"], headers=bad) as resp:
            assert resp.content_type == "text/html"
    assert [d.authorized for d in fake.downloads] == [True, False, False]
    info = await fake.client().files_info(file=obj["id"])
    assert info["file"]["name"] == "notes.txt"


# --------------------------------------------------------------------------- bolt, HTTP mode


async def test_bolt_http_mode_signed_requests(fake: FakeSlack) -> None:
    app = make_app(fake)
    done = asyncio.Event()
    seen: dict[str, Any] = {}

    @app.event("app_mention")
    async def on_mention(event: dict[str, Any], say: Any, context: Any) -> None:
        seen["text"] = event["text"]
        seen["recipient"] = (context.team_id, context.user_id)
        await say(text="Hi there", thread_ts=event["ts"])
        done.set()

    @app.command("/gemini")
    async def on_command(ack: Any, respond: Any, command: dict[str, Any]) -> None:
        await ack("on it")
        await respond(f"echo: {command['text']}")

    event = fake.app_mention(user=PLAIN_USER_ID, text="hello", channel="C1")
    body, headers = fake.event_request(event)
    assert SignatureVerifier(fake.signing_secret).is_valid_request(body, headers)
    resp = await app.async_dispatch(bolt_request(body, headers))
    assert resp.status == 200
    await asyncio.wait_for(done.wait(), 5)
    assert seen == {"text": "<@UBOT> hello", "recipient": ("T1", PLAIN_USER_ID)}
    assert fake.texts("C1", event["ts"]) == ["Hi there"]
    assert fake.calls_of("auth.test")  # single-team authorize hit the fake

    bad = signed_headers(body, "not-the-secret")
    resp = await app.async_dispatch(bolt_request(body, bad))
    assert resp.status == 401
    stale = signed_headers(body, fake.signing_secret, timestamp=int(time.time()) - 600)
    resp = await app.async_dispatch(bolt_request(body, stale))
    assert resp.status == 401

    # pure helpers build the same shapes
    assert json.loads(event_callback_body(event))["authorizations"][0]["user_id"] == BOT_USER_ID
    cmd_body = slash_command_body(text="ping", response_url=fake.response_url())
    resp = await app.async_dispatch(
        bolt_request(cmd_body, signed_headers(cmd_body, fake.signing_secret))
    )
    assert resp.status == 200 and resp.body == "on it"
    posted = await fake.wait_for(lambda: fake.responses)
    assert posted[0].body["text"] == "echo: ping"


# --------------------------------------------------------------------------- socket mode


async def test_socket_mode_handler(fake: FakeSlack) -> None:
    app = make_app(fake)
    mentions: asyncio.Queue[tuple[str, str | None]] = asyncio.Queue()

    @app.event("app_mention")
    async def on_mention(event: dict[str, Any], say: Any, request: Any) -> None:
        retry = request.headers.get("x-slack-retry-num", [None])[0]
        await say(text=f"got: {event['text']}", thread_ts=event["ts"])
        await mentions.put((event["text"], retry))

    @app.command("/gemini")
    async def on_command(ack: Any, command: dict[str, Any]) -> None:
        await ack(f"working on {command['text']}")

    handler = AsyncSocketModeHandler(app, fake.app_token)
    try:
        await handler.connect_async()  # type: ignore[no-untyped-call]
        await fake.wait_socket_connected()
        assert fake.calls_of("apps.connections.open")[0].token == fake.app_token

        event = fake.app_mention(text="over the socket")
        envelope_id = await fake.push_event(event)
        assert await fake.wait_ack(envelope_id) is None  # plain ack, no payload
        text, retry = await asyncio.wait_for(mentions.get(), 5)
        assert text == "<@UBOT> over the socket"
        assert retry == "0"  # Slack sends retry_attempt=0 -> bolt sets x-slack-retry-num: 0
        await fake.wait_for_call("chat.postMessage")
        assert fake.texts("C1", event["ts"]) == ["got: <@UBOT> over the socket"]

        cmd_id = await fake.push_slash_command(text="report")
        assert await fake.wait_ack(cmd_id) == {"text": "working on report"}
        assert fake.envelopes[-1].accepts_response_payload

        # bolt does not ack at all when no listener matches (404)
        unhandled = await fake.push_event(fake.message(text="no listener for this"))
        with pytest.raises(TimeoutError):
            await fake.wait_ack(unhandled, timeout=0.5)
    finally:
        await handler.close_async()  # type: ignore[no-untyped-call]
    await fake.wait_for(lambda: not fake.active_sockets)


async def test_apps_connections_open_rejects_bot_token(fake: FakeSlack) -> None:
    with pytest.raises(SlackApiError) as exc:
        await fake.client().apps_connections_open(app_token=fake.bot_token)
    assert exc.value.response["error"] == "not_allowed_token_type"
    with pytest.raises(SlackApiError) as exc:
        await fake.client(token=fake.app_token).auth_test()
    assert exc.value.response["error"] == "not_allowed_token_type"


# --------------------------------------------------------------------------- Slack's rules


async def test_markdown_text_is_limited_and_never_combined_with_text_or_blocks(
    fake: FakeSlack,
) -> None:
    client = fake.client()
    longest = "x" * 12_000
    posted = await client.chat_postMessage(channel="C1", markdown_text=longest)
    await client.chat_update(channel="C1", ts=posted["ts"], markdown_text=longest)
    assert fake.texts("C1") == [longest]

    refused = [
        ("msg_too_long", client.chat_postMessage(channel="C1", markdown_text=longest + "x")),
        ("msg_too_long", client.chat_update(channel="C1", ts=posted["ts"],
                                            markdown_text=longest + "x")),
        ("markdown_text_conflict", client.chat_postMessage(channel="C1", markdown_text="**a**",
                                                           text="a")),
        ("markdown_text_conflict", client.chat_postMessage(
            channel="C1", markdown_text="**a**",
            blocks=[{"type": "section", "text": {"type": "mrkdwn", "text": "a"}}])),
        ("markdown_text_conflict", client.chat_update(channel="C1", ts=posted["ts"],
                                                      markdown_text="**a**", text="a")),
    ]
    for error, call in refused:
        with pytest.raises(SlackApiError) as exc:
            await call
        assert exc.value.response["error"] == error
    assert fake.texts("C1") == [longest], "nothing refused was shown"

    started = await client.chat_startStream(channel="C1", thread_ts=posted["ts"],
                                            recipient_user_id=PLAIN_USER_ID,
                                            recipient_team_id=fake.team_id)
    with pytest.raises(SlackApiError) as exc:
        await client.chat_appendStream(channel="C1", ts=started["ts"],
                                       markdown_text=longest + "x")
    assert exc.value.response["error"] == "msg_too_long"
    await client.chat_appendStream(channel="C1", ts=started["ts"], markdown_text=longest)
    assert [s.text for s in fake.streams if s.ts == started["ts"]] == [longest]


async def test_socket_mode_acks_later_than_three_seconds_are_failures() -> None:
    clock = FakeClock()
    async with FakeSlack(clock=clock) as fake, aiohttp.ClientSession() as session:
        opened = await fake.client(token=fake.app_token).apps_connections_open(
            app_token=fake.app_token)
        async with session.ws_connect(opened["url"]) as ws:
            assert json.loads((await ws.receive()).data)["type"] == "hello"
            in_time = await fake.push_event(fake.app_mention(text="quick"))
            late = await fake.push_event(fake.app_mention(text="slow"))
            never = await fake.push_event(fake.app_mention(text="ignored"))
            await ws.send_str(json.dumps({"envelope_id": in_time}))
            await fake.wait_ack(in_time)
            clock.now += 3.0
            assert fake.missed_acks == [], "3 seconds is still in time"
            clock.now += 0.5
            await ws.send_str(json.dumps({"envelope_id": late}))
            await fake.wait_ack(late)

            assert fake.missed_acks == [late, never]


async def test_an_http_mode_answer_later_than_three_seconds_is_a_failure() -> None:
    clock = FakeClock()
    slack = FakeSlack(clock=clock)  # deliver() needs no server of its own
    answered: list[str] = []

    async def app(request: aiohttp.web.Request) -> aiohttp.web.Response:
        answered.append(await request.text())
        if "slow" in answered[-1]:
            clock.now += 3.5  # the app worked before it answered
        return aiohttp.web.Response(text="")

    web_app = aiohttp.web.Application()
    web_app.router.add_post("/slack/events", app)
    runner = aiohttp.web.AppRunner(web_app, access_log=None)
    await runner.setup()
    site = aiohttp.web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    url = f"http://127.0.0.1:{runner.addresses[0][1]}/slack/events"
    try:
        quick = await slack.deliver(url, slack.event_request(slack.app_mention(text="quick")),
                                   label="quick")
        late = await slack.deliver(url, slack.event_request(slack.app_mention(text="slow")),
                                  label="slow")
    finally:
        await runner.cleanup()

    assert quick[0] == late[0] == 200 and len(answered) == 2
    assert slack.missed_acks == ["slow"]


async def test_a_held_method_waits_until_released(fake: FakeSlack) -> None:
    release = fake.hold("users.info")
    lookup = asyncio.create_task(fake.client().users_info(user=PLAIN_USER_ID))
    await fake.wait_for(lambda: fake.calls_of("users.info"))
    await asyncio.sleep(0.05)
    assert not lookup.done() and not fake.calls_of("users.info")[0].response

    release.set()
    assert (await lookup)["user"]["id"] == PLAIN_USER_ID


# --------------------------------------------------------------------------- buttons and edits


STOP_BUTTON = {"type": "actions", "elements": [{
    "type": "button", "action_id": "demo:stop", "value": "slack:T1:C1:1700000000.000100",
    "text": {"type": "plain_text", "text": "Stop"}}]}


async def test_clicks_reach_bolt_over_socket_mode_and_as_signed_forms(fake: FakeSlack) -> None:
    """A person presses a button a stored message shows: bolt's action listener gets the
    block_actions payload (from an `interactive` envelope, and from a signed `payload=` form),
    whose response_url the fake records; a button the message does not show cannot be
    pressed, nor any button of an app without interactivity."""
    app = make_app(fake)
    clicks: asyncio.Queue[dict[str, Any]] = asyncio.Queue()

    @app.action("demo:stop")
    async def on_stop(ack: Any, body: dict[str, Any], respond: Any) -> None:
        await ack()
        await respond(text="stopped", response_type="ephemeral", replace_original=False)
        await clicks.put(body)

    question = fake.app_mention(text="go")
    posted = await fake.client().chat_postMessage(channel="C1", thread_ts=question["ts"],
                                                  text="Stop", blocks=[STOP_BUTTON])
    handler = AsyncSocketModeHandler(app, fake.app_token)
    try:
        await handler.connect_async()  # type: ignore[no-untyped-call]
        envelope = await fake.push_click("C1", posted["ts"], "demo:stop", user=ADMIN_USER_ID)
        assert await fake.wait_ack(envelope) is None
        over_socket = await asyncio.wait_for(clicks.get(), 5)
    finally:
        await handler.close_async()  # type: ignore[no-untyped-call]
    body, headers = fake.click_request("C1", posted["ts"], "demo:stop")
    assert body.startswith("payload=")
    assert (await app.async_dispatch(bolt_request(body, headers))).status == 200
    over_http = await asyncio.wait_for(clicks.get(), 5)

    assert fake.envelopes[-1].type == "interactive"
    for click, user in ((over_socket, ADMIN_USER_ID), (over_http, PLAIN_USER_ID)):
        assert click["type"] == "block_actions" and click["user"]["id"] == user
        assert click["container"]["message_ts"] == posted["ts"]
        assert click["message"]["thread_ts"] == question["ts"]
        assert click["actions"][0]["value"] == "slack:T1:C1:1700000000.000100"
    await fake.wait_for(lambda: len(fake.responses) == 2)
    assert [r.body["text"] for r in fake.responses] == ["stopped", "stopped"]
    with pytest.raises(AssertionError, match="shows no button"):
        fake.click_payload("C1", question["ts"], "demo:stop")
    no_buttons = AppManifest(view="agent", bot_events=frozenset(), bot_scopes=frozenset())
    async with FakeSlack(manifest=no_buttons) as closed:
        with pytest.raises(NotSubscribed, match="interactivity"):
            closed.click_payload("C1", "1700000000.000100", "demo:stop")


async def test_blocks_follow_slacks_rules_and_only_stop_stream_takes_them(
        fake: FakeSlack) -> None:
    client = fake.client()
    question = fake.app_mention(text="go", channel="D1")
    errors = []
    for blocks in ([{"type": "video_game"}], [{"type": "markdown", "text": "x" * 12_001}],
                   [{"type": "actions", "elements": [STOP_BUTTON["elements"][0]] * 2}]):
        with pytest.raises(SlackApiError) as refused:
            await client.chat_postMessage(channel="D1", text="x", blocks=blocks)
        errors.append(refused.value.response["error"])
    assert errors == ["invalid_blocks", "msg_blocks_too_long", "invalid_blocks"]

    started = await client.chat_startStream(channel="D1", thread_ts=question["ts"],
                                            markdown_text="Hello")
    for call in (client.chat_appendStream(channel="D1", ts=started["ts"], markdown_text="!",
                                          blocks=[STOP_BUTTON]),
                 client.chat_startStream(channel="D1", thread_ts=question["ts"],
                                         markdown_text="Hi", blocks=[STOP_BUTTON])):
        with pytest.raises(SlackApiError) as refused:
            await call
        assert refused.value.response["error"] == "invalid_arguments"
    await client.chat_stopStream(channel="D1", ts=started["ts"], blocks=[STOP_BUTTON])
    message = fake.stored("D1", started["ts"])
    assert message.final_text == "Hello" and message.blocks is not None
    assert message.blocks[0]["elements"][0]["action_id"] == "demo:stop"

    await client.chat_delete(channel="D1", ts=started["ts"])
    assert fake.deleted == [message] and fake.texts("D1") == []
    with pytest.raises(SlackApiError) as not_bots:
        await client.chat_delete(channel="D1", ts=question["ts"])
    assert not_bots.value.response["error"] == "cant_delete_message"


async def test_edits_arrive_as_message_changed_events(fake: FakeSlack) -> None:
    question = fake.message(channel="D1", channel_type="im", text="helo")
    reply = await fake.client().chat_postMessage(channel="D1", thread_ts=question["ts"],
                                                 markdown_text="hi")
    edit = fake.edit("D1", question["ts"], "hello")
    assert (edit["subtype"], edit["hidden"], edit["channel_type"]) == ("message_changed", True,
                                                                       "im")
    assert (edit["previous_message"]["text"], edit["message"]["text"]) == ("helo", "hello")
    assert edit["message"]["thread_ts"] == question["ts"] and "edited" in edit["message"]
    assert fake.stored("D1", question["ts"]).text == "hello"
    own = fake.edit("D1", reply["ts"], "hi there")
    assert own["message"]["bot_id"] and "edited" not in own["message"]
    preview = fake.edit("D1", question["ts"], preview=True)
    assert preview["message"]["text"] == preview["previous_message"]["text"] == "hello"
    assert preview["message"]["attachments"]
    fake.event_request(edit)  # the manifest subscribes to message.im
