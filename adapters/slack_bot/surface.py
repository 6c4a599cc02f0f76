"""Drawing a reply in Slack: post then chat.update, or Slack's native text stream in threads."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from adapters.common import PlatformTuning
from adapters.slack_bot.errors import as_surface_errors, describe, is_passing
from adapters.slack_bot.events import is_dm_channel
from adapters.slack_bot.mrkdwn import quiet, settled
from bot import DeliveryFailed, EditBudget, RateLimited, Sleep, SurfaceLimits, retry_until_done

log = logging.getLogger(__name__)

THINKING = "is thinking…"


SLACK_TUNING = PlatformTuning(max_message_chars=3_500, min_edit_interval=1.0, edit_rate=45,
                              edit_period=60.0, edit_burst=5)
"""Slack's limits: up to 3,500 characters a message (Slack refuses edits near 4,000); one
edit a second per message; chat.update calls in a workspace share 45 a minute with bursts
of 5, which keeps any 60-second window within Slack's Tier 3 limit of 50 (45 + 5 - 1 = 49)."""


@dataclass(frozen=True, slots=True)
class Place:
    """Where a reply goes: a channel, the thread in it (None: top level), and whom it answers."""

    team_id: str
    channel: str
    thread_ts: str | None
    recipient_user: str
    recipient_team: str

    @property
    def assistant_thread(self) -> bool:
        """A thread in a direct message: Slack's assistant threads, which show a status."""
        return is_dm_channel(self.channel) and self.thread_ts is not None

    def __str__(self) -> str:
        return f"slack:{self.team_id}:{self.channel}:{self.thread_ts or 'top'}"


class SlackSurface:
    """Posts the answer with chat.postMessage and edits it with chat.update (standard Markdown).

    The core's renderer paces the edits and takes them from the workspace's edit budget.
    Every text goes out `quiet`: model text never pings anyone or fakes a link.
    """

    def __init__(self, client: AsyncWebClient, place: Place, limits: SurfaceLimits) -> None:
        self._client = client
        self._place = place
        self._limits = limits
        self._show_status = place.assistant_thread

    @property
    def limits(self) -> SurfaceLimits:
        """Slack's limits for this reply."""
        return self._limits

    async def post(self, text: str, *, final: bool) -> str:
        """Post a message in the reply's thread (or at the top level of a DM)."""
        with as_surface_errors():
            response = await self._client.chat_postMessage(
                channel=self._place.channel, thread_ts=self._place.thread_ts,
                markdown_text=quiet(text),
            )
        return str(response["ts"])

    async def edit(self, message_id: str, text: str, *, final: bool) -> None:
        """Replace a posted message's text."""
        with as_surface_errors():
            await self._client.chat_update(
                channel=self._place.channel, ts=message_id, markdown_text=quiet(text)
            )

    async def show_progress(self) -> None:
        """Show "is thinking…" as the thread's status in assistant threads; elsewhere nothing."""
        if not self._show_status or self._place.thread_ts is None:
            return
        try:
            await self._client.assistant_threads_setStatus(
                channel_id=self._place.channel, thread_ts=self._place.thread_ts, status=THINKING
            )
        except SlackApiError as exc:
            self._show_status = False
            log.info("%s: no thread status here (%s)", self._place, describe(exc))

    async def notify(self, text: str) -> None:
        """A short message in the reply's thread."""
        await self.post(text, final=True)


class SlackStreamingSurface(SlackSurface):
    """A surface in a thread that draws the answer with Slack's native text streaming."""

    def __init__(self, client: AsyncWebClient, place: Place, limits: SurfaceLimits,
                 budget: EditBudget, *, sleep: Sleep = asyncio.sleep) -> None:
        if place.thread_ts is None:
            raise ValueError("Slack streams only in threads")
        super().__init__(client, place, limits)
        self._thread_ts = place.thread_ts
        self._budget = budget
        self._sleep = sleep

    async def open_stream(self, opening: str) -> SlackStream:
        """A streaming message for one page of the answer, starting with `opening`."""
        return SlackStream(self._client, self._place, self._thread_ts, self._budget, opening,
                           sleep=self._sleep)


class SlackStream:
    """One Slack streaming message: chat.startStream, chat.appendStream, chat.stopStream.

    Text given to `append` is accepted at once and sent when Slack allows: a rate limit or a
    passing failure keeps it pending for the next call, so nothing is lost or sent twice.
    The stream starts with the first text. If Slack refuses to stream here, or the stream
    expired, the page goes on as an ordinary message edited with chat.update within the
    workspace's shared edit budget. Text is streamed `quiet`; a tail that more text could still
    turn into a mention (`<!chan`, `@her`) waits for that text or for the end.
    """

    def __init__(self, client: AsyncWebClient, place: Place, thread_ts: str, budget: EditBudget,
                 opening: str, *, sleep: Sleep = asyncio.sleep) -> None:
        self._client = client
        self._place = place
        self._thread_ts = thread_ts
        self._budget = budget
        self._sleep = sleep
        self._text = opening
        self._streamed = ""
        self._ts: str | None = None
        self._streaming = True
        self._shown = ""

    async def append(self, text: str) -> None:
        """Take `text` for the end of the message and send what Slack allows now."""
        self._text += text
        try:
            await self._send(stop=False)
        except RateLimited as limited:
            log.info("%s: rate limited for %.1fs; the text waits", self._place,
                     limited.retry_after)
        except DeliveryFailed:
            raise
        except Exception as exc:
            log.warning("%s: sending streamed text failed, trying later: %s",
                        self._place, describe(exc))

    async def close(self) -> str:
        """Send all remaining text, finish the message and return its ts."""

        async def wait(limited: RateLimited) -> None:
            await self._sleep(limited.retry_after)

        return await retry_until_done(lambda: self._send(stop=True),
                                      what=f"finishing the message in {self._place}",
                                      sleep=self._sleep, rate_limited=wait)

    async def _send(self, *, stop: bool) -> str:
        if self._streaming:
            try:
                with as_surface_errors():
                    return await self._stream(stop=stop)
            except SlackApiError as exc:
                if is_passing(exc):
                    raise
                log.info("%s: Slack does not stream this message (%s); using chat.update",
                         self._place, describe(exc))
                self._streaming = False
        return await self._show()

    def _unsent(self, *, final: bool) -> str:
        """The quiet text Slack has not been sent yet: all of it if `final`, else the settled."""
        ready = self._text if final else self._text[: settled(self._text)]
        return quiet(ready)[len(self._streamed):]

    async def _stream(self, *, stop: bool) -> str:
        if self._ts is None:
            piece = self._unsent(final=stop)
            response = await self._client.chat_startStream(
                channel=self._place.channel,
                thread_ts=self._thread_ts,
                markdown_text=piece or None,
                recipient_user_id=self._place.recipient_user,
                recipient_team_id=self._place.recipient_team,
            )
            self._ts = str(response["ts"])
            self._streamed += piece
        piece = self._unsent(final=stop)
        if stop:
            await self._client.chat_stopStream(
                channel=self._place.channel, ts=self._ts, markdown_text=piece or None
            )
            self._streamed += piece
        elif piece:
            await self._client.chat_appendStream(
                channel=self._place.channel, ts=self._ts, markdown_text=piece
            )
            self._streamed += piece
        return self._ts

    async def _show(self) -> str:
        if self._ts is None:
            with as_surface_errors():
                response = await self._client.chat_postMessage(
                    channel=self._place.channel, thread_ts=self._thread_ts,
                    markdown_text=quiet(self._text),
                )
            self._ts, self._shown = str(response["ts"]), self._text
        elif self._text != self._shown:
            await self._budget.acquire()
            try:
                with as_surface_errors():
                    await self._client.chat_update(
                        channel=self._place.channel, ts=self._ts, markdown_text=quiet(self._text)
                    )
            except RateLimited as limited:
                await self._budget.pause(limited.retry_after)
                raise
            self._shown = self._text
        return self._ts
