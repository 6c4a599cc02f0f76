"""`python -m bot` as an operator runs it: one process serving Discord and Slack at once."""

from __future__ import annotations

import asyncio
import signal
import sqlite3
import sys
from pathlib import Path

import httpx

from tests.fakes.discord import FakeDiscord
from tests.fakes.model_server import FakeModelServer
from tests.fakes.slack import FakeSlack
from tests.support.process import bot_environment, free_port


async def wait_for(predicate: object, what: str, within: float = 20.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not predicate():  # type: ignore[operator]
        assert loop.time() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)


async def test_one_process_serves_discord_and_slack_and_stops_cleanly(
    model_api: FakeModelServer, discord_fake: FakeDiscord, slack_fake: FakeSlack, tmp_path: Path
) -> None:
    port = free_port()
    env = bot_environment(
        model_api,
        DISCORD_BOT_TOKEN=discord_fake.token or "token",
        DISCORD_API_URL=discord_fake.api_url,
        DISCORD_GATEWAY_URL=discord_fake.gateway_url,
        SLACK_BOT_TOKEN=slack_fake.bot_token,
        SLACK_SIGNING_SECRET=slack_fake.signing_secret,
        SLACK_API_URL=slack_fake.api_url,
        BOT_HTTP_PORT=str(port),
    )
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", cwd=tmp_path, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    try:
        await discord_fake.wait_for_identify(within=20)
        await wait_for(lambda: discord_fake.calls_to("PUT", r"/applications/\d+/commands"),
                       "the command sync")
        question = await discord_fake.send_message(
            discord_fake.text_channel_id, discord_fake.plain_user, "hello discord",
            mentions_bot=True)
        thread = int(question["id"])
        await wait_for(lambda: discord_fake.messages_in(thread) == ["echo: hello discord"],
                       "the Discord answer")

        async with httpx.AsyncClient() as client:
            event = slack_fake.app_mention(text="hello slack")
            body, headers = slack_fake.event_request(event)
            url = f"http://127.0.0.1:{port}/slack/events"
            for _ in range(100):
                try:
                    response = await client.post(url, content=body, headers=dict(headers))
                    break
                except httpx.ConnectError:
                    await asyncio.sleep(0.1)
            assert response.status_code == 200
        await wait_for(lambda: slack_fake.texts("C1", event["ts"]) == ["echo: hello slack"],
                       "the Slack answer")
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
        _, err = await asyncio.wait_for(process.communicate(), timeout=30)

    assert process.returncode == 0, err.decode()
    assert "Traceback" not in err.decode()
    with sqlite3.connect(tmp_path / "data" / "bot.db") as db:
        platforms = sorted(row[0] for row in db.execute("SELECT platform FROM conversations"))
    assert platforms == ["discord", "slack"]
