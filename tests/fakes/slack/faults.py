"""Trouble a test asks for, and Slack's own rate limits: errors on the next calls of a method,
per-method limits (429 with ``Retry-After``), each method's tier, and calls held unanswered."""

from __future__ import annotations

import asyncio
import math
from collections import deque
from dataclasses import dataclass

from tests.fakes.slack.records import SlackError
from tests.fakes.slack.state import SlackState

TIER_CALLS = {2: 20, 3: 50, 4: 100}
"""Calls a workspace may make per window (Slack's window: a minute) in each rate-limit tier."""
TIER_BURST_SHARE = 4
"""A tier allows a burst of a quarter of its window's calls; after it, calls come evenly."""


@dataclass
class _Injected:
    error: str
    status: int
    headers: dict[str, str]
    remaining: int


class TierLimits:
    """Slack's per-method limits in one workspace: a method of tier T takes ``TIER_CALLS[T]``
    calls per ``window`` seconds, evenly spaced after a small burst (a GCRA, as Slack's
    limiter behaves); the call past that gets 429 with the seconds until the next one."""

    def __init__(self, state: SlackState, tiers: dict[str, int], window: float) -> None:
        self.state = state
        self.tiers = tiers
        self.window = window
        self._next: dict[tuple[str, str], float] = {}

    def check(self, method: str, team: str, retry_after: int | None) -> None:
        """Take a slot of ``method`` in ``team``, or raise the 429 Slack would answer."""
        tier = self.tiers.get(method)
        if tier is None:
            return
        calls = TIER_CALLS[tier]
        interval = self.window / calls
        tolerance = interval * (max(1, calls // TIER_BURST_SHARE) - 1)
        now = self.state.clock()
        due = max(self._next.get((method, team), now), now)
        if due - now > tolerance:
            wait = retry_after if retry_after is not None else max(1, math.ceil(due - tolerance
                                                                               - now))
            raise SlackError("ratelimited", status=429, headers={"Retry-After": str(wait)})
        self._next[(method, team)] = due + interval


class Faults:
    """``rate_limits`` maps a method to (calls, window in seconds) counted over a sliding
    window, on top of its tier (``tiers``, per ``tier_window``); ``retry_after`` fixes the
    ``Retry-After`` of every 429 (default: until the next call would be allowed)."""

    def __init__(self, state: SlackState, rate_limits: dict[str, tuple[int, float]],
                 retry_after: int | None, tiers: dict[str, int], tier_window: float) -> None:
        self.state = state
        self.rate_limits = rate_limits
        self.retry_after = retry_after
        self.tier_limits = TierLimits(state, tiers, tier_window)
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

    def check(self, method: str, team: str) -> None:
        """Raise the injected error or the 429 due for this call of ``method``, if any."""
        try:
            self._check(method, team)
        except SlackError as err:
            if err.error == "ratelimited":
                self.state.rate_limited += 1
            raise

    def _check(self, method: str, team: str) -> None:
        if queue := self._injected.get(method):
            injected = queue[0]
            injected.remaining -= 1
            if injected.remaining <= 0:
                queue.pop(0)
            raise SlackError(injected.error, status=injected.status, headers=injected.headers)
        self._check_window(method)
        self.tier_limits.check(method, team, self.retry_after)
        if method in self.rate_limits:
            self._hits[method].append(self.state.clock())

    def _check_window(self, method: str) -> None:
        if method not in self.rate_limits:
            return
        max_calls, window = self.rate_limits[method]
        now = self.state.clock()
        hits = self._hits.setdefault(method, deque())
        while hits and now - hits[0] >= window:
            hits.popleft()
        if len(hits) >= max_calls:
            retry = self.retry_after
            if retry is None:
                retry = max(1, math.ceil(hits[0] + window - now))
            raise SlackError("ratelimited", status=429, headers={"Retry-After": str(retry)})
