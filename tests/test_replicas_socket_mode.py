"""Two replicas of the bot (two `python -m bot` processes on one PostgreSQL database and the
machine's Redis) each holding a Socket Mode connection to one Slack app: Slack sends each
envelope to one connection and retries it on another, and the replicas answer each event
once and keep within one workspace's budget of each rate-limited method."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
from slack_bolt.async_app import AsyncApp

from tests.fakes.model_server import (
    FakeModelServer,
    last_user_text,
    message_text,
)
from tests.fakes.slack import FakeSlack
from tests.support.waiting import until
from tests.test_replicas import (
    ANSWERS,
    TAIL,
    busy_workspace,
    redis_url,  # noqa: F401 (the fixture)
    replica,
)

RACED = (0, 1)
"""Questions Slack sends again to the other replica at once, racing the first delivery."""


async def test_the_fake_spreads_envelopes_and_retries_unacknowledged_ones_elsewhere() -> None:
    """Round robin over two connections; an envelope the app on one of them does not
    acknowledge (no listener) comes again on the other, as retry 1 with its reason."""
    async with FakeSlack(socket_retry_after=0.2) as fake:
        heard: list[tuple[str, str | None, str | None]] = []
        listening = AsyncApp(client=fake.client(), signing_secret=fake.signing_secret)
        deaf = AsyncApp(client=fake.client(), signing_secret=fake.signing_secret)

        @listening.event("app_mention")
        async def on_mention(event: dict[str, Any], request: Any) -> None:
            headers = request.headers
            heard.append((event["text"], headers.get("x-slack-retry-num", [None])[0],
                          headers.get("x-slack-retry-reason", [None])[0]))

        handlers = [AsyncSocketModeHandler(listening, fake.app_token),
                    AsyncSocketModeHandler(deaf, fake.app_token)]
        try:
            await handlers[0].connect_async()  # type: ignore[no-untyped-call]
            await until(lambda: len(fake.active_sockets) == 1, what="the first connection")
            await handlers[1].connect_async()  # type: ignore[no-untyped-call]
            await until(lambda: len(fake.active_sockets) == 2, what="the second connection")
            sent = [await fake.push_event(fake.app_mention(text=f"m{n}")) for n in range(4)]
            await until(lambda: len(heard) == 4, what="every mention heard by the listener")
        finally:
            for handler in handlers:
                await handler.close_async()  # type: ignore[no-untyped-call]

    assert [fake.socket_mode.tries(e)[0].connection for e in sent] == [1, 2, 1, 2]
    assert sorted(heard) == [("<@UBOT> m0", "0", ""), ("<@UBOT> m1", "1", "timeout"),
                             ("<@UBOT> m2", "0", ""), ("<@UBOT> m3", "1", "timeout")]
    for envelope_id, tries in zip(sent, ([(1, 0, 1)], [(2, 0, None), (1, 1, 1)]) * 2,
                                  strict=True):
        assert [(d.connection, d.retry_attempt, d.acked_on)
                for d in fake.socket_mode.tries(envelope_id)] == tries


async def test_two_socket_mode_replicas_answer_each_event_once_within_one_workspace_budget(
    postgres_url: str, redis_url: str, tmp_path: Path  # noqa: F811
) -> None:
    async with FakeModelServer() as model_api, FakeSlack(update_limit=None) as fake:
        people = busy_workspace(fake, model_api)
        owner: dict[int, str] = {}
        async with replica("replica A", fake, model_api, postgres_url, redis_url, tmp_path,
                           SLACK_APP_TOKEN=fake.app_token):
            (a,) = fake.active_sockets
            owner[a.id] = "replica A"
            async with replica("replica B", fake, model_api, postgres_url, redis_url,
                               tmp_path, SLACK_APP_TOKEN=fake.app_token):
                (b,) = [c for c in fake.active_sockets if c.id != a.id]
                owner[b.id] = "replica B"
                events = [fake.message(user=person, text=f"question {n}",
                                       channel=f"DREPLICA{n}", channel_type="im")
                          for n, person in enumerate(people)]
                sent = [await fake.push_event(event, event_id=f"Ev{n}")
                        for n, event in enumerate(events)]
                # Slack retries two at once on the other connection (say an ack was lost),
                # and the rest while their answers are being written.
                for n in RACED:
                    await fake.redeliver(sent[n])
                await until(lambda: len(model_api.requests) >= ANSWERS,
                            what="every question asked")
                for n in range(ANSWERS):
                    if n not in RACED:
                        await fake.redeliver(sent[n])

                def whole(n: int) -> bool:
                    return fake.texts(f"DREPLICA{n}") == [f"echo: question {n} {TAIL}"]

                await until(lambda: all(whole(n) for n in range(ANSWERS)), within=120,
                            what="every answer, whole")
                await until(lambda: all(d.acked_on for d in fake.deliveries),
                            what="every envelope acknowledged")

    tries = [fake.socket_mode.tries(envelope_id) for envelope_id in sent]
    assert all(len(t) == 2 and t[0].connection != t[1].connection for t in tries), \
        "each question sent once to each replica"
    assert all(d.acked_on == d.connection for d in fake.deliveries)
    first_to = [owner[t[0].connection] for t in tries]
    assert set(first_to) == {"replica A", "replica B"}, "the questions spread over both"
    answered_by = {last_user_text(r.body): message_text(r.body["messages"][0]["content"])
                   for r in model_api.requests}
    assert len(model_api.requests) == ANSWERS, "each event answered once"
    assert set(answered_by) == {f"question {n}" for n in range(ANSWERS)}
    assert {q: by for q, by in answered_by.items() if int(q.split()[1]) not in RACED} == {
        f"question {n}": first_to[n] for n in range(ANSWERS) if n not in RACED
    }, "by the replica that received it first when the retry came later"
    assert fake.rate_limited == 0, "the two replicas kept within one workspace budget"
    assert not fake.missed_acks
