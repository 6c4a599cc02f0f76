"""The bot's HTTP server over real sockets: `/healthz`, `/readyz` turning 200 only once the
database is migrated and the platforms are connected (and 503 while draining), and `/metrics`
counting what the bot did against the fake Discord, Slack and model API."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from typing import Any

import discord
import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import Connection, text

from adapters.discord_bot.app import run_discord
from adapters.discord_bot.settings import DiscordSettings
from adapters.slack_bot.app import run_slack
from adapters.slack_bot.settings import SlackSettings
from bot import Metrics
from bot.app import open_core
from bot.config import Settings
from bot.conversation import Author, ConversationKey, Incoming
from launcher.http_server import HttpServer, serve_http
from launcher.readiness import Readiness
from launcher.shutdown import drain
from tests.fakes.discord import FakeDiscord
from tests.fakes.model_server import FakeModelServer, Status
from tests.fakes.slack import FakeSlack
from tests.support.surfaces import RecordingSurface
from tests.support.waiting import until

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


@asynccontextmanager
async def http_endpoints(readiness: Readiness, metrics: Metrics
                         ) -> AsyncIterator[tuple[HttpServer, httpx.AsyncClient]]:
    """The bot's HTTP server on a free port of 127.0.0.1, and a client for it."""
    async with serve_http(readiness, metrics, "127.0.0.1", 0) as server, \
            httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.port}") as http:
        yield server, http


async def readyz(http: httpx.AsyncClient) -> tuple[int, dict[str, str]]:
    response = await http.get("/readyz")
    return response.status_code, response.json()


async def scrape(http: httpx.AsyncClient) -> Samples:
    """Every sample `/metrics` shows, by name and labels."""
    response = await http.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(response.text)
            for sample in family.samples}


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def label_values(samples: Samples) -> set[str]:
    return {value for _, labels in samples for _, value in labels}


@dataclass
class HeldReady:
    identified: asyncio.Event = field(default_factory=asyncio.Event)
    release: asyncio.Event = field(default_factory=asyncio.Event)


@contextmanager
def ready_held(fake: FakeDiscord, monkeypatch: pytest.MonkeyPatch) -> Iterator[HeldReady]:
    """Make the fake gateway hold its answer to IDENTIFY (READY) until `release` is set."""
    held = HeldReady()
    answer = fake.gateway._identify

    async def identify(*args: Any) -> None:
        held.identified.set()
        await held.release.wait()
        await answer(*args)

    monkeypatch.setattr(fake.gateway, "_identify", identify)
    try:
        yield held
    finally:
        held.release.set()


def discord_settings(fake: FakeDiscord) -> DiscordSettings:
    return DiscordSettings.load(_env_file=None, bot_token=fake.token, api_url=fake.api_url,
                                gateway_url=fake.gateway_url)


def slack_settings(fake: FakeSlack, **overrides: Any) -> SlackSettings:
    values: dict[str, Any] = {"bot_token": fake.bot_token, "signing_secret": fake.signing_secret,
                              "api_url": fake.api_url}
    return SlackSettings.load(_env_file=None, **(values | overrides))


@asynccontextmanager
async def serving(platform: Any) -> AsyncIterator[None]:
    """Run a platform's coroutine (`run_discord(...)`, `run_slack(...)`) until the block ends."""
    task = asyncio.create_task(platform)
    try:
        yield
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        if not task.cancelled() and task.exception() is not None:
            raise task.exception()  # type: ignore[misc]


async def test_healthz_answers_and_unknown_paths_are_404() -> None:
    async with http_endpoints(Readiness(), Metrics()) as (_, http):
        alive = await http.get("/healthz")
        missing = await http.post("/slack/events", content=b"{}")

    assert (alive.status_code, alive.json()) == (200, {"status": "alive"})
    assert missing.status_code == 404


async def test_readyz_turns_200_only_after_discords_ready_and_503_while_draining(
    make_settings: Callable[..., Settings], model_api: FakeModelServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    readiness = Readiness()
    metrics = Metrics()
    async with FakeDiscord() as fake, http_endpoints(readiness, metrics) as (_, http):
        before_the_database = await readyz(http)
        async with open_core(make_settings(), metrics=metrics) as core:
            readiness.database_migrated()
            with ready_held(fake, monkeypatch) as held:
                async with serving(run_discord(core, discord_settings(fake),
                                               connected=readiness.reporter("discord"))):
                    await asyncio.wait_for(held.identified.wait(), 30)
                    before_ready = await readyz(http)
                    held.release.set()
                    await until(lambda: readiness.not_ready() == {}, what="READY")
                    connected = await readyz(http)

                    await drain(core.service, readiness, grace=5.0)
                    draining = await readyz(http)

    assert before_the_database == (503, {"database": "migrating"})
    assert before_ready == (503, {"discord": "connecting"})
    assert connected == (200, {"database": "migrated", "discord": "connected"})
    assert draining == (503, {"shutdown": "draining"})


async def test_readyz_waits_for_slacks_socket_mode_connection(
    make_settings: Callable[..., Settings], model_api: FakeModelServer,
) -> None:
    readiness = Readiness()
    metrics = Metrics()
    async with FakeSlack() as fake, http_endpoints(readiness, metrics) as (server, http):
        release = fake.hold("apps.connections.open")
        async with open_core(make_settings(), metrics=metrics) as core:
            readiness.database_migrated()
            settings = slack_settings(fake, app_token=fake.app_token, signing_secret=None)
            async with serving(run_slack(core, settings, mount=server.mount,
                                         connected=readiness.reporter("slack"))):
                await fake.wait_for(lambda: fake.calls_of("apps.connections.open"))
                connecting = await readyz(http)
                release.set()
                await until(lambda: readiness.not_ready() == {}, what="the socket")
                connected = await readyz(http)

    assert connecting == (503, {"slack": "connecting"})
    assert connected == (200, {"database": "migrated", "slack": "connected"})


async def test_metrics_count_a_slack_answer_and_its_api_calls_and_429s(
    make_settings: Callable[..., Settings], model_api: FakeModelServer,
) -> None:
    readiness = Readiness()
    metrics = Metrics()
    async with FakeSlack() as fake, http_endpoints(readiness, metrics) as (server, http), \
            open_core(make_settings(), metrics=metrics) as core:
        readiness.database_migrated()
        async with serving(run_slack(core, slack_settings(fake), mount=server.mount,
                                     connected=readiness.reporter("slack"))):
            await until(lambda: readiness.not_ready() == {}, what="the events route")
            before = await scrape(http)
            fake.fail_next("users.info", "ratelimited", status=429, headers={"Retry-After": "0"})
            event = fake.app_mention(text="count this secret-ish question")
            status, _ = await fake.deliver(f"http://127.0.0.1:{server.port}/slack/events",
                                           fake.event_request(event))
            await until(lambda: value(metrics_now(metrics), "bot_replies_total",
                                      platform="slack", outcome="complete") == 1,
                        what="the answer counted")
            after = await scrape(http)

    assert status == 200
    assert fake.texts("C1", event["ts"]) == ["echo: count this secret-ish question"]
    assert value(before, "bot_replies_total", platform="slack", outcome="complete") == 0
    assert value(after, "bot_replies_total", platform="slack", outcome="complete") == 1
    assert value(after, "bot_reply_duration_seconds_count", platform="slack") == 1
    assert value(after, "bot_model_first_token_seconds_count", endpoint="direct") == 1
    assert value(after, "bot_model_tokens_total", kind="prompt") > 0
    assert value(after, "bot_model_tokens_total", kind="completion") > 0
    assert value(after, "bot_platform_api_calls_total", platform="slack",
                 method="chat.startStream") == 1
    assert value(after, "bot_platform_api_calls_total", platform="slack",
                 method="users.info") >= 2
    assert value(after, "bot_platform_rate_limited_total", platform="slack",
                 method="users.info") == 1
    assert value(after, "bot_edit_budget_wait_seconds_count", platform="slack") >= 2
    assert value(after, "bot_replies_in_flight") == 0
    assert value(after, "bot_replies_waiting") == 0
    people = {event["user"], event["team"], event["channel"]}
    assert not any("count this" in v or v in people for v in label_values(after))


def metrics_now(metrics: Metrics) -> Samples:
    """The samples of `metrics` read in-process (for waiting on them)."""
    return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in metrics.registry.collect() for sample in family.samples}


async def test_metrics_count_discord_calls_by_route_429s_and_edit_budget_waits(
    make_settings: Callable[..., Settings], model_api: FakeModelServer,
) -> None:
    readiness = Readiness()
    metrics = Metrics()
    async with FakeDiscord() as fake, http_endpoints(readiness, metrics) as (_, http), \
            open_core(make_settings(), metrics=metrics) as core:
        readiness.database_migrated()
        async with serving(run_discord(core, discord_settings(fake),
                                       connected=readiness.reporter("discord"))):
            await until(lambda: readiness.not_ready() == {}, what="READY")
            fake.rate_limit_next("POST", r"/channels/\d+/messages", retry_after=0.05)
            question = await fake.send_message(fake.text_channel_id, fake.plain_user,
                                               "hello metrics", mentions_bot=True)
            thread = int(question["id"])
            await fake.wait_until(lambda: fake.messages_in(thread) == ["echo: hello metrics"])
            await until(lambda: value(metrics_now(metrics), "bot_replies_total",
                                      platform="discord", outcome="complete") == 1,
                        what="the answer counted")
            samples = await scrape(http)

    post = "POST /channels/{id}/messages"
    assert value(samples, "bot_platform_api_calls_total", platform="discord", method=post) >= 2
    assert value(samples, "bot_platform_rate_limited_total", platform="discord",
                 method=post) == 1
    assert value(samples, "bot_platform_api_calls_total", platform="discord",
                 method="GET /users/@me") == 1
    assert value(samples, "bot_edit_budget_wait_seconds_count", platform="discord") >= 1
    routes = {labels[1][1] for name, labels in samples
              if name == "bot_platform_api_calls_total"}
    assert routes and not any(re.search(r"\d{5,}", route) for route in routes)
    assert not any(fake.token in route for route in routes)


async def test_metrics_count_model_errors_fallbacks_refusals_and_database_errors(
    make_settings: Callable[..., Settings], model_api: FakeModelServer,
) -> None:
    metrics = Metrics()
    settings = make_settings(bot_user_messages_per_minute=1)
    key = ConversationKey("slack", "T1", "C1", "1.0")
    author = Author("U1", "Ann")
    model_api.script("direct", Status(503))
    async with open_core(settings, metrics=metrics) as core, \
            http_endpoints(Readiness(), metrics) as (_, http):
        answered = await core.service.handle(Incoming(key, author, "first", message_id="m1"),
                                             RecordingSurface())
        refused = RecordingSurface()
        await core.service.handle(Incoming(key, author, "second", message_id="m2"), refused)
        with pytest.raises(Exception, match="no_such_table"):
            await core.store.database.run(Connection.execute,
                                          text("SELECT * FROM no_such_table"))
        samples = await scrape(http)

    assert answered is not None and answered.text == "echo: first"
    assert refused.notices and "faster than I may answer" in refused.notices[0]
    assert value(samples, "bot_model_errors_total", endpoint="direct",
                 kind="model_unavailable") == 1
    assert value(samples, "bot_model_fallbacks_total") == 1
    assert value(samples, "bot_model_first_token_seconds_count", endpoint="api") == 1
    assert value(samples, "bot_replies_total", platform="slack", outcome="complete") == 1
    assert value(samples, "bot_replies_total", platform="slack", outcome="refused") == 1
    assert value(samples, "bot_database_errors_total") == 1


async def test_each_core_has_a_registry_of_its_own(
    make_settings: Callable[..., Settings], model_api: FakeModelServer,
) -> None:
    key = ConversationKey("slack", "T1", "C1", "1.0")
    async with open_core(make_settings()) as first, open_core(make_settings()) as second:
        await first.service.handle(Incoming(key, Author("U1", "Ann"), "hi"), RecordingSurface())

    assert first.metrics is not second.metrics
    assert value(metrics_now(first.metrics), "bot_replies_total", platform="slack",
                 outcome="complete") == 1
    assert value(metrics_now(second.metrics), "bot_replies_total", platform="slack",
                 outcome="complete") == 0



@dataclass
class DiscordBot:
    """The bot serving Discord: its readiness, its metrics and a client of its endpoints."""

    readiness: Readiness
    metrics: Metrics
    http: httpx.AsyncClient


@asynccontextmanager
async def discord_bot(fake: FakeDiscord, make_settings: Callable[..., Settings]
                      ) -> AsyncIterator[DiscordBot]:
    """The bot serving the fake Discord, its HTTP endpoints up, once `/readyz` is 200."""
    readiness = Readiness()
    metrics = Metrics()
    async with http_endpoints(readiness, metrics) as (_, http), \
            open_core(make_settings(), metrics=metrics) as core:
        readiness.database_migrated()
        async with serving(run_discord(core, discord_settings(fake),
                                       connected=readiness.reporter("discord"))):
            await until(lambda: readiness.not_ready() == {}, what="READY")
            yield DiscordBot(readiness, metrics, http)


async def mention(fake: FakeDiscord, text: str) -> int:
    """A person mentions the bot in the text channel; returns the message's (the thread's) id."""
    question = await fake.send_message(fake.text_channel_id, fake.plain_user, text,
                                       mentions_bot=True)
    return int(question["id"])


async def answers_complete(bot: DiscordBot, count: int) -> None:
    await until(lambda: value(metrics_now(bot.metrics), "bot_replies_total",
                              platform="discord", outcome="complete") == count,
                what=f"{count} answers complete")


async def test_readyz_turns_503_while_a_dropped_discord_shard_resumes_and_200_after(
    make_settings: Callable[..., Settings], model_api: FakeModelServer,
) -> None:
    async with FakeDiscord() as fake, discord_bot(fake, make_settings) as bot:
        connected = await readyz(bot.http)
        hold = fake.hold_handshakes()
        await fake.drop_connection(0, code=4000)
        await asyncio.wait_for(hold.arrived.wait(), 30)
        await until(lambda: bot.readiness.not_ready() == {"discord": "connecting"},
                    what="the shard's disconnect reported")
        reconnecting = await readyz(bot.http)
        while_away = await mention(fake, "asked while away")
        hold.release()
        await until(lambda: bot.readiness.not_ready() == {}, what="RESUMED")
        resumed = await readyz(bot.http)
        after = await mention(fake, "asked after")
        await answers_complete(bot, 2)

    assert connected == (200, {"database": "migrated", "discord": "connected"})
    assert reconnecting == (503, {"discord": "connecting"})
    assert resumed == (200, {"database": "migrated", "discord": "connected"})
    assert fake.messages_in(while_away) == ["echo: asked while away"]
    assert fake.messages_in(after) == ["echo: asked after"]
    assert len(fake.identifies) == 1
    assert [r["seq"] for r in fake.resumes] == [len(fake.guild_names) + 1]


async def test_readyz_turns_503_until_an_invalidated_discord_session_is_ready_again(
    make_settings: Callable[..., Settings], model_api: FakeModelServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def no_identify_delay(self: object, shard_id: int | None, *, initial: bool = False
                                ) -> None:
        return None  # discord.py sleeps 5 s before identifying again, to pace IDENTIFYs

    monkeypatch.setattr(discord.AutoShardedClient, "before_identify_hook", no_identify_delay)
    async with FakeDiscord() as fake, discord_bot(fake, make_settings) as bot:
        hold = fake.hold_handshakes(resume=False)
        await fake.drop_connection(0, code=1001, resumable=False)
        await asyncio.wait_for(hold.arrived.wait(), 30)
        await until(lambda: bot.readiness.not_ready() == {"discord": "connecting"},
                    what="the shard's disconnect reported")
        reconnecting = await readyz(bot.http)
        hold.release()
        await until(lambda: bot.readiness.not_ready() == {}, what="READY again")
        ready_again = await readyz(bot.http)
        after = await mention(fake, "asked after")
        await answers_complete(bot, 1)

    assert reconnecting == (503, {"discord": "connecting"})
    assert ready_again == (200, {"database": "migrated", "discord": "connected"})
    assert fake.messages_in(after) == ["echo: asked after"]
    assert len(fake.resumes) == 1
    assert len(fake.identifies) == 2
