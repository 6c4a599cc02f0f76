"""The database check: reachable, its schema at the newest migration, a SQLite file writable.

It never migrates: an operator runs `python -m bot migrate` (or starts the bot) for that.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection
from sqlalchemy.engine import URL, make_url

from bot import alembic_config, open_database
from launcher.checks.result import Context, Result

NAME = "database"
MIGRATE = "run python -m bot migrate"


async def check_database(context: Context) -> list[Result]:
    """The database at DATABASE_URL: reachable within the timeout and migrated to the newest
    revision; for SQLite, the file and its folder writable (SQLite writes its journal there)."""
    url = make_url(context.config.core.database_url)
    shown = url.render_as_string(hide_password=True)
    sqlite = url.get_backend_name() == "sqlite"
    if sqlite:
        problem = _sqlite_file_problem(url)
        if problem is not None:
            return [problem]
    try:
        async with asyncio.timeout(context.timeout):
            current = await _current_revisions(context.config.core.database_url)
    except TimeoutError:
        return [Result.failed(NAME, f"{shown} did not answer within {context.timeout:g} s",
                              "check DATABASE_URL and that the database server is up")]
    except Exception as exc:  # any driver's error here means the database cannot be used
        return [Result.failed(NAME, f"cannot use {shown}: {_first_line(exc)}",
                              "check DATABASE_URL, the server and the credentials")]
    return [_compare(shown, current, sqlite)]


def _sqlite_file_problem(url: URL) -> Result | None:
    """What stops the bot from writing its SQLite file, checked before connecting (which
    would create an empty file)."""
    if not url.database or url.database == ":memory:":
        return Result.skipped(NAME, "in-memory SQLite: nothing is kept between runs")
    path = Path(url.database).absolute()
    folder = path.parent
    if not folder.is_dir():
        return Result.failed(NAME, f"the folder {folder} does not exist",
                             f"{MIGRATE} (it creates the folder and the database)")
    if not os.access(folder, os.W_OK):
        return Result.failed(NAME, f"the folder {folder} is not writable (SQLite writes its "
                             "journal next to the file)",
                             "make it writable by the user the bot runs as")
    if not path.is_file():
        return Result.failed(NAME, f"no database file at {path}", MIGRATE)
    if not os.access(path, os.W_OK):
        return Result.failed(NAME, f"{path} is not writable",
                             "make it writable by the user the bot runs as")
    return None


async def _current_revisions(url: str) -> set[str]:
    database = open_database(url)
    try:
        return await database.run(_revisions_in)
    finally:
        await database.dispose()


def _revisions_in(connection: Connection) -> set[str]:
    return set(MigrationContext.configure(connection).get_current_heads())


def _compare(shown: str, current: set[str], sqlite: bool) -> Result:
    scripts = ScriptDirectory.from_config(alembic_config())
    newest = set(scripts.get_heads())
    known = {script.revision for script in scripts.walk_revisions()}
    at = ", ".join(sorted(current))
    head = ", ".join(sorted(newest))
    if not current:
        return Result.failed(NAME, f"{shown} is reachable but has no schema yet", MIGRATE)
    if not current <= known:
        return Result.failed(NAME, f"{shown} is at revision {at}, which this version of the bot "
                             f"does not know (its newest is {head})",
                             "run the version of the bot that migrated it, or a newer one")
    if current != newest:
        return Result.failed(NAME, f"{shown} is at revision {at}, the newest is {head}", MIGRATE)
    writable = ", the file and its folder writable" if sqlite else ""
    return Result.passed(NAME, f"{shown} is reachable, schema at the newest revision "
                         f"{head}{writable}")


def _first_line(exc: Exception) -> str:
    """The driver's own words (SQLAlchemy wraps them), first line only."""
    cause = getattr(exc, "orig", None) or exc
    text = str(cause).strip().splitlines()
    return f"{type(cause).__name__}: {text[0]}" if text else type(cause).__name__
