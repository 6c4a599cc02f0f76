"""One reply at a time per conversation, within this process and across replicas."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime

from bot.conversation import ConversationKey
from bot.drawing.pacing import Sleep
from bot.errors import ConversationBusy, UserFacingError
from bot.storage.schema import utcnow
from bot.storage.store import Store

log = logging.getLogger(__name__)

LEASE_SECONDS = 60.0
POLL_SECONDS = 0.25
MAX_WAIT_SECONDS = 300.0

WallClock = Callable[[], datetime]
"""The current time, timezone-aware, as lease rows store it."""


@dataclass(slots=True)
class _KeyedLock:
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    holders: int = 0


class ConversationLocks:
    """One asyncio lock per conversation, dropped when nobody holds or waits for it."""

    def __init__(self) -> None:
        self._locks: dict[ConversationKey, _KeyedLock] = {}

    @asynccontextmanager
    async def hold(self, key: ConversationKey) -> AsyncIterator[None]:
        """Hold the conversation's lock."""
        entry = self._locks.setdefault(key, _KeyedLock())
        entry.holders += 1
        try:
            async with entry.lock:
                yield
        finally:
            entry.holders -= 1
            if entry.holders == 0:
                del self._locks[key]

    def __len__(self) -> int:
        return len(self._locks)


class ConversationGate:
    """Lets one reply at a time into each conversation.

    Within the process an asyncio lock queues the replies. When the database is shared by
    several processes (replicas on PostgreSQL; `replicas` defaults to `store.shared`) a lease
    row does it across them: renewed while the reply runs, it expires on its own if the process
    dies, so a crashed replica blocks nobody for long. An embedded SQLite file serves one
    process, which needs no lease. `now` (lease expiry) and `sleep` (polling, renewing) are
    injected so tests can drive both with a virtual clock.
    """

    def __init__(self, store: Store, *, replicas: bool | None = None,
                 lease_seconds: float = LEASE_SECONDS, poll_seconds: float = POLL_SECONDS,
                 max_wait: float = MAX_WAIT_SECONDS, sleep: Sleep = asyncio.sleep,
                 now: WallClock = utcnow) -> None:
        self._store = store
        self._replicas = store.shared if replicas is None else replicas
        self._lease_seconds = lease_seconds
        self._poll_seconds = poll_seconds
        self._max_wait = max_wait
        self._sleep = sleep
        self._now = now
        self._local = ConversationLocks()
        self._process = uuid.uuid4().hex[:16]

    @asynccontextmanager
    async def hold(self, key: ConversationKey) -> AsyncIterator[None]:
        """Wait for the conversation, then hold it until the block ends."""
        async with self._local.hold(key):
            if not self._replicas:
                yield
                return
            holder = f"{self._process}:{uuid.uuid4().hex[:16]}"
            await self._take(key, holder)
            renewing = asyncio.create_task(self._renew(key, holder))
            try:
                yield
            finally:
                renewing.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await renewing
                await self._release(key, holder)

    async def _take(self, key: ConversationKey, holder: str) -> None:
        waited = 0.0
        while not await self._claim(key, holder):
            if waited >= self._max_wait:
                raise ConversationBusy(
                    "Another answer in this conversation is still being written. Please try "
                    "again when it has finished."
                )
            if waited == 0:
                log.info("%s: waiting for another process's answer to finish", key)
            await self._sleep(self._poll_seconds)
            waited += self._poll_seconds

    async def _renew(self, key: ConversationKey, holder: str) -> None:
        while True:
            await self._sleep(self._lease_seconds / 3)
            try:
                if not await self._claim(key, holder):
                    log.warning("%s: the conversation's lease was lost", key)
            except UserFacingError:
                log.warning("%s: renewing the conversation's lease failed", key)

    async def _claim(self, key: ConversationKey, holder: str) -> bool:
        return await self._store.claim_lease(key, holder, self._lease_seconds, now=self._now())

    async def _release(self, key: ConversationKey, holder: str) -> None:
        try:
            await self._store.release_lease(key, holder)
        except UserFacingError:
            log.warning("%s: releasing the conversation's lease failed; it will expire", key)
