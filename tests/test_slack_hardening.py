"""The Slack adapter's guards, end to end against the fake Slack: model text that cannot ping
anyone on any path, the HTTP endpoint refusing malformed requests cleanly, and settings rights
only for admins and owners of the workspace itself."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import re
import time
from collections.abc import AsyncIterator, Callable

import httpx
import pytest

from adapters.slack_bot.app import serve_http
from bot.config import Settings
from tests.fakes.model_server import FakeModelServer, Reply
from tests.fakes.slack import ADMIN_USER_ID, FakeSlack, signed_headers
from tests.test_slack_adapter import deliver, run_command, running

J = "\u2060"
"""The word joiner the bot puts where Slack would otherwise read markup."""
ANSWER_CHUNKS = [
    "Hi <!chan", "nel> and <", "!here> plus @he", "re, <@UAD", "MIN>, <https://evil.example|Goo",
    "gle> and `<!everyone>` and <!subteam^S1|@devs> done @every", "one. Mail me@here.com; ",
    "<!DOCTYPE html> stays, and so does a < b.",
]
QUIET_ANSWER = (
    f"Hi <{J}!channel> and <{J}!here> plus @{J}here, <{J}@UADMIN>, "
    f"<{J}https://evil.example|Google> and `<{J}!everyone>` and <{J}!subteam^S1|@devs> done "
    f"@{J}everyone. Mail me@here.com; <!DOCTYPE html> stays, and so does a < b."
)
RAW_MARKUP = re.compile(
    r"<(?:[@#]|!(?!DOCTYPE)|https?:[^<>\s|]*\|[^<>\n]*>)|(?<![\w@.])@(?:here|channel|everyone)\b",
    re.IGNORECASE,
)
"""Slack markup that would ping someone or show a link under a label of the model's choice."""
REFUSED_SETTING = "Only people who manage this channel"


@pytest.fixture
async def fake() -> AsyncIterator[FakeSlack]:
    async with FakeSlack(update_limit=20, update_window=1.0, tier_window=1.0,
                         retry_after=1) as server:
        yield server


def sent_texts(fake: FakeSlack, *methods: str) -> list[str]:
    """Every markdown_text, and text of a markdown block, the bot sent with these Web API
    methods, in order."""
    return [str(text) for call in fake.calls if call.method in methods
            for text in (call.params.get("markdown_text"),
                         *(b.get("text") for b in call.params.get("blocks") or ()
                           if b.get("type") == "markdown"))
            if text]


# --------------------------------------------------------------------------- no pings


async def test_a_streamed_answer_reaches_slack_without_mentions_even_split_mid_token(
        make_settings: Callable[..., Settings], fake: FakeSlack,
        model_api: FakeModelServer) -> None:
    model_api.script("direct", Reply(chunks=ANSWER_CHUNKS, delay_between_chunks=0.08))
    async with running(make_settings, fake) as (_, bot):
        event = fake.app_mention(text="say hello to everyone")
        await deliver(bot, fake.event_request(event))

    (stream,) = fake.streams
    assert stream.text == QUIET_ANSWER and fake.texts("C1", event["ts"]) == [QUIET_ANSWER]
    pieces = sent_texts(fake, "chat.startStream", "chat.appendStream", "chat.stopStream")
    assert len(pieces) > 2 and "".join(pieces) == QUIET_ANSWER
    assert [p for p in pieces if RAW_MARKUP.search(p)] == []


async def test_posted_and_updated_answers_reach_slack_without_mentions(
        make_settings: Callable[..., Settings], fake: FakeSlack,
        model_api: FakeModelServer) -> None:
    model_api.script("direct", Reply(chunks=ANSWER_CHUNKS, delay_between_chunks=0.08),
                     Reply(chunks=ANSWER_CHUNKS, delay_between_chunks=0.08))
    fake.fail_next("chat.startStream", "not_allowed_for_this_app")
    async with running(make_settings, fake) as (_, bot):
        dm = fake.message(channel="D1", channel_type="im", text="hello")
        await deliver(bot, fake.event_request(dm))
        mention = fake.app_mention(text="and in a thread")
        await deliver(bot, fake.event_request(mention))

    assert fake.texts("D1") == [QUIET_ANSWER]
    assert fake.texts("C1", mention["ts"]) == [QUIET_ANSWER]
    shown = sent_texts(fake, "chat.postMessage", "chat.update")
    assert fake.calls_of("chat.update") and shown[-1] == QUIET_ANSWER
    assert [t for t in shown if RAW_MARKUP.search(t)] == []


async def test_notices_reach_slack_without_mentions(
        make_settings: Callable[..., Settings], fake: FakeSlack,
        model_api: FakeModelServer) -> None:
    file = fake.add_file("<!channel> @here.zip", b"PK\x03\x04", "application/zip")
    async with running(make_settings, fake) as (_, bot):
        event = fake.app_mention(text="read this", files=[file])
        await deliver(bot, fake.event_request(event))

    (notice, _) = fake.texts("C1", event["ts"])
    assert notice == (f"Skipped <{J}!channel> @{J}here.zip: only images (PNG, JPEG, WebP, GIF, "
                      "HEIC/HEIF), PDF and Word (.docx) documents, and text files are read.")
    posted = fake.calls_of("chat.postMessage")[0]  # then the Stop button, under the answer
    assert posted.params["markdown_text"] == notice


# --------------------------------------------------------------------------- HTTP mode


def signed_bytes(body: bytes, secret: str) -> dict[str, str]:
    """Headers signing a body that is not text (Slack signs the raw bytes)."""
    timestamp = str(int(time.time()))
    base = f"v0:{timestamp}:".encode() + body
    signature = "v0=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()
    return {"Content-Type": "application/json", "X-Slack-Request-Timestamp": timestamp,
            "X-Slack-Signature": signature}


async def test_malformed_http_requests_get_400_or_401_and_one_log_line(
        make_settings: Callable[..., Settings], fake: FakeSlack,
        model_api: FakeModelServer, caplog: pytest.LogCaptureFixture) -> None:
    secret = fake.signing_secret
    event = fake.app_mention(text="still works")
    good_body, good_headers = fake.event_request(event)
    with_timestamp = signed_headers(good_body, secret, timestamp="soon")
    broken = '{"type": "event_callback", "event": {'
    not_utf8 = b'{"type": "event_callback", "event": {"text": "\xff\xfe"}}'
    event_text = json.dumps({"type": "event_callback", "team_id": "T1", "event": "boo",
                             "is_ext_shared_channel": True})
    event_list = json.dumps({"type": "event_callback", "team_id": "T1", "event": ["boo"]})
    cases: list[tuple[str, str | bytes, dict[str, str], int]] = [
        ("not UTF-8", not_utf8, signed_bytes(not_utf8, secret), 400),
        ("a timestamp that is no number", good_body, with_timestamp, 401),
        ("broken JSON, signed", broken, signed_headers(broken, secret), 400),
        ("broken JSON, unsigned", broken, {"Content-Type": "application/json"}, 401),
        ("an event that is text", event_text, signed_headers(event_text, secret), 400),
        ("an event that is a list", event_list, signed_headers(event_list, secret), 400),
        ("a JSON list", "[1]", signed_headers("[1]", secret, content_type="application/json"),
         400),
        ("a form without payload", "a=1&b=2", signed_headers("a=1&b=2", secret), 400),
        ("a form with a broken payload", "payload=%7B", signed_headers("payload=%7B", secret),
         400),
        ("an empty body", "", signed_headers("", secret), 400),
    ]
    async with running(make_settings, fake) as (_, bot), \
            serve_http(bot, port=0, host="127.0.0.1") as port, httpx.AsyncClient() as http:
        url = f"http://127.0.0.1:{port}/slack/events"
        for name, body, headers, status in cases:
            caplog.clear()
            response = await http.post(url, content=body, headers=headers)
            lines = [r for r in caplog.records if r.name.startswith(("adapters", "slack_bolt",
                                                                     "aiohttp"))]
            assert response.status_code == status, name
            assert [r.levelno for r in lines] == [logging.WARNING], (name, lines)
            assert not any(r.exc_info for r in caplog.records), name

        assert (await http.post(url, content=good_body, headers=good_headers)).status_code == 200
        probe = await http.post(url, content="ssl_check=1&token=x",
                                headers={"Content-Type": "application/x-www-form-urlencoded"})
        assert probe.status_code == 200
        command_body, command_headers = fake.slash_command_request(text="help")
        command = await http.post(url, content=command_body, headers=command_headers)
        assert command.status_code == 200
        await bot.idle()

    assert fake.texts("C1", event["ts"]) == ["echo: still works"]
    assert fake.responses[-1].body["text"].startswith("*/gemini commands*")


# --------------------------------------------------------------------------- settings rights


async def test_only_admins_and_owners_of_this_workspace_change_settings(
        make_settings: Callable[..., Settings], fake: FakeSlack,
        model_api: FakeModelServer) -> None:
    fake.add_user("UEXT", "ext-admin", is_admin=True, is_owner=True, team_id="T2")
    fake.add_user("USTRANGE", "stranger", is_admin=True, is_stranger=True)
    fake.add_user("UGUEST", "guest", is_admin=True, is_restricted=True)
    fake.add_user("USINGLE", "single", is_owner=True, is_ultra_restricted=True)
    fake.add_user("UGRID", "grid-admin", is_admin=True, team_id="T9",
                  enterprise_user={"id": "WGRID", "enterprise_id": "E1", "teams": ["T9", "T1"]})
    async with running(make_settings, fake, slack_admin_ids="USINGLE") as (_, bot):
        refused = {user: await run_command(bot, fake, "set temperature 0.5", user=user)
                   for user in ("UEXT", "USTRANGE", "UGUEST")}
        by_grid_admin = await run_command(bot, fake, "set temperature 0.4", user="UGRID")
        by_listed_guest = await run_command(bot, fake, "set temperature 0.3", user="USINGLE")
        by_local_admin = await run_command(bot, fake, "unset temperature", user=ADMIN_USER_ID)

    assert all(text.startswith(REFUSED_SETTING) for text in refused.values()), refused
    assert by_grid_admin == "`temperature` set to 0.4."
    assert by_listed_guest == "`temperature` set to 0.3."
    assert by_local_admin == "`temperature` unset; the default applies."
