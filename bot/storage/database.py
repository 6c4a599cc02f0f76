"""Opening the database engine and applying Alembic migrations to it (Alembic is loaded
only when there is a migration to apply)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, event, inspect, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import PoolResetState

import migrations

if TYPE_CHECKING:
    from alembic.config import Config

log = logging.getLogger(__name__)

SQLITE_BUSY_TIMEOUT_MS = 10_000
SQLITE_POOL_SIZE = 2
"""Connections to a SQLite file, each with its own aiosqlite thread and page cache. SQLite
writes one transaction at a time, and each of the store's is one short hand-off to the
thread, so two suffice (one reads while the other commits); a burst waits for one instead of
opening more, which would be closed again (with their threads) when it ends."""
MIGRATION_LOCK_ID = 0x6D696772
"""PostgreSQL advisory lock taken while migrating (SQLite takes its write lock), so processes
starting together take turns."""


def create_engine(url: str, *, busy_timeout_ms: int = SQLITE_BUSY_TIMEOUT_MS) -> AsyncEngine:
    """An async engine for `url`; SQLite files get WAL mode, foreign keys and a busy timeout
    (how long a write waits for another writer before failing as "database is locked"), a
    fixed pool, and a connection is rolled back on its return only if a transaction is open."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return create_async_engine(url, pool_pre_ping=True)
    if parsed.database and parsed.database != ":memory:":
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(url, pool_size=SQLITE_POOL_SIZE, max_overflow=0,
                                     pool_reset_on_return=None)
    else:
        engine = create_async_engine(url, pool_reset_on_return=None)

    def configure(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    def reset(dbapi_connection: Any, _record: Any, state: PoolResetState) -> None:
        # What the pool's rollback-on-return does, without a trip to the driver's thread
        # for the usual connection that committed or only read.
        if state.asyncio_safe and dbapi_connection.driver_connection.in_transaction:
            dbapi_connection.rollback()

    event.listen(engine.sync_engine, "connect", configure)
    event.listen(engine.sync_engine, "reset", reset)
    return engine


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


async def schema_revisions(engine: AsyncEngine) -> set[str]:
    """The revisions the database is at (empty: never migrated)."""
    async with engine.connect() as connection:
        if not await connection.run_sync(lambda sync: inspect(sync).has_table("alembic_version")):
            return set()
        rows = await connection.execute(text("SELECT version_num FROM alembic_version"))
        return {str(row[0]) for row in rows}


async def migrate(engine: AsyncEngine, revision: str = "head") -> None:
    """Bring the schema up to `revision` (the newest by default), one process at a time; a
    database already at the newest revision is left alone without loading Alembic."""
    if revision == "head" and await schema_revisions(engine) == {newest_revision()}:
        log.info("database schema is at %s", newest_revision())
        return

    def upgrade(connection: Connection) -> None:
        from alembic import command

        config = alembic_config()
        config.attributes["connection"] = connection
        command.upgrade(config, revision)

    async with engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            await connection.execute(text("SELECT pg_advisory_xact_lock(:id)"),
                                     {"id": MIGRATION_LOCK_ID})
        elif connection.dialect.name == "sqlite":
            await connection.exec_driver_sql("BEGIN IMMEDIATE")
        await connection.run_sync(upgrade)
    log.info("database schema is at %s", revision)
