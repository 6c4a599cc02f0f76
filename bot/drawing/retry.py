"""Retrying the last call of a reply (its final text) until it lands."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

from bot.drawing.pacing import Sleep
from bot.errors import DeliveryFailed, RateLimited

log = logging.getLogger(__name__)

T = TypeVar("T")

FINAL_ATTEMPTS = 8
FIRST_BACKOFF = 1.0
MAX_BACKOFF = 30.0


async def retry_until_done(
    attempt: Callable[[], Awaitable[T]], *, what: str, sleep: Sleep,
    rate_limited: Callable[[RateLimited], Awaitable[None]],
) -> T:
    """Call `attempt` until it succeeds, at most FINAL_ATTEMPTS times.

    A RateLimited is handed to `rate_limited` (which waits, or arranges the wait); a
    DeliveryFailed is raised at once; any other error is logged and retried after a backoff
    that doubles from FIRST_BACKOFF to MAX_BACKOFF. When every attempt failed, DeliveryFailed
    says so.
    """
    backoff = FIRST_BACKOFF
    for number in range(1, FINAL_ATTEMPTS + 1):
        try:
            return await attempt()
        except RateLimited as limited:
            await rate_limited(limited)
        except DeliveryFailed:
            raise
        except Exception as exc:
            log.warning("%s failed (attempt %d of %d): %r", what, number, FINAL_ATTEMPTS, exc)
            await sleep(backoff)
            backoff = min(backoff * 2, MAX_BACKOFF)
    raise DeliveryFailed(f"gave up {what} after {FINAL_ATTEMPTS} attempts")
