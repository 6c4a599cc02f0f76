"""Two replicas behind one Slack app: two `python -m bot` processes on PostgreSQL and Redis
(REDIS_URL) against the fake Slack in HTTP mode, with 10 long answers written at once in
one workspace.

Each question is a direct message from a different person; each answer (~600 words, streamed
by the model in 300 chunks `--chunk-delay` seconds apart) is drawn with Slack's native
streaming, its calls taken from the workspace's budget of each method. As a load balancer
would, the events alternate between the replicas, and then Slack's redelivery of each event
(X-Slack-Retry-Num: 1) reaches the other one. The fake Slack refuses calls past Slack's
per-minute limits (chat.startStream and chat.stopStream 20, chat.update and
assistant.threads.setStatus 50, chat.appendStream 100, in any 60 s). Printed: answers
complete, duplicates, 429s, and for each method the busiest minute of calls against the
budget (its rate plus its burst, less one, in any 60 s; chat.update: 45 + 5 - 1 = 49).

    python bench/two_replicas_slack.py [--chunk-delay 0.1] [--no-redis]
        [--postgres postgresql://postgres@127.0.0.1:5432/test]
        [--redis-url redis://127.0.0.1:6379/13]

The pace is Slack's real one, so a run takes a minute or two; `--chunk-delay` shortens or
lengthens the answers (the budgets are the bot's own: adapters/slack_bot/budgets.py and
SLACK_TUNING). `--no-redis` runs the replicas with budgets of their own, for comparison. The
replicas share a database the bench creates on the `--postgres` server (and drops after).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path

import asyncpg
import httpx
from redis.asyncio import Redis

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from adapters.slack_bot.budgets import METHOD_RATES, UPDATE  # noqa: E402
from adapters.slack_bot.surface import SLACK_TUNING  # noqa: E402
from tests.fakes.model_server import (  # noqa: E402
    LONG_ANSWER,
    FakeModelServer,
    Reply,
    last_user_text,
    message_text,
)
from tests.fakes.slack import FakeSlack  # noqa: E402
from tests.support.process import free_port  # noqa: E402
from tests.support.waiting import until  # noqa: E402

API_KEY = "bench-key"
ANSWERS = 10
SLACK_LIMITS = {
    "chat.startStream": 20, "chat.stopStream": 20, UPDATE: 50,
    "assistant.threads.setStatus": 50, "chat.appendStream": 100,
}
"""Calls Slack accepts per method, app and workspace in a minute (Tier 2, 3, 4)."""
BUDGETS = {
    UPDATE: SLACK_TUNING.edit_rate + SLACK_TUNING.edit_burst - 1,
    **{method: rate.rate + rate.burst - 1 for method, rate in METHOD_RATES.items()},
}
"""The most calls the bot's workspace budget of each method lets through in any 60 s."""
BOT_VARIABLES = ("EVOLINK_", "BOT_", "DISCORD_", "SLACK_", "DATABASE_URL", "REDIS_URL")


def words(text: str) -> str:
    return " ".join(text.split())


@asynccontextmanager
async def replica(name: str, fake: FakeSlack, model_api: FakeModelServer, database_url: str,
                  redis_url: str | None, folder: str) -> AsyncIterator[str]:
    """`python -m bot` serving Slack over HTTP; yields its events URL once it is ready."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(BOT_VARIABLES)}
    env.update({
        "EVOLINK_API_KEY": API_KEY, "EVOLINK_DIRECT_URL": model_api.direct_url,
        "EVOLINK_API_URL": model_api.api_url, "DATABASE_URL": database_url,
        "SLACK_BOT_TOKEN": fake.bot_token, "SLACK_SIGNING_SECRET": fake.signing_secret,
        "SLACK_API_URL": fake.api_url, "BOT_HTTP_PORT": str(port), "BOT_LOG_LEVEL": "WARNING",
        "BOT_SYSTEM_PROMPT": f"replica {name}",
    })
    if redis_url:
        env["REDIS_URL"] = redis_url
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", cwd=folder, env=env,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
    try:
        async with httpx.AsyncClient() as client:
            deadline = time.monotonic() + 60
            while True:
                try:
                    ready = await client.get(f"http://127.0.0.1:{port}/readyz")
                    if ready.status_code == 200:
                        break
                except httpx.ConnectError:
                    pass
                if process.returncode is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"replica {name} did not become ready")
                await asyncio.sleep(0.1)
        yield f"http://127.0.0.1:{port}/slack/events"
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
        _, err = await asyncio.wait_for(process.communicate(), timeout=60)
        if process.returncode != 0:
            print(f"replica {name} exited with {process.returncode}:\n{err.decode()[-2000:]}",
                  file=sys.stderr)


async def record_calls(fake: FakeSlack, times: list[tuple[float, str]]) -> None:
    """Note when each Web API call reached the fake (as it is answered), and its method."""
    while True:
        await fake.wait_for(lambda: len(fake.calls) > len(times), timeout=3600)
        now = time.monotonic()
        times.extend((now, call.method) for call in fake.calls[len(times):])


def busiest_minute(times: list[float]) -> int:
    """The most calls in any 60-second window."""
    most, start = 0, 0
    for end, at in enumerate(times):
        while at - times[start] >= 60.0:
            start += 1
        most = max(most, end - start + 1)
    return most


@asynccontextmanager
async def scratch_database(admin_dsn: str) -> AsyncIterator[str]:
    """A new database on the PostgreSQL server of `admin_dsn`, as an async SQLAlchemy URL."""
    name = f"bench_replicas_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(admin_dsn, timeout=5)
    await admin.execute(f'CREATE DATABASE "{name}"')
    await admin.close()
    try:
        server = admin_dsn.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://")
        yield f"{server}/{name}"
    finally:
        admin = await asyncpg.connect(admin_dsn, timeout=5)
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


async def clear_budgets(redis_url: str) -> None:
    client = Redis.from_url(redis_url)
    try:
        stale = [key async for key in client.scan_iter("gemini-bot:budget:*")]
        if stale:
            await client.delete(*stale)
    finally:
        await client.aclose()


async def run(admin_dsn: str, redis_url: str | None, chunk_delay: float) -> None:
    if redis_url:
        await clear_budgets(redis_url)
    run_id = uuid.uuid4().hex[:8].upper()
    channels = [f"D{run_id}{n}" for n in range(ANSWERS)]
    times: list[tuple[float, str]] = []
    async with (
        scratch_database(admin_dsn) as database_url,
        FakeModelServer(api_key=API_KEY, long_answers=True) as model_api,
        FakeSlack(update_limit=None) as fake,
        AsyncExitStack() as stack,
    ):
        for method, limit in SLACK_LIMITS.items():
            fake.set_rate_limit(method, limit, 60.0)
        model_api.script("direct", *[Reply(delay_between_chunks=chunk_delay)] * ANSWERS)
        folder = stack.enter_context(tempfile.TemporaryDirectory())
        first = await stack.enter_async_context(
            replica("A", fake, model_api, database_url, redis_url, folder))
        second = await stack.enter_async_context(
            replica("B", fake, model_api, database_url, redis_url, folder))
        recorder = asyncio.create_task(record_calls(fake, times))
        started = time.monotonic()
        events = []
        for n, channel in enumerate(channels):
            person = f"U{run_id}{n}"
            fake.add_user(person, f"person{n}")
            events.append(fake.message(user=person, text=f"question {n}", channel=channel,
                                       channel_type="im"))
        receivers = [(first, second) if n % 2 == 0 else (second, first) for n in range(ANSWERS)]
        await asyncio.gather(*(
            fake.deliver(receivers[n][0], fake.event_request(event, event_id=f"Ev{run_id}{n}"))
            for n, event in enumerate(events)))
        await until(lambda: len(model_api.requests) >= ANSWERS, what="every question asked",
                    within=60)
        await asyncio.gather(*(
            fake.deliver(receivers[n][1], fake.event_request(event, event_id=f"Ev{run_id}{n}",
                                                             retry_num=1))
            for n, event in enumerate(events)))

        def whole(n: int) -> bool:
            return words(" ".join(fake.texts(channels[n]))) == words(
                f"echo: question {n} {LONG_ANSWER}")

        try:
            await until(lambda: all(whole(n) for n in range(ANSWERS)), what="every answer",
                        within=120 + 600 * chunk_delay * 10)
        except AssertionError as exc:
            print(exc, file=sys.stderr)
        elapsed = time.monotonic() - started
        recorder.cancel()
        complete = sum(1 for n in range(ANSWERS) if whole(n))
        asked = [last_user_text(r.body) for r in model_api.requests]
        duplicates = len(asked) - len(set(asked))
        by_replica = Counter(message_text(r.body["messages"][0]["content"])
                             for r in model_api.requests)
        refused = Counter(call.method for call in fake.calls if call.status == 429)

    sharing = "shared through Redis" if redis_url else "each replica's own (no REDIS_URL)"
    print(f"two replicas, budgets {sharing}: {ANSWERS} answers of ~600 words at once")
    print(f"  answers complete:   {complete}/{ANSWERS} in {elapsed:.0f} s")
    print(f"  answered by:        {', '.join(f'{k}: {v}' for k, v in sorted(by_replica.items()))}")
    print(f"  duplicates:         {duplicates}")
    print(f"  429s:               {sum(refused.values())}"
          + "".join(f"; {method} {count}" for method, count in sorted(refused.items())))
    print(f"  {'method':<30}{'calls':>6}{'busiest minute':>16}{'budget':>8}{'Slack':>7}")
    for method, limit in SLACK_LIMITS.items():
        at = [when for when, called in times if called == method]
        print(f"  {method:<30}{len(at):>6}{busiest_minute(at):>16}{BUDGETS[method]:>8}"
              f"{limit:>7}")


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432/test",
                        help="a PostgreSQL server (and a database on it to connect to)")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/13")
    parser.add_argument("--no-redis", action="store_true",
                        help="run the replicas without REDIS_URL, for comparison")
    parser.add_argument("--chunk-delay", type=float, default=0.1,
                        help="seconds between the model's chunks (300 chunks an answer)")
    args = parser.parse_args()
    asyncio.run(run(args.postgres, None if args.no_redis else args.redis_url,
                    args.chunk_delay))


if __name__ == "__main__":
    main()
