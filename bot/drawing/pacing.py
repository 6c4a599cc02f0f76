"""Edit budgets: one platform rate limit shared fairly by every reply drawn in its scope."""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]

MAX_BUDGETS = 10_000


class EditBudget:
    """A rate limit (`rate` calls per `period` seconds, bursts up to `burst`) shared by callers.

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
        if rate < 1 or period <= 0 or burst < 1:
            raise ValueError("an edit budget needs rate >= 1, period > 0 and burst >= 1")
        self._interval = period / rate
        self._tolerance = self._interval * (burst - 1)
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

    def pause(self, seconds: float) -> None:
        """Hold every caller back for `seconds`, after the platform answered 429."""
        self._next = max(self._next, self._clock() + seconds + self._tolerance)


class EditBudgets:
    """The budgets of one platform, one per scope (a workspace, a channel), made on demand."""

    def __init__(
        self,
        rate: int,
        period: float,
        burst: int = 1,
        *,
        clock: Clock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self._rate, self._period, self._burst = rate, period, burst
        self._clock, self._sleep = clock, sleep
        self._budgets: OrderedDict[str, EditBudget] = OrderedDict()

    def for_scope(self, scope: str) -> EditBudget:
        """The budget shared by everything drawn in `scope`."""
        budget = self._budgets.get(scope)
        if budget is None:
            budget = EditBudget(self._rate, self._period, self._burst, clock=self._clock,
                                sleep=self._sleep)
            self._budgets[scope] = budget
            if len(self._budgets) > MAX_BUDGETS:
                self._budgets.popitem(last=False)
        else:
            self._budgets.move_to_end(scope)
        return budget
