"""Counting the bot's calls to Discord's REST API, by route, from discord.py's HTTP session
(an aiohttp trace): the route names no id and no token."""

from __future__ import annotations

import re
from collections.abc import Callable
from types import SimpleNamespace

import aiohttp
from discord.http import Route

Record = Callable[[str, int | None], None]
"""Takes a call's route (`POST /channels/{id}/messages`) and its HTTP status (None: no
answer came)."""

_WORD = re.compile(r"[a-z@_-]{1,32}")
_TOKEN_AFTER = ("interactions", "webhooks")


def route_of(method: str, url: str) -> str | None:
    """The route of a REST call to `url` (`GET /users/@me`), or None for a URL outside
    Discord's API base (the gateway, files)."""
    base = Route.BASE.rstrip("/")
    if not url.startswith(base + "/"):
        return None
    path = url[len(base):].split("?", 1)[0]
    segments = path.strip("/").split("/")
    named: list[str] = []
    for index, segment in enumerate(segments):
        if segment.isdigit():
            named.append("{id}")
        elif index >= 2 and segments[index - 2] in _TOKEN_AFTER:
            named.append("{token}")
        else:
            named.append(segment if _WORD.fullmatch(segment) else "{value}")
    return f"{method.upper()} /{'/'.join(named)}"


def api_call_trace(record: Record) -> aiohttp.TraceConfig:
    """A trace for discord.py's session (`http_trace`) that reports each REST call."""
    trace = aiohttp.TraceConfig()

    async def ended(_: aiohttp.ClientSession, __: SimpleNamespace,
                    params: aiohttp.TraceRequestEndParams) -> None:
        route = route_of(params.method, str(params.url))
        if route is not None:
            record(route, params.response.status)

    async def failed(_: aiohttp.ClientSession, __: SimpleNamespace,
                     params: aiohttp.TraceRequestExceptionParams) -> None:
        route = route_of(params.method, str(params.url))
        if route is not None:
            record(route, None)

    trace.on_request_end.append(ended)
    trace.on_request_exception.append(failed)
    return trace
