"""Benchmark the reply service's own overhead, with a zero-latency model and a no-op surface.

Prints, for 1, 50 and 500 concurrent conversations: the per-reply overhead from the incoming
event to the first visible text (p50/p99), CPU milliseconds per reply, then peak RSS and the
time to load a 1,000-turn conversation's history. Each reply opens a fresh conversation, so the
overhead figures exclude history size, which the history-load figure covers. Everything runs
against a real SQLite file (or --database-url, e.g. postgresql+asyncpg://postgres@127.0.0.1/db).

    python bench/service_overhead.py [--replies 1000] [--database-url URL]
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bot.conversation import (
    Author,
    ConversationKey,
    Incoming,
    Role,
    TextPart,
    Turn,
    Usage,
)
from bot.drawing.surface import SurfaceLimits
from bot.limits import LimitSettings
from bot.model.llm import ChatRequest, StreamEnd, StreamEvent, TextDelta
from bot.service import Service, ServiceConfig
from bot.storage.database import migrate, open_database
from bot.storage.store import Store

ANSWER_CHUNKS = [f"word{i} " for i in range(40)]
LIMITS = SurfaceLimits(max_message_chars=2000, min_edit_interval=1.0)


class InstantModel:
    """Answers every request at once: 40 text deltas, then usage."""

    async def stream(self, request: ChatRequest) -> AsyncIterator[StreamEvent]:
        for chunk in ANSWER_CHUNKS:
            yield TextDelta(chunk)
        yield StreamEnd("stop", Usage(10, 40, 0), "bench-model")


class NullSurface:
    """A reply target that does nothing but note when the first text became visible."""

    def __init__(self) -> None:
        self.first_visible: float | None = None

    @property
    def limits(self) -> SurfaceLimits:
        return LIMITS

    async def post(self, text: str, *, final: bool) -> str:
        if self.first_visible is None:
            self.first_visible = time.perf_counter()
        return "m"

    async def edit(self, message_id: str, text: str, *, final: bool) -> None:
        return None

    async def show_progress(self) -> None:
        return None

    async def notify(self, text: str) -> None:
        return None


async def one_reply(service: Service, key: ConversationKey, n: int) -> float:
    surface = NullSurface()
    started = time.perf_counter()
    await service.handle(Incoming(key, Author("u", "User"), f"question {n}"), surface)
    assert surface.first_visible is not None
    return surface.first_visible - started


async def run_level(service: Service, concurrency: int, replies: int) -> tuple[list[float], float]:
    overheads: list[float] = []
    cpu_before = time.process_time()
    rounds = max(1, replies // concurrency)
    for round_number in range(rounds):
        keys = [ConversationKey("bench", "w", "c", f"{concurrency}-{round_number}-{i}")
                for i in range(concurrency)]
        overheads += await asyncio.gather(*(one_reply(service, k, round_number) for k in keys))
    cpu = time.process_time() - cpu_before
    return overheads, cpu * 1000 / len(overheads)


async def history_load(store: Store) -> tuple[float, float]:
    key = ConversationKey("bench", "w", "c", "long")
    for i in range(1000):
        role = Role.USER if i % 2 == 0 else Role.ASSISTANT
        await store.add_turn(key, Turn(role, (TextPart(f"message {i} " + "lorem ipsum " * 20),)))
    timings = {}
    for budget in (32_000, 1_000_000):
        runs = []
        for _ in range(20):
            started = time.perf_counter()
            turns = await store.history(key, budget, 8)
            runs.append(time.perf_counter() - started)
        timings[budget] = (statistics.median(runs), len(turns))
    (small, small_n), (full, full_n) = timings[32_000], timings[1_000_000]
    print(f"history load, 1,000-turn conversation: {small * 1000:.2f} ms median for the "
          f"default 32k-token budget ({small_n} turns), {full * 1000:.2f} ms for all "
          f"{full_n} turns")
    return small, full


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--replies", type=int, default=1000,
                        help="replies per concurrency level (default 1000)")
    parser.add_argument("--database-url", default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        url = args.database_url or f"sqlite+aiosqlite:///{folder}/bench.db"
        database = open_database(url)
        await migrate(database)
        store = Store(database)
        # One person asks every question: the per-person message rate is off, the other
        # limits (32 replies at once) stay at their defaults.
        config = ServiceConfig(default_model="bench-model",
                               limits=LimitSettings(user_messages_per_minute=0))
        service = Service(store, InstantModel(), config)
        print(f"database: {database.name}; {args.replies} replies per level; "
              f"answer of {len(ANSWER_CHUNKS)} chunks")
        for concurrency in (1, 50, 500):
            overheads, cpu_ms = await run_level(service, concurrency, args.replies)
            p50, p99 = percentile(overheads, 0.5), percentile(overheads, 0.99)
            print(f"{concurrency:>4} concurrent: overhead p50 {p50 * 1000:7.2f} ms  "
                  f"p99 {p99 * 1000:7.2f} ms  "
                  f"CPU {cpu_ms:.2f} ms/reply  ({len(overheads)} replies)")
        await history_load(store)
        await store.close()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS: {peak:.0f} MiB")


if __name__ == "__main__":
    asyncio.run(main())
