"""Slack's Socket Mode: ``apps.connections.open`` hands out a one-time URL, the app connects
and gets ``hello``, then receives envelopes and acknowledges each with its ``envelope_id``."""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid

from aiohttp import WSCloseCode, WSMsgType, web

from tests.fakes.slack.records import Envelope, JSONDict, SocketConnection
from tests.fakes.slack.state import SlackState


class SocketMode:
    def __init__(self, state: SlackState) -> None:
        self.state = state
        self.connections: list[SocketConnection] = []
        self._tickets: set[str] = set()
        self._ack_waiters: dict[str, asyncio.Future[JSONDict]] = {}

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
                    self._on_text(msg.data)
                    await self.state.notify()
        finally:
            conn.closed = True
            await self.state.notify()
        return ws

    def _on_text(self, data: str) -> None:
        with contextlib.suppress(ValueError):
            ack = json.loads(data)
            if isinstance(ack, dict) and "envelope_id" in ack:
                envelope_id = str(ack["envelope_id"])
                self.state.acked(envelope_id)
                waiter = self._ack_waiters.get(envelope_id)
                if waiter is not None and not waiter.done():
                    waiter.set_result(ack)

    async def wait_connected(self, timeout: float) -> SocketConnection:  # noqa: ASYNC109
        """The newest open connection, once there is one."""
        return await self.state.wait_for(lambda: self.active[-1] if self.active else None,
                                         timeout)

    async def push(self, type_: str, payload: JSONDict, *, accepts_response_payload: bool,
                   retry_attempt: int | None = None) -> str:
        """Send an envelope on the newest open connection; return its envelope_id."""
        conn = await self.wait_connected(5.0)
        envelope_id = str(uuid.uuid4())
        envelope: JSONDict = {
            "envelope_id": envelope_id,
            "payload": payload,
            "type": type_,
            "accepts_response_payload": accepts_response_payload,
        }
        if retry_attempt is not None:
            envelope.update({"retry_attempt": retry_attempt, "retry_reason": ""})
        self._ack_waiters[envelope_id] = asyncio.get_running_loop().create_future()
        self.state.expect_ack(envelope_id)
        self.state.envelopes.append(
            Envelope(envelope_id, type_, payload, accepts_response_payload)
        )
        await conn.ws.send_str(json.dumps(envelope))
        return envelope_id

    async def wait_ack(self, envelope_id: str, timeout: float) -> JSONDict:  # noqa: ASYNC109
        waiter = self._ack_waiters.get(envelope_id)
        if waiter is None:
            raise KeyError(f"unknown envelope {envelope_id}")
        return await asyncio.wait_for(asyncio.shield(waiter), timeout)

    async def close(self) -> None:
        """Close every websocket and fail the ack waiters."""
        for conn in self.active:
            with contextlib.suppress(Exception):
                await conn.ws.close(code=WSCloseCode.GOING_AWAY, message=b"server stopping")
        for waiter in self._ack_waiters.values():
            waiter.cancel()
