"""Running one transaction as one synchronous SQLAlchemy Core function on an async engine.

Through SQLAlchemy's async layer every statement on SQLite is several hand-offs to
aiosqlite's thread (cursor, execute, fetch, close), each waking the event loop. A function
of plain synchronous statements instead runs whole in that thread, as one hand-off, on the
very connection the async pool checked out (its PRAGMAs, busy timeout and connect hooks
apply). On other drivers the same function runs through `AsyncConnection.run_sync`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Concatenate, ParamSpec, TypeVar

from sqlalchemy import Connection, Engine, event
from sqlalchemy import create_engine as create_sync_engine
from sqlalchemy.engine import ExceptionContext
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.pool import StaticPool

P = ParamSpec("P")
R = TypeVar("R")
Body = Callable[Concatenate[Connection, P], R]

_IN_THREAD = "bot.sync_engine"
"""Key, in a pooled aiosqlite connection's `info`, of the synchronous engine bound to it."""


async def run_transaction(
    engine: AsyncEngine, body: Body[P, R], *args: P.args, **kwargs: P.kwargs
) -> R:
    """Run `body(connection, *args, **kwargs)` in one transaction, committed if it returns,
    rolled back if it raises; its result."""
    if engine.dialect.driver != "aiosqlite":
        async with engine.begin() as connection:
            return await connection.run_sync(body, *args, **kwargs)
    async with engine.connect() as connection:
        pooled = await connection.get_raw_connection()
        driver: Any = pooled.driver_connection
        bound = pooled.info.get(_IN_THREAD)
        if bound is None:
            bound = pooled.info[_IN_THREAD] = _bound_engine(engine, driver)

        def whole() -> R:
            with bound.begin() as sync_connection:
                return body(sync_connection, *args, **kwargs)

        # aiosqlite's queue to its thread: the hook SQLAlchemy's own aiosqlite dialect uses.
        result: R = await driver._execute(whole)
        return result


def _bound_engine(engine: AsyncEngine, driver: Any) -> Engine:
    """A synchronous SQLite engine whose one connection is the aiosqlite connection's own
    sqlite3 connection, used only from aiosqlite's thread while the async pool lends it; its
    errors reach `engine`'s handle_error listeners (the database error count)."""
    bound = create_sync_engine("sqlite://", poolclass=StaticPool, creator=lambda: driver._conn)

    def forward(context: ExceptionContext) -> None:
        for listener in engine.sync_engine.dialect.dispatch.handle_error:
            listener(context)

    event.listen(bound, "handle_error", forward)
    return bound
