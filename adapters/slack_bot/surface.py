"""Drawing a reply in a Slack thread: its "is thinking…" status, posts and chat.update, and
Slack's native text stream (`stream.SlackStream`)."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from adapters.common import PlatformTuning
from adapters.slack_bot.access import People
from adapters.slack_bot.budgets import WorkspaceBudgets
from adapters.slack_bot.errors import as_surface_errors, describe
from adapters.slack_bot.mrkdwn import quiet
from adapters.slack_bot.stream import SlackStream
from bot import ChannelMessage, DeliveryFailed, RateLimited, Sleep, SurfaceLimits

log = logging.getLogger(__name__)

THINKING = "is thinking…"
STATUS = "assistant.threads.setStatus"
HISTORY_PAGE = 200
MAX_HISTORY_PAGES = 10
"""read_channel reads a thread a page at a time, at most this many pages (its newest part)."""


SLACK_TUNING = PlatformTuning(max_message_chars=3_500, min_edit_interval=1.0, edit_rate=45,
                              edit_period=60.0, edit_burst=5)
"""Slack's limits: up to 3,500 characters a message (Slack refuses edits near 4,000); one
edit a second per message; chat.update calls in a workspace share 45 a minute with bursts
of 5, which keeps any 60-second window within Slack's Tier 3 limit of 50 (45 + 5 - 1 = 49).
`edit_period` is Slack's rate window: the other paced methods take their tier's rate per it
(`budgets.METHOD_RATES`)."""


@dataclass(frozen=True, slots=True)
class Place:
    """Where a reply goes: a thread in a channel or DM, and whom it answers."""

    team_id: str
    channel: str
    thread_ts: str
    recipient_user: str
    recipient_team: str

    def __str__(self) -> str:
        return f"slack:{self.team_id}:{self.channel}:{self.thread_ts}"


class SlackSurface:
    """Posts the answer with chat.postMessage and edits it with chat.update (standard Markdown).

    The core's renderer paces the edits and takes them from the workspace's chat.update
    budget. Every text goes out `quiet`: model text never pings anyone or fakes a link.
    Until the first text, the thread shows "is thinking…" (assistant.threads.setStatus, in
    channel threads as in DMs).
    """

    def __init__(self, client: AsyncWebClient, place: Place, limits: SurfaceLimits,
                 budgets: WorkspaceBudgets, *, people: People | None = None) -> None:
        self._client = client
        self._place = place
        self._limits = limits
        self._budgets = budgets
        self._people = people
        self._show_status = True

    @property
    def limits(self) -> SurfaceLimits:
        """Slack's limits for this reply."""
        return self._limits

    async def post(self, text: str, *, final: bool) -> str:
        """Post a message in the reply's thread."""
        with as_surface_errors():
            response = await self._client.chat_postMessage(
                channel=self._place.channel, thread_ts=self._place.thread_ts,
                markdown_text=quiet(text),
            )
        return str(response["ts"])

    async def edit(self, message_id: str, text: str, *, final: bool) -> None:
        """Replace a posted message's text (the renderer has taken the chat.update slot)."""
        with as_surface_errors():
            await self._client.chat_update(
                channel=self._place.channel, ts=message_id, markdown_text=quiet(text)
            )

    async def show_progress(self) -> None:
        """Show "is thinking…" as the thread's status."""
        await self.show_status(THINKING)

    async def notify(self, text: str) -> None:
        """A short message in the reply's thread."""
        await self.post(text, final=True)

    async def show_status(self, text: str) -> None:
        """Show `text` (a tool's status line, "" to clear) as the thread's status, unless Slack
        refused a status here before."""
        if not self._show_status:
            return
        try:
            async with self._budgets.slot(STATUS):
                await self._client.assistant_threads_setStatus(
                    channel_id=self._place.channel, thread_ts=self._place.thread_ts,
                    status=text,
                )
        except RateLimited as limited:
            log.info("%s: no status for now (rate limited for %.1fs)", self._place,
                     limited.retry_after)
        except (SlackApiError, DeliveryFailed) as exc:
            self._show_status = False
            log.info("%s: no thread status here (%s)", self._place, describe(exc))

    async def read_channel(self, limit: int) -> list[ChannelMessage]:
        """The newest `limit` messages where the question was asked, oldest first: the reply's
        thread (conversations.replies), or, when the question started that thread, the
        channel or DM (conversations.history)."""
        messages = await self._thread_messages()
        if all(m.get("bot_id") for m in messages[1:]):  # the question began the thread
            response = await self._client.conversations_history(
                channel=self._place.channel, limit=limit)
            messages = list(reversed(response.get("messages") or []))
        return [await self._channel_message(m) for m in messages[-limit:]]

    async def _thread_messages(self) -> list[dict[str, Any]]:
        messages: list[dict[str, Any]] = []
        cursor = None
        for _ in range(MAX_HISTORY_PAGES):
            response = await self._client.conversations_replies(
                channel=self._place.channel, ts=self._place.thread_ts, limit=HISTORY_PAGE,
                cursor=cursor)
            messages.extend(response.get("messages") or [])
            cursor = (response.get("response_metadata") or {}).get("next_cursor")
            if not cursor:
                break
        return messages

    async def _channel_message(self, message: dict[str, Any]) -> ChannelMessage:
        user = str(message.get("user") or "")
        name = str(message.get("username") or user or "a bot")
        if user and self._people is not None:
            name = (await self._people.author(user, self._place.team_id)).name
        try:
            sent_at = datetime.fromtimestamp(float(message.get("ts") or 0), UTC)
        except ValueError:
            sent_at = datetime.fromtimestamp(0, UTC)
        files = "".join(f" [file {f.get('name')}]" for f in message.get("files") or ()
                        if isinstance(f, dict))
        return ChannelMessage(name, sent_at, str(message.get("text") or "") + files)


class SlackStreamingSurface(SlackSurface):
    """A surface that draws the answer with Slack's native text streaming."""

    def __init__(self, client: AsyncWebClient, place: Place, limits: SurfaceLimits,
                 budgets: WorkspaceBudgets, *, sleep: Sleep = asyncio.sleep,
                 people: People | None = None) -> None:
        super().__init__(client, place, limits, budgets, people=people)
        self._sleep = sleep

    async def open_stream(self, opening: str) -> SlackStream:
        """A streaming message for one page of the answer, starting with `opening`."""
        return SlackStream(self._client, self._place, self._budgets, opening, sleep=self._sleep)
