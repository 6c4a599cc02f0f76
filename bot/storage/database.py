"""Opening the database and applying Alembic migrations to it (Alembic is loaded only when
there is a migration to apply)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Concatenate, ParamSpec, Protocol, TypeVar

from sqlalchemy import Connection, inspect, text
from sqlalchemy.engine import make_url

import migrations

if TYPE_CHECKING:
    from alembic.config import Config

log = logging.getLogger(__name__)

P = ParamSpec("P")
R = TypeVar("R")
Body = Callable[Concatenate[Connection, P], R]
"""A transaction's work: synchronous SQLAlchemy Core statements on the connection it gets."""

SQLITE_BUSY_TIMEOUT_MS = 10_000
SQLITE_POOL_SIZE = 2
"""Connections to a SQLite file, each with its own aiosqlite thread and page cache. SQLite
writes one transaction at a time, and each of the store's is one short hand-off to the
thread, so two suffice (one reads while the other commits); a burst waits for one instead of
opening more."""
MIGRATION_LOCK_ID = 0x6D696772
"""PostgreSQL advisory lock taken while migrating (SQLite takes its write lock), so processes
starting together take turns."""


class Database(Protocol):
    """Where the bot's tables live: every use is one transaction, a synchronous SQLAlchemy
    Core function run whole (see bot.storage.sqlite and bot.storage.async_engine)."""

    name: str
    """The SQLAlchemy dialect's name: "sqlite", "postgresql"."""

    @property
    def shared(self) -> bool:
        """Whether several bot processes may use this database at once (not SQLite)."""

    def on_error(self, listener: Callable[[], None]) -> None:
        """Call `listener` on every error the driver raises (connecting included)."""

    async def run(self, body: Body[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
        """Run `body(connection, *args, **kwargs)` in one transaction, committed if it
        returns, rolled back if it raises; its result."""

    async def dispose(self) -> None:
        """Close every pooled connection; later transactions open new ones."""


def open_database(url: str, *, busy_timeout_ms: int = SQLITE_BUSY_TIMEOUT_MS) -> Database:
    """The database at `url`: a SQLite file (or `:memory:`) through aiosqlite, anything else
    through SQLAlchemy's asyncio engine (PostgreSQL: asyncpg). `busy_timeout_ms` is how long
    a SQLite write waits for another writer before failing as "database is locked"."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        from bot.storage.sqlite import SQLiteDatabase

        return SQLiteDatabase(parsed.database or ":memory:", pool_size=SQLITE_POOL_SIZE,
                              busy_timeout_ms=busy_timeout_ms)
    from bot.storage.async_engine import AsyncEngineDatabase

    return AsyncEngineDatabase(url)


def alembic_config() -> Config:
    """The Alembic configuration pointing at this project's migrations package."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(Path(migrations.__file__).parent))
    return config


def newest_revision() -> str:
    """The newest migration's revision, read from the file names in migrations/versions (each
    begins with its revision: `0003_....py` is "0003"; a test checks it is Alembic's head)."""
    versions = Path(migrations.__file__).parent / "versions"
    return max(path.name.split("_", 1)[0] for path in versions.glob("[0-9]*_*.py"))


async def schema_revisions(database: Database) -> set[str]:
    """The revisions the database is at (empty: never migrated)."""
    return await database.run(_revisions)


def _revisions(connection: Connection) -> set[str]:
    if not inspect(connection).has_table("alembic_version"):
        return set()
    rows = connection.execute(text("SELECT version_num FROM alembic_version"))
    return {str(row[0]) for row in rows}


async def migrate(database: Database, revision: str = "head") -> None:
    """Bring the schema up to `revision` (the newest by default), one process at a time; a
    database already at the newest revision is left alone without loading Alembic."""
    if revision == "head" and await schema_revisions(database) == {newest_revision()}:
        log.info("database schema is at %s", newest_revision())
        return
    await database.run(_upgrade, revision)
    log.info("database schema is at %s", revision)


def _upgrade(connection: Connection, revision: str) -> None:
    from alembic import command

    if connection.dialect.name == "postgresql":
        connection.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": MIGRATION_LOCK_ID})
    elif connection.dialect.name == "sqlite":
        connection.exec_driver_sql("BEGIN IMMEDIATE")
    config = alembic_config()
    config.attributes["connection"] = connection
    command.upgrade(config, revision)
