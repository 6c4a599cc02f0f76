"""The bot's HTTP server, on BOT_HTTP_HOST and BOT_HTTP_PORT whenever the bot serves a
platform: liveness (`/healthz`), readiness (`/readyz`), Prometheus metrics (`/metrics`), and
the routes a platform mounts while it runs (Slack's events URL)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from aiohttp import web

from bot import ConfigError, Metrics
from launcher.readiness import Readiness

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
SHUTDOWN_TIMEOUT = 5.0
"""Seconds the server gives requests in progress when it stops."""


class HttpServer:
    """Answers `/healthz`, `/readyz` and `/metrics`, and the routes mounted while it runs."""

    def __init__(self, readiness: Readiness, metrics: Metrics) -> None:
        self._readiness = readiness
        self._metrics = metrics
        self._mounted: dict[tuple[str, str], Handler] = {}
        self.port = 0
        self.app = web.Application()
        self.app.router.add_get("/healthz", self._healthz)
        self.app.router.add_get("/readyz", self._readyz)
        self.app.router.add_get("/metrics", self._metrics_page)
        self.app.router.add_route("*", "/{path:.*}", self._route)

    def mount(self, method: str, path: str, handler: Handler) -> None:
        """Answer `method` requests to `path` with `handler` from now on."""
        self._mounted[method.upper(), path] = handler

    async def _healthz(self, _: web.Request) -> web.Response:
        return web.json_response({"status": "alive"})

    async def _readyz(self, _: web.Request) -> web.Response:
        not_ready = self._readiness.not_ready()
        if not_ready:
            return web.json_response(not_ready, status=503)
        return web.json_response(self._readiness.states())

    async def _metrics_page(self, _: web.Request) -> web.Response:
        return web.Response(body=self._metrics.exposition(),
                            headers={"Content-Type": self._metrics.content_type})

    async def _route(self, request: web.Request) -> web.StreamResponse:
        handler = self._mounted.get((request.method, request.path))
        if handler is None:
            raise web.HTTPNotFound()
        return await handler(request)


@asynccontextmanager
async def serve_http(readiness: Readiness, metrics: Metrics, host: str, port: int
                     ) -> AsyncIterator[HttpServer]:
    """Serve the bot's HTTP endpoints on `host`:`port` (0: a free port, then in `.port`)
    while the block runs; a port that cannot be bound is a ConfigError naming the settings."""
    server = HttpServer(readiness, metrics)
    runner = web.AppRunner(server.app, access_log=None, handle_signals=False,
                           shutdown_timeout=SHUTDOWN_TIMEOUT)
    await runner.setup()
    try:
        try:
            await web.TCPSite(runner, host, port).start()
        except OSError as exc:
            raise ConfigError(f"BOT_HTTP_HOST, BOT_HTTP_PORT: cannot listen on {host}:{port} "
                              f"({exc.strerror or exc})") from None
        server.port = int(runner.addresses[0][1])
        log.info("serving /healthz, /readyz and /metrics on %s:%d", host, server.port)
        yield server
    finally:
        await runner.cleanup()
