"""Message attachments as lazy core attachments, downloaded only from Discord's file hosts."""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial

import discord
import httpx

from adapters.common import FileHosts, read_capped
from bot import Attachment

DISCORD_FILE_HOSTS = frozenset({"cdn.discordapp.com", "media.discordapp.net"})
"""Where Discord serves attachments (`url` and `proxy_url` of a message's attachments)."""


class DiscordFiles:
    """Turns a message's attachments into core attachments that download when asked.

    Only the `url` Discord put in the message payload is fetched, only over HTTPS from
    Discord's attachment hosts (plus the origin of DISCORD_API_URL when an operator set one),
    with the shared rules of `adapters.common.read_capped`: no redirects, and at most
    `max_bytes` + 1 bytes.
    """

    def __init__(self, http: httpx.AsyncClient, max_bytes: int, api_url: str | None = None
                 ) -> None:
        self._http = http
        self._max_bytes = max_bytes
        self._hosts = FileHosts.of("a Discord attachment host", DISCORD_FILE_HOSTS, api_url)

    def allowed(self, url: str) -> bool:
        """Whether `url` is on one of the allowed attachment hosts."""
        return self._hosts.allow(url)

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
        return (await read_capped(self._http, url, self._hosts, self._max_bytes)).data
