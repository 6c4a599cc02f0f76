"""Two replicas of the bot (two `python -m bot` processes on one PostgreSQL database and the
machine's Redis) behind one Slack app in HTTP mode, as behind a load balancer: each event is
answered once whichever replica gets it (and its redelivery), and together they keep within
one workspace's budget of each rate-limited method."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest

from adapters.slack_bot.budgets import METHOD_RATES, UPDATE, MethodRate
from adapters.slack_bot.surface import SLACK_TUNING
from tests.fakes.model_server import (
    FakeModelServer,
    Reply,
    echo_answer,
    last_user_text,
    message_text,
)
from tests.fakes.slack import FakeSlack
from tests.support.process import bot_environment, free_port
from tests.support.redis import reachable_redis
from tests.support.waiting import until

REDIS_URL = os.environ.get("TEST_REPLICAS_REDIS_URL", "redis://127.0.0.1:6379/14")
"""A database of the machine's Redis for these replicas (their budget keys are cleared)."""
BUDGET_KEYS = "gemini-bot:budget:*"
ANSWERS = 8
TAIL = " ".join(f"word{i}" for i in range(40))
"""Each answer: the echo, then 40 words in 21 chunks 0.1 s apart (about 2 s of streaming)."""
WINDOW = 10.0


def one_workspace_budget(window: float) -> dict[str, int]:
    """The calls of each method the bot paces that one workspace's budget lets through in any
    `window` seconds (its burst, then its rate), plus one for network jitter. Two budgets
    spend more: 8 answers start 8 streams at once, which a budget of Slack's Tier 2 (for
    chat.startStream) lets through 3 at once and then one every 3.5 s: two budgets, 6 at once
    and 8 within 4 s, past the 6 allowed in 10 s."""
    rates = {UPDATE: MethodRate(SLACK_TUNING.edit_rate, SLACK_TUNING.edit_burst),
             **METHOD_RATES}
    return {method: rate.burst + int(rate.rate * window / 60) + 1
            for method, rate in rates.items()}


def busy_workspace(fake: FakeSlack, model_api: FakeModelServer) -> list[str]:
    """One workspace's budget of each paced method on the fake Slack, ANSWERS long answers
    scripted on the model API (the echo, then TAIL), and one person per answer: their ids."""
    for method, limit in one_workspace_budget(WINDOW).items():
        fake.set_rate_limit(method, limit, WINDOW)
    model_api.default_answer = lambda body: f"{echo_answer(body)} {TAIL}"
    model_api.script("direct", *[Reply(delay_between_chunks=0.1)] * ANSWERS)
    people = [f"UREPLICA{n}" for n in range(ANSWERS)]
    for person in people:
        fake.add_user(person, person.lower())
    return people


@pytest.fixture
async def redis_url() -> AsyncIterator[str]:
    """The machine's Redis, with no budget left over from an earlier run."""
    client = await reachable_redis(REDIS_URL, "replica runs")
    try:
        stale = [key async for key in client.scan_iter(BUDGET_KEYS)]
        if stale:
            await client.delete(*stale)
    finally:
        await client.aclose()
    yield REDIS_URL


@asynccontextmanager
async def replica(name: str, fake: FakeSlack, model_api: FakeModelServer, database_url: str,
                  redis_url: str, folder: Path, **variables: str) -> AsyncIterator[str]:
    """`python -m bot` serving Slack over HTTP (or Socket Mode, with SLACK_APP_TOKEN in
    `variables`), its system prompt naming it; yields its events URL once it is ready.
    Stopped with SIGTERM, it must exit 0."""
    port = free_port()
    env = bot_environment(
        model_api,
        BOT_SYSTEM_PROMPT=name,
        DATABASE_URL=database_url,
        REDIS_URL=redis_url,
        SLACK_BOT_TOKEN=fake.bot_token,
        SLACK_SIGNING_SECRET=fake.signing_secret,
        SLACK_API_URL=fake.api_url,
        BOT_HTTP_PORT=str(port),
        **variables,
    )
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", cwd=folder, env=env,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )

    async def ready() -> bool:
        async with httpx.AsyncClient() as client:
            try:
                response = await client.get(f"http://127.0.0.1:{port}/readyz")
            except httpx.ConnectError:
                return False
        return response.status_code == 200

    try:
        await until(ready, what=f"the replica on port {port} being ready")
        yield f"http://127.0.0.1:{port}/slack/events"
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
        _, err = await asyncio.wait_for(process.communicate(), timeout=30)
        assert process.returncode == 0, err.decode()[-3000:]
        assert "Traceback" not in err.decode(), err.decode()[-3000:]


async def test_two_replicas_answer_each_event_once_within_one_workspace_budget(
    postgres_url: str, redis_url: str, tmp_path: Path
) -> None:
    async with FakeModelServer() as model_api, FakeSlack(update_limit=None) as fake:
        people = busy_workspace(fake, model_api)
        async with (
            replica("replica A", fake, model_api, postgres_url, redis_url, tmp_path) as a,
            replica("replica B", fake, model_api, postgres_url, redis_url, tmp_path) as b,
        ):
            events = [fake.message(user=person, text=f"question {n}", channel=f"DREPLICA{n}",
                                   channel_type="im") for n, person in enumerate(people)]
            # The load balancer alternates; Slack's redelivery of each event reaches the other.
            receivers = [(a, b) if n % 2 == 0 else (b, a) for n in range(ANSWERS)]
            sent = await asyncio.gather(*(
                fake.deliver(receivers[n][0], fake.event_request(event, event_id=f"Ev{n}"))
                for n, event in enumerate(events)))
            await until(lambda: len(model_api.requests) == ANSWERS, what="every question asked")
            resent = await asyncio.gather(*(
                fake.deliver(receivers[n][1], fake.event_request(event, event_id=f"Ev{n}",
                                                                 retry_num=1))
                for n, event in enumerate(events)))
            assert [status for status, _ in sent + resent] == [200] * 2 * ANSWERS

            def whole(n: int) -> bool:
                return fake.texts(f"DREPLICA{n}") == [f"echo: question {n} {TAIL}"]

            await until(lambda: all(whole(n) for n in range(ANSWERS)), within=120,
                        what="every answer, whole")

    answered_by = {last_user_text(r.body): message_text(r.body["messages"][0]["content"])
                   for r in model_api.requests}
    assert len(model_api.requests) == ANSWERS, "each event answered once"
    assert answered_by == {f"question {n}": "replica A" if n % 2 == 0 else "replica B"
                           for n in range(ANSWERS)}, "by the replica that received it"
    assert fake.rate_limited == 0, "the two replicas kept within one workspace budget"
    assert not fake.missed_acks
