"""Files shared in Slack as lazy attachments, downloaded from Slack's file hosts with the token."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import httpx
from slack_sdk.web.async_client import AsyncWebClient

from adapters.common import Download, FileHosts, read_capped
from bot import Attachment, DownloadRefused

log = logging.getLogger(__name__)

SLACK_FILE_HOSTS = frozenset({
    "files.slack.com", "files-origin.slack.com", "files-edu.slack.com",
    "files.slack-gov.com", "files-origin.slack-gov.com",
})
"""Where Slack serves `url_private`; the bot token is sent nowhere else."""

HTML_STARTS = (b"<!doctype html", b"<html")
SIGN_IN = "Slack sent a sign-in page instead of the file (is the files:read scope granted?)"


class SlackFiles:
    """Builds attachments for a message's files; each downloads only when the core asks.

    Downloads go through the core's shared HTTP client with `Authorization: Bearer <bot
    token>`, only to Slack's file hosts (and the origin of SLACK_API_URL), with the shared
    rules of `adapters.common.read_capped` (no redirects, at most `max_bytes` + 1 bytes), and
    are refused when Slack answers with its HTML sign-in page instead of the file.
    """

    def __init__(self, http: httpx.AsyncClient, client: AsyncWebClient, token: str,
                 max_bytes: int, api_url: str | None = None) -> None:
        self._http = http
        self._client = client
        self._token = token
        self._max_bytes = max_bytes
        self._hosts = FileHosts.of("a Slack file host", SLACK_FILE_HOSTS, api_url)

    def attachments(self, files: Sequence[Mapping[str, Any]]) -> tuple[Attachment, ...]:
        """One lazy attachment per Slack file object."""
        return tuple(self._attachment(file) for file in files)

    def allowed(self, url: str) -> bool:
        """Whether `url` is on one of Slack's file hosts (or the operator's Slack API host)."""
        return self._hosts.allow(url)

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
        headers = {"Authorization": f"Bearer {self._token}"}
        download = await read_capped(self._http, url, self._hosts, self._max_bytes,
                                     headers=headers)
        if "html" not in mimetype and _is_html(download):
            raise DownloadRefused(SIGN_IN)
        log.debug("slack: downloaded file %s (%d bytes)", file_id, len(download.data))
        return download.data


def _is_html(download: Download) -> bool:
    """Whether Slack answered with a web page: what it sends a request without a valid
    token instead of the file, with a 200."""
    return download.content_type.startswith("text/html") or (
        download.data[:32].lstrip().lower().startswith(HTML_STARTS))
