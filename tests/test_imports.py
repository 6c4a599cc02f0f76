"""`python -m bot` loads only what it serves: a Discord-only process never imports Slack's
libraries, Alembic only when there is a migration to apply, redis only with REDIS_URL set,
and on SQLite neither SQLAlchemy's ORM nor its asyncio layer.

Each scenario runs the real command against the fakes, answers one message, is stopped with
SIGTERM, and writes the names of the modules it had imported as it exits."""

from __future__ import annotations

import asyncio
import signal
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx
import pytest
from alembic.script import ScriptDirectory

from bot.storage.database import alembic_config, migrate, newest_revision, open_database
from tests.fakes.discord import FakeDiscord
from tests.fakes.model_server import FakeModelServer
from tests.fakes.slack import FakeSlack
from tests.support.process import bot_environment, free_port
from tests.support.waiting import until

RUN_AND_LIST_MODULES = """\
import atexit, runpy, sys
listing = sys.argv[1]
atexit.register(lambda: open(listing, "w").write("\\n".join(sorted(sys.modules))))
sys.argv = ["bot"]
runpy.run_module("bot", run_name="__main__", alter_sys=True)
"""
"""`python -m bot`, writing the modules it imported to the file named by its argument."""
REDIS_URL = "redis://127.0.0.1:6379/15"

Conversation = Callable[[], Awaitable[None]]


def top_level(modules: set[str]) -> set[str]:
    return {name.split(".", 1)[0] for name in modules}


async def modules_of_a_run(folder: Path, model_api: FakeModelServer, talk: Conversation,
                           **variables: str) -> set[str]:
    """Run the bot in `folder` with `variables`, `talk` to it, stop it; the modules it had
    imported."""
    listing = folder / "modules.txt"
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", RUN_AND_LIST_MODULES, str(listing), cwd=folder,
        env=bot_environment(model_api, **variables),
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )
    try:
        await talk()
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
        _, err = await asyncio.wait_for(process.communicate(), timeout=30)
    assert process.returncode == 0, err.decode()[-3000:]
    return set(listing.read_text().split())


@pytest.fixture
async def migrated_database(tmp_path: Path) -> str:
    """A SQLite file already at the newest revision (as after the first start)."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'data' / 'bot.db'}"
    database = open_database(url)
    await migrate(database)
    await database.dispose()
    return url


def on_discord(fake: FakeDiscord, **variables: str) -> dict[str, str]:
    return {"DISCORD_BOT_TOKEN": fake.token, "DISCORD_API_URL": fake.api_url,
            "DISCORD_GATEWAY_URL": fake.gateway_url, "BOT_HTTP_PORT": str(free_port()),
            **variables}


def a_discord_answer(fake: FakeDiscord) -> Conversation:
    async def talk() -> None:
        await fake.wait_for_identify(within=30)
        question = await fake.send_message(fake.text_channel_id, fake.plain_user, "hello",
                                           mentions_bot=True)
        await until(lambda: fake.messages_in(int(question["id"])) == ["echo: hello"],
                    what="the Discord answer")
    return talk


def test_the_newest_migration_file_is_alembics_head() -> None:
    assert newest_revision() == ScriptDirectory.from_config(alembic_config()).get_current_head()


async def test_a_discord_only_process_imports_no_slack_alembic_or_redis(
    model_api: FakeModelServer, discord_fake: FakeDiscord, migrated_database: str,
    tmp_path: Path
) -> None:
    modules = await modules_of_a_run(tmp_path, model_api, a_discord_answer(discord_fake),
                                     **on_discord(discord_fake, DATABASE_URL=migrated_database))
    assert {"discord", "aiosqlite"} <= top_level(modules)
    assert {"slack_bolt", "slack_sdk", "alembic", "redis", "greenlet"} & top_level(modules) == set()
    assert {"sqlalchemy.orm", "sqlalchemy.ext.asyncio"} & modules == set()


async def test_alembic_is_imported_when_the_database_needs_migrating(
    model_api: FakeModelServer, discord_fake: FakeDiscord, tmp_path: Path
) -> None:
    modules = await modules_of_a_run(tmp_path, model_api, a_discord_answer(discord_fake),
                                     **on_discord(discord_fake))
    assert "alembic" in top_level(modules)
    assert (tmp_path / "data" / "bot.db").exists()


async def test_redis_is_imported_when_redis_url_is_set(
    model_api: FakeModelServer, discord_fake: FakeDiscord, migrated_database: str,
    tmp_path: Path
) -> None:
    modules = await modules_of_a_run(
        tmp_path, model_api, a_discord_answer(discord_fake),
        **on_discord(discord_fake, DATABASE_URL=migrated_database, REDIS_URL=REDIS_URL))
    assert "redis" in top_level(modules)


async def test_a_slack_only_process_imports_no_discord(
    model_api: FakeModelServer, migrated_database: str, tmp_path: Path
) -> None:
    port = free_port()
    async with FakeSlack() as fake:
        event = fake.app_mention(text="hello slack")

        async def ready() -> bool:
            async with httpx.AsyncClient() as client:
                try:
                    response = await client.get(f"http://127.0.0.1:{port}/readyz")
                except httpx.ConnectError:
                    return False
            return response.status_code == 200

        async def talk() -> None:
            await until(ready, what="the bot being ready")
            status, _ = await fake.deliver(f"http://127.0.0.1:{port}/slack/events",
                                           fake.event_request(event))
            assert status == 200
            await until(lambda: fake.texts("C1", event["ts"]) == ["echo: hello slack"],
                        what="the Slack answer")

        modules = await modules_of_a_run(
            tmp_path, model_api, talk, DATABASE_URL=migrated_database,
            SLACK_BOT_TOKEN=fake.bot_token, SLACK_SIGNING_SECRET=fake.signing_secret,
            SLACK_API_URL=fake.api_url, BOT_HTTP_PORT=str(port))
    assert "slack_bolt" in top_level(modules)
    assert {"discord", "alembic", "redis"} & top_level(modules) == set()
