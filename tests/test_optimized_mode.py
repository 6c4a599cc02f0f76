"""`python -m bot` as the Docker image runs it: PYTHONOPTIMIZE=2 (no docstrings, no asserts)
and PYTHONNODEBUGRANGES=1, writing no bytecode. On Discord it migrates a new database, syncs
/gemini with real descriptions (discord.py puts "…" where a description would come from a
docstring), streams a whole answer and answers /gemini; on Slack (Socket Mode) it does the
same; SIGTERM ends it with exit status 0."""

from __future__ import annotations

import asyncio
import re
import signal
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from adapters.discord_bot.controls import STOP_ID
from tests.fakes.discord import FakeDiscord
from tests.fakes.model_server import LONG_ANSWER, FakeModelServer, Reply
from tests.fakes.slack import FakeSlack
from tests.support.process import bot_environment, free_port
from tests.support.waiting import until

IMAGE = {"PYTHONOPTIMIZE": "2", "PYTHONNODEBUGRANGES": "1", "PYTHONDONTWRITEBYTECODE": "1"}
"""How the Dockerfile runs the bot."""
STREAMED = Reply(chunks=re.findall(r"\S+\s*", LONG_ANSWER), delay_between_chunks=0.003)
"""A ~3,500-character answer in 600 chunks, about two seconds of streaming."""
NO_DESCRIPTION = ("", "…")
"""What discord.py sends for a command or option whose description it had to take from a
docstring that is not there."""


@dataclass
class ImageBot:
    """`python -m bot` run as the image runs it, its output in `folder`/bot.log."""

    process: asyncio.subprocess.Process
    folder: Path

    @property
    def log(self) -> str:
        return (self.folder / "bot.log").read_text()

    async def until(self, condition: Callable[[], bool], what: str, within: float = 30.0
                    ) -> None:
        """Wait for `condition`; fail at once, showing the log, if the bot exits first."""
        def check() -> bool:
            assert self.process.returncode is None, f"the bot exited:\n{self.log[-3000:]}"
            return condition()

        await until(check, what=what, within=within)

    async def stop(self) -> str:
        """SIGTERM the bot, check it exits 0, and return its log."""
        self.process.send_signal(signal.SIGTERM)
        status = await asyncio.wait_for(self.process.wait(), timeout=30)
        assert status == 0, self.log[-3000:]
        return self.log


@asynccontextmanager
async def image_bot(model_api: FakeModelServer, folder: Path, **variables: str
                    ) -> AsyncIterator[ImageBot]:
    """Start the bot as the image runs it; kill it at the end if the test has not stopped it."""
    env = bot_environment(model_api, **IMAGE, BOT_HTTP_HOST="127.0.0.1",
                          BOT_HTTP_PORT=str(free_port()), **variables)
    with (folder / "bot.log").open("wb") as log:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bot", cwd=folder, env=env, stdout=log, stderr=log)
    try:
        yield ImageBot(process, folder)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


def descriptions(commands: list[dict[str, Any]], prefix: str = "") -> dict[str, str]:
    """The description of every command, subcommand and option, by its path."""
    found: dict[str, str] = {}
    for item in commands:
        path = f"{prefix}{item['name']}"
        found[path] = item.get("description", "")
        found.update(descriptions(item.get("options") or [], f"{path} "))
    return found


def finished(fake: FakeDiscord, thread: int) -> bool:
    """Whether the answer in `thread` is all there and no message carries Stop any more."""
    messages = fake.message_payloads_in(thread)
    return "".join(m["content"] for m in messages) == LONG_ANSWER and not any(
        button.get("custom_id", "").startswith(STOP_ID)
        for m in messages for row in m["components"] for button in row["components"])


async def test_discord_syncs_described_commands_streams_an_answer_and_exits_0(
    model_api: FakeModelServer, discord_fake: FakeDiscord, tmp_path: Path,
) -> None:
    fake = discord_fake
    model_api.script("direct", STREAMED)
    async with image_bot(model_api, tmp_path,
                         DISCORD_BOT_TOKEN=fake.token, DISCORD_API_URL=fake.api_url,
                         DISCORD_GATEWAY_URL=fake.gateway_url) as bot:
        await bot.until(lambda: fake.connected_sessions == 1, "connecting", within=60)
        await bot.until(lambda: bool(fake.commands), "the command sync")
        question = await fake.send_message(fake.text_channel_id, fake.plain_user,
                                           "write at length", mentions_bot=True)
        thread = int(question["id"])
        await bot.until(lambda: finished(fake, thread), "the whole answer")
        interaction = await fake.slash_command(fake.text_channel_id, fake.plain_user,
                                               "gemini show")
        response = await fake.wait_for_interaction_response(interaction, within=20)
        await bot.until(lambda: response.message_id is not None
                        and bool(fake.get_message(response.message_id)["content"]),
                        "the command's answer")
        log = await bot.stop()

    assert (tmp_path / "data" / "bot.db").is_file()
    described = descriptions(fake.commands)
    assert described["gemini"] == "Gemini's settings for this channel"
    assert {"gemini show", "gemini system set", "gemini set name", "gemini set value",
            "gemini tools enable name"} <= set(described)
    assert {path: text for path, text in described.items() if text in NO_DESCRIPTION} == {}
    first, *rest = fake.message_payloads_in(thread)
    assert rest and fake.edits_of(first["id"]), "streamed: edited, then continued"
    assert response.message_id is not None
    assert fake.get_message(response.message_id)["content"].startswith(
        "**Settings for this channel**")
    assert "Traceback" not in log


async def test_slack_socket_mode_streams_an_answer_answers_gemini_and_exits_0(
    model_api: FakeModelServer, slack_fake: FakeSlack, tmp_path: Path,
) -> None:
    fake = slack_fake
    model_api.script("direct", STREAMED)
    async with image_bot(model_api, tmp_path,
                         SLACK_BOT_TOKEN=fake.bot_token, SLACK_APP_TOKEN=fake.app_token,
                         SLACK_API_URL=fake.api_url) as bot:
        await bot.until(lambda: bool(fake.active_sockets), "connecting", within=60)
        event = fake.app_mention(text="write at length")
        await fake.wait_ack(await fake.push_event(event))
        await bot.until(lambda: fake.texts("C1", event["ts"]) == [LONG_ANSWER]
                        and all(s.state == "stopped" for s in fake.streams), "the whole answer")
        await fake.wait_ack(await fake.push_slash_command(text="show"))
        await bot.until(lambda: bool(fake.responses), "the command's answer")
        log = await bot.stop()

    assert len(fake.streams) == 1 and len(fake.streams[0].requests) > 2, "streamed"
    assert "Settings for this channel" in fake.responses[0].body["text"]
    assert "Traceback" not in log
