"""HTTP plumbing shared by the routes: route table entries, JSON answers, Discord's errors."""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from tests.fakes.discord.models import JSON

SNOWFLAKE = r"\d+"
SEGMENT = r"[^/]+"

Handler = Callable[..., Awaitable[web.StreamResponse]]


@dataclass(frozen=True)
class Route:
    """``method`` + ``pattern`` (matched against the path under the API base) → ``handler``,
    called with the fake, the recorded Call and the pattern's named groups."""

    method: str
    pattern: re.Pattern[str]
    handler: Handler
    auth: bool  # needs "Authorization: Bot <token>" (interaction webhooks do not)


def route(method: str, path: str, handler: Handler, *, auth: bool = True) -> Route:
    """A Route for ``path``, where ``{name}`` is a snowflake and ``{token}`` any segment."""

    def group(m: re.Match[str]) -> str:
        return f"(?P<{m[1]}>{SEGMENT if m[1] == 'token' else SNOWFLAKE})"

    return Route(method, re.compile(re.sub(r"\{(\w+)\}", group, path)), handler, auth)


def dumps(data: Any) -> str:
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False)


def json_response(
    data: Any, status: int = 200, headers: Mapping[str, str] | None = None
) -> web.Response:
    # body= (not text=) so the header is exactly "application/json": with text= aiohttp appends
    # "; charset=utf-8" and discord.py's json_or_text() would hand back a *string*.
    return web.Response(
        body=dumps(data).encode(),
        status=status,
        content_type="application/json",
        headers=dict(headers or {}),
    )


class ApiError(Exception):
    """An error answer: ``{"message", "code", "errors"?}`` with ``status``, as Discord sends."""

    def __init__(
        self,
        status: int,
        message: str,
        code: int | None = 0,
        *,
        errors: JSON | None = None,
        headers: Mapping[str, str] | None = None,
        extra: JSON | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.body: JSON = {"message": message}
        if code is not None:
            self.body["code"] = code
        if errors is not None:
            self.body["errors"] = errors
        self.body.update(extra or {})
        self.headers = dict(headers or {})

    def response(self) -> web.Response:
        return json_response(self.body, self.status, self.headers)


def form_error(field_name: str, code: str, message: str) -> ApiError:
    """Discord's 50035 "Invalid Form Body" for one field."""
    return ApiError(
        400,
        "Invalid Form Body",
        50035,
        errors={field_name: {"_errors": [{"code": code, "message": message}]}},
    )
