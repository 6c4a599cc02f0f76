"""Trouble a test asks for: errors on the next calls of a method, per-method rate limits
(429 with ``Retry-After``) and calls held unanswered."""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from dataclasses import dataclass

from tests.fakes.slack.records import SlackError
from tests.fakes.slack.state import SlackState


@dataclass
class _Injected:
    error: str
    status: int
    headers: dict[str, str]
    remaining: int


class Faults:
    """``rate_limits`` maps a method to (calls, window in seconds); ``retry_after`` fixes the
    ``Retry-After`` of a 429 (default: until the oldest call leaves the window)."""

    def __init__(self, state: SlackState, rate_limits: dict[str, tuple[int, float]],
                 retry_after: int | None) -> None:
        self.state = state
        self.rate_limits = rate_limits
        self.retry_after = retry_after
        self._hits: dict[str, deque[float]] = {}
        self._injected: dict[str, list[_Injected]] = {}
        self.holds: dict[str, asyncio.Event] = {}

    def fail_next(self, method: str, error: str, status: int, headers: dict[str, str],
                  times: int) -> None:
        self._injected.setdefault(method, []).append(_Injected(error, status, headers, times))

    def set_rate_limit(self, method: str, limit: int | None, window: float) -> None:
        if limit is None:
            self.rate_limits.pop(method, None)
        else:
            self.rate_limits[method] = (limit, window)
        self._hits.pop(method, None)

    def check(self, method: str) -> None:
        """Raise the injected error or the 429 due for this call of ``method``, if any."""
        if queue := self._injected.get(method):
            injected = queue[0]
            injected.remaining -= 1
            if injected.remaining <= 0:
                queue.pop(0)
            if injected.error == "ratelimited":
                self.state.rate_limited += 1
            raise SlackError(injected.error, status=injected.status, headers=injected.headers)
        if method not in self.rate_limits:
            return
        max_calls, window = self.rate_limits[method]
        now = time.monotonic()
        hits = self._hits.setdefault(method, deque())
        while hits and now - hits[0] >= window:
            hits.popleft()
        if len(hits) >= max_calls:
            self.state.rate_limited += 1
            retry = self.retry_after
            if retry is None:
                retry = max(1, math.ceil(hits[0] + window - now))
            raise SlackError("ratelimited", status=429, headers={"Retry-After": str(retry)})
        hits.append(now)
