"""Background work started by adapters: failures logged, waiting and cancelling."""

from __future__ import annotations

import asyncio

import pytest

from bot.background import BackgroundWork


async def test_idle_waits_for_work_including_work_started_meanwhile() -> None:
    work = BackgroundWork()
    done: list[str] = []

    async def second() -> None:
        await asyncio.sleep(0.01)
        done.append("second")

    async def first() -> None:
        await asyncio.sleep(0.01)
        work.spawn(second(), "second")
        done.append("first")

    work.spawn(first(), "first")
    await work.idle()

    assert done == ["first", "second"]


async def test_a_failure_is_logged_not_raised(caplog: pytest.LogCaptureFixture) -> None:
    work = BackgroundWork()

    async def broken() -> None:
        raise RuntimeError("boom")

    work.spawn(broken(), "answer to test:1")
    await work.idle()

    assert "answer to test:1 failed" in caplog.text and "boom" in caplog.text


async def test_cancel_stops_running_work() -> None:
    work = BackgroundWork()
    cancelled = asyncio.Event()

    async def forever() -> None:
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    work.spawn(forever(), "forever")
    await asyncio.sleep(0)
    await work.cancel()

    assert cancelled.is_set()
    await asyncio.wait_for(work.idle(), timeout=1)


async def test_work_cancelled_before_it_began_is_closed_not_left_unawaited() -> None:
    work = BackgroundWork()
    began: list[str] = []

    async def answer() -> None:
        began.append("answer")

    coroutine = answer()
    work.spawn(coroutine, "answer")
    await work.cancel()

    assert began == []
    assert coroutine.cr_frame is None
