"""One Slack streaming message (chat.startStream, chat.appendStream, chat.stopStream), each
call within its method's workspace budget, and the way back to an ordinary message when
streaming fails."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from enum import Enum
from typing import TYPE_CHECKING

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from adapters.slack_bot.budgets import UPDATE, WorkspaceBudgets
from adapters.slack_bot.errors import as_surface_errors, describe, error_code, is_passing
from adapters.slack_bot.mrkdwn import quiet, settled
from bot import DeliveryFailed, RateLimited, Sleep, retry_until_done

if TYPE_CHECKING:
    from adapters.slack_bot.surface import Place

log = logging.getLogger(__name__)

EXPIRED = "message_not_in_streaming_state"
"""What Slack answers a call on a stream it has ended (idle, or too old): the only error
after which the message is known to have left the streaming state by itself."""
MAX_PIECE_CHARS = 12_000
"""The most `markdown_text` one stream call takes."""


class Mode(Enum):
    """How the message is being drawn."""

    STREAMING = "streaming"
    STOPPING = "stopping"
    """Streaming failed: the stream must be stopped before the message can be updated."""
    EDITING = "editing"
    """An ordinary message, posted and edited with chat.update."""


class SlackStream:
    """One streaming message: text given to `append` is accepted at once and sent when Slack
    allows.

    Each call waits for a slot of its method's workspace budget and then sends everything
    that arrived meanwhile (up to 12,000 characters a call), so when the budget is tight the
    appends are fewer and larger. A rate limit or a passing failure keeps the text pending for
    the next call: nothing is lost or sent twice. The stream starts with the first text.

    When streaming fails the page goes on as an ordinary message edited with chat.update
    (within the workspace's chat.update budget): posted, if Slack refused to start the
    stream; at once, if the stream expired (`EXPIRED`); after stopping the stream
    (chat.stopStream) on any other error, so the message never stays streaming. Text is
    streamed `quiet`; a tail that more text could still turn into a mention (`<!chan`, `@her`)
    waits for that text or for the end. `started` is awaited once the message is there
    (streaming or posted) unless it is finished at once; it must not raise.
    """

    def __init__(self, client: AsyncWebClient, place: Place, budgets: WorkspaceBudgets,
                 opening: str, *, sleep: Sleep = asyncio.sleep,
                 started: Callable[[], Awaitable[None]] | None = None) -> None:
        self._client = client
        self._place = place
        self._budgets = budgets
        self._sleep = sleep
        self._started = started
        self._text = opening
        self._streamed = ""
        self._ts: str | None = None
        self._mode = Mode.STREAMING
        self._shown = ""

    @property
    def ts(self) -> str | None:
        """The message's ts, once Slack has it."""
        return self._ts

    @property
    def text(self) -> str:
        """All the text given to the message (before `quiet`)."""
        return self._text

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
        if self._mode is Mode.STREAMING:
            try:
                return await self._stream(stop=stop)
            except SlackApiError as exc:
                if is_passing(exc):
                    raise
                self._leave_stream(exc)
        if self._mode is Mode.STOPPING:
            await self._stop_stream()
        return await self._show()

    def _unsent(self, *, final: bool) -> str:
        """The quiet text Slack has not been sent yet: all of it if `final`, else the settled."""
        ready = self._text if final else self._text[: settled(self._text)]
        return quiet(ready)[len(self._streamed):]

    async def _stream(self, *, stop: bool) -> str:
        if self._ts is None:
            async with self._budgets.slot("chat.startStream"):
                piece = self._unsent(final=stop)[:MAX_PIECE_CHARS]
                response = await self._client.chat_startStream(
                    channel=self._place.channel,
                    thread_ts=self._place.thread_ts,
                    markdown_text=piece or None,
                    recipient_user_id=self._place.recipient_user,
                    recipient_team_id=self._place.recipient_team,
                )
            self._ts = str(response["ts"])
            self._streamed += piece
            if not stop:  # a message finished in this very call needs no Stop
                await self._on_start()
        if not stop:
            await self._append(self._ts, final=False)
            return self._ts
        while len(self._unsent(final=True)) > MAX_PIECE_CHARS:
            await self._append(self._ts, final=True)
        async with self._budgets.slot("chat.stopStream"):
            piece = self._unsent(final=True)
            await self._client.chat_stopStream(channel=self._place.channel, ts=self._ts,
                                               markdown_text=piece or None)
        self._streamed += piece
        return self._ts

    async def _append(self, ts: str, *, final: bool) -> None:
        """Send the unsent text (up to MAX_PIECE_CHARS) once the budget has a slot."""
        if not self._unsent(final=final):
            return
        async with self._budgets.slot("chat.appendStream"):
            piece = self._unsent(final=final)[:MAX_PIECE_CHARS]
            await self._client.chat_appendStream(channel=self._place.channel, ts=ts,
                                                 markdown_text=piece)
        self._streamed += piece

    def _leave_stream(self, exc: SlackApiError) -> None:
        code = error_code(exc)
        if self._ts is None:
            log.info("%s: Slack does not stream this message (%s); posting it instead",
                     self._place, code)
            self._mode = Mode.EDITING
        elif code == EXPIRED:
            log.info("%s: Slack ended the stream (%s); finishing the message with chat.update",
                     self._place, code)
            self._mode = Mode.EDITING
        else:
            log.warning("%s: streaming failed (%s); stopping the stream and finishing the "
                        "message with chat.update", self._place, code)
            self._mode = Mode.STOPPING

    async def _stop_stream(self) -> None:
        """End the stream without more text (one Slack already ended counts as stopped)."""
        if self._ts is not None:
            try:
                async with self._budgets.slot("chat.stopStream"):
                    await self._client.chat_stopStream(channel=self._place.channel,
                                                       ts=self._ts)
            except SlackApiError as exc:
                if error_code(exc) != EXPIRED:
                    raise
        self._mode = Mode.EDITING

    async def _on_start(self) -> None:
        if self._started is not None:
            started, self._started = self._started, None
            await started()

    async def _show(self) -> str:
        if self._ts is None:
            with as_surface_errors():
                response = await self._client.chat_postMessage(
                    channel=self._place.channel, thread_ts=self._place.thread_ts,
                    markdown_text=quiet(self._text),
                )
            self._ts, self._shown = str(response["ts"]), self._text
            await self._on_start()
        elif self._text != self._shown:
            async with self._budgets.slot(UPDATE):
                await self._client.chat_update(
                    channel=self._place.channel, ts=self._ts, markdown_text=quiet(self._text)
                )
            self._shown = self._text
        return self._ts
