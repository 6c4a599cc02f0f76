"""Waiting, bounded, for something another task or process does."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable

STEP = 0.01


async def until(condition: Callable[[], bool | Awaitable[bool]], *, within: float = 30.0,
                what: str = "the condition") -> None:
    """Return once `condition()` is true; fail the test if it is not within `within` seconds
    (a generous bound on a loaded machine, not a measurement)."""
    for _ in range(int(within / STEP)):
        result = condition()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return
        await asyncio.sleep(STEP)
    raise AssertionError(f"{what} did not happen within {within:.0f} s")
