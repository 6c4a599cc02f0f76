"""`python -m bot` at BOT_LOG_LEVEL=DEBUG, as an operator chasing a problem would run it: the
whole process's log output (ours, discord.py's, slack_sdk's, aiohttp's, httpx's) shows no
token, secret or API key, while it answers on Discord and Slack against the fakes."""

from __future__ import annotations

import asyncio
import secrets
import signal
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from urllib.parse import parse_qsl

import httpx
import pytest

from tests.fakes.discord import FakeDiscord
from tests.fakes.model_server import FakeModelServer
from tests.fakes.slack import FakeSlack
from tests.support.process import bot_environment, free_port

DISCORD_TOKEN = "discord-" + secrets.token_urlsafe(24)
SLACK_BOT_TOKEN = "xoxb-" + secrets.token_urlsafe(24)
SLACK_APP_TOKEN = "xapp-" + secrets.token_urlsafe(24)
SLACK_SIGNING_SECRET = secrets.token_hex(16)
MODEL_API_KEY = "sk-" + secrets.token_urlsafe(24)
CONFIGURED = {
    "DISCORD_BOT_TOKEN": DISCORD_TOKEN,
    "SLACK_BOT_TOKEN": SLACK_BOT_TOKEN,
    "SLACK_APP_TOKEN": SLACK_APP_TOKEN,
    "SLACK_SIGNING_SECRET": SLACK_SIGNING_SECRET,
    "EVOLINK_API_KEY": MODEL_API_KEY,
}


async def wait_for(predicate: Callable[[], object], what: str, within: float = 20.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not predicate():
        assert loop.time() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)


@pytest.fixture
async def model() -> AsyncIterator[FakeModelServer]:
    async with FakeModelServer(api_key=MODEL_API_KEY) as server:
        yield server


@pytest.fixture
async def discord_fake() -> AsyncIterator[FakeDiscord]:
    async with FakeDiscord(token=DISCORD_TOKEN) as fake:
        yield fake


@pytest.fixture
async def slack_fake() -> AsyncIterator[FakeSlack]:
    async with FakeSlack(bot_token=SLACK_BOT_TOKEN, app_token=SLACK_APP_TOKEN,
                         signing_secret=SLACK_SIGNING_SECRET) as fake:
        yield fake


async def use_discord(fake: FakeDiscord) -> list[str]:
    """A mention answered in a thread and a slash command answered privately; returns the
    interaction token (a secret for 15 minutes: it lets anyone answer as the bot)."""
    await fake.wait_for_identify(within=20)
    await wait_for(lambda: fake.calls_to("PUT", r"/applications/\d+/commands"), "command sync")
    question = await fake.send_message(fake.text_channel_id, fake.plain_user, "hello discord",
                                       mentions_bot=True)
    thread = int(question["id"])
    await wait_for(lambda: fake.messages_in(thread) == ["echo: hello discord"], "the answer")
    interaction = await fake.slash_command(fake.text_channel_id, fake.plain_user, "gemini show")
    response = await fake.wait_for_interaction_response(interaction, within=20)
    message_id = response.message_id
    await wait_for(lambda: fake.get_message(message_id)["content"], "the command's answer")
    return [str(interaction["token"])]


async def use_slack(fake: FakeSlack, mode: str, port: int) -> list[str]:
    """A mention answered in its thread and /gemini answered privately, in `mode`; returns
    the command's response_url (a secret for 30 minutes: it lets anyone answer as the bot)."""
    event = fake.app_mention(text="hello slack")
    if mode == "socket":
        await fake.wait_socket_connected(timeout=20)
        await fake.wait_ack(await fake.push_event(event))
        await fake.wait_ack(await fake.push_slash_command(text="show"))
        response_url = str(fake.envelopes[-1].payload["response_url"])
    else:
        url = f"http://127.0.0.1:{port}/slack/events"
        async with httpx.AsyncClient() as client:
            for _ in range(400):
                try:
                    await client.get(url)
                    break
                except httpx.ConnectError:
                    await asyncio.sleep(0.05)
        command = fake.slash_command_request(text="show")
        for request in (fake.event_request(event), command):
            status, _ = await fake.deliver(url, request)
            assert status == 200
        response_url = dict(parse_qsl(command[0]))["response_url"]
    await wait_for(lambda: fake.texts("C1", event["ts"]) == ["echo: hello slack"], "the answer")
    await wait_for(lambda: fake.responses, "the command's answer")
    return [response_url]


async def run_bot(slack_mode: str, model: FakeModelServer, discord_fake: FakeDiscord,
                  slack_fake: FakeSlack, folder: Path) -> tuple[str, dict[str, str]]:
    """Run `python -m bot` at DEBUG against the fakes, talk to it on both platforms, stop it;
    return everything it printed and the per-request tokens it was handed."""
    port = free_port()
    variables = {
        **CONFIGURED,
        "BOT_LOG_LEVEL": "DEBUG",
        "DISCORD_API_URL": discord_fake.api_url,
        "DISCORD_GATEWAY_URL": discord_fake.gateway_url,
        "SLACK_API_URL": slack_fake.api_url,
        "BOT_HTTP_PORT": str(port),
    }
    if slack_mode == "http":
        del variables["SLACK_APP_TOKEN"]
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", cwd=folder, env=bot_environment(model, **variables),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    try:
        (interaction_token,) = await use_discord(discord_fake)
        (response_url,) = await use_slack(slack_fake, slack_mode, port)
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
        out, err = await asyncio.wait_for(process.communicate(), timeout=30)
    logs = err.decode() + out.decode()
    assert process.returncode == 0, logs[-3000:]
    assert "DEBUG discord." in logs and "DEBUG slack_sdk." in logs, "libraries log at DEBUG"
    assert model.requests and all(r.api_key == MODEL_API_KEY for r in model.requests)
    return logs, {"Discord interaction token": interaction_token,
                  "Slack response_url": response_url.rsplit("/", 1)[-1]}


def leaks(logs: str, values: dict[str, str]) -> dict[str, str]:
    """The named values that appear in `logs`, each with the first line showing it."""
    return {name: next(line for line in logs.splitlines() if value in line)[:300]
            for name, value in values.items() if value in logs}


@pytest.mark.parametrize("slack_mode", ["http", "socket"])
async def test_debug_logs_of_the_whole_process_show_no_configured_secret(
    slack_mode: str, model: FakeModelServer, discord_fake: FakeDiscord, slack_fake: FakeSlack,
    tmp_path: Path,
) -> None:
    logs, _ = await run_bot(slack_mode, model, discord_fake, slack_fake, tmp_path)

    assert leaks(logs, CONFIGURED) == {}


async def test_debug_logs_show_no_per_request_token(
    model: FakeModelServer, discord_fake: FakeDiscord, slack_fake: FakeSlack, tmp_path: Path,
) -> None:
    logs, tokens = await run_bot("socket", model, discord_fake, slack_fake, tmp_path)

    assert leaks(logs, tokens) == {}
