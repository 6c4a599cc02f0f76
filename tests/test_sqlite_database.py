"""The SQLite database: a small pool of aiosqlite connections, each transaction one
synchronous function on a connection's thread; errors wrapped and counted like SQLAlchemy's."""

from __future__ import annotations

import asyncio
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from sqlalchemy import Connection, text
from sqlalchemy.exc import DBAPIError, OperationalError

from bot.storage.database import open_database
from bot.storage.sqlite import SQLiteDatabase
from tests.support.waiting import until


def opened(database: SQLiteDatabase) -> list[threading.Thread]:
    """A list that gets the thread of each connection the database opens."""
    threads: list[threading.Thread] = []
    database.on_connect(lambda _: threads.append(threading.current_thread()))
    return threads


async def all_ended(threads: list[threading.Thread]) -> None:
    """Wait for `threads` to end (a closed connection's thread ends just after)."""
    await until(lambda: not any(thread.is_alive() for thread in threads),
                what="the connections' threads ending")


def create_table(connection: Connection) -> None:
    connection.execute(text("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT NOT NULL)"))


def count_notes(connection: Connection) -> int:
    return int(connection.scalar(text("SELECT count(*) FROM notes")) or 0)


async def test_a_burst_of_transactions_shares_the_pool_and_opens_no_more(tmp_path: Path) -> None:
    database = SQLiteDatabase(str(tmp_path / "bot.db"), pool_size=2, busy_timeout_ms=10_000)
    threads = opened(database)
    await database.run(create_table)

    def add(connection: Connection, n: int) -> None:
        connection.execute(text("INSERT INTO notes (body) VALUES (:body)"), {"body": f"n{n}"})

    await asyncio.gather(*(database.run(add, n) for n in range(40)))

    assert await database.run(count_notes) == 40
    assert 1 <= len(threads) <= 2
    await database.dispose()


async def test_a_body_that_raises_is_rolled_back(tmp_path: Path) -> None:
    database = SQLiteDatabase(str(tmp_path / "bot.db"), pool_size=2, busy_timeout_ms=10_000)
    await database.run(create_table)

    def add_then_fail(connection: Connection) -> None:
        connection.execute(text("INSERT INTO notes (body) VALUES ('half written')"))
        raise RuntimeError("the body failed")

    with pytest.raises(RuntimeError, match="the body failed"):
        await database.run(add_then_fail)

    assert await database.run(count_notes) == 0
    await database.dispose()


async def test_driver_errors_are_wrapped_and_counted(tmp_path: Path) -> None:
    database = SQLiteDatabase(str(tmp_path / "bot.db"), pool_size=2, busy_timeout_ms=10_000)
    errors: list[None] = []
    database.on_error(lambda: errors.append(None))

    with pytest.raises(OperationalError, match="no such table"):
        await database.run(Connection.execute, text("SELECT * FROM missing"))

    assert len(errors) == 1
    await database.dispose()


async def test_a_file_that_cannot_be_opened_is_a_wrapped_counted_error(tmp_path: Path) -> None:
    folder = tmp_path / "a-folder"
    folder.mkdir()
    database = SQLiteDatabase(str(folder), pool_size=2, busy_timeout_ms=10_000)
    errors: list[None] = []
    database.on_error(lambda: errors.append(None))
    before = set(threading.enumerate())

    with pytest.raises(DBAPIError) as raised:
        await database.run(count_notes)

    assert isinstance(raised.value.orig, sqlite3.Error)
    assert len(errors) == 1
    await all_ended(list(set(threading.enumerate()) - before))


async def test_dispose_closes_the_connections_and_later_transactions_reopen(
    tmp_path: Path,
) -> None:
    database = SQLiteDatabase(str(tmp_path / "bot.db"), pool_size=2, busy_timeout_ms=10_000)
    threads = opened(database)
    await database.run(create_table)
    assert len(threads) == 1 and threads[0].is_alive()

    await database.dispose()
    await all_ended(threads)

    assert await database.run(count_notes) == 0
    assert len(threads) == 2 and threads[1].is_alive()
    await database.dispose()
    await all_ended(threads)


async def test_a_connection_lent_during_dispose_is_closed_when_it_returns(
    tmp_path: Path,
) -> None:
    database = SQLiteDatabase(str(tmp_path / "bot.db"), pool_size=2, busy_timeout_ms=10_000)
    threads = opened(database)
    await database.run(create_table)
    inside, release = threading.Event(), threading.Event()

    def slow(connection: Connection) -> int:
        inside.set()
        release.wait(10)
        return count_notes(connection)

    lent = asyncio.create_task(database.run(slow))
    await asyncio.to_thread(inside.wait, 10)
    await database.dispose()
    assert [thread.is_alive() for thread in threads] == [True]
    release.set()

    assert await lent == 0
    await all_ended(threads)


def test_an_undisposed_connection_does_not_hold_the_process_open(tmp_path: Path) -> None:
    script = (
        "import asyncio, sys\n"
        "from sqlalchemy import Connection, text\n"
        "from bot.storage.database import open_database\n"
        "database = open_database(sys.argv[1])\n"
        "print(asyncio.run(database.run(Connection.scalar, text('SELECT 41 + 1'))))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}"],
        capture_output=True, text=True, timeout=60, cwd=Path(__file__).resolve().parent.parent)

    assert (done.returncode, done.stdout.strip()) == (0, "42")


async def test_in_memory_databases_keep_one_connection() -> None:
    database = open_database("sqlite+aiosqlite:///:memory:")
    assert isinstance(database, SQLiteDatabase)
    threads = opened(database)
    await database.run(create_table)

    await asyncio.gather(*(database.run(count_notes) for _ in range(10)))

    assert await database.run(count_notes) == 0
    assert len(threads) == 1
    await database.dispose()
