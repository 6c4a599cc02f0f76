"""Housekeeping the core does while it runs."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from redis.asyncio import Redis
from redis.exceptions import RedisError
from sqlalchemy import Connection, func, insert, select

from bot.app import EVENT_MEMORY, open_core, prune_events
from bot.config import Settings
from bot.drawing.pacing import LocalEditBudget
from bot.drawing.shared_budget import BUDGET_KEY_PREFIX
from bot.storage.schema import PROCESSED_EVENTS
from bot.storage.store import Store
from tests.support.clock import FakeClock

REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


async def test_processed_events_are_pruned_on_a_schedule_not_only_at_start(
    store: Store,
) -> None:
    old = datetime.now(UTC) - EVENT_MEMORY - timedelta(hours=1)

    async def add_old_event(event_id: str) -> None:
        await store.database.run(Connection.execute, insert(PROCESSED_EVENTS).values(
            platform="test", event_id=event_id, created_at=old))

    async def events() -> list[str]:
        query = select(PROCESSED_EVENTS.c.event_id).order_by(PROCESSED_EVENTS.c.event_id)
        return await store.database.run(lambda c: list(c.execute(query).scalars()))

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
    assert await store.database.run(
        Connection.scalar, select(func.count()).select_from(PROCESSED_EVENTS)) == 1


async def test_with_redis_url_the_cores_budgets_are_shared_through_redis(
    make_settings: Callable[..., Settings],
) -> None:
    platform = f"test-{uuid.uuid4().hex[:12]}"
    admin = Redis.from_url(REDIS_URL)
    try:
        await admin.ping()
    except (RedisError, OSError) as exc:
        await admin.aclose()
        if os.environ.get("CI") == "true":
            pytest.fail(f"Redis at {REDIS_URL} is not reachable ({exc}); CI needs it")
        pytest.skip(f"Redis at {REDIS_URL} is not reachable ({exc})")
    settings = make_settings(redis_url=REDIS_URL)
    try:
        async with open_core(settings) as first, open_core(settings) as second:
            await first.edit_budgets(platform, 1000, 1.0, 1).for_scope("T1").acquire()
            await second.edit_budgets(platform, 1000, 1.0, 1).for_scope("T1").acquire()
            keys = await admin.keys(f"{BUDGET_KEY_PREFIX}{platform}:*")
        assert keys == [f"{BUDGET_KEY_PREFIX}{platform}:T1".encode()]
    finally:
        await admin.aclose()


async def test_without_redis_url_the_budgets_are_this_processes_own(
    make_settings: Callable[..., Settings],
) -> None:
    async with open_core(make_settings()) as core:
        assert core.redis is None
        budget = core.edit_budgets("slack", 10, 1.0, 1).for_scope("T1")
        assert isinstance(budget, LocalEditBudget)
