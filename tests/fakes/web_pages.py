"""A small web site on 127.0.0.1 for fetch_url: pages, redirects, a hang and a huge page.

Routes: ``/page`` (an article in HTML with navigation around it), ``/notes.txt``,
``/data.json``, ``/report.pdf``, ``/redirect?to=URL`` (a 302 to URL), ``/chain/N`` (N
redirects in a row, then ``/page``), ``/huge`` (more than 2 MB of text), ``/hang`` (headers
never come), ``/binary`` (an octet stream). Every request is recorded in ``requests`` (its
path and Host header).
"""

from __future__ import annotations

import asyncio
import socket
from dataclasses import dataclass, field
from types import TracebackType

from aiohttp import web

from tests.support.documents import pdf

ARTICLE = """<!DOCTYPE html><html><head><title>Fake Weekly — the harbour reopens</title>
<style>body { color: red }</style><script>trackEverything()</script></head>
<body><header>Fake Weekly</header><nav><a href="/">Home</a> <a href="/news">News</a></nav>
<main><h1>The harbour reopens</h1>
<p>After two years of works, the <b>old harbour</b> reopened on Monday.</p>
<p>The mayor cut the ribbon at noon.</p></main>
<footer>© Fake Weekly</footer></body></html>"""
REPORT = "Quarterly report: revenue grew four percent"
NOTES = "plain notes: the meeting moved to Thursday"
DATA = '{"status": "green", "count": 3}'


@dataclass
class FakeWebSite:
    """The site; ``url(path)`` is its address for a path."""

    requests: list[tuple[str, str]] = field(default_factory=list)
    _runner: web.AppRunner | None = None
    port: int = 0

    async def __aenter__(self) -> FakeWebSite:
        app = web.Application()
        app.router.add_get("/page", self._page)
        app.router.add_get("/notes.txt", self._notes)
        app.router.add_get("/data.json", self._data)
        app.router.add_get("/redirect", self._redirect)
        app.router.add_get("/chain/{n:\\d+}", self._chain)
        app.router.add_get("/huge", self._huge)
        app.router.add_get("/hang", self._hang)
        app.router.add_get("/binary", self._binary)
        app.router.add_get("/report.pdf", self._pdf)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False,
                                     shutdown_timeout=0.2)
        await self._runner.setup()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        await web.SockSite(self._runner, sock).start()
        return self

    async def __aexit__(self, kind: type[BaseException] | None, error: BaseException | None,
                        trace: TracebackType | None) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    @property
    def host_port(self) -> str:
        """``127.0.0.1:PORT``, as BOT_FETCH_ALLOW_PRIVATE names it."""
        return f"127.0.0.1:{self.port}"

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def _record(self, request: web.Request) -> None:
        self.requests.append((request.path_qs, request.headers.get("Host", "")))

    async def _page(self, request: web.Request) -> web.Response:
        self._record(request)
        return web.Response(text=ARTICLE, content_type="text/html")

    async def _notes(self, request: web.Request) -> web.Response:
        self._record(request)
        return web.Response(text=NOTES, content_type="text/plain")

    async def _data(self, request: web.Request) -> web.Response:
        self._record(request)
        return web.Response(text=DATA, content_type="application/json")

    async def _redirect(self, request: web.Request) -> web.Response:
        self._record(request)
        raise web.HTTPFound(request.query["to"])

    async def _chain(self, request: web.Request) -> web.Response:
        self._record(request)
        left = int(request.match_info["n"])
        raise web.HTTPFound(f"/chain/{left - 1}" if left > 1 else "/page")

    async def _huge(self, request: web.Request) -> web.StreamResponse:
        self._record(request)
        response = web.StreamResponse(headers={"Content-Type": "text/plain"})
        await response.prepare(request)
        line = b"all work and no play makes a dull page\n"
        for _ in range(3 * 1024 * 1024 // len(line)):
            await response.write(line)
        await response.write_eof()
        return response

    async def _hang(self, request: web.Request) -> web.Response:
        self._record(request)
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    async def _binary(self, request: web.Request) -> web.Response:
        self._record(request)
        return web.Response(body=b"\x00\x01\x02", content_type="application/octet-stream")

    async def _pdf(self, request: web.Request) -> web.Response:
        self._record(request)
        return web.Response(body=pdf(REPORT), content_type="application/pdf")
