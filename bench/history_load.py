"""How long reading a conversation's history takes as the conversation grows.

The store walks a conversation back from its newest turn and stops at the token budget, so a
100,000-turn direct message should cost what a 100-turn one does. Turns are inserted in bulk
into a real SQLite file (or --database-url), then `Store.history` is timed for each length.
Prints the median of 20 reads per length, for the default 32k-token budget.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import insert, select

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bot.conversation import ConversationKey, Role, TextPart, Turn
from bot.defaults import HISTORY_TOKENS
from bot.storage.database import create_engine, migrate
from bot.storage.schema import ConversationRow, TurnRow
from bot.storage.store import Store

LENGTHS = (100, 1_000, 10_000, 100_000)
TEXT = "a message of about two hundred characters " * 5


async def grow(store: Store, key: ConversationKey, turns: int) -> None:
    """Give the conversation `turns` turns: one through the store, the rest in bulk."""
    await store.add_turn(key, Turn(Role.USER, (TextPart(TEXT),)))
    async with store.engine.connect() as connection:
        conversation_id = await connection.scalar(
            select(ConversationRow.id).where(ConversationRow.thread == key.thread))
    rows = [{"conversation_id": conversation_id, "role": "user", "author_id": "u",
             "author_name": "Ann", "parts": [{"type": "text", "text": TEXT}], "tokens": 54,
             "status": "complete", "created_at": datetime.now(UTC)} for _ in range(turns - 1)]
    async with store.engine.begin() as connection:
        for start in range(0, len(rows), 10_000):
            await connection.execute(insert(TurnRow), rows[start:start + 10_000])


async def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--database-url", default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        engine = create_engine(args.database_url or f"sqlite+aiosqlite:///{folder}/bench.db")
        await migrate(engine)
        store = Store(engine)
        print(f"database: {engine.dialect.name}; budget {HISTORY_TOKENS:,} tokens")
        for length in LENGTHS:
            key = ConversationKey("bench", "w", "dm", f"turns-{length}")
            await grow(store, key, length)
            await store.history(key, HISTORY_TOKENS, 8)
            runs = []
            for _ in range(20):
                started = time.perf_counter()
                turns = await store.history(key, HISTORY_TOKENS, 8)
                runs.append(time.perf_counter() - started)
            print(f"{length:>7,} turns: {statistics.median(runs) * 1000:6.2f} ms median, "
                  f"{len(turns)} turns read")
        await store.close()


if __name__ == "__main__":
    asyncio.run(main())
