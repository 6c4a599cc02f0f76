"""fetch_url against a real local web site: readable text, the bounds, and the address rule
(checked after DNS, at every redirect, on the address connected to)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from bot.documents import DocumentReader
from bot.tools.base import ToolContext, ToolFailed
from bot.tools.fetch import FetchUrl, WebFetcher
from bot.tools.web import AddressPolicy, is_public
from tests.fakes.web_pages import NOTES, REPORT, FakeWebSite

CONTEXT = ToolContext()


@pytest.fixture
async def site() -> AsyncIterator[FakeWebSite]:
    async with FakeWebSite() as running:
        yield running


def fetcher_for(*exempt: str, timeout: float = 10.0) -> WebFetcher:
    return WebFetcher(AddressPolicy.allowing(exempt), documents=DocumentReader(),
                      timeout=timeout)


async def fetch(fetcher: WebFetcher, url: str) -> str:
    try:
        result = await FetchUrl(fetcher).run({"url": url}, CONTEXT)
    finally:
        await fetcher.aclose()
    return result.text


async def refusal(fetcher: WebFetcher, url: str) -> str:
    with pytest.raises(ToolFailed) as failed:
        await fetch(fetcher, url)
    return str(failed.value)


async def test_an_html_page_becomes_its_main_text_with_the_title(site: FakeWebSite) -> None:
    fetcher = fetcher_for(site.host_port)
    result = await FetchUrl(fetcher).run({"url": site.url("/page")}, CONTEXT)
    await fetcher.aclose()

    assert result.text.startswith(f"URL: {site.url('/page')}\n"
                                  "Title: Fake Weekly — the harbour reopens\n\n")
    assert "# The harbour reopens" in result.text
    assert "the old harbour reopened on Monday." in result.text
    assert "trackEverything" not in result.text and "News" not in result.text
    assert "© Fake Weekly" not in result.text
    assert result.sources == (site.url("/page"),)


async def test_text_json_and_pdf_come_as_text(site: FakeWebSite) -> None:
    assert NOTES in await fetch(fetcher_for(site.host_port), site.url("/notes.txt"))
    assert '"status": "green"' in await fetch(fetcher_for(site.host_port), site.url("/data.json"))
    assert REPORT in await fetch(fetcher_for(site.host_port), site.url("/report.pdf"))
    assert "application/octet-stream, which I can't read" in await refusal(
        fetcher_for(site.host_port), site.url("/binary"))


async def test_loopback_is_refused_without_an_exemption(site: FakeWebSite) -> None:
    message = await refusal(fetcher_for(), site.url("/page"))

    assert message.startswith("refused: 127.0.0.1")
    assert site.requests == []


@pytest.mark.parametrize("address", ["10.0.0.1", "169.254.169.254", "192.168.1.10",
                                     "[::1]", "[fd00::1]", "0.0.0.0", "224.0.0.1",
                                     "[::ffff:10.0.0.1]"])
async def test_private_link_local_multicast_and_reserved_addresses_are_refused(
    address: str
) -> None:
    message = await refusal(fetcher_for(), f"http://{address}/latest/meta-data/")

    assert message.startswith("refused:")
    assert "loopback, private, link-local, multicast or reserved" in message


async def test_a_name_is_checked_after_resolution_and_the_exemption_is_by_name(
    site: FakeWebSite
) -> None:
    # localhost resolves to a loopback address: refused, though 127.0.0.1 is exempt
    assert (await refusal(fetcher_for(site.host_port), f"http://localhost:{site.port}/page")
            ).startswith("refused: localhost")
    assert site.requests == []

    text = await fetch(fetcher_for(f"localhost:{site.port}"), f"http://localhost:{site.port}/page")

    assert "old harbour" in text
    assert site.requests == [("/page", f"localhost:{site.port}")]


@pytest.mark.parametrize("target", ["http://127.0.0.1:9/x", "http://10.0.0.1/",
                                    "http://169.254.169.254/latest/meta-data/"])
async def test_a_redirect_to_a_refused_address_is_refused(site: FakeWebSite, target: str) -> None:
    message = await refusal(fetcher_for(site.host_port), site.url(f"/redirect?to={target}"))

    assert message.startswith("refused:")
    assert [path for path, _ in site.requests] == [f"/redirect?to={target}"]


async def test_redirects_are_followed_up_to_five(site: FakeWebSite) -> None:
    assert "old harbour" in await fetch(fetcher_for(site.host_port), site.url("/chain/5"))
    assert "redirected more than 5 times" in await refusal(fetcher_for(site.host_port),
                                                           site.url("/chain/6"))


async def test_a_huge_page_is_cut_at_two_megabytes(site: FakeWebSite) -> None:
    text = await fetch(fetcher_for(site.host_port), site.url("/huge"))

    assert text.endswith("(The page was cut here: it is larger than this bot reads.)")
    assert 2 * 1024 * 1024 - 1000 < len(text) < 2 * 1024 * 1024 + 1000


async def test_a_page_that_never_answers_times_out(site: FakeWebSite) -> None:
    message = await refusal(fetcher_for(site.host_port, timeout=0.3), site.url("/hang"))

    assert message == "the page did not arrive within 0.3 s"


@pytest.mark.parametrize("url", ["file:///etc/passwd", "ftp://example.com/x", "javascript:1",
                                 "http://user:secret@example.com/", "not a url"])
async def test_only_plain_http_addresses_are_fetched(url: str) -> None:
    message = await refusal(fetcher_for(), url)

    assert "only http:// and https://" in message or "user name or password" in message


def test_public_addresses_are_those_on_the_internet() -> None:
    import ipaddress

    assert is_public(ipaddress.ip_address("93.184.216.34"))
    assert is_public(ipaddress.ip_address("2606:2800:220:1::1"))
    for private in ("127.0.0.1", "10.1.2.3", "172.16.0.1", "100.64.0.1", "169.254.169.254",
                    "::1", "fe80::1", "ff02::1", "::ffff:127.0.0.1", "240.0.0.1"):
        assert not is_public(ipaddress.ip_address(private)), private
