"""Stop works whichever replica gets the click: two services ("replicas") on one store, each
relaying through the machine's Redis (a key prefix of each test's own), answering with the fake
model API. One replica writes an answer that hangs mid-stream; the Stop goes to the other."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

import httpx
import pytest
from redis.asyncio import Redis

from bot.app import open_core
from bot.config import Settings
from bot.conversation import Author, ConversationKey, Incoming, TurnStatus
from bot.metrics import Metrics
from bot.model.llm import ModelClient, create_http_client
from bot.service import ReplyOutcome, Service, ServiceConfig
from bot.stop_relay import (
    UNREACHABLE,
    Malformed,
    StopRelay,
    parse_reply,
    parse_request,
)
from bot.storage.store import Store
from tests.conftest import API_KEY
from tests.fakes.model_server import FakeModelServer, Hang
from tests.support.redis import reachable_redis
from tests.support.surfaces import RecordingSurface
from tests.support.waiting import until

REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
KEY = ConversationKey("test", "team", "chan", "thread-1")
ANN = Author("u1", "Ann")
BOB = Author("u2", "Bob")
MANAGER = Author("u3", "Meg", can_configure=True)
NO_ANSWER = "There is no answer being written here."
STOPPED = "Stopped. The text so far is kept."
REFUSED = "Only the person who asked, or a channel manager, can stop this answer."
SLOW_TEXT = "slow words to come"
TEST_WAIT = 0.5
"""A relayed Stop's wait in these tests (shorter than the bot's, for a replica that never
answers)."""


@dataclass
class Replicas:
    """Services sharing one store and one Redis key prefix, each with its own client."""

    store: Store
    http: httpx.AsyncClient
    model_api: FakeModelServer
    prefix: str
    relays: list[StopRelay] = field(default_factory=list)
    clients: list[Redis] = field(default_factory=list)

    def relay(self, url: str = REDIS_URL, metrics: Metrics | None = None) -> StopRelay:
        """A started relay on a client of its own."""
        client = Redis.from_url(url, socket_connect_timeout=1, socket_timeout=1)
        self.clients.append(client)
        made = StopRelay(client, prefix=self.prefix, wait=TEST_WAIT, metrics=metrics)
        self.relays.append(made)
        return made

    def service(self, relay: StopRelay | None, *, listen: bool = True) -> Service:
        """A replica: a service on the shared store, relaying through `relay` (and answering
        the others' requests if `listen`)."""
        model = ModelClient(self.http, API_KEY, self.model_api.direct_url,
                            self.model_api.api_url)
        made = Service(self.store, model, ServiceConfig(default_model="gemini-test"),
                       stop_relay=relay)
        if relay is not None and listen:
            relay.start()
        return made

    async def two(self, metrics: Metrics | None = None) -> tuple[Service, Service]:
        """Replicas A and B (recording into `metrics`), both listening."""
        relays = self.relay(), self.relay(metrics=metrics)
        a, b = self.service(relays[0]), self.service(relays[1])
        await until(lambda: all(r.listening for r in relays), what="both relays listening")
        return a, b

    async def close(self) -> None:
        for relay in self.relays:
            await relay.close()
        for client in self.clients:
            await client.aclose()


@pytest.fixture
async def replicas(store: Store, model_api: FakeModelServer) -> AsyncIterator[Replicas]:
    admin = await reachable_redis(REDIS_URL, "stop relay runs")
    async with create_http_client(connect_timeout=2.0, read_timeout=10.0) as http:
        made = Replicas(store, http, model_api, f"gemini-bot-test:{uuid.uuid4().hex[:12]}:")
        try:
            yield made
        finally:
            await made.close()
            keys = [key async for key in admin.scan_iter(match=made.prefix + "*")]
            if keys:
                await admin.delete(*keys)
            await admin.aclose()


async def writing(service: Service, model_api: FakeModelServer,
                  asker: Author = ANN) -> asyncio.Task[ReplyOutcome | None]:
    """`service` answering `asker`, its answer hanging after its first words."""
    model_api.script("direct", Hang(seconds=20, after_chunks=1, text=SLOW_TEXT))
    surface = RecordingSurface()
    task = asyncio.create_task(service.handle(
        Incoming(KEY, asker, "tell me slowly", message_id="q1", event_id="ev-q1"), surface))
    await until(lambda: bool(surface.messages), what="the answer's first words")
    return task


async def test_a_stop_clicked_on_another_replica_stops_the_answer_keeping_its_text(
    replicas: Replicas, model_api: FakeModelServer, store: Store
) -> None:
    a, b = await replicas.two()
    answer = await writing(a, model_api)

    told = await b.stop(KEY, ANN)
    outcome = await answer

    assert told == STOPPED
    assert outcome is not None and outcome.status is TurnStatus.STOPPED
    stored = (await store.history(KEY, 10_000, 8))[-1]
    assert stored.status is TurnStatus.STOPPED
    assert stored.text and SLOW_TEXT.startswith(stored.text), "the words so far are kept"


async def test_a_strangers_stop_through_another_replica_is_refused_and_the_answer_goes_on(
    replicas: Replicas, model_api: FakeModelServer
) -> None:
    a, b = await replicas.two()
    answer = await writing(a, model_api)

    refused = await b.stop(KEY, BOB)
    by_manager = await b.stop(KEY, MANAGER)
    outcome = await answer

    assert refused == REFUSED
    assert by_manager == STOPPED, "the answer was still being written after the refusal"
    assert outcome is not None and outcome.status is TurnStatus.STOPPED


async def test_with_no_replica_writing_the_click_gets_the_usual_text(
    replicas: Replicas
) -> None:
    metrics = Metrics()
    _, b = await replicas.two(metrics)

    told = await b.stop(KEY, ANN)

    assert told == NO_ANSWER
    assert 'bot_stops_relayed_total{outcome="nobody"} 1.0' in metrics.exposition().decode()


async def test_a_replica_that_never_replies_costs_only_the_bounded_wait(
    replicas: Replicas
) -> None:
    metrics = Metrics()
    b = replicas.service(replicas.relay(metrics=metrics))
    silent = Redis.from_url(REDIS_URL)
    replicas.clients.append(silent)
    async with silent.pubsub() as deaf:
        await deaf.subscribe(replicas.relays[0].channel)
        assert await deaf.get_message(timeout=5) is not None, "subscribed"
        await until(lambda: replicas.relays[0].listening, what="the relay listening")

        told = await b.stop(KEY, ANN)

    assert told == NO_ANSWER
    assert 'bot_stops_relayed_total{outcome="unanswered"} 1.0' in \
        metrics.exposition().decode()


async def test_malformed_requests_on_the_channel_are_ignored_and_logged(
    replicas: Replicas, model_api: FakeModelServer, caplog: pytest.LogCaptureFixture
) -> None:
    a, b = await replicas.two()
    answer = await writing(a, model_api)
    request_id = uuid.uuid4().hex
    key = [KEY.platform, KEY.workspace, KEY.channel, KEY.thread]
    forged = {"id": request_id, "key": key, "user": BOB.id, "can_configure": True}
    malformed: list[str | bytes] = [
        b"not json",
        b"[" * 5000,
        b"\xff\xfe",
        json.dumps([forged]),
        json.dumps({**forged, "can_configure": "true"}),
        json.dumps({**forged, "can_configure": 1}),
        json.dumps({**forged, "id": "../../budget"}),
        json.dumps({**forged, "key": key[:3]}),
        json.dumps({**forged, "key": [*key[:3], "t" * 300]}),
        json.dumps({**forged, "user": ""}),
        json.dumps({**forged, "extra": 1}),
        json.dumps({**forged, "user": "u" * 9000}),
    ]
    publisher = Redis.from_url(REDIS_URL)
    replicas.clients.append(publisher)
    caplog.set_level(logging.WARNING, logger="bot.stop_relay")

    for message in malformed:
        await publisher.publish(replicas.relays[0].channel, message)
    told = await b.stop(KEY, ANN)
    await answer

    assert told == STOPPED, "no malformed request (a forged manager among them) stopped it"
    assert await publisher.exists(f"{replicas.prefix}0:reply:{request_id}") == 0

    def ignored() -> int:
        return sum("malformed Stop request" in r.getMessage() for r in caplog.records)

    await until(lambda: ignored() == 2 * len(malformed), what="each replica logging each")


async def test_with_redis_down_a_local_stop_works_and_a_relayed_one_says_so_once(
    replicas: Replicas, model_api: FakeModelServer, closed_port: int,
    caplog: pytest.LogCaptureFixture
) -> None:
    down = f"redis://127.0.0.1:{closed_port}/0"
    a = replicas.service(replicas.relay(down), listen=False)
    b = replicas.service(replicas.relay(down), listen=False)
    caplog.set_level(logging.WARNING, logger="bot.stop_relay")
    answer = await writing(a, model_api)

    first = await b.stop(KEY, ANN)
    again = await b.stop(KEY, ANN)
    local = await a.stop(KEY, ANN)
    outcome = await answer

    assert first == again == UNREACHABLE
    assert local == STOPPED
    assert outcome is not None and outcome.status is TurnStatus.STOPPED
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1, "one warning for the outage, not one per click"
    assert warnings[0].startswith("stop relay: relaying a Stop failed (ConnectionError")


async def test_the_cores_relay_stops_between_processes_sharing_redis(
    make_settings: Callable[..., Settings], model_api: FakeModelServer
) -> None:
    await (await reachable_redis(REDIS_URL, "stop relay runs")).aclose()
    settings = make_settings(redis_url=REDIS_URL)
    told: list[str] = []
    async with open_core(settings) as first, open_core(settings) as second:
        answer = await writing(first.service, model_api)

        async def stopped() -> bool:  # once the first core listens, the click reaches it
            told.append(await second.service.stop(KEY, ANN))
            return told[-1] == STOPPED

        await until(stopped, what="the second core's Stop reaching the first core's answer")
        outcome = await answer

    assert set(told) <= {NO_ANSWER, STOPPED}
    assert outcome is not None and outcome.status is TurnStatus.STOPPED


@pytest.mark.parametrize("data", [
    None, 7, b"", b"{}", b'{"text": 3}', b'{"text": ""}', b'{"text": null, "more": 1}',
    json.dumps({"text": "x" * 1001}).encode(),
])
def test_a_reply_that_is_not_what_a_replica_sends_is_malformed(data: object) -> None:
    with pytest.raises(Malformed):
        parse_reply(data)


def test_a_request_and_replies_read_back_as_sent() -> None:
    request_id = uuid.uuid4().hex
    sent = {"id": request_id, "key": ["slack", "T1", "C1", "1700000000.0001"],
            "user": "U1", "can_configure": True}

    parsed = parse_request(json.dumps(sent).encode())

    assert parsed == (request_id, ConversationKey("slack", "T1", "C1", "1700000000.0001"),
                      Author("U1", "", can_configure=True))
    assert parse_reply(b'{"text": null}') is None
    assert parse_reply('{"text": "Stopped."}') == "Stopped."
