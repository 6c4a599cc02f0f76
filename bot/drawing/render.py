"""Drawing a streamed answer on a surface: first text at once, paced edits, never lost text."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass

from bot.drawing.pacing import Clock, EditBudget, Sleep
from bot.drawing.paging import Page, open_fence_at_end, paginate, safe_length
from bot.drawing.retry import retry_until_done
from bot.drawing.surface import StatusSurface, StreamingSurface, Surface, TextStream
from bot.errors import DeliveryFailed, RateLimited

log = logging.getLogger(__name__)

PROGRESS_EVERY = 8.0


@dataclass(frozen=True, slots=True)
class Rendered:
    """What a finished reply left on the platform."""

    message_ids: tuple[str, ...]
    delivered: bool


@dataclass(slots=True)
class _Shown:
    message_id: str
    text: str
    final: bool


class Renderer(ABC):
    """What both renderers share: the growing text, the drawing loop, pacing, progress.

    Drawing runs in a background task: it wakes when text arrives, waits until the pace
    allows, and draws; only one platform call is in flight at a time. A rate-limit answer
    pushes the next call back (and pauses the shared budget); a lost message stops drawing.
    The final pass repeats until the complete text is shown.
    """

    def __init__(self, surface: Surface, budget: EditBudget | None = None, *,
                 clock: Clock = time.monotonic, sleep: Sleep = asyncio.sleep) -> None:
        self._surface = surface
        self._budget = budget
        self._clock = clock
        self._sleep = sleep
        self._chunks: list[str] = []
        self._text = ""
        self._note = ""
        self._status = ""
        self._finished = False
        self._failed = False
        self._next_at = float("-inf")
        self._limited_until = float("-inf")
        self._changed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._progress: asyncio.Task[None] | None = None

    @property
    def text(self) -> str:
        """The answer text fed so far."""
        if self._chunks:
            self._text += "".join(self._chunks)
            self._chunks.clear()
        return self._text

    @property
    @abstractmethod
    def has_output(self) -> bool:
        """Whether anything has been shown yet."""

    @property
    def message_ids(self) -> tuple[str, ...]:
        """The platform ids of the messages shown so far."""
        return self._message_ids()

    @property
    def delivery_failed(self) -> bool:
        """Whether the platform can no longer show this reply (deleted thread, lost access)."""
        return self._failed

    def start(self) -> None:
        """Begin showing progress and drawing in the background."""
        self._progress = asyncio.create_task(self._keep_progress())
        self._task = asyncio.create_task(self._draw_loop())

    def feed(self, text: str) -> None:
        """Add answer text; it is drawn when the pace allows (replacing any status line)."""
        if text:
            self._status = ""
            self._chunks.append(text)
            self._changed.set()

    async def show_status(self, text: str) -> None:
        """Show one status line (a tool at work) until the next text replaces it: on the
        surface's own status when it has one, else drawn after the text so far. "" ends it
        on a surface's own status; a drawn line waits for the next text."""
        if isinstance(self._surface, StatusSurface):
            try:
                await self._surface.show_status(text)
            except Exception as exc:
                log.info("showing a status failed: %s", exc)
            return
        if text:
            self._status = text
            self._changed.set()

    async def finish(self, note: str = "") -> Rendered:
        """Draw the complete answer (plus `note`, such as an error) and return where it is."""
        self._finished = True
        self._note = note
        self._changed.set()
        if self._task is not None:
            await self._task
        self._stop_progress()
        if not self._failed:
            await self._draw_final()
        return Rendered(self.message_ids, delivered=not self._failed)

    async def cancel(self) -> None:
        """Stop drawing at once, without a final pass (the reply itself was cancelled)."""
        self._stop_progress()
        if self._task is not None and not self._task.done():
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _keep_progress(self) -> None:
        while not self.has_output:
            try:
                await self._surface.show_progress()
            except Exception as exc:
                log.debug("progress indicator failed: %s", exc)
            await asyncio.sleep(PROGRESS_EVERY)

    def _stop_progress(self) -> None:
        if self._progress is not None and not self._progress.done():
            self._progress.cancel()

    def _full_text(self) -> str:
        text = self.text
        if self._note:
            return f"{text}\n\n{self._note}" if text.strip() else self._note
        return text

    async def _wait_for_pace(self) -> None:
        delay = self._next_at - self._clock()
        if delay > 0:
            await self._sleep(delay)

    async def _wait_for_rate_limit(self) -> None:
        """Wait out the platform's last 429, before a post as well as an edit."""
        delay = self._limited_until - self._clock()
        if delay > 0:
            await self._sleep(delay)

    async def _rate_limited(self, limited: RateLimited) -> None:
        log.info("platform rate limit: waiting %.1fs before the next call", limited.retry_after)
        self._limited_until = self._clock() + limited.retry_after
        self._next_at = max(self._next_at, self._limited_until)
        if self._budget is not None:
            await self._budget.pause(limited.retry_after)

    def _lost(self, exc: DeliveryFailed) -> None:
        log.warning("the reply can no longer be shown: %s", exc)
        self._failed = True
        self._stop_progress()

    async def _draw_loop(self) -> None:
        while True:
            await self._changed.wait()
            if self._finished:
                return
            self._changed.clear()
            if self.has_output:
                await self._wait_for_pace()
            await self._wait_for_rate_limit()
            if self._finished:
                return
            try:
                await self._draw(final=False)
            except RateLimited as limited:
                await self._rate_limited(limited)
                self._changed.set()
            except DeliveryFailed as exc:
                self._lost(exc)
                return
            except Exception:
                log.exception("drawing an intermediate version failed")

    async def _draw_final(self) -> None:
        async def attempt() -> None:
            await self._wait_for_rate_limit()
            await self._draw(final=True)

        async def note(limited: RateLimited) -> None:
            await self._rate_limited(limited)

        try:
            await retry_until_done(attempt, what="drawing the final text", sleep=self._sleep,
                                   rate_limited=note)
        except DeliveryFailed as exc:
            self._lost(exc)

    @abstractmethod
    async def _draw(self, *, final: bool) -> None:
        """Show the text so far (or, when `final`, the complete text and note)."""

    @abstractmethod
    def _message_ids(self) -> tuple[str, ...]:
        """The platform ids of the messages shown so far."""


class EditRenderer(Renderer):
    """Post the first text at once, then edit at most once per interval, continuing in new
    messages at the length limit; every edit also takes a slot from the shared budget."""

    def __init__(self, surface: Surface, budget: EditBudget | None = None, *,
                 clock: Clock = time.monotonic, sleep: Sleep = asyncio.sleep) -> None:
        super().__init__(surface, budget, clock=clock, sleep=sleep)
        self._shown: list[_Shown] = []
        self.edit_times: list[float] = []

    @property
    def has_output(self) -> bool:
        """Whether a message has been posted."""
        return bool(self._shown)

    def _message_ids(self) -> tuple[str, ...]:
        return tuple(s.message_id for s in self._shown)

    async def _draw(self, *, final: bool) -> None:
        text_so_far = self._full_text() if final else self._with_status(self.text)
        limit = self._surface.limits.max_message_chars
        pages = [p for p in paginate(text_so_far, limit) if p.text.strip()]
        marks_final = self._surface.limits.final_edit_marks
        for index, page in enumerate(pages):
            page_final = final or index < len(pages) - 1
            text = page.text if page_final else _closed(page)
            if index < len(self._shown):
                shown = self._shown[index]
                if shown.text != text or (page_final and not shown.final and marks_final):
                    await self._edit(shown, text, page_final)
            else:
                message_id = await self._surface.post(text, final=page_final)
                self._shown.append(_Shown(message_id, text, page_final))
                self._next_at = max(self._next_at,
                                    self._clock() + self._surface.limits.min_edit_interval)
                self._stop_progress()

    def _with_status(self, text: str) -> str:
        """The text with the status line after it, when the line fits on the last page."""
        if not self._status:
            return text
        if not text.strip():
            return self._status
        shown = f"{text.rstrip()}\n\n{self._status}"
        limit = self._surface.limits.max_message_chars
        return shown if len(paginate(shown, limit)) == len(paginate(text, limit)) else text

    async def _edit(self, shown: _Shown, text: str, final: bool) -> None:
        await self._wait_for_pace()
        if self._budget is not None:
            await self._budget.acquire()
        started = self._clock()
        self.edit_times.append(started)
        self._next_at = started + self._surface.limits.min_edit_interval
        await self._surface.edit(shown.message_id, text, final=final)
        shown.text, shown.final = text, final


class StreamRenderer(Renderer):
    """Draw on a platform-native stream: append text once it is final, a stream per page."""

    def __init__(self, surface: StreamingSurface, *, clock: Clock = time.monotonic,
                 sleep: Sleep = asyncio.sleep) -> None:
        super().__init__(surface, clock=clock, sleep=sleep)
        self._streaming_surface = surface
        self._streams: list[TextStream] = []
        self._ids: list[str] = []
        self._sent = 0
        self._page = 0

    @property
    def has_output(self) -> bool:
        """Whether a stream has been opened."""
        return bool(self._streams)

    def _message_ids(self) -> tuple[str, ...]:
        return tuple(self._ids)

    async def _draw(self, *, final: bool) -> None:
        if not final:
            self._next_at = self._clock() + self._surface.limits.min_edit_interval
        text = self._full_text() if final else self.text
        limit = self._surface.limits.max_message_chars
        pages = paginate(text, limit)
        start = sum(len(p.body) for p in pages[: self._page])
        while self._page < len(pages):
            page = pages[self._page]
            if self._page == len(pages) - 1 and not final:
                end = max(safe_length(text, limit), start + self._sent)
                await self._append(page, text[start + self._sent : end])
                return
            await self._append(page, page.body[self._sent :] + page.closing)
            await self._close_current()
            start += len(page.body)

    async def _append(self, page: Page, text: str) -> None:
        if not text:
            return
        if len(self._streams) <= self._page:
            self._streams.append(await self._streaming_surface.open_stream(page.opening))
            self._stop_progress()
        await self._streams[self._page].append(text)
        self._sent += len(text)

    async def _close_current(self) -> None:
        if len(self._streams) > self._page:
            self._ids.append(await self._streams[self._page].close())
        self._page += 1
        self._sent = 0


def _closed(page: Page) -> str:
    fence = open_fence_at_end(page.opening + page.body)
    if fence is None:
        return page.text
    return page.text + ("" if page.body.endswith("\n") else "\n") + fence[0]


def renderer_for(surface: Surface, budget: EditBudget | None, *, clock: Clock = time.monotonic,
                 sleep: Sleep = asyncio.sleep) -> Renderer:
    """The native-stream renderer when the surface offers streaming, else post-then-edit."""
    if isinstance(surface, StreamingSurface):
        return StreamRenderer(surface, clock=clock, sleep=sleep)
    return EditRenderer(surface, budget, clock=clock, sleep=sleep)
