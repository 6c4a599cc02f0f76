"""Edit budgets: one platform rate limit shared fairly by every reply drawn in its scope.

`EditBudget` and `EditBudgets` are the interface the renderer and the adapters use; the
in-process implementation is here, the one shared by replicas through Redis is in
`bot.drawing.shared_budget`.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Protocol

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]

MAX_BUDGETS = 10_000


class EditBudget(Protocol):
    """A rate limit shared by every caller in one scope (a Slack workspace, a Discord channel)."""

    async def acquire(self) -> None:
        """Wait for this caller's slot."""

    async def pause(self, seconds: float) -> None:
        """Hold every caller back for `seconds`, after the platform answered 429."""


class EditBudgets(Protocol):
    """The budgets of one platform, one per scope."""

    def for_scope(self, scope: str) -> EditBudget:
        """The budget shared by everything drawn in `scope`."""


def gcra_timing(rate: int, period: float, burst: int) -> tuple[float, float]:
    """The GCRA's emission interval and burst tolerance, in seconds, for `rate` calls per
    `period` seconds in bursts of up to `burst`."""
    if rate < 1 or period <= 0 or burst < 1:
        raise ValueError("an edit budget needs rate >= 1, period > 0 and burst >= 1")
    interval = period / rate
    return interval, interval * (burst - 1)


class LocalEditBudget:
    """A rate limit (`rate` calls per `period` seconds, bursts up to `burst`) shared by the
    callers in this process.

    Each caller reserves the next free slot before waiting, so waiters are served in arrival
    order and concurrent replies divide the budget instead of each assuming all of it.
    """

    def __init__(
        self,
        rate: int,
        period: float,
        burst: int = 1,
        *,
        clock: Clock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self._interval, self._tolerance = gcra_timing(rate, period, burst)
        self._clock = clock
        self._sleep = sleep
        self._next = clock()

    async def acquire(self) -> None:
        """Wait for this caller's slot."""
        now = self._clock()
        start = max(self._next, now)
        self._next = start + self._interval
        wait = start - self._tolerance - now
        if wait > 0:
            await self._sleep(wait)

    async def pause(self, seconds: float) -> None:
        """Hold every caller back for `seconds`, after the platform answered 429."""
        self._next = max(self._next, self._clock() + seconds + self._tolerance)


class LocalEditBudgets:
    """The in-process budgets of one platform, one per scope, made on demand (the least
    recently used dropped beyond `MAX_BUDGETS`)."""

    def __init__(
        self,
        rate: int,
        period: float,
        burst: int = 1,
        *,
        clock: Clock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        gcra_timing(rate, period, burst)
        self._rate, self._period, self._burst = rate, period, burst
        self._clock, self._sleep = clock, sleep
        self._budgets: OrderedDict[str, LocalEditBudget] = OrderedDict()

    def for_scope(self, scope: str) -> LocalEditBudget:
        """The budget shared by everything drawn in `scope`."""
        budget = self._budgets.get(scope)
        if budget is None:
            budget = LocalEditBudget(self._rate, self._period, self._burst, clock=self._clock,
                                     sleep=self._sleep)
            self._budgets[scope] = budget
            if len(self._budgets) > MAX_BUDGETS:
                self._budgets.popitem(last=False)
        else:
            self._budgets.move_to_end(scope)
        return budget


class TimedEditBudget:
    """A budget that tells `waited` how long each caller waited for its slot, in seconds."""

    def __init__(self, budget: EditBudget, waited: Callable[[float], None], *,
                 clock: Clock = time.monotonic) -> None:
        self._budget = budget
        self._waited = waited
        self._clock = clock

    async def acquire(self) -> None:
        """Wait for this caller's slot, and report the wait."""
        started = self._clock()
        await self._budget.acquire()
        self._waited(self._clock() - started)

    async def pause(self, seconds: float) -> None:
        """Hold every caller back for `seconds`, after the platform answered 429."""
        await self._budget.pause(seconds)
