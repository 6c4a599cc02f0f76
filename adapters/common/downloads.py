"""Downloading a platform's files: only from its own origins, never redirected, and at most
one byte past the cap, so the core can tell a file is too large without the bot holding it."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpx

from bot import DownloadRefused, Settings

DEFAULT_PORTS = {"http": 80, "https": 443}

Origin = tuple[str, str, int]
"""Scheme, host and port: two URLs with the same origin are the same server."""


def origin(url: str) -> Origin | None:
    """The origin of an http(s) URL (the port filled in from the scheme); None for any other
    URL, or one that cannot be read."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS or not parts.hostname:
        return None
    try:
        port = parts.port or DEFAULT_PORTS[scheme]
    except ValueError:
        return None
    return scheme, parts.hostname.lower(), port


@dataclass(frozen=True, slots=True)
class FileHosts:
    """Where a platform serves files: HTTPS on its own hosts, plus the origin of the API URL
    an operator set (a proxy, a compatible server). `name` completes "… is not on" in the
    refusal ("a Slack file host")."""

    name: str
    origins: frozenset[Origin]

    @classmethod
    def of(cls, name: str, hosts: Iterable[str], api_url: str | None = None) -> FileHosts:
        """HTTPS on port 443 of each of `hosts`, and the origin of `api_url` when set."""
        origins = {("https", host, 443) for host in hosts}
        extra = origin(api_url) if api_url else None
        if extra is not None:
            origins.add(extra)
        return cls(name, frozenset(origins))

    def allow(self, url: str) -> bool:
        """Whether `url` has one of the allowed origins (same scheme, host and port)."""
        return origin(url) in self.origins


@dataclass(frozen=True, slots=True)
class Download:
    """A file's first bytes (at most the cap + 1) and the type its server declared."""

    data: bytes
    content_type: str


def download_cap(settings: Settings) -> int:
    """The most bytes of one file worth reading: the larger of the core's limits for an
    attachment and for a text file, so the core, not the download, decides what is too big."""
    return max(settings.bot_max_attachment_bytes, settings.bot_max_text_attachment_bytes)


async def read_capped(http: httpx.AsyncClient, url: str, hosts: FileHosts, max_bytes: int, *,
                      headers: Mapping[str, str] | None = None) -> Download:
    """GET `url` from one of `hosts` without following redirects, reading at most
    `max_bytes` + 1 bytes; DownloadRefused for another origin or an answer other than 200."""
    if not hosts.allow(url):
        raise DownloadRefused(f"the file at {urlsplit(url).hostname} is not on {hosts.name}")
    data = bytearray()
    async with http.stream("GET", url, headers=headers, follow_redirects=False) as response:
        if response.status_code != httpx.codes.OK:
            raise DownloadRefused(f"the file host answered HTTP {response.status_code}")
        async for chunk in response.aiter_bytes():
            data += chunk
            if len(data) > max_bytes:
                break
        content_type = response.headers.get("content-type", "")
    return Download(bytes(data[: max_bytes + 1]), content_type)
