"""Slack files as attachments: Slack's hosts only, the bot token, no sign-in pages, size caps."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from slack_sdk.web.async_client import AsyncWebClient

from adapters.slack_bot.files import SlackFiles
from bot.errors import DownloadRefused
from tests.fakes.slack import FakeSlack


@pytest.fixture
async def fake() -> AsyncIterator[FakeSlack]:
    async with FakeSlack() as server:
        yield server


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as client:
        yield client


def files_for(fake: FakeSlack, http: httpx.AsyncClient, token: str | None = None,
              max_bytes: int = 1_000) -> SlackFiles:
    return SlackFiles(http, fake.client(), token or fake.bot_token, max_bytes, fake.api_url)


async def test_only_slack_file_hosts_and_the_configured_api_host(
        http: httpx.AsyncClient) -> None:
    files = SlackFiles(http, AsyncWebClient(token="xoxb"), "xoxb", 10,
                       "https://slack-proxy.example.org/api")
    assert files.allowed("https://files.slack.com/files-pri/T1-F1/a.png")
    assert files.allowed("https://files.slack-gov.com/files-pri/T1-F1/a.png")
    assert files.allowed("https://slack-proxy.example.org/files-pri/T1-F1/a.png")
    assert not files.allowed("http://files.slack.com/files-pri/T1-F1/a.png")
    assert not files.allowed("https://files.slack.com.evil.example/a.png")
    assert not files.allowed("https://example.com/a.png")


async def test_download_sends_the_bot_token(fake: FakeSlack, http: httpx.AsyncClient) -> None:
    file = fake.add_file("notes.txt", b"hello", "text/plain")
    (attachment,) = files_for(fake, http).attachments([file])
    assert (attachment.filename, attachment.content_type, attachment.size) == (
        "notes.txt", "text/plain", 5)
    assert await attachment.fetch() == b"hello"
    assert [d.authorized for d in fake.downloads] == [True]


async def test_a_sign_in_page_is_refused(fake: FakeSlack, http: httpx.AsyncClient) -> None:
    file = fake.add_file("notes.txt", b"hello", "text/plain")
    (attachment,) = files_for(fake, http, token="xoxb-wrong").attachments([file])
    with pytest.raises(DownloadRefused, match="sign-in page"):
        await attachment.fetch()


async def test_reading_stops_past_the_limit(fake: FakeSlack, http: httpx.AsyncClient) -> None:
    file = fake.add_file("big.bin", b"x" * 100_000, "image/png")
    (attachment,) = files_for(fake, http, max_bytes=1_000).attachments([file])
    assert len(await attachment.fetch()) == 1_001


async def test_other_hosts_are_never_fetched(fake: FakeSlack, http: httpx.AsyncClient) -> None:
    stub = {"id": "F9", "name": "x.png", "mimetype": "image/png", "size": 3,
            "url_private": "https://example.com/x.png"}
    (attachment,) = files_for(fake, http).attachments([stub])
    with pytest.raises(DownloadRefused, match="not on a Slack file host"):
        await attachment.fetch()


async def test_a_stub_is_completed_with_files_info(fake: FakeSlack,
                                                   http: httpx.AsyncClient) -> None:
    file = fake.add_file("shared.txt", b"from another org", "text/plain")
    (attachment,) = files_for(fake, http).attachments([{"id": file["id"],
                                                        "file_access": "check_file_info"}])
    assert await attachment.fetch() == b"from another org"
    assert fake.calls_of("files.info")
