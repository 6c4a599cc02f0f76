"""Files shared in Slack as lazy attachments, downloaded from Slack's file hosts with the token."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

import httpx
from slack_sdk.web.async_client import AsyncWebClient

from bot import Attachment

log = logging.getLogger(__name__)

SLACK_FILE_HOSTS = frozenset({
    "files.slack.com", "files-origin.slack.com", "files-edu.slack.com",
    "files.slack-gov.com", "files-origin.slack-gov.com",
})
"""Where Slack serves `url_private`; the bot token is sent nowhere else."""

HTML_STARTS = (b"<!doctype html", b"<html")
SIGN_IN = "Slack sent a sign-in page instead of the file (is the files:read scope granted?)"


class DownloadRefused(Exception):
    """A file was not downloaded: a host that is not Slack's, a sign-in page, an HTTP error."""


class SlackFiles:
    """Builds attachments for a message's files; each downloads only when the core asks.

    Downloads go through the core's shared HTTP client with `Authorization: Bearer <bot
    token>`, stop reading one byte past `max_bytes` (the core then skips the file), and are
    refused when Slack answers with its HTML sign-in page instead of the file.
    """

    def __init__(self, http: httpx.AsyncClient, client: AsyncWebClient, token: str,
                 max_bytes: int, api_url: str | None = None) -> None:
        self._http = http
        self._client = client
        self._token = token
        self._max_bytes = max_bytes
        self._origins = {("https", host) for host in SLACK_FILE_HOSTS}
        if api_url:
            parts = urlsplit(api_url)
            self._origins.add((parts.scheme, parts.hostname or ""))

    def attachments(self, files: Sequence[Mapping[str, Any]]) -> tuple[Attachment, ...]:
        """One lazy attachment per Slack file object."""
        return tuple(self._attachment(file) for file in files)

    def allowed(self, url: str) -> bool:
        """Whether `url` is on one of Slack's file hosts (or the operator's Slack API host)."""
        parts = urlsplit(url)
        return (parts.scheme, parts.hostname or "") in self._origins

    def _attachment(self, file: Mapping[str, Any]) -> Attachment:
        file_id = str(file.get("id") or "")
        name = str(file.get("name") or file.get("title") or file_id or "file")
        mimetype = str(file.get("mimetype") or "")

        async def fetch() -> bytes:
            return await self._download(file_id, await self._url_of(file), mimetype)

        return Attachment(name, mimetype, int(file.get("size") or 0), fetch)

    async def _url_of(self, file: Mapping[str, Any]) -> str:
        url = file.get("url_private_download") or file.get("url_private")
        if not url and file.get("id"):
            # Files shared from other organisations arrive as stubs: ask for the details.
            info = await self._client.files_info(file=str(file["id"]))
            details = info.get("file") or {}
            url = details.get("url_private_download") or details.get("url_private")
        if not url:
            raise DownloadRefused("Slack gave no download address for this file")
        return str(url)

    async def _download(self, file_id: str, url: str, mimetype: str) -> bytes:
        if not self.allowed(url):
            log.warning("slack: not downloading file %s from %s: not a Slack file host",
                        file_id, urlsplit(url).hostname)
            raise DownloadRefused("the file is not on a Slack file host")
        headers = {"Authorization": f"Bearer {self._token}"}
        async with self._http.stream("GET", url, headers=headers) as response:
            if response.status_code != httpx.codes.OK:
                raise DownloadRefused(f"Slack answered HTTP {response.status_code}")
            expects_html = "html" in mimetype
            if response.headers.get("content-type", "").startswith("text/html") \
                    and not expects_html:
                raise DownloadRefused(SIGN_IN)
            data = bytearray()
            async for chunk in response.aiter_bytes():
                data += chunk
                if len(data) > self._max_bytes:
                    break
        if not expects_html and bytes(data[:32]).lstrip().lower().startswith(HTML_STARTS):
            raise DownloadRefused(SIGN_IN)
        log.debug("slack: downloaded file %s (%d bytes)", file_id, len(data))
        return bytes(data[: self._max_bytes + 1])

