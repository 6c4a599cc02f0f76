"""read_channel(limit): the latest messages of the thread or channel the question was asked
in, read from the platform by the reply's surface (never another place)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC
from typing import Any

from bot.tools.base import (
    ChannelMessage,
    ToolContext,
    ToolFailed,
    ToolResult,
    ToolSpec,
    int_argument,
)

DEFAULT_LIMIT = 50
MAX_LIMIT = 100
MAX_MESSAGE_CHARS = 2_000

SPEC = ToolSpec(
    "read_channel",
    "Read the latest messages of the thread or channel this conversation is in, with their "
    "authors and times (for example to catch up on or summarise a discussion).",
    {"type": "object", "properties": {"limit": {
        "type": "integer", "minimum": 1, "maximum": MAX_LIMIT,
        "description": f"how many of the latest messages, default {DEFAULT_LIMIT}"}}},
)


def _limit(arguments: Mapping[str, Any]) -> int:
    try:
        return int_argument(arguments, "limit", default=DEFAULT_LIMIT, low=1, high=MAX_LIMIT)
    except ToolFailed:
        return DEFAULT_LIMIT


def format_messages(messages: list[ChannelMessage]) -> str:
    """One block per message: `[2026-01-02 13:45 UTC] Ann: text` (long texts clipped)."""
    lines = []
    for message in messages:
        text = message.text.strip()
        if len(text) > MAX_MESSAGE_CHARS:
            text = text[:MAX_MESSAGE_CHARS] + "…"
        when = message.sent_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
        lines.append(f"[{when}] {message.author}: {text}")
    return "\n".join(lines)


class ReadChannel:
    """The read_channel tool; offered only where the surface can read its channel."""

    spec = SPEC
    needs_reader = True

    def status(self, arguments: Mapping[str, Any]) -> str:
        """What the person sees while it runs."""
        return f"Reading the last {_limit(arguments)} messages…"

    async def run(self, arguments: Mapping[str, Any], context: ToolContext) -> ToolResult:
        """The messages, oldest first."""
        limit = int_argument(arguments, "limit", default=DEFAULT_LIMIT, low=1, high=MAX_LIMIT)
        if context.reader is None:
            raise ToolFailed("this conversation has no channel to read")
        messages = list(await context.reader.read_channel(limit))[-limit:]
        if not messages:
            return ToolResult("(no messages)")
        return ToolResult(f"The last {len(messages)} messages, oldest first:\n"
                          + format_messages(messages))
