"""A database server (PostgreSQL) through SQLAlchemy's asyncio engine and an async driver.

Loaded only for such a URL: `sqlalchemy.ext.asyncio` brings the ORM with it (about 7 MiB),
which a process on SQLite never needs."""

from __future__ import annotations

from collections.abc import Callable
from typing import ParamSpec, TypeVar

from sqlalchemy import event
from sqlalchemy.engine import ExceptionContext
from sqlalchemy.ext.asyncio import create_async_engine

from bot.storage.database import Body

P = ParamSpec("P")
R = TypeVar("R")


class AsyncEngineDatabase:
    """A database behind an async SQLAlchemy engine; its pool checks a connection before
    lending it (a server may have closed it)."""

    def __init__(self, url: str) -> None:
        self._engine = create_async_engine(url, pool_pre_ping=True)
        self.name: str = self._engine.dialect.name

    @property
    def shared(self) -> bool:
        """Whether several bot processes may use this database at once: always for a server."""
        return True

    def on_error(self, listener: Callable[[], None]) -> None:
        """Call `listener` on every error the driver raises (connecting included)."""

        def forward(_: ExceptionContext) -> None:
            listener()

        event.listen(self._engine.sync_engine, "handle_error", forward)

    async def run(self, body: Body[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
        """Run `body(connection, *args, **kwargs)` in one transaction, committed if it
        returns, rolled back if it raises; its result."""
        async with self._engine.begin() as connection:
            return await connection.run_sync(body, *args, **kwargs)

    async def dispose(self) -> None:
        """Close every pooled connection; later transactions open new ones."""
        await self._engine.dispose()
