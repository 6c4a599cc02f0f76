"""Edit budgets shared through the machine's Redis: replicas take turns, a 429 pauses them all,
burst and waits match the in-process budget, and a Redis that fails costs no reply.

Slots are 100 s apart and sleeps are recorded, not slept, so the tests compare the waits each
replica was told (within `TOLERANCE`, for the real time the calls take), never wall time.
"""

from __future__ import annotations

import asyncio
import logging
import os
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest
from redis.asyncio import Redis

from bot.drawing.pacing import EditBudget, LocalEditBudget, LocalEditBudgets
from bot.drawing.render import EditRenderer
from bot.drawing.shared_budget import RedisEditBudgets, edit_budgets
from bot.drawing.surface import SurfaceLimits
from bot.errors import RateLimited
from tests.support.clock import FakeClock
from tests.support.redis import reachable_redis
from tests.support.surfaces import RecordingSurface

REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
SLOT = 100.0
TOLERANCE = 3.0


@dataclass
class Waits:
    """A `sleep` that records how long it was asked to wait, and returns at once."""

    asked: list[float] = field(default_factory=list)

    async def sleep(self, seconds: float) -> None:
        self.asked.append(seconds)

    async def of(self, budget: EditBudget) -> float:
        """How long `budget.acquire()` waited (0 when it did not sleep)."""
        before = len(self.asked)
        await budget.acquire()
        return self.asked[before] if len(self.asked) > before else 0.0


@dataclass
class Replicas:
    """Replicas of the bot on the machine's Redis: each with its own client, one key prefix."""

    prefix: str
    clients: list[Redis] = field(default_factory=list)

    def budgets(self, burst: int = 1) -> tuple[RedisEditBudgets, Waits]:
        """A new replica's budgets (one slot every `SLOT` seconds) and its recorded waits."""
        client = Redis.from_url(REDIS_URL)
        self.clients.append(client)
        waits = Waits()
        return RedisEditBudgets(client, 1, SLOT, burst, prefix=self.prefix,
                                sleep=waits.sleep), waits


@pytest.fixture
async def replicas() -> AsyncIterator[Replicas]:
    """Replicas sharing a key prefix of their own on the machine's Redis; its keys go after."""
    admin = await reachable_redis(REDIS_URL, "shared budget runs")
    made = Replicas(prefix=f"gemini-bot-test:{uuid.uuid4().hex[:12]}:budget:")
    try:
        yield made
    finally:
        for client in made.clients:
            await client.aclose()
        keys = [key async for key in admin.scan_iter(match=made.prefix + "*")]
        if keys:
            await admin.delete(*keys)
        await admin.aclose()


async def test_two_replicas_take_turns_in_one_workspace(replicas: Replicas) -> None:
    one, one_waits = replicas.budgets()
    two, two_waits = replicas.budgets()

    waits = []
    for _ in range(2):
        waits.append(await one_waits.of(one.for_scope("T1")))
        waits.append(await two_waits.of(two.for_scope("T1")))

    assert waits == pytest.approx([0.0, SLOT, 2 * SLOT, 3 * SLOT], abs=TOLERANCE)


async def test_scopes_are_budgeted_apart(replicas: Replicas) -> None:
    one, one_waits = replicas.budgets()
    two, two_waits = replicas.budgets()

    await one_waits.of(one.for_scope("T1"))
    other_workspace = await two_waits.of(two.for_scope("T2"))

    assert other_workspace == 0.0


async def test_a_pause_on_one_replica_holds_the_other_back(replicas: Replicas) -> None:
    one, one_waits = replicas.budgets()
    two, two_waits = replicas.budgets()

    first = await one_waits.of(one.for_scope("T1"))
    await two.for_scope("T1").pause(500.0)
    after_pause = await one_waits.of(one.for_scope("T1"))
    await two.for_scope("T1").pause(10.0)  # shorter than what is booked: changes nothing
    next_slot = await two_waits.of(two.for_scope("T1"))

    assert [first, after_pause, next_slot] == pytest.approx([0.0, 500.0, 500.0 + SLOT],
                                                          abs=TOLERANCE)


async def test_a_429_met_by_one_replicas_renderer_pauses_the_other(
        replicas: Replicas) -> None:
    clock = FakeClock()

    class LimitedOnce(RecordingSurface):
        refused = False

        async def edit(self, message_id: str, text: str, *, final: bool) -> None:
            if not self.refused:
                self.refused = True
                raise RateLimited(30.0)
            await super().edit(message_id, text, final=final)

    client = Redis.from_url(REDIS_URL)
    replicas.clients.append(client)
    drawing = RedisEditBudgets(client, 1000, 1.0, prefix=replicas.prefix, sleep=clock.sleep)
    other, other_waits = replicas.budgets()
    surface = LimitedOnce(limits=SurfaceLimits(2000, min_edit_interval=0.0))
    renderer = EditRenderer(surface, drawing.for_scope("T1"), clock=clock, sleep=clock.sleep)
    renderer.start()
    renderer.feed("The first words ")
    await clock.settle()
    renderer.feed("and the rest.")

    result = await clock.drive(renderer.finish())
    held = await other_waits.of(other.for_scope("T1"))

    assert result.delivered and surface.shown == ["The first words and the rest."]
    assert held == pytest.approx(30.0, abs=TOLERANCE), "the other replica waits it out too"


@pytest.mark.parametrize("shared", [False, True], ids=["local", "redis"])
async def test_a_burst_goes_at_once_then_slots_are_spaced(replicas: Replicas,
                                                          shared: bool) -> None:
    waits = Waits()
    budget: EditBudget
    if shared:
        budgets, waits = replicas.budgets(burst=3)
        budget = budgets.for_scope("T1")
    else:
        budget = LocalEditBudget(1, SLOT, 3, sleep=waits.sleep)

    seen = [await waits.of(budget) for _ in range(5)]

    assert seen == pytest.approx([0.0, 0.0, 0.0, SLOT, 2 * SLOT], abs=TOLERANCE)


async def test_the_shared_budget_waits_as_the_local_one_does(replicas: Replicas) -> None:
    local_waits = Waits()
    local = LocalEditBudget(1, SLOT, 2, sleep=local_waits.sleep)
    budgets, shared_waits = replicas.budgets(burst=2)
    shared = budgets.for_scope("T1")

    async def script(budget: EditBudget, waits: Waits) -> list[float]:
        seen = [await waits.of(budget) for _ in range(3)]
        await budget.pause(250.0)
        seen += [await waits.of(budget) for _ in range(2)]
        await budget.pause(30.0)
        seen.append(await waits.of(budget))
        return seen

    expected = await script(local, local_waits)
    assert await script(shared, shared_waits) == pytest.approx(expected, abs=TOLERANCE)


async def test_a_scopes_key_expires_a_little_after_its_last_slot(replicas: Replicas) -> None:
    budgets, waits = replicas.budgets()
    for _ in range(2):
        await waits.of(budgets.for_scope("T1"))

    client = replicas.clients[0]
    ttl = await client.pttl(replicas.prefix + "T1")

    assert 2 * SLOT * 1000 - TOLERANCE * 1000 < ttl <= 2 * SLOT * 1000 + 1000


async def test_an_unreachable_redis_falls_back_to_this_process_with_one_warning(
        closed_port: int, caplog: pytest.LogCaptureFixture) -> None:
    client = Redis(host="127.0.0.1", port=closed_port)
    waits = Waits()
    budget = RedisEditBudgets(client, 1, SLOT, sleep=waits.sleep).for_scope("T1")
    caplog.set_level(logging.WARNING, logger="bot.drawing.shared_budget")

    try:
        seen = [await waits.of(budget), await waits.of(budget)]
        await budget.pause(300.0)
        seen.append(await waits.of(budget))
    finally:
        await client.aclose()

    assert seen == pytest.approx([0.0, SLOT, 300.0], abs=TOLERANCE)
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "gemini-bot:budget:T1" in warnings[0].getMessage()


async def test_a_redis_that_never_answers_does_not_hold_a_reply() -> None:
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()  # takes the command, never answers
        writer.close()

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    client = Redis(host="127.0.0.1", port=port)
    waits = Waits()
    budget = RedisEditBudgets(client, 1, SLOT, timeout=0.2, sleep=waits.sleep).for_scope("T1")
    try:
        seen = [await waits.of(budget), await waits.of(budget)]
    finally:
        await client.aclose()
        server.close()
        await server.wait_closed()

    assert seen == pytest.approx([0.0, SLOT], abs=TOLERANCE)


async def test_the_bot_without_redis_keeps_its_budgets_in_process() -> None:
    client = Redis.from_url(REDIS_URL)  # connects on its first command, none here
    try:
        assert isinstance(edit_budgets(1, SLOT, redis=None), LocalEditBudgets)
        assert isinstance(edit_budgets(1, SLOT, redis=client), RedisEditBudgets)
    finally:
        await client.aclose()
