"""current_time(timezone): the date and time now in an IANA time zone (UTC by default)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from bot.tools.base import ToolContext, ToolFailed, ToolResult, ToolSpec, text_argument

SPEC = ToolSpec(
    "current_time",
    "The current date, time and weekday in a time zone.",
    {"type": "object", "properties": {"timezone": {
        "type": "string",
        "description": "an IANA time zone such as Europe/Paris or America/New_York; "
                       "default UTC"}}},
)


class CurrentTime:
    """The current_time tool; `now` gives the current UTC time (a test's clock)."""

    spec = SPEC
    needs_reader = False

    def __init__(self, now: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self._now = now

    def status(self, arguments: Mapping[str, Any]) -> str:
        """What the person sees while it runs."""
        return "Checking the time…"

    async def run(self, arguments: Mapping[str, Any], context: ToolContext) -> ToolResult:
        """The time now in the zone asked for."""
        name = text_argument(arguments, "timezone", default="UTC").strip() or "UTC"
        try:
            zone = ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            raise ToolFailed(f"{name[:100]!r} is not an IANA time zone (like Europe/Paris)"
                             ) from None
        now = self._now().astimezone(zone)
        return ToolResult(f"{now:%A %Y-%m-%d %H:%M:%S} {now.tzname()} (UTC{now:%z}) in {name}")
