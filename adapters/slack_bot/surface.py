"""Drawing a reply in a Slack thread: its "is thinking…" status, posts and chat.update, and
Slack's native text stream (`stream.SlackStream`); its Stop button while it is written and
its answer buttons once it is finished (`controls`)."""

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
from adapters.slack_bot.budgets import DELETE, UPDATE, WorkspaceBudgets
from adapters.slack_bot.controls import STOP_FALLBACK, answer_actions, stop_actions, text_blocks
from adapters.slack_bot.errors import as_surface_errors, describe
from adapters.slack_bot.events import PLATFORM
from adapters.slack_bot.mrkdwn import quiet
from adapters.slack_bot.stream import SlackStream
from bot import (
    ChannelMessage,
    ConversationKey,
    DeliveryFailed,
    RateLimited,
    Sleep,
    SurfaceLimits,
    retry_until_done,
)

log = logging.getLogger(__name__)

THINKING = "is thinking…"
STATUS = "assistant.threads.setStatus"
HISTORY_PAGE = 200
MAX_HISTORY_PAGES = 10
"""read_channel reads a thread a page at a time, at most this many pages (its newest part)."""


SLACK_TUNING = PlatformTuning(max_message_chars=3_500, min_edit_interval=1.0, edit_rate=45,
                              edit_period=60.0, edit_burst=5, final_edit_marks=True)
"""Slack's limits: up to 3,500 characters a message (Slack refuses edits near 4,000); one
edit a second per message; chat.update calls in a workspace share 45 a minute with bursts
of 5, which keeps any 60-second window within Slack's Tier 3 limit of 50 (45 + 5 - 1 = 49).
`edit_period` is Slack's rate window: the other paced methods take their tier's rate per it
(`budgets.METHOD_RATES`). A posted message carries its Stop button until its final edit."""


@dataclass(frozen=True, slots=True)
class Place:
    """Where a reply goes: a thread in a channel or DM, and whom it answers."""

    team_id: str
    channel: str
    thread_ts: str
    recipient_user: str
    recipient_team: str

    def __str__(self) -> str:
        return str(self.key)

    @property
    def key(self) -> ConversationKey:
        """The conversation the reply belongs to (the thread)."""
        return ConversationKey(PLATFORM, self.team_id, self.channel, self.thread_ts)


class SlackSurface:
    """Posts the answer with chat.postMessage and edits it with chat.update, as a markdown
    block (standard Markdown) with the message's buttons after it.

    A message still being written carries a Stop button, which its final edit removes; the
    answer's last message gets Regenerate, 👍 and 👎 once the answer is finished. The core's
    renderer paces the edits and takes them from the workspace's chat.update budget. Every
    text goes out `quiet`: model text never pings anyone or fakes a link. Until the first
    text, the thread shows "is thinking…" (assistant.threads.setStatus, in channel threads as
    in DMs).
    """

    def __init__(self, client: AsyncWebClient, place: Place, limits: SurfaceLimits,
                 budgets: WorkspaceBudgets, *, sleep: Sleep = asyncio.sleep,
                 people: People | None = None) -> None:
        self._client = client
        self._place = place
        self._limits = limits
        self._budgets = budgets
        self._sleep = sleep
        self._people = people
        self._show_status = True
        self._drawn: dict[str, str] = {}

    @property
    def limits(self) -> SurfaceLimits:
        """Slack's limits for this reply."""
        return self._limits

    async def post(self, text: str, *, final: bool) -> str:
        """Post a message in the reply's thread: with a Stop button, unless `final` (then as
        plain `markdown_text`)."""
        shown = quiet(text)
        content: dict[str, Any] = {"markdown_text": shown} if final else {
            "text": shown, "blocks": text_blocks(shown, stop_actions(self._place.key))}
        with as_surface_errors():
            response = await self._client.chat_postMessage(
                channel=self._place.channel, thread_ts=self._place.thread_ts, **content)
        ts = str(response["ts"])
        self._drawn[ts] = text
        return ts

    async def edit(self, message_id: str, text: str, *, final: bool) -> None:
        """Replace a posted message's text, dropping its Stop button when `final` (the
        renderer has taken the chat.update slot)."""
        shown = quiet(text)
        with as_surface_errors():
            await self._client.chat_update(
                channel=self._place.channel, ts=message_id, text=shown,
                blocks=text_blocks(shown, None if final else stop_actions(self._place.key)),
            )
        self._drawn[message_id] = text

    async def show_answer_controls(self, message_id: str) -> None:
        """Put Regenerate, 👍 and 👎 under the finished answer's last message, keeping its
        text (chat.update, from the workspace's budget; a rate limit is waited out)."""
        text = self._text_of(message_id)
        if text is None:
            log.warning("%s: no answer drawn as %s here; no buttons", self._place, message_id)
            return
        shown = quiet(text)

        async def attempt() -> None:
            async with self._budgets.slot(UPDATE):
                await self._client.chat_update(
                    channel=self._place.channel, ts=message_id, text=shown,
                    blocks=text_blocks(shown, answer_actions(self._place.key)),
                )

        await retry_until_done(attempt, what=f"showing the answer's buttons in {self._place}",
                               sleep=self._sleep, rate_limited=self._wait)

    async def finish(self) -> None:
        """The reply is over, however it ended: nothing is left to tidy on a posted answer."""

    def _text_of(self, message_id: str) -> str | None:
        """The text last drawn as message `message_id`."""
        return self._drawn.get(message_id)

    async def _wait(self, limited: RateLimited) -> None:
        await self._sleep(limited.retry_after)

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
    """A surface that draws the answer with Slack's native text streaming.

    A streaming message cannot carry a button that goes away when it ends: the stream
    methods take only text (and append-only chunks); blocks come with chat.stopStream, at the
    bottom of the finished message. So once the answer's first message is there, a small
    message of its own under it carries the Stop button, and it is deleted (chat.delete)
    when the answer ends (`show_answer_controls`, or `finish` whatever happened).
    """

    def __init__(self, client: AsyncWebClient, place: Place, limits: SurfaceLimits,
                 budgets: WorkspaceBudgets, *, sleep: Sleep = asyncio.sleep,
                 people: People | None = None) -> None:
        super().__init__(client, place, limits, budgets, sleep=sleep, people=people)
        self._streams: list[SlackStream] = []
        self._stop_ts: str | None = None

    async def open_stream(self, opening: str) -> SlackStream:
        """A streaming message for one page of the answer, starting with `opening`; the
        first one brings the Stop button once it is shown."""
        started = None if self._streams else self._offer_stop
        stream = SlackStream(self._client, self._place, self._budgets, opening,
                             sleep=self._sleep, started=started)
        self._streams.append(stream)
        return stream

    async def show_answer_controls(self, message_id: str) -> None:
        """Remove the Stop button, then put the answer's buttons on its last message."""
        await self.finish()
        await super().show_answer_controls(message_id)

    async def finish(self) -> None:
        """Delete the Stop button's message, if it is still there."""
        ts, self._stop_ts = self._stop_ts, None
        if ts is None:
            return

        async def attempt() -> None:
            async with self._budgets.slot(DELETE):
                await self._client.chat_delete(channel=self._place.channel, ts=ts)

        try:
            await retry_until_done(attempt, what=f"removing the Stop button in {self._place}",
                                   sleep=self._sleep, rate_limited=self._wait)
        except DeliveryFailed as exc:
            log.info("%s: the Stop button's message is gone already (%s)", self._place, exc)

    def _text_of(self, message_id: str) -> str | None:
        for stream in self._streams:
            if stream.ts == message_id:
                return stream.text
        return super()._text_of(message_id)

    async def _offer_stop(self) -> None:
        """Post the Stop button under the answer's first message (a failure only logged)."""
        try:
            with as_surface_errors():
                response = await self._client.chat_postMessage(
                    channel=self._place.channel, thread_ts=self._place.thread_ts,
                    text=STOP_FALLBACK, blocks=[stop_actions(self._place.key)],
                )
        except Exception as exc:
            log.warning("%s: could not show the Stop button: %s", self._place, describe(exc))
            return
        self._stop_ts = str(response["ts"])
