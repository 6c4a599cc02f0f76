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

from sqlalchemy import Connection, insert, select

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bot.conversation import ConversationKey, Role, TextPart, Turn
from bot.defaults import HISTORY_TOKENS
from bot.storage.database import migrate, open_database
from bot.storage.schema import CONVERSATIONS, TURNS
from bot.storage.store import Store

LENGTHS = (100, 1_000, 10_000, 100_000)
TEXT = "a message of about two hundred characters " * 5


async def grow(store: Store, key: ConversationKey, turns: int) -> None:
    """Give the conversation `turns` turns: one through the store, the rest in bulk."""
    await store.add_turn(key, Turn(Role.USER, (TextPart(TEXT),)))

    def bulk(connection: Connection) -> None:
        conversation_id = connection.scalar(
            select(CONVERSATIONS.c.id).where(CONVERSATIONS.c.thread == key.thread))
        rows = [{"conversation_id": conversation_id, "role": "user", "author_id": "u",
                 "author_name": "Ann", "parts": [{"type": "text", "text": TEXT}],
                 "tokens": 54, "status": "complete", "created_at": datetime.now(UTC)}
                for _ in range(turns - 1)]
        for start in range(0, len(rows), 10_000):
            connection.execute(insert(TURNS), rows[start:start + 10_000])

    await store.database.run(bulk)


async def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--database-url", default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        database = open_database(
            args.database_url or f"sqlite+aiosqlite:///{folder}/bench.db")
        await migrate(database)
        store = Store(database)
        print(f"database: {database.name}; budget {HISTORY_TOKENS:,} tokens")
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
