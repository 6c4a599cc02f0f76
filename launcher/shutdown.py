"""Stopping for a restart: the first SIGTERM or SIGINT drains the bot, a second one stops it
at once."""

from __future__ import annotations

import asyncio
import logging
import signal
from typing import Any

from bot import Service
from launcher.readiness import Readiness

log = logging.getLogger(__name__)

SIGNALS = (signal.SIGTERM, signal.SIGINT)
CUT_ANSWERS_SECONDS = 10.0
"""How long the answers cut at the end of the grace get to show their text and notice."""


class ShutdownSignals:
    """SIGTERM and SIGINT while installed: the first sets `requested` (drain, then stop); a
    second cancels `task` at once. Without `drains`, the first one cancels `task` already."""

    def __init__(self, task: asyncio.Task[Any], *, drains: bool = True) -> None:
        self._task = task
        self._drains = drains
        self.requested = asyncio.Event()

    def install(self) -> None:
        """Handle the signals on the running loop."""
        loop = asyncio.get_running_loop()
        for signum in SIGNALS:
            loop.add_signal_handler(signum, self.received, signum)

    def received(self, signum: int) -> None:
        """One signal came."""
        name = signal.Signals(signum).name
        if self._drains and not self.requested.is_set():
            log.info("%s: finishing the answers in progress, then stopping (send it again "
                     "to stop at once)", name)
            self.requested.set()
            return
        log.warning("%s: stopping at once; the answers in progress keep their text so far", name)
        self._task.cancel()


async def drain(service: Service, readiness: Readiness, grace: float) -> None:
    """Take no new messages (`/readyz` says so), let the answers in progress finish for up
    to `grace` seconds, then cut those still going, keeping their text with a notice."""
    readiness.drain()
    service.drain()
    if service.busy:
        log.info("waiting up to %g s for %d messages in progress", grace, service.busy)
    if await _idle_within(service, grace):
        return
    cut = service.cut()
    log.warning("cut %d answers still being written after %g s", cut, grace)
    if not await _idle_within(service, CUT_ANSWERS_SECONDS):
        log.warning("%d messages were still in progress %g s after the cut; stopping anyway",
                    service.busy, CUT_ANSWERS_SECONDS)


async def _idle_within(service: Service, seconds: float) -> bool:
    try:
        async with asyncio.timeout(seconds):
            await service.idle()
    except TimeoutError:
        return False
    return True
