"""Housekeeping the core does while it runs."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, insert, select

from bot.app import EVENT_MEMORY, prune_events
from bot.storage.schema import ProcessedEventRow
from bot.storage.store import Store
from tests.support.clock import FakeClock


async def test_processed_events_are_pruned_on_a_schedule_not_only_at_start(
    store: Store,
) -> None:
    old = datetime.now(UTC) - EVENT_MEMORY - timedelta(hours=1)

    async def add_old_event(event_id: str) -> None:
        async with store.engine.begin() as connection:
            await connection.execute(insert(ProcessedEventRow).values(
                platform="test", event_id=event_id, created_at=old))

    async def events() -> list[str]:
        async with store.engine.connect() as connection:
            return list((await connection.execute(
                select(ProcessedEventRow.event_id).order_by(ProcessedEventRow.event_id)
            )).scalars())

    await add_old_event("old-1")
    assert await store.claim_event("test", "fresh")
    clock = FakeClock()
    pruning = asyncio.create_task(prune_events(store, every=600, sleep=clock.sleep))
    while await events() != ["fresh"]:
        await clock.settle()
    await add_old_event("old-2")
    await clock.advance(599)
    assert await events() == ["fresh", "old-2"]
    await clock.advance(1)
    while await events() != ["fresh"]:
        await clock.settle()
    pruning.cancel()
    async with store.engine.connect() as connection:
        assert await connection.scalar(
            select(func.count()).select_from(ProcessedEventRow)) == 1
