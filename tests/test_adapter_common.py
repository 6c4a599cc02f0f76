"""The adapters' shared toolkit: one origin rule, no redirects, one size cap for every platform."""

from __future__ import annotations

import httpx
import pytest

from adapters.common import FileHosts, download_cap, read_capped
from bot.config import load_settings
from bot.errors import DownloadRefused

HOSTS = FileHosts.of("a test file host", {"files.example"}, "http://127.0.0.1:8080/api")


def test_the_origin_is_scheme_host_and_port() -> None:
    assert HOSTS.allow("https://files.example/a.png")
    assert HOSTS.allow("https://FILES.example:443/a.png")
    assert HOSTS.allow("http://127.0.0.1:8080/files/a.png")
    for url in ("http://files.example/a.png", "https://files.example:8443/a.png",
                "https://files.example.evil.example/a.png", "http://127.0.0.1:8081/a.png",
                "http://127.0.0.1/a.png", "file:///etc/passwd", "not a url"):
        assert not HOSTS.allow(url), url


def serving(status: int, body: bytes, **headers: str) -> httpx.AsyncClient:
    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(status, content=body, headers=headers)

    return httpx.AsyncClient(transport=httpx.MockTransport(answer))


async def test_reading_stops_one_byte_past_the_cap() -> None:
    async with serving(200, b"x" * 5_000, **{"content-type": "image/png"}) as http:
        download = await read_capped(http, "https://files.example/a.png", HOSTS, 100)
    assert len(download.data) == 101 and download.content_type == "image/png"


async def test_a_redirect_or_another_host_is_refused() -> None:
    async with serving(302, b"", location="https://files.example/b.png") as http:
        with pytest.raises(DownloadRefused, match="HTTP 302"):
            await read_capped(http, "https://files.example/a.png", HOSTS, 100)
        with pytest.raises(DownloadRefused, match=r"evil\.example is not on a test file host"):
            await read_capped(http, "https://evil.example/a.png", HOSTS, 100)


def test_every_adapter_reads_up_to_the_larger_of_the_cores_two_limits() -> None:
    settings = load_settings(_env_file=None, bot_max_attachment_bytes=1_000,
                             bot_max_text_attachment_bytes=5_000)
    assert download_cap(settings) == 5_000
    assert download_cap(load_settings(_env_file=None)) == 20 * 1024 * 1024  # the default
