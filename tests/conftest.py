"""Shared fixtures: the fake model API, real databases (SQLite file, PostgreSQL), the core."""

from __future__ import annotations

import os
import socket
import sys
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from bot.app import Core, open_core
from bot.config import Settings, load_settings
from bot.storage.database import migrate, open_database
from bot.storage.store import Store
from tests.fakes.discord import FakeDiscord
from tests.fakes.model_server import FakeModelServer
from tests.fakes.slack import FakeSlack

API_KEY = "test-key"
POSTGRES_ADMIN_DSN = os.environ.get(
    "TEST_POSTGRES_DSN", "postgresql://postgres@127.0.0.1:5432/test"
)
PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy",
                   "all_proxy")


@pytest.fixture(autouse=True)
def _local_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests talk to 127.0.0.1 only: no proxy, and no operator's platform tokens leak in."""
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    for name in list(os.environ):
        if name.startswith(("EVOLINK_", "DISCORD_", "SLACK_", "BOT_")) or name == "DATABASE_URL":
            monkeypatch.delenv(name, raising=False)


@pytest.fixture
async def model_api() -> AsyncIterator[FakeModelServer]:
    """A fake chat-completions API serving both base URLs."""
    async with FakeModelServer(api_key=API_KEY) as server:
        yield server


@pytest.fixture
async def discord_fake() -> AsyncIterator[FakeDiscord]:
    """A fake Discord (REST and gateway) with its default token."""
    async with FakeDiscord() as fake:
        yield fake


@pytest.fixture
async def slack_fake() -> AsyncIterator[FakeSlack]:
    """A fake Slack (Web API, Socket Mode, signed events) with its default tokens."""
    async with FakeSlack() as fake:
        yield fake


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """A fresh SQLite file in the test's temporary folder."""
    return f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}"


async def _postgres_database() -> tuple[str, Callable[[], Any]]:
    """Create an empty database on the local PostgreSQL; return its URL and a dropper."""
    try:
        admin = await asyncpg.connect(POSTGRES_ADMIN_DSN, timeout=5)
    except (OSError, asyncpg.PostgresError) as exc:
        reason = f"PostgreSQL at {POSTGRES_ADMIN_DSN} is not reachable ({exc})"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{reason}; under CI this run must include PostgreSQL")
        pytest.skip(f"{reason}: PostgreSQL runs skipped")
    name = f"bot_test_{uuid.uuid4().hex[:12]}"
    await admin.execute(f'CREATE DATABASE "{name}"')
    await admin.close()
    url = POSTGRES_ADMIN_DSN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://")

    async def drop() -> None:
        conn = await asyncpg.connect(POSTGRES_ADMIN_DSN, timeout=5)
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await conn.close()

    return f"{url}/{name}", drop


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, sqlite_url: str) -> str:
    """An empty database: a SQLite file, then the machine's PostgreSQL."""
    if request.param == "sqlite":
        return sqlite_url
    return str(request.getfixturevalue("postgres_url"))


@pytest.fixture
async def postgres_url() -> AsyncIterator[str]:
    """An empty database on the machine's PostgreSQL (for what only a shared database does)."""
    url, drop = await _postgres_database()
    try:
        yield url
    finally:
        await drop()


@asynccontextmanager
async def migrated_store(url: str) -> AsyncIterator[Store]:
    """A store on the database at `url`, migrated first, closed after."""
    database = open_database(url)
    await migrate(database)
    store = Store(database)
    try:
        yield store
    finally:
        await store.close()


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[Store]:
    """A store on a freshly migrated database (both backends)."""
    async with migrated_store(database_url) as opened:
        yield opened


@pytest.fixture
def make_settings(model_api: FakeModelServer, sqlite_url: str) -> Callable[..., Settings]:
    """Settings pointing at the fake model API and a SQLite file; overrides by field name."""

    def make(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "evolink_api_key": API_KEY,
            "evolink_direct_url": model_api.direct_url,
            "evolink_api_url": model_api.api_url,
            "database_url": sqlite_url,
            "bot_read_timeout": 5.0,
            "bot_connect_timeout": 2.0,
            # Adapter scenarios send many messages as one person; tests/test_limits.py
            # covers the message rate.
            "bot_user_messages_per_minute": 0,
            "_env_file": None,
        }
        values.update(overrides)
        return load_settings(**values)

    return make


@pytest.fixture
async def core(make_settings: Callable[..., Settings]) -> AsyncIterator[Core]:
    """The real core (migrated SQLite file, real httpx client) against the fake model API."""
    async with open_core(make_settings()) as opened:
        yield opened


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """Print the fault suite's table (tests/test_faults.py) when it ran."""
    faults = sys.modules.get("tests.test_faults")
    if faults is None or not faults.FAULTS:
        return
    terminalreporter.section("fault suite")
    for line in faults.fault_table(faults.FAULTS):
        terminalreporter.write_line(line)


@pytest.fixture
def closed_port() -> int:
    """A port on 127.0.0.1 where nothing listens."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])
