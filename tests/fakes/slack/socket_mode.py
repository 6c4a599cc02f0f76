"""Slack's Socket Mode: ``apps.connections.open`` hands out a one-time URL, the app connects
and gets ``hello``, then receives envelopes and acknowledges each with its ``envelope_id``.

With several connections open (replicas of an app), Slack sends each envelope to one of them,
not to all (api.slack.com/apis/connections/socket-implement#connections; bolt-python issues
448 and 1071), and sends an Events API envelope that was not acknowledged in time again,
``retry_attempt`` counting up, on any open connection. The fake rotates over the open
connections (``round_robin``) or uses the newest one (``newest``), and sends a retry to a
connection that has not had that envelope yet when there is one."""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from dataclasses import dataclass
from typing import Literal

from aiohttp import WSCloseCode, WSMsgType, web

from tests.fakes.slack.records import Envelope, JSONDict, SocketConnection
from tests.fakes.slack.state import SlackState

DeliveryPolicy = Literal["round_robin", "newest"]
"""Which open connection gets the next envelope: each in turn, or the newest."""
MAX_RETRIES = 3
"""Slack sends an unacknowledged Events API envelope again at most three times."""


@dataclass
class Delivery:
    """One envelope sent on one connection: a first try, or a retry of ``first``."""

    envelope: Envelope
    connection: int
    retry_attempt: int | None
    first: str
    acked_on: int | None = None  # the connection its ack came back on

    @property
    def envelope_id(self) -> str:
        return self.envelope.envelope_id


class SocketMode:
    """The app's Socket Mode connections and the envelopes sent on them (``deliveries``).

    Args:
        policy: which open connection gets a new envelope (``DeliveryPolicy``).
        retry_after: seconds (real time) after which an ``events_api`` envelope not yet
            acknowledged is sent again (``redeliver``), at most ``MAX_RETRIES`` times;
            ``None``: only when a test calls ``redeliver``.
    """

    def __init__(self, state: SlackState, *, policy: DeliveryPolicy = "round_robin",
                 retry_after: float | None = None) -> None:
        self.state = state
        self.policy = policy
        self.retry_after = retry_after
        self.connections: list[SocketConnection] = []
        self.deliveries: list[Delivery] = []
        self._tickets: set[str] = set()
        self._ack_waiters: dict[str, asyncio.Future[JSONDict]] = {}
        self._last_used = 0
        self._retries: set[asyncio.Task[None]] = set()

    def new_ticket(self) -> str:
        ticket = uuid.uuid4().hex
        self._tickets.add(ticket)
        return ticket

    @property
    def active(self) -> list[SocketConnection]:
        return [c for c in self.connections if c.open]

    async def handle(self, request: web.Request) -> web.StreamResponse:
        if request.query.get("ticket", "") not in self._tickets:
            return web.json_response({"ok": False, "error": "invalid_ticket"}, status=401)
        ws = web.WebSocketResponse(autoping=True)
        await ws.prepare(request)
        conn = SocketConnection(len(self.connections) + 1, ws)
        self.connections.append(conn)
        await ws.send_json({
            "type": "hello",
            "num_connections": len(self.active),
            "debug_info": {"host": "fake-applink", "build_number": 1,
                           "approximate_connection_time": 18060},
            "connection_info": {"app_id": self.state.app_id},
        })
        await self.state.notify()
        try:
            async for msg in ws:
                if msg.type == WSMsgType.TEXT:
                    self._on_text(conn, msg.data)
                    await self.state.notify()
        finally:
            conn.closed = True
            await self.state.notify()
        return ws

    def _on_text(self, conn: SocketConnection, data: str) -> None:
        with contextlib.suppress(ValueError):
            ack = json.loads(data)
            if isinstance(ack, dict) and "envelope_id" in ack:
                envelope_id = str(ack["envelope_id"])
                self.state.acked(envelope_id)
                for delivery in self.deliveries:
                    if delivery.envelope_id == envelope_id and delivery.acked_on is None:
                        delivery.acked_on = conn.id
                waiter = self._ack_waiters.get(envelope_id)
                if waiter is not None and not waiter.done():
                    waiter.set_result(ack)

    async def wait_connected(self, timeout: float) -> SocketConnection:  # noqa: ASYNC109
        """The newest open connection, once there is one."""
        return await self.state.wait_for(lambda: self.active[-1] if self.active else None,
                                         timeout)

    def _pick(self, avoid: set[int]) -> SocketConnection:
        """The open connection for the next envelope by the policy, one not in ``avoid``
        if there is one."""
        candidates = [c for c in self.active if c.id not in avoid] or self.active
        if self.policy == "newest":
            return candidates[-1]
        chosen = next((c for c in candidates if c.id > self._last_used), candidates[0])
        self._last_used = chosen.id
        return chosen

    async def push(self, type_: str, payload: JSONDict, *, accepts_response_payload: bool,
                   retry_attempt: int | None = None) -> str:
        """Send an envelope on an open connection chosen by the policy; return its
        envelope_id."""
        await self.wait_connected(5.0)
        envelope = Envelope(str(uuid.uuid4()), type_, payload, accepts_response_payload)
        return await self._send(envelope, retry_attempt, "", first=None, avoid=set())

    async def redeliver(self, envelope_id: str, *, reason: str = "timeout") -> str:
        """Send envelope ``envelope_id`` (a first try or a retry) again as Slack retries it:
        a new envelope_id, ``retry_attempt`` one more than the last try's, ``retry_reason``
        ``reason``, on a connection that has not had it yet when one is open; return the new
        envelope_id."""
        earlier = next((d for d in self.deliveries if d.envelope_id == envelope_id), None)
        if earlier is None:
            raise KeyError(f"unknown envelope {envelope_id}")
        tries = self.tries(earlier.first)
        await self.wait_connected(5.0)
        old = earlier.envelope
        envelope = Envelope(str(uuid.uuid4()), old.type, old.payload,
                            old.accepts_response_payload)
        attempt = max(d.retry_attempt or 0 for d in tries) + 1
        return await self._send(envelope, attempt, reason, first=earlier.first,
                                avoid={d.connection for d in tries})

    async def _send(self, envelope: Envelope, retry_attempt: int | None, retry_reason: str,
                    *, first: str | None, avoid: set[int]) -> str:
        conn = self._pick(avoid)
        message: JSONDict = {
            "envelope_id": envelope.envelope_id,
            "payload": envelope.payload,
            "type": envelope.type,
            "accepts_response_payload": envelope.accepts_response_payload,
        }
        if retry_attempt is not None:
            message.update({"retry_attempt": retry_attempt, "retry_reason": retry_reason})
        self._ack_waiters[envelope.envelope_id] = asyncio.get_running_loop().create_future()
        self.state.expect_ack(envelope.envelope_id)
        self.state.envelopes.append(envelope)
        delivery = Delivery(envelope, conn.id, retry_attempt, first or envelope.envelope_id)
        self.deliveries.append(delivery)
        await conn.ws.send_str(json.dumps(message))
        if (self.retry_after is not None and envelope.type == "events_api"
                and (retry_attempt or 0) < MAX_RETRIES):
            task = asyncio.create_task(self._retry_unacked(delivery, self.retry_after))
            self._retries.add(task)
            task.add_done_callback(self._retries.discard)
        return envelope.envelope_id

    async def _retry_unacked(self, delivery: Delivery, after: float) -> None:
        await asyncio.sleep(after)
        if delivery.acked_on is None and self.active:
            await self.redeliver(delivery.envelope_id)

    def tries(self, envelope_id: str) -> list[Delivery]:
        """Every delivery of the envelope first sent as ``envelope_id``, in order."""
        return [d for d in self.deliveries if d.first == envelope_id]

    async def wait_ack(self, envelope_id: str, timeout: float) -> JSONDict:  # noqa: ASYNC109
        waiter = self._ack_waiters.get(envelope_id)
        if waiter is None:
            raise KeyError(f"unknown envelope {envelope_id}")
        return await asyncio.wait_for(asyncio.shield(waiter), timeout)

    async def close(self) -> None:
        """Stop retrying, close every websocket and fail the ack waiters."""
        for task in list(self._retries):
            task.cancel()
        for conn in self.active:
            with contextlib.suppress(Exception):
                await conn.ws.close(code=WSCloseCode.GOING_AWAY, message=b"server stopping")
        for waiter in self._ack_waiters.values():
            waiter.cancel()
