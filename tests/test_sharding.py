"""Discord sharding: DISCORD_SHARD_COUNT and DISCORD_SHARD_IDS split the guilds between
processes; without them one process runs every shard Discord recommends. Real discord.py
against the fake Discord, whose gateway routes each guild's events to the shard
`(guild_id >> 22) % count` and DMs to shard 0, as Discord does."""

from __future__ import annotations

import asyncio
import signal
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from adapters.discord_bot.app import GeminiClient
from adapters.discord_bot.settings import DiscordSettings
from bot.app import open_core
from bot.config import Settings
from bot.errors import ConfigError
from tests.fakes.discord import FakeDiscord
from tests.fakes.model_server import FakeModelServer, last_user_text, message_text
from tests.support.process import bot_environment, free_port
from tests.support.waiting import until


def pointed_at(fake: FakeDiscord, **overrides: Any) -> DiscordSettings:
    """The Discord adapter's settings pointed at `fake`; overrides by field name."""
    values: dict[str, Any] = {"bot_token": fake.token, "api_url": fake.api_url,
                              "gateway_url": fake.gateway_url}
    return DiscordSettings.load(_env_file=None, **(values | overrides))


def system_prompt_of(model_api: FakeModelServer, question: str) -> list[str]:
    """The system prompt sent with each model request that asked `question`."""
    prompts = []
    for request in model_api.requests:
        if last_user_text(request.body) == question:
            system = [m for m in request.body["messages"] if m["role"] == "system"]
            prompts.append(message_text(system[0]["content"]) if system else "")
    return prompts


async def answered(fake: FakeDiscord, question: dict[str, Any], where: str) -> None:
    """Wait for the bot's answer in the thread it starts on a guild `question`."""
    thread = int(question["id"])
    await until(lambda: bool(fake.messages_in(thread)), what=f"the answer in {where}")


# --------------------------------------------------------------------------- settings


@pytest.mark.parametrize(("variables", "problem"), [
    ({"shard_ids": "0,1"}, "DISCORD_SHARD_IDS: expected a DISCORD_SHARD_COUNT set with them"),
    ({"shard_count": "2", "shard_ids": "0,2"},
     "DISCORD_SHARD_IDS: expected distinct shard IDs from 0 to 1 (DISCORD_SHARD_COUNT is 2)"),
    ({"shard_count": "2", "shard_ids": "1,1"}, "DISCORD_SHARD_IDS: expected distinct shard IDs"),
    ({"shard_count": "0"}, "DISCORD_SHARD_COUNT: Input should be greater than or equal to 1"),
])
def test_impossible_shards_stop_start_up_naming_the_variable(
    variables: dict[str, str], problem: str
) -> None:
    with pytest.raises(ConfigError, match=problem.replace("(", r"\(").replace(")", r"\)")):
        DiscordSettings.load(_env_file=None, **variables)


def test_shard_settings_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DISCORD_SHARD_COUNT", "4")
    monkeypatch.setenv("DISCORD_SHARD_IDS", "2, 3")
    settings = DiscordSettings.load(_env_file=None)
    assert (settings.shard_count, settings.shards) == (4, [2, 3])


# --------------------------------------------------------------------------- one process


async def test_without_a_shard_count_one_process_runs_every_recommended_shard(
    make_settings: Callable[..., Settings], model_api: FakeModelServer
) -> None:
    async with FakeDiscord(recommended_shards=2) as fake:
        _, channel_on_1 = await fake.add_guild("Second Guild", shard=(1, 2))
        _, channel_on_0 = await fake.add_guild("Third Guild", shard=(0, 2))
        with fake.patch_discord():
            async with open_core(make_settings()) as core:
                client = GeminiClient(core, pointed_at(fake), guild_ready_timeout=0.05)
                async with fake.client_running(client):
                    assert sorted(i["shard"] for i in fake.identifies) == [[0, 2], [1, 2]]
                    assert len(client.guilds) == 3
                    on_1 = await fake.send_message(channel_on_1, fake.plain_user, "one",
                                                   mentions_bot=True)
                    on_0 = await fake.send_message(channel_on_0, fake.plain_user, "zero",
                                                   mentions_bot=True)
                    await fake.send_message(fake.dm_channel_id, fake.plain_user, "dm")
                    await answered(fake, on_1, "the guild on shard 1")
                    await answered(fake, on_0, "the guild on shard 0")
                    await until(lambda: bool(fake.messages_in(fake.dm_channel_id)[1:]),
                                what="the DM answer")
                    await client.idle()
    assert fake.messages_in(int(on_1["id"])) == ["echo: one"]
    assert fake.messages_in(int(on_0["id"])) == ["echo: zero"]
    assert fake.messages_in(fake.dm_channel_id) == ["dm", "echo: dm"]
    assert not fake.unknown_calls


# --------------------------------------------------------------------------- two processes


@asynccontextmanager
async def shard_process(
    shard_id: int, fake: FakeDiscord, model_api: FakeModelServer, database_url: str,
    folder: Path
) -> AsyncIterator[asyncio.subprocess.Process]:
    """`python -m bot` serving shard `shard_id` of 2, its system prompt naming its shard;
    stopped with SIGTERM (it must exit 0)."""
    env = bot_environment(
        model_api,
        DATABASE_URL=database_url,
        DISCORD_BOT_TOKEN=fake.token,
        DISCORD_API_URL=fake.api_url,
        DISCORD_GATEWAY_URL=fake.gateway_url,
        DISCORD_SHARD_COUNT="2",
        DISCORD_SHARD_IDS=str(shard_id),
        BOT_SYSTEM_PROMPT=f"shard {shard_id}",
        BOT_HTTP_PORT=str(free_port()),
        BOT_USER_MESSAGES_PER_MINUTE="0",
    )
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", cwd=folder, env=env,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )
    try:
        yield process
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
        _, err = await asyncio.wait_for(process.communicate(), timeout=30)
        assert process.returncode == 0, err.decode()
        assert "Traceback" not in err.decode(), err.decode()


async def test_two_shard_processes_each_answer_only_their_guilds_and_a_dm_once(
    model_api: FakeModelServer, postgres_url: str, tmp_path: Path
) -> None:
    async with FakeDiscord() as fake:
        _, channel_on_1 = await fake.add_guild("Second Guild", shard=(1, 2))
        _, channel_on_0 = await fake.add_guild("Third Guild", shard=(0, 2))
        async with (
            shard_process(0, fake, model_api, postgres_url, tmp_path),
            shard_process(1, fake, model_api, postgres_url, tmp_path),
        ):
            await until(lambda: fake.connected_sessions == 2, what="both shards connecting")
            assert sorted(i["shard"] for i in fake.identifies) == [[0, 2], [1, 2]]
            questions = {
                "for shard one": channel_on_1,
                "for shard zero": channel_on_0,
            }
            sent = {text: await fake.send_message(channel, fake.plain_user, text,
                                                  mentions_bot=True)
                    for text, channel in questions.items()}
            await fake.send_message(fake.dm_channel_id, fake.plain_user, "a direct question")
            for text, question in sent.items():
                await answered(fake, question, text)
            await until(lambda: len(fake.messages_in(fake.dm_channel_id)) == 2,
                        what="the DM answer")

    assert system_prompt_of(model_api, "for shard one") == ["shard 1"]
    assert system_prompt_of(model_api, "for shard zero") == ["shard 0"]
    assert system_prompt_of(model_api, "a direct question") == ["shard 0"], \
        "Discord sends DMs to shard 0 only: answered once, by that process"
    for text, question in sent.items():
        assert fake.messages_in(int(question["id"])) == [f"echo: {text}"]
    assert fake.messages_in(fake.dm_channel_id) == ["a direct question",
                                                     "echo: a direct question"]
