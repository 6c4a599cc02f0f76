"""Graceful restarts: on SIGTERM the bot stops taking messages (`/readyz` 503, a notice for
new mentions), lets the answers in progress finish for up to BOT_SHUTDOWN_GRACE seconds, cuts
the rest keeping their text, and exits 0; a second signal cuts at once.

The service's drain and cut run in-process; the signals run against a real `python -m bot`
process talking to the fake Discord and the fake model API.
"""

from __future__ import annotations

import asyncio
import json
import signal
import socket
import sqlite3
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from bot.app import Core
from bot.conversation import Author, ConversationKey, Incoming, TurnStatus
from bot.service import CUT_FOR_RESTART, RESTARTING, WARNING
from launcher.readiness import Readiness
from launcher.shutdown import drain
from tests.fakes.discord import FakeDiscord
from tests.fakes.model_server import FakeModelServer, Hang
from tests.support.process import bot_environment
from tests.support.surfaces import RecordingSurface
from tests.support.waiting import until

ANSWER = "one two three four five six seven eight nine ten"
SHOWN_BEFORE_THE_HANG = "one two three four "
RESTART_NOTICE = f"{WARNING} {RESTARTING}"
CUT_NOTICE = f"{WARNING} {CUT_FOR_RESTART}"
KEY = ConversationKey("slack", "T1", "C1", "1.0")
OTHER_KEY = ConversationKey("slack", "T1", "C1", "2.0")
ANN = Author("U1", "Ann")


def assistant_turns(database: Path) -> list[tuple[str, str, str | None]]:
    """(text, status, error) of every stored answer, oldest first."""
    with sqlite3.connect(database) as connection:
        rows = connection.execute(
            "SELECT parts, status, error FROM turns WHERE role = 'assistant' ORDER BY id"
        ).fetchall()
    return [("".join(p["text"] for p in json.loads(parts) if p.get("type") == "text"), status,
             error) for parts, status, error in rows]


# --------------------------------------------------------------------------- in-process


async def test_drain_lets_the_answer_in_progress_finish(
    core: Core, model_api: FakeModelServer,
) -> None:
    model_api.script("direct", Hang(seconds=0.5, after_chunks=2, text=ANSWER))
    surface = RecordingSurface()
    readiness = Readiness()
    readiness.database_migrated()
    answering = asyncio.create_task(core.service.handle(Incoming(KEY, ANN, "count"), surface))
    await until(lambda: surface.shown and surface.shown[0].startswith("one two"),
                what="the first words shown")

    await drain(core.service, readiness, grace=30.0)

    outcome = await answering
    assert outcome is not None and outcome.status is TurnStatus.COMPLETE
    assert surface.shown == [ANSWER]
    assert readiness.not_ready() == {"shutdown": "draining"}
    assert model_api.hangups == []


async def test_past_the_grace_answers_are_cut_with_their_text_and_waiting_ones_refused(
    core: Core, model_api: FakeModelServer, tmp_path: Path,
) -> None:
    model_api.script("direct", Hang(seconds=60.0, after_chunks=2, text=ANSWER))
    first, waiting, late = RecordingSurface(), RecordingSurface(), RecordingSurface()
    service = core.service
    answering = asyncio.create_task(service.handle(Incoming(KEY, ANN, "count"), first))
    await until(lambda: first.shown == [SHOWN_BEFORE_THE_HANG], what="the first words shown")
    queued = asyncio.create_task(service.handle(Incoming(KEY, ANN, "and then?"), waiting))
    await until(lambda: service.limits.waiting == 1, what="the second message waiting")
    assert (service.limits.writing, service.busy) == (1, 2)

    readiness = Readiness()
    readiness.database_migrated()
    draining = asyncio.create_task(drain(service, readiness, grace=0.2))
    await until(lambda: readiness.not_ready() == {"shutdown": "draining"}, what="the drain")
    refused = await service.handle(Incoming(OTHER_KEY, ANN, "hello?"), late)
    await draining

    outcome = await answering
    assert refused is None and late.notices == [RESTART_NOTICE]
    assert outcome is not None and outcome.status is TurnStatus.INTERRUPTED
    assert outcome.text == SHOWN_BEFORE_THE_HANG
    assert first.shown == [f"{SHOWN_BEFORE_THE_HANG}\n\n{CUT_NOTICE}"]
    assert await queued is None and waiting.notices == [RESTART_NOTICE]
    assert service.busy == 0
    assert assistant_turns(tmp_path / "bot.db") == [
        (SHOWN_BEFORE_THE_HANG, "interrupted", CUT_FOR_RESTART)]
    assert await model_api.hung_up("direct")


# --------------------------------------------------------------------------- the process


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class BotProcess:
    """`python -m bot` serving the fake Discord, its log in a file, its database in `folder`."""

    process: asyncio.subprocess.Process
    port: int
    folder: Path

    @property
    def log(self) -> str:
        return (self.folder / "bot.log").read_text()

    @property
    def answers(self) -> list[tuple[str, str, str | None]]:
        return assistant_turns(self.folder / "data" / "bot.db")

    async def readyz(self) -> tuple[int, dict[str, str]] | None:
        """`/readyz`'s status and body; None while nothing listens."""
        try:
            async with httpx.AsyncClient() as http:
                response = await http.get(f"http://127.0.0.1:{self.port}/readyz")
        except httpx.TransportError:
            return None
        return response.status_code, response.json()

    async def ready(self) -> bool:
        return await self.readyz() == (200, {"database": "migrated", "discord": "connected"})

    def signal(self, signum: int = signal.SIGTERM) -> None:
        self.process.send_signal(signum)

    async def exit_status(self, within: float) -> int:
        """The exit status, once the process has ended (failing past `within` seconds)."""
        return await asyncio.wait_for(self.process.wait(), within)


@asynccontextmanager
async def bot_process(model_api: FakeModelServer, fake: FakeDiscord, folder: Path,
                      **variables: str) -> AsyncIterator[BotProcess]:
    port = free_port()
    env = bot_environment(
        model_api, DISCORD_BOT_TOKEN=fake.token, DISCORD_API_URL=fake.api_url,
        DISCORD_GATEWAY_URL=fake.gateway_url, BOT_HTTP_HOST="127.0.0.1",
        BOT_HTTP_PORT=str(port), **variables,
    )
    with (folder / "bot.log").open("wb") as log:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bot", cwd=folder, env=env, stdout=log, stderr=log)
    bot = BotProcess(process, port, folder)
    try:
        await until(bot.ready, within=60, what="the bot ready")
        yield bot
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def mention(fake: FakeDiscord, text: str) -> int:
    """Mention the bot in the text channel; return the thread its answer goes to."""
    question = await fake.send_message(fake.text_channel_id, fake.plain_user, text,
                                       mentions_bot=True)
    return int(question["id"])


def showing(fake: FakeDiscord, thread: int, start: str) -> Callable[[], bool]:
    def shown() -> bool:
        messages = fake.messages_in(thread)
        return bool(messages) and messages[0].startswith(start)

    return shown


async def test_sigterm_mid_answer_lets_it_finish_then_exits_0_logging_json_lines(
    model_api: FakeModelServer, tmp_path: Path,
) -> None:
    model_api.script("direct", Hang(seconds=3.0, after_chunks=2, text=ANSWER))
    async with FakeDiscord() as fake, \
            bot_process(model_api, fake, tmp_path, BOT_LOG_FORMAT="json") as bot:
        thread = await mention(fake, "count to ten")
        await until(showing(fake, thread, "one two"), what="the first words shown")

        bot.signal(signal.SIGTERM)
        status = await bot.exit_status(within=60)

    assert status == 0
    assert fake.messages_in(thread) == [ANSWER]
    assert bot.answers == [(ANSWER, "complete", None)]
    assert model_api.hangups == []
    lines = [json.loads(line) for line in bot.log.splitlines()]
    assert any("SIGTERM" in line["message"] for line in lines)
    assert {"time", "level", "logger", "message"} <= set(lines[0])
    assert fake.token not in bot.log


async def test_an_answer_longer_than_the_grace_is_cut_keeping_its_text_with_a_notice(
    model_api: FakeModelServer, tmp_path: Path,
) -> None:
    model_api.script("direct", Hang(seconds=60.0, after_chunks=2, text=ANSWER))
    async with FakeDiscord() as fake, \
            bot_process(model_api, fake, tmp_path, BOT_SHUTDOWN_GRACE="1") as bot:
        thread = await mention(fake, "count to ten")
        await until(showing(fake, thread, SHOWN_BEFORE_THE_HANG.strip()),
                    what="the first words shown")

        bot.signal(signal.SIGTERM)
        status = await bot.exit_status(within=30)

    assert status == 0, bot.log[-3000:]
    assert fake.messages_in(thread) == [f"{SHOWN_BEFORE_THE_HANG}\n\n{CUT_NOTICE}"]
    assert bot.answers == [(SHOWN_BEFORE_THE_HANG, "interrupted", CUT_FOR_RESTART)]


async def test_while_draining_readyz_is_503_new_mentions_get_a_notice_and_a_second_signal_cuts(
    model_api: FakeModelServer, tmp_path: Path,
) -> None:
    model_api.script("direct", Hang(seconds=60.0, after_chunks=2, text=ANSWER))
    async with FakeDiscord() as fake, \
            bot_process(model_api, fake, tmp_path, BOT_SHUTDOWN_GRACE="50") as bot:
        thread = await mention(fake, "count to ten")
        await until(showing(fake, thread, SHOWN_BEFORE_THE_HANG.strip()),
                    what="the first words shown")

        bot.signal(signal.SIGTERM)

        async def draining() -> bool:
            return await bot.readyz() == (503, {"shutdown": "draining"})

        await until(draining, what="/readyz 503")
        late = await mention(fake, "are you there?")
        await until(lambda: fake.messages_in(late) == [RESTART_NOTICE], what="the notice")

        bot.signal(signal.SIGINT)
        status = await bot.exit_status(within=30)

    assert status == 0, bot.log[-3000:]
    assert fake.messages_in(thread) == [SHOWN_BEFORE_THE_HANG]
    assert bot.answers == [(SHOWN_BEFORE_THE_HANG, "interrupted",
                            "The bot shut down before the answer ended.")]
    assert len(model_api.requests) == 1
