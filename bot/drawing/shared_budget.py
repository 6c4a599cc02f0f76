"""Edit budgets shared by every replica through Redis, and the choice between those and local.

Each budget is one Redis key holding the GCRA's theoretical arrival time (TAT) in Redis' own
clock (`TIME`), so replicas with skewed clocks agree. One Lua script reserves the caller's slot
and returns how long to wait; another pushes the TAT forward after a 429. Both run atomically
in Redis (EVALSHA, through redis-py's `register_script`). A key expires a little after its TAT
passes, when it would mean nothing anyway.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from redis.asyncio import Redis
from redis.commands.core import AsyncScript
from redis.exceptions import RedisError

from bot.drawing.pacing import (
    Clock,
    EditBudgets,
    LocalEditBudget,
    LocalEditBudgets,
    Sleep,
    gcra_timing,
)

log = logging.getLogger(__name__)

BUDGET_KEY_PREFIX = "gemini-bot:budget:"
REDIS_TIMEOUT = 1.0
"""Seconds a budget waits for Redis before it falls back to this process's budget."""
RETRY_REDIS_AFTER = 10.0
"""Seconds after a Redis failure during which budgets use this process's budget directly."""
EXPIRY_MARGIN_MS = 1000

# Lua numbers are doubles (microseconds survive at today's epoch); replies would truncate them
# to integers, so both scripts answer with strings. Redis < 5 replicates a script verbatim and
# refuses writes after TIME unless told to replicate its effects instead.
_NOW = """
if redis.replicate_commands then redis.replicate_commands() end
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
local tat = math.max(tonumber(redis.call('GET', KEYS[1])) or now, now)
"""

RESERVE_SCRIPT = _NOW + """
-- ARGV: emission interval (s), burst tolerance (s), expiry margin (ms)
local start = tat
tat = start + tonumber(ARGV[1])
redis.call('SET', KEYS[1], string.format('%.6f', tat),
           'PX', math.ceil((tat - now) * 1000) + tonumber(ARGV[3]))
return string.format('%.6f', start - tonumber(ARGV[2]) - now)
"""
"""Reserve the next free slot; answer the seconds to wait for it (<= 0: go now)."""

PAUSE_SCRIPT = _NOW + """
-- ARGV: pause (s), burst tolerance (s), expiry margin (ms)
local held = now + tonumber(ARGV[1]) + tonumber(ARGV[2])
if held > tat then
  tat = held
  redis.call('SET', KEYS[1], string.format('%.6f', tat),
             'PX', math.ceil((tat - now) * 1000) + tonumber(ARGV[3]))
end
return string.format('%.6f', tat - now)
"""
"""Push the next free slot to at least the pause from now (never earlier); answer the seconds
until it."""


class _SharedGcra:
    """The two scripts on one Redis, and whether that Redis has been answering.

    A call that fails (refused, timed out, any Redis error) answers None, logs one warning for
    the outage, and makes the next `RETRY_REDIS_AFTER` seconds answer None without trying.
    """

    def __init__(self, redis: Redis, interval: float, tolerance: float, *, timeout: float,
                 clock: Clock) -> None:
        self._reserve = redis.register_script(RESERVE_SCRIPT)
        self._pause = redis.register_script(PAUSE_SCRIPT)
        self._interval, self._tolerance = interval, tolerance
        self._timeout = timeout
        self._clock = clock
        self._down_until: float | None = None

    async def reserve(self, key: str) -> float | None:
        """Seconds until `key`'s reserved slot, or None when Redis did not answer."""
        return await self._run(self._reserve, key, self._interval)

    async def pause(self, key: str, seconds: float) -> float | None:
        """Seconds until `key`'s next slot after the pause, or None when Redis did not
        answer."""
        return await self._run(self._pause, key, seconds)

    async def _run(self, script: AsyncScript, key: str, first: float) -> float | None:
        if self._down_until is not None and self._clock() < self._down_until:
            return None
        try:
            async with asyncio.timeout(self._timeout):
                reply: Any = await script(keys=[key],
                                          args=[first, self._tolerance, EXPIRY_MARGIN_MS])
            seconds = float(reply)
        except (RedisError, OSError) as exc:
            if self._down_until is None:
                log.warning("edit budget %s: Redis failed (%s); budgets use this process's "
                            "own until Redis answers again", key, _describe(exc))
            self._down_until = self._clock() + RETRY_REDIS_AFTER
            return None
        if self._down_until is not None:
            log.info("edit budget %s: Redis answers again; budgets are shared again", key)
            self._down_until = None
        return seconds


class RedisEditBudget:
    """One scope's budget, shared by every replica through Redis.

    If Redis fails (connection refused, timeout, an error reply), the call never blocks for
    long or raises: after one warning it uses this process's budget for the scope (which
    every 429 also pauses), as the bot does without Redis, until Redis answers again.
    """

    def __init__(self, gcra: _SharedGcra, key: str, fallback: LocalEditBudget, *,
                 sleep: Sleep = asyncio.sleep) -> None:
        self._gcra = gcra
        self._key = key
        self._fallback = fallback
        self._sleep = sleep

    async def acquire(self) -> None:
        """Wait for this caller's slot in the shared budget."""
        wait = await self._gcra.reserve(self._key)
        if wait is None:
            await self._fallback.acquire()
        elif wait > 0:
            await self._sleep(wait)

    async def pause(self, seconds: float) -> None:
        """Hold every caller on every replica back for `seconds`, after the platform answered
        429."""
        await self._fallback.pause(seconds)
        held = await self._gcra.pause(self._key, seconds)
        if held is not None:
            log.debug("edit budget %s: paused, next slot in %.1fs", self._key, held)


class RedisEditBudgets:
    """The budgets of one platform shared through Redis, one key per scope (`prefix` + scope).

    Replicas share a budget when they use the same Redis, `prefix` and scope; give each
    platform its own `prefix`.
    """

    def __init__(
        self,
        redis: Redis,
        rate: int,
        period: float,
        burst: int = 1,
        *,
        prefix: str = BUDGET_KEY_PREFIX,
        timeout: float = REDIS_TIMEOUT,
        clock: Clock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        interval, tolerance = gcra_timing(rate, period, burst)
        self._gcra = _SharedGcra(redis, interval, tolerance, timeout=timeout, clock=clock)
        self._prefix = prefix
        self._fallback = LocalEditBudgets(rate, period, burst, clock=clock, sleep=sleep)
        self._sleep = sleep

    def for_scope(self, scope: str) -> RedisEditBudget:
        """The budget shared by everything drawn in `scope`, on every replica."""
        return RedisEditBudget(self._gcra, self._prefix + scope, self._fallback.for_scope(scope),
                               sleep=self._sleep)


def edit_budgets(rate: int, period: float, burst: int = 1, *, redis: Redis | None,
                 prefix: str = BUDGET_KEY_PREFIX) -> EditBudgets:
    """A platform's edit budgets: shared through `redis` (under `prefix`) when there is one,
    else this process's own."""
    if redis is None:
        return LocalEditBudgets(rate, period, burst)
    return RedisEditBudgets(redis, rate, period, burst, prefix=prefix)


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
