"""Message attachments as lazy core attachments, downloaded only from Discord's file hosts."""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from urllib.parse import urlsplit

import discord
import httpx

from bot import Attachment

DISCORD_FILE_HOSTS = frozenset({"cdn.discordapp.com", "media.discordapp.net"})
"""Where Discord serves attachments (`url` and `proxy_url` of a message's attachments)."""

DEFAULT_PORTS = {"http": 80, "https": 443}

Origin = tuple[str, str, int]


class DownloadRefused(Exception):
    """An attachment was not downloaded: a host outside the allow-list, or an HTTP error."""


def _origin(url: str) -> Origin | None:
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS or not parts.hostname:
        return None
    try:
        port = parts.port or DEFAULT_PORTS[scheme]
    except ValueError:
        return None
    return scheme, parts.hostname.lower(), port


class DiscordFiles:
    """Turns a message's attachments into core attachments that download when asked.

    Only the `url` Discord put in the message payload is fetched, only over HTTPS from
    Discord's attachment hosts (plus the origin of DISCORD_API_URL when an operator set one),
    without following redirects, and reading stops one byte past `max_bytes` so the core
    sees the file is too large without the bot holding all of it.
    """

    def __init__(self, http: httpx.AsyncClient, max_bytes: int, api_url: str | None = None
                 ) -> None:
        self._http = http
        self._max_bytes = max_bytes
        self._origins: set[Origin] = {("https", host, 443) for host in DISCORD_FILE_HOSTS}
        extra = _origin(api_url) if api_url else None
        if extra is not None:
            self._origins.add(extra)

    def allowed(self, url: str) -> bool:
        """Whether `url` is on one of the allowed attachment hosts."""
        return _origin(url) in self._origins

    def attachments(self, items: Sequence[discord.Attachment]) -> tuple[Attachment, ...]:
        """Lazy attachments for the core; nothing is downloaded yet."""
        return tuple(
            Attachment(
                filename=item.filename,
                content_type=item.content_type or "",
                size=item.size,
                fetch=partial(self.download, item.url),
            )
            for item in items
        )

    async def download(self, url: str) -> bytes:
        """The file's bytes, at most `max_bytes` + 1 of them."""
        if not self.allowed(url):
            raise DownloadRefused(f"{urlsplit(url).hostname} is not a Discord attachment host")
        data = bytearray()
        async with self._http.stream("GET", url, follow_redirects=False) as response:
            if response.status_code != 200:
                raise DownloadRefused(f"the file host answered HTTP {response.status_code}")
            async for chunk in response.aiter_bytes():
                data.extend(chunk)
                if len(data) > self._max_bytes:
                    break
        return bytes(data[: self._max_bytes + 1])
