"""The bot as the container image runs it: `PYTHONOPTIMIZE=2` (no docstrings, no asserts) and
`PYTHONNODEBUGRANGES=1`. The real process, against the fakes, migrates a new database, syncs
its commands with every description in place, answers, and stops cleanly on SIGTERM."""

from __future__ import annotations

import asyncio
import signal
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tests.fakes.discord import FakeDiscord
from tests.fakes.model_server import FakeModelServer
from tests.support.process import bot_environment, free_port
from tests.support.waiting import until

AS_THE_IMAGE_RUNS = {"PYTHONOPTIMIZE": "2", "PYTHONNODEBUGRANGES": "1"}
NO_DESCRIPTION = ("", "…")
"""What discord.py sends for a command or option whose description it had to take from a
docstring that is not there."""


def described(commands: list[dict[str, Any]]) -> Iterator[tuple[str, str]]:
    """Every command, subcommand and option in a synced command list, with its description."""
    for command in commands:
        yield command["name"], command.get("description", "")
        yield from described(command.get("options", []))


async def test_the_optimized_bot_migrates_syncs_answers_and_stops_cleanly(
    model_api: FakeModelServer, discord_fake: FakeDiscord, tmp_path: Path
) -> None:
    env = bot_environment(
        model_api, DISCORD_BOT_TOKEN=discord_fake.token, DISCORD_API_URL=discord_fake.api_url,
        DISCORD_GATEWAY_URL=discord_fake.gateway_url, BOT_HTTP_PORT=str(free_port()),
        **AS_THE_IMAGE_RUNS)
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", cwd=tmp_path, env=env,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
    try:
        await until(lambda: discord_fake.connected_sessions == 1 and bool(discord_fake.commands),
                    what="connecting and the command sync", within=60)
        question = await discord_fake.send_message(
            discord_fake.text_channel_id, discord_fake.plain_user, "hello optimized",
            mentions_bot=True)
        await until(lambda: discord_fake.messages_in(int(question["id"]))
                    == ["echo: hello optimized"], what="the answer")
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
        _, err = await asyncio.wait_for(process.communicate(), timeout=60)

    assert process.returncode == 0, err.decode()[-3000:]
    assert (tmp_path / "data" / "bot.db").is_file()
    names = dict(described(discord_fake.commands))
    assert {"gemini", "show", "set", "tools", "enable"} <= names.keys()
    assert [name for name, text in names.items() if text.strip() in NO_DESCRIPTION] == []
