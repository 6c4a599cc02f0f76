"""fetch_url(url): GET a web page and give the model its main text.

Every fetch is bounded: 2 MB of body (decompressed), 10 seconds in all, 5 redirects, each
redirect checked again (http or https only, the address rule of `bot.tools.web` at every
connection). HTML becomes readable text (`bot.tools.extract`); text, JSON and XML come as they
are; a PDF is read by the document reader.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx

from bot.documents import DocumentKind, DocumentReader
from bot.tools.base import ToolContext, ToolFailed, ToolResult, ToolSpec, text_argument
from bot.tools.extract import html_text
from bot.tools.web import AddressPolicy, AddressRefused, GuardedTransport

log = logging.getLogger(__name__)

MAX_BYTES = 2 * 1024 * 1024
TIMEOUT = 10.0
MAX_REDIRECTS = 5
MAX_URL_CHARS = 2_000
MAX_TEXT_CHARS = 200_000
USER_AGENT = "gemini-chat-bot/0.1 (fetch_url; a chat bot reading a page a person asked about)"
HTML_TYPES = ("text/html", "application/xhtml+xml")
TEXT_TYPES = ("text/", "application/json", "application/ld+json", "application/xml",
              "application/rss+xml", "application/atom+xml", "application/javascript",
              "application/x-yaml", "application/yaml")
PDF_TYPES = ("application/pdf", "application/x-pdf")

SPEC = ToolSpec(
    "fetch_url",
    "Fetch a public web page (http or https) and return its main text: use it when the "
    "person gives a link or asks what a page says.",
    {"type": "object", "properties": {"url": {
        "type": "string", "description": "the full address, starting with http:// or https://"}},
     "required": ["url"]},
)


@dataclass(frozen=True, slots=True)
class Page:
    """What a fetch found: the address it ended at, its title and text, whether it was cut."""

    url: str
    title: str
    text: str
    cut: bool


class WebFetcher:
    """GETs pages within the bounds and the address rule; one connection pool for all."""

    def __init__(self, policy: AddressPolicy, *, documents: DocumentReader | None = None,
                 max_bytes: int = MAX_BYTES, timeout: float = TIMEOUT,
                 max_redirects: int = MAX_REDIRECTS) -> None:
        self._client = httpx.AsyncClient(
            transport=GuardedTransport(policy), follow_redirects=False, trust_env=False,
            timeout=httpx.Timeout(timeout), headers={"User-Agent": USER_AGENT},
        )
        self._documents = documents
        self._max_bytes = max_bytes
        self._timeout = timeout
        self._max_redirects = max_redirects

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._client.aclose()

    async def fetch(self, url: str) -> Page:
        """The page at `url`; ToolFailed says why there is none."""
        try:
            async with asyncio.timeout(self._timeout):
                return await self._follow(url)
        except TimeoutError:
            raise ToolFailed(f"the page did not arrive within {self._timeout:g} s") from None
        except AddressRefused as exc:
            raise ToolFailed(f"refused: {exc}") from None
        except httpx.InvalidURL as exc:
            raise ToolFailed(f"that is not a usable address ({exc})") from None
        except httpx.HTTPError as exc:
            log.info("fetch_url %s failed: %r", _host(url), exc)
            raise ToolFailed(f"the page could not be fetched ({type(exc).__name__})") from None

    async def _follow(self, url: str) -> Page:
        for _ in range(self._max_redirects + 1):
            target = _checked_url(url)
            async with self._client.stream("GET", target) as response:
                location = response.headers.get("location")
                if response.is_redirect and location:
                    url = str(response.url.join(location))
                    continue
                if response.status_code >= 400:
                    raise ToolFailed(f"the page answered HTTP {response.status_code}")
                body, cut = await self._read(response)
                return await self._page(str(response.url), response, body, cut)
        raise ToolFailed(f"the page redirected more than {self._max_redirects} times")

    async def _read(self, response: httpx.Response) -> tuple[bytes, bool]:
        body = bytearray()
        async for data in response.aiter_bytes():
            body += data
            if len(body) > self._max_bytes:
                return bytes(body[: self._max_bytes]), True
        return bytes(body), False

    async def _page(self, url: str, response: httpx.Response, body: bytes, cut: bool) -> Page:
        media = response.headers.get("content-type", "").partition(";")[0].strip().lower()
        charset = response.charset_encoding or "utf-8"
        if media in HTML_TYPES or (not media and body.lstrip()[:1] == b"<"):
            title, text = await asyncio.to_thread(html_text, _decoded(body, charset))
            return Page(url, title, text, cut)
        if media.startswith(TEXT_TYPES) or media.endswith(("+json", "+xml")):
            return Page(url, "", _decoded(body, charset), cut)
        if media in PDF_TYPES and self._documents is not None:
            if cut:
                raise ToolFailed(f"the PDF is larger than {self._max_bytes // (1024 * 1024)} MB")
            read = await self._documents.read(DocumentKind.PDF, body, MAX_TEXT_CHARS)
            if read.problem is not None and not read.text:
                raise ToolFailed(f"the PDF {read.problem}")
            return Page(url, "", read.text, read.cut)
        raise ToolFailed(f"the page is {media or 'of no stated type'}, which I can't read")


def _decoded(body: bytes, charset: str) -> str:
    try:
        return body.decode(charset, errors="replace")
    except LookupError:
        return body.decode("utf-8", errors="replace")


def _checked_url(url: str) -> str:
    """`url` if it is an http(s) address without credentials, else ToolFailed."""
    url = url.strip()
    if len(url) > MAX_URL_CHARS:
        raise ToolFailed(f"the address is longer than {MAX_URL_CHARS} characters")
    parts = urlsplit(url)
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise ToolFailed("only http:// and https:// addresses can be fetched")
    if parts.username or parts.password:
        raise ToolFailed("addresses with a user name or password are not fetched")
    return url


def _host(url: str) -> str:
    try:
        return (urlsplit(url.strip()).hostname or "the page")[:100]
    except ValueError:
        return "the page"


class FetchUrl:
    """The fetch_url tool."""

    spec = SPEC
    needs_reader = False

    def __init__(self, fetcher: WebFetcher) -> None:
        self._fetcher = fetcher

    def status(self, arguments: Mapping[str, Any]) -> str:
        """What the person sees while it runs: "Reading example.com…"."""
        url = arguments.get("url")
        return f"Reading {_host(url) if isinstance(url, str) else 'a page'}…"

    async def run(self, arguments: Mapping[str, Any], context: ToolContext) -> ToolResult:
        """The page's text, headed by its address and title."""
        page = await self._fetcher.fetch(text_argument(arguments, "url"))
        head = [f"URL: {page.url}"] + ([f"Title: {page.title}"] if page.title else [])
        text = page.text.strip() or "(the page has no readable text)"
        note = "\n(The page was cut here: it is larger than this bot reads.)" if page.cut else ""
        return ToolResult("\n".join(head) + "\n\n" + text + note, sources=(page.url,))
