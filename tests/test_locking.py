"""One reply at a time per conversation, also across replicas sharing one database.

Lease expiry is driven by a virtual clock (tests/support/clock.py): the gate and the store
read the time they are given, so no test waits for a lease to run out.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest

from bot.conversation import Author, ConversationKey, Incoming, Role
from bot.errors import ConversationBusy
from bot.model.llm import ModelClient, create_http_client
from bot.service import Service, ServiceConfig
from bot.storage.database import open_database
from bot.storage.locking import ConversationGate
from bot.storage.store import Store
from tests.conftest import API_KEY
from tests.fakes.model_server import FakeModelServer, Reply
from tests.support.clock import FakeClock
from tests.support.surfaces import RecordingSurface

KEY = ConversationKey("test", "w", "c", "shared")


@pytest.fixture
async def replica_store(store: Store, database_url: str) -> AsyncIterator[Store]:
    """A second store on the same database, as a second replica of the bot would have."""
    other = Store(open_database(database_url))
    try:
        yield other
    finally:
        await other.close()


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with create_http_client(connect_timeout=2.0, read_timeout=5.0) as client:
        yield client


def replica(store: Store, http: httpx.AsyncClient, model_api: FakeModelServer) -> Service:
    model = ModelClient(http, API_KEY, model_api.direct_url, model_api.api_url)
    gate = ConversationGate(store, replicas=True, poll_seconds=0.02)
    return Service(store, model, ServiceConfig(default_model="m"), gate=gate)


async def test_two_replicas_answer_one_conversation_one_at_a_time(
    store: Store, replica_store: Store, http: httpx.AsyncClient, model_api: FakeModelServer
) -> None:
    model_api.script("direct", *[Reply(text=f"answer {i}", delay_between_chunks=0.03)
                                 for i in range(4)])
    replicas = [replica(store, http, model_api), replica(replica_store, http, model_api)]

    await asyncio.gather(*(
        replicas[i % 2].handle(Incoming(KEY, Author("u", "U"), f"question {i}"),
                               RecordingSurface())
        for i in range(4)
    ))

    turns = await store.history(KEY, 100_000, 8)
    assert [t.role for t in turns] == [Role.USER, Role.ASSISTANT] * 4
    assert [t.text for t in turns[1::2]] == [f"answer {i}" for i in range(4)]
    for index, request in enumerate(model_api.requests):
        seen = [m["content"] for m in request.body["messages"]]
        assert seen == [t.text for t in turns[: 2 * index + 1]], "each replica saw stored order"


async def test_a_lease_left_by_a_dead_replica_expires(store: Store, replica_store: Store) -> None:
    clock = FakeClock()
    assert await store.claim_lease(KEY, "dead-replica", seconds=30, now=clock.utc())

    await clock.advance(29)
    assert not await replica_store.claim_lease(KEY, "live-replica", 60, now=clock.utc())
    await clock.advance(2)
    assert await replica_store.claim_lease(KEY, "live-replica", 60, now=clock.utc())

    assert not await store.claim_lease(KEY, "dead-replica", 60, now=clock.utc())
    await replica_store.release_lease(KEY, "live-replica")
    assert await store.claim_lease(KEY, "third", 60, now=clock.utc())


async def test_the_gate_lets_a_reply_in_once_a_dead_replicas_lease_expired(
    store: Store, replica_store: Store
) -> None:
    clock = FakeClock()
    assert await replica_store.claim_lease(KEY, "dead-replica", seconds=30, now=clock.utc())
    gate = ConversationGate(store, replicas=True, poll_seconds=1.0, sleep=clock.sleep,
                            now=clock.utc)

    async def enter() -> float:
        async with gate.hold(KEY):
            return clock.now

    assert await clock.drive(enter()) == 31.0, "the first poll after the lease's end got in"


async def test_waiting_too_long_tells_the_user(store: Store, replica_store: Store) -> None:
    clock = FakeClock()
    assert await replica_store.claim_lease(KEY, "busy-replica", seconds=60, now=clock.utc())
    gate = ConversationGate(store, replicas=True, poll_seconds=1.0, max_wait=5.0,
                            sleep=clock.sleep, now=clock.utc)

    async def enter() -> None:
        async with gate.hold(KEY):
            pytest.fail("the gate let a second reply in")

    with pytest.raises(ConversationBusy, match="still being written"):
        await clock.drive(enter())
    assert clock.sleeps == [1.0] * 5, "it polled until max_wait, then gave up"


async def test_only_a_shared_database_takes_leases(store: Store) -> None:
    async with ConversationGate(store).hold(KEY):
        taken_elsewhere = await store.claim_lease(KEY, "another-replica", seconds=60)
    assert taken_elsewhere is not store.shared, "PostgreSQL leases; a SQLite file does not"


async def test_the_lease_is_renewed_while_a_long_reply_runs(
    store: Store, replica_store: Store
) -> None:
    clock = FakeClock()
    gate = ConversationGate(store, replicas=True, lease_seconds=30, sleep=clock.sleep,
                            now=clock.utc)

    async with gate.hold(KEY):
        for _ in range(6):  # a minute: twice the lease
            await clock.sleepers(1)  # the renewer waits for its next turn
            await clock.advance(10)
        await clock.sleepers(1)
        assert not await replica_store.claim_lease(KEY, "other", 60, now=clock.utc()), \
            "the lease outlived its first term because it was renewed"

    assert await replica_store.claim_lease(KEY, "other", 60, now=clock.utc()), \
        "released at the end"
