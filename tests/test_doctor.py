"""`python -m bot doctor` against the fake model API, Discord and Slack and real databases:
one line per thing checked, what to do on ✗, and exit 0 only when nothing failed."""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from bot import migrate, open_database
from launcher.checks import Check, Context, Result
from launcher.cli import Configuration, main
from launcher.doctor import run_checks
from tests.conftest import API_KEY
from tests.fakes import mcp_tickets
from tests.fakes.discord import FakeDiscord
from tests.fakes.model_server import MODEL, FakeModelServer, HangBeforeHeaders, Status
from tests.fakes.slack import FakeSlack
from tests.support.process import bot_environment, free_port

WRONG_KEY = "sk-wrong-0123456789"


@dataclass(frozen=True)
class Report:
    """What the doctor printed, and its exit code."""

    code: int
    lines: list[str]

    @property
    def text(self) -> str:
        return "\n".join(self.lines)

    def line(self, start: str) -> str:
        """The one line whose name starts with `start` (after the ✓/✗/- mark)."""
        found = [line for line in self.lines if line[2:].startswith(start)]
        assert len(found) == 1, f"one line starting {start!r} expected in:\n{self.text}"
        return found[0]


@pytest.fixture(autouse=True)
def _logging_restored() -> Iterator[None]:
    """The doctor configures logging for its process; give pytest's back afterwards."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:], root.level = handlers, level


@pytest.fixture
async def migrated_sqlite(sqlite_url: str) -> str:
    """A SQLite file migrated to the newest revision."""
    database = open_database(sqlite_url)
    await migrate(database)
    await database.dispose()
    return sqlite_url


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, model_api: FakeModelServer,
        migrated_sqlite: str) -> pytest.MonkeyPatch:
    """An operator's working folder and environment: the fake model API (which knows only
    the default model) and a migrated SQLite file; no platform yet."""
    monkeypatch.chdir(tmp_path)
    model_api.models = {MODEL}
    for name, value in bot_environment(model_api, DATABASE_URL=migrated_sqlite).items():
        monkeypatch.setenv(name, value)
    return monkeypatch


def with_discord(env: pytest.MonkeyPatch, fake: FakeDiscord) -> None:
    env.setenv("DISCORD_BOT_TOKEN", fake.token)
    env.setenv("DISCORD_API_URL", fake.api_url)


def with_slack(env: pytest.MonkeyPatch, fake: FakeSlack, *, socket_mode: bool = True) -> None:
    env.setenv("SLACK_BOT_TOKEN", fake.bot_token)
    env.setenv("SLACK_API_URL", fake.api_url)
    if socket_mode:
        env.setenv("SLACK_APP_TOKEN", fake.app_token)


async def doctor(capsys: pytest.CaptureFixture[str], *args: str) -> Report:
    """Run `python -m bot doctor` in this process (in a thread: it runs its own event loop
    while the fakes serve from the test's)."""

    def run() -> int:
        with pytest.raises(SystemExit) as exit_:
            main(["doctor", *args])
        return int(exit_.value.code or 0)

    capsys.readouterr()
    code = await asyncio.to_thread(run)
    return Report(code, capsys.readouterr().out.splitlines())


# ---------------------------------------------------------------------- everything well


async def test_everything_configured_and_well_passes_every_line_and_exits_0(
    model_api: FakeModelServer, discord_fake: FakeDiscord, slack_fake: FakeSlack,
    migrated_sqlite: str, tmp_path: Path,
) -> None:
    model_api.models = {MODEL}
    mcp = tmp_path / "mcp.json"
    mcp.write_text(json.dumps({"mcpServers": {
        "tickets": {"command": sys.executable, "args": [str(Path(mcp_tickets.__file__))]}}}))
    env = bot_environment(
        model_api, DATABASE_URL=migrated_sqlite, BOT_MCP_CONFIG=str(mcp),
        DISCORD_BOT_TOKEN=discord_fake.token, DISCORD_API_URL=discord_fake.api_url,
        SLACK_BOT_TOKEN=slack_fake.bot_token, SLACK_APP_TOKEN=slack_fake.app_token,
        SLACK_API_URL=slack_fake.api_url,
    )
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", "doctor", cwd=tmp_path, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 60)
    report = Report(process.returncode or 0, out.decode().splitlines())

    assert report.code == 0, report.text + err.decode()
    assert report.lines and all(line.startswith("✓ ") for line in report.lines), report.text
    assert "serves Discord and Slack" in report.line("configuration")
    assert "schema at the newest revision" in report.line("database")
    for variable in ("EVOLINK_DIRECT_URL", "EVOLINK_API_URL"):
        assert "streamed a 1-token answer in" in report.line(f"model API via {variable}")
    assert {r.endpoint for r in model_api.requests} == {"direct", "api"}
    assert all(r.body["max_completion_tokens"] == 1 and r.body["stream"] is True
               and r.body["model"] == MODEL for r in model_api.requests)
    assert "GeminiBot" in report.line("Discord token")
    assert report.line("Discord Message Content intent").endswith("enabled")
    assert f"client_id={discord_fake.application_id}" in report.line("Discord invite URL")
    assert "scope=bot+applications.commands" in report.line("Discord invite URL")
    assert "UBOT" in report.line("Slack token")
    assert "all 10 scopes" in report.line("Slack scopes")
    assert "Socket Mode" in report.line("Slack events")
    for secret in (API_KEY, discord_fake.token, slack_fake.bot_token, slack_fake.app_token):
        assert secret not in report.text + err.decode()


async def test_platforms_not_configured_are_one_skipped_line_each(
    env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    report = await doctor(capsys)

    assert report.code == 0, report.text
    assert report.line("Discord") == "- Discord: skipped (DISCORD_BOT_TOKEN is not set)"
    assert report.line("Slack") == "- Slack: skipped (SLACK_BOT_TOKEN is not set)"
    assert report.line("MCP servers") == "- MCP servers: skipped (BOT_MCP_CONFIG is not set)"
    assert "terminal chat" in report.line("configuration")


async def test_each_mcp_server_is_a_line_with_its_tools_and_one_that_fails_to_start_is_a_cross(
    env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    config = tmp_path / "mcp.json"
    config.write_text(json.dumps({"mcpServers": {
        "tickets": {"command": sys.executable, "args": [str(Path(mcp_tickets.__file__))]},
        "broken": {"command": str(tmp_path / "no-such-server")},
    }}))
    env.setenv("BOT_MCP_CONFIG", str(config))

    report = await doctor(capsys)

    assert report.code == 1, report.text
    assert report.line("MCP tickets").startswith(
        "✓ MCP tickets: connected; tools: tickets__lookup")
    assert report.line("MCP broken").startswith("✗ MCP broken: did not start")


async def test_a_bad_setting_is_the_one_line_config_error_and_the_rest_is_skipped(
    env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], model_api: FakeModelServer
) -> None:
    env.setenv("BOT_HISTORY_TOKENS", "lots")

    report = await doctor(capsys)

    assert report.code == 1
    assert report.lines[0].startswith("✗ configuration: BOT_HISTORY_TOKENS: ")
    assert report.lines[0].endswith("— fix it in the environment or .env")
    assert report.lines[1:] == [f"- {name}: skipped (the configuration did not load)"
                                for name in ("database", "model API", "Discord", "Slack",
                                             "MCP servers")]
    assert model_api.requests == []


# ---------------------------------------------------------------------- the model API


async def test_a_wrong_model_key_fails_naming_the_variable_never_showing_the_key(
    env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], model_api: FakeModelServer
) -> None:
    env.setenv("EVOLINK_API_KEY", WRONG_KEY)
    model_api.script("direct", Status(401, echo_key=True))  # a careless API echoes the key

    report = await doctor(capsys)

    assert report.code == 1
    for variable in ("EVOLINK_DIRECT_URL", "EVOLINK_API_URL"):
        line = report.line(f"model API via {variable}")
        assert line.startswith("✗ ")
        assert "rejected the key in EVOLINK_API_KEY" in line
        assert line.endswith("— put a valid Evolink API key in EVOLINK_API_KEY")
    assert WRONG_KEY not in report.text
    assert {r.api_key for r in model_api.requests} == {WRONG_KEY}


async def test_an_unknown_model_fails_pointing_at_bot_model(
    env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    env.setenv("BOT_MODEL", "gemini-0-nonexistent")

    report = await doctor(capsys)

    assert report.code == 1
    line = report.line("model API via EVOLINK_DIRECT_URL")
    assert line.startswith("✗ ")
    assert "gemini-0-nonexistent" in line and "HTTP 400" in line
    assert line.endswith("— set BOT_MODEL to a model this API offers")


async def test_a_model_url_that_does_not_answer_fails_within_the_timeout(
    env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], model_api: FakeModelServer
) -> None:
    model_api.script("direct", HangBeforeHeaders(seconds=30))

    report = await doctor(capsys, "--timeout", "0.5")

    assert report.code == 1
    direct = report.line("model API via EVOLINK_DIRECT_URL")
    assert direct.startswith("✗ ") and "check EVOLINK_DIRECT_URL" in direct
    assert report.line("model API via EVOLINK_API_URL").startswith("✓ ")


async def test_a_missing_model_key_fails_without_calling_the_api(
    env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], model_api: FakeModelServer
) -> None:
    env.delenv("EVOLINK_API_KEY")

    report = await doctor(capsys)

    assert report.code == 1
    assert report.line("model API").startswith("✗ model API: EVOLINK_API_KEY is not set")
    assert model_api.requests == []


# ---------------------------------------------------------------------- the database


def revision_of(sqlite_url: str) -> str:
    path = sqlite_url.removeprefix("sqlite+aiosqlite:///")
    with sqlite3.connect(path) as connection:
        (revision,) = connection.execute("SELECT version_num FROM alembic_version").fetchone()
    return str(revision)


async def test_a_database_behind_the_newest_migration_fails_and_is_left_as_it_is(
    env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    older = f"sqlite+aiosqlite:///{tmp_path / 'older.db'}"
    database = open_database(older)
    await migrate(database, "0002")
    await database.dispose()
    env.setenv("DATABASE_URL", older)

    report = await doctor(capsys)

    assert report.code == 1
    line = report.line("database")
    assert line.startswith("✗ ") and "is at revision 0002, the newest is" in line
    assert line.endswith("— run python -m bot migrate")
    assert revision_of(older) == "0002"


async def test_a_missing_sqlite_file_fails_with_the_hint_and_is_not_created(
    env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    env.setenv("DATABASE_URL", "sqlite+aiosqlite:///data/bot.db")

    report = await doctor(capsys)

    assert report.code == 1
    assert report.line("database") == (
        f"✗ database: the folder {tmp_path / 'data'} does not exist — run python -m bot "
        "migrate (it creates the folder and the database)")
    (tmp_path / "data").mkdir()
    report = await doctor(capsys)
    assert report.line("database") == (
        f"✗ database: no database file at {tmp_path / 'data' / 'bot.db'} — run python -m bot "
        "migrate")
    assert list((tmp_path / "data").iterdir()) == []


async def test_an_empty_database_fails_as_not_migrated(
    env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    sqlite3.connect(tmp_path / "empty.db").close()
    env.setenv("DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path / 'empty.db'}")

    report = await doctor(capsys)

    assert report.code == 1
    assert "has no schema yet — run python -m bot migrate" in report.line("database")


async def test_a_database_from_a_newer_bot_fails_without_advising_a_migration(
    env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], migrated_sqlite: str
) -> None:
    path = migrated_sqlite.removeprefix("sqlite+aiosqlite:///")
    with sqlite3.connect(path) as connection:
        connection.execute("UPDATE alembic_version SET version_num = '9999'")

    report = await doctor(capsys)

    assert report.code == 1
    line = report.line("database")
    assert "revision 9999, which this version of the bot does not know" in line
    assert "run python -m bot migrate" not in line


async def test_an_unreachable_database_fails_without_showing_its_password(
    env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"postgresql+asyncpg://bot:hunter2secret@127.0.0.1:{free_port()}/bot"
    env.setenv("DATABASE_URL", url)

    report = await doctor(capsys, "--timeout", "5")

    assert report.code == 1
    line = report.line("database")
    assert line.startswith("✗ database: cannot use postgresql+asyncpg://bot:***@127.0.0.1:")
    assert line.endswith("— check DATABASE_URL, the server and the credentials")
    assert "hunter2secret" not in report.text


async def test_a_migrated_postgresql_database_passes(
    env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], postgres_url: str
) -> None:
    database = open_database(postgres_url)
    await migrate(database)
    await database.dispose()
    env.setenv("DATABASE_URL", postgres_url)

    report = await doctor(capsys)

    assert report.code == 0, report.text
    line = report.line("database")
    assert line.startswith("✓ database: postgresql+asyncpg://") and "newest revision" in line
    assert "writable" not in line


# ---------------------------------------------------------------------- Discord


async def test_discord_without_the_message_content_intent_fails(
    env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    async with FakeDiscord(message_content_allowed=False) as fake:
        with_discord(env, fake)
        report = await doctor(capsys)

    assert report.code == 1
    assert report.line("Discord token").startswith("✓ ")
    line = report.line("Discord Message Content intent")
    assert line.startswith("✗ ")
    assert f"enable Message Content Intent under Bot → Privileged Gateway Intents at " \
           f"https://discord.com/developers/applications/{fake.application_id}/bot" in line
    assert report.line("Discord invite URL").startswith("✓ ")


async def test_a_wrong_discord_token_fails_and_is_not_shown(
    env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], discord_fake: FakeDiscord
) -> None:
    with_discord(env, discord_fake)
    env.setenv("DISCORD_BOT_TOKEN", "wrong-discord-token")

    report = await doctor(capsys)

    assert report.code == 1
    line = report.line("Discord token")
    assert line.startswith("✗ Discord token: DISCORD_BOT_TOKEN was refused (401)")
    assert "wrong-discord-token" not in report.text
    assert [c.path for c in discord_fake.calls] == ["/users/@me"]


async def test_discord_that_cannot_be_reached_fails_naming_the_url(
    env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    env.setenv("DISCORD_BOT_TOKEN", "some-token")
    env.setenv("DISCORD_API_URL", f"http://127.0.0.1:{free_port()}/api/v10")

    report = await doctor(capsys, "--timeout", "5")

    assert report.code == 1
    line = report.line("Discord")
    assert line.startswith("✗ Discord: ") and "check DISCORD_API_URL" in line


# ---------------------------------------------------------------------- Slack


async def test_a_slack_token_missing_a_scope_fails_naming_the_scope(
    env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], slack_fake: FakeSlack
) -> None:
    with_slack(env, slack_fake)
    slack_fake.bot_scopes -= {"files:read", "users:read"}

    report = await doctor(capsys)

    assert report.code == 1
    assert report.line("Slack token").startswith("✓ ")
    line = report.line("Slack scopes")
    assert line.startswith("✗ Slack scopes: the bot token lacks files:read, users:read — ")
    assert "reinstall" in line


async def test_a_wrong_slack_token_fails(
    env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], slack_fake: FakeSlack
) -> None:
    with_slack(env, slack_fake)
    env.setenv("SLACK_BOT_TOKEN", "xoxb-wrong")
    env.setenv("SLACK_APP_TOKEN", "xapp-wrong")

    report = await doctor(capsys)

    assert report.code == 1
    assert report.line("Slack token") == (
        "✗ Slack token: auth.test answered invalid_auth — check SLACK_BOT_TOKEN (and "
        "SLACK_API_URL if set)")
    assert report.line("Slack events").startswith(
        "✗ Slack events: apps.connections.open answered invalid_auth — check SLACK_APP_TOKEN")
    assert "Slack scopes" not in report.text


async def test_slack_in_http_mode_needs_the_signing_secret(
    env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], slack_fake: FakeSlack
) -> None:
    with_slack(env, slack_fake, socket_mode=False)

    report = await doctor(capsys)

    assert report.code == 1
    assert report.line("Slack events").startswith(
        "✗ Slack events: neither SLACK_APP_TOKEN nor SLACK_SIGNING_SECRET is set — ")
    env.setenv("SLACK_SIGNING_SECRET", slack_fake.signing_secret)
    report = await doctor(capsys)
    assert report.code == 0, report.text
    assert "HTTP mode" in report.line("Slack events")


async def test_slack_without_the_bot_token_fails_naming_it(
    env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], slack_fake: FakeSlack
) -> None:
    env.setenv("SLACK_APP_TOKEN", slack_fake.app_token)
    env.setenv("SLACK_API_URL", slack_fake.api_url)

    report = await doctor(capsys)

    assert report.code == 1
    assert report.line("Slack token").startswith("✗ Slack token: SLACK_BOT_TOKEN is not set — ")
    assert report.line("Slack events").startswith("✓ Slack events: Socket Mode")


# ---------------------------------------------------------------------- the runner


async def test_a_check_that_breaks_is_a_failed_line_and_the_others_still_report(
    env: pytest.MonkeyPatch,
) -> None:
    async def broken(context: Context) -> list[Result]:
        raise KeyError("flags")

    async def fine(context: Context) -> list[Result]:
        return [Result.passed("fine", "all good")]

    reported: list[str] = []
    context = Context(Configuration.load(), timeout=1.0)
    results = await run_checks(context, [Check("broken", broken), Check("fine", fine)],
                               lambda result: reported.append(result.line()))

    assert reported == [
        "✗ broken: the check itself failed: KeyError: 'flags' — report this as a bug in the bot",
        "✓ fine: all good",
    ]
    assert len(results) == 2
