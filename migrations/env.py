"""Alembic environment: runs on a connection handed in by the bot, or on DATABASE_URL."""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy import Connection

from bot.storage.schema import METADATA

target_metadata = METADATA


def run_on(connection: Connection) -> None:
    """Run the migrations on an open synchronous connection (batch mode for SQLite)."""
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=True,
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


async def run_from_settings() -> None:
    """Open DATABASE_URL ourselves, for the `alembic` command line."""
    from bot.config import load_settings
    from bot.storage.database import open_database

    database = open_database(load_settings().database_url)
    try:
        await database.run(run_on)
    finally:
        await database.dispose()


given = context.config.attributes.get("connection")
if given is not None:
    run_on(given)
else:
    asyncio.run(run_from_settings())
