"""A SQLite file through aiosqlite, each transaction one synchronous SQLAlchemy Core function.

aiosqlite gives each connection a thread of its own. A transaction's statements run there
whole, as one hand-off from the event loop (not several per statement, as through
SQLAlchemy's async layer), through a synchronous Core engine bound to that thread's sqlite3
connection. No `sqlalchemy.ext.asyncio` (and so no ORM) is loaded: about 7 MiB less.

aiosqlite's queue to its thread (`_execute`), its sqlite3 connection (`_conn`) and its thread
(`_thread`) are private: the hooks SQLAlchemy's own aiosqlite dialect uses; tests pin them.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ParamSpec, TypeVar, cast

import aiosqlite
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.exc import DBAPIError
from sqlalchemy.pool import StaticPool

from bot.storage.database import Body

P = ParamSpec("P")
R = TypeVar("R")


@dataclass
class _Link:
    """One aiosqlite connection and the synchronous engine bound to its sqlite3 connection."""

    driver: aiosqlite.Connection
    engine: Engine
    generation: int


class SQLiteDatabase:
    """A SQLite file (or `:memory:`) with up to `pool_size` connections, opened as needed
    (the file's folder is made at once).

    Each connection has WAL journaling, foreign keys and a busy timeout (how long a write
    waits for another writer before failing as "database is locked").
    """

    name = "sqlite"

    def __init__(self, path: str, *, pool_size: int, busy_timeout_ms: int) -> None:
        self._path = path
        if path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        self._busy_timeout_ms = busy_timeout_ms
        self._slots = asyncio.Semaphore(1 if path == ":memory:" else pool_size)
        self._idle: list[_Link] = []
        self._error_listeners: list[Callable[[], None]] = []
        self._connect_listeners: list[Callable[[sqlite3.Connection], None]] = []
        self._generation = 0

    @property
    def shared(self) -> bool:
        """Whether several bot processes may use this database at once: never for SQLite."""
        return False

    def on_error(self, listener: Callable[[], None]) -> None:
        """Call `listener` on every error the driver raises (connecting included)."""
        self._error_listeners.append(listener)

    def on_connect(self, listener: Callable[[sqlite3.Connection], None]) -> None:
        """Call `listener` with each new sqlite3 connection, on its thread, once it is set up
        (connections already open are not seen: `dispose` first to apply it to all)."""
        self._connect_listeners.append(listener)

    async def run(self, body: Body[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
        """Run `body(connection, *args, **kwargs)` in one transaction, committed if it
        returns, rolled back if it raises; its result."""
        async with self._slots:
            link = await self._checkout()
            try:
                def whole() -> R:
                    with link.engine.begin() as connection:
                        return body(connection, *args, **kwargs)

                result: R = await cast(Any, link.driver)._execute(whole)
                return result
            finally:
                await self._checkin(link)

    async def dispose(self) -> None:
        """Close every connection (one still lent is closed when it comes back); later
        transactions open new ones."""
        self._generation += 1
        idle, self._idle = self._idle, []
        for link in idle:
            await link.driver.close()

    async def _checkout(self) -> _Link:
        if self._idle:
            return self._idle.pop()
        try:
            return await self._open()
        except sqlite3.Error as exc:
            self._errored()
            raise DBAPIError.instance(None, None, exc, sqlite3.Error) from exc

    async def _checkin(self, link: _Link) -> None:
        if link.generation == self._generation:
            self._idle.append(link)
        else:
            await link.driver.close()

    async def _open(self) -> _Link:
        driver = aiosqlite.connect(self._path, check_same_thread=False)
        driver._thread.daemon = True  # an unclosed connection must not hold the exit
        await driver
        try:
            await driver.executescript(
                f"PRAGMA busy_timeout={int(self._busy_timeout_ms)}; PRAGMA journal_mode=WAL;"
                " PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON;")
            for listener in self._connect_listeners:
                await cast(Any, driver)._execute(listener, driver._conn)
        except BaseException:
            await driver.close()
            raise
        sqlite_connection = driver._conn
        engine = create_engine("sqlite://", poolclass=StaticPool,
                               creator=lambda: sqlite_connection)
        event.listen(engine, "handle_error", self._errored)
        return _Link(driver, engine, self._generation)

    def _errored(self, _: object = None) -> None:
        """Tell the error listeners (also SQLAlchemy's handle_error hook on each engine)."""
        for listener in self._error_listeners:
            listener()
