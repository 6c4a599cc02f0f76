"""Running the tool calls of one answer: all at once, each bounded in time and in the size of
its result, every failure turned into an error the model reads (never a crash)."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from bot import defaults
from bot.conversation import ToolCall
from bot.tools.base import Tool, ToolContext, ToolFailed, ToolResult

log = logging.getLogger(__name__)

STATUS_MARK = "🔧"
MAX_STATUS_CHARS = 150


@dataclass(frozen=True, slots=True)
class ToolOutcome:
    """One call's result as the model will read it, and the addresses it read."""

    call: ToolCall
    text: str
    sources: tuple[str, ...] = ()
    failed: bool = False


class ToolRunner:
    """Runs calls against the tools offered for one reply.

    A call past `timeout` seconds is cancelled; a result longer than `result_chars` is cut
    with a note; arguments that are not a JSON object, an unknown tool name and any error
    become `Error: …` results.
    """

    def __init__(self, *, timeout: float = defaults.TOOL_TIMEOUT,
                 result_chars: int = defaults.TOOL_RESULT_CHARS) -> None:
        self._timeout = timeout
        self._result_chars = result_chars

    async def run(self, calls: Sequence[ToolCall], tools: Mapping[str, Tool],
                  context: ToolContext) -> list[ToolOutcome]:
        """Every call's outcome, in the calls' order (the calls run concurrently)."""
        return list(await asyncio.gather(*(self._one(call, tools, context) for call in calls)))

    async def _one(self, call: ToolCall, tools: Mapping[str, Tool],
                   context: ToolContext) -> ToolOutcome:
        tool = tools.get(call.name)
        if tool is None:
            return _error(call, f"there is no tool {call.name[:100]!r}; the tools are: "
                                f"{', '.join(tools) or 'none'}")
        arguments = parse_arguments(call.arguments)
        if arguments is None:
            return _error(call, "the arguments are not a JSON object; call the tool again "
                                "with valid JSON arguments")
        try:
            async with asyncio.timeout(self._timeout):
                result = await tool.run(arguments, context)
        except TimeoutError:
            log.info("tool %s timed out after %.0f s", call.name, self._timeout)
            return _error(call, f"the tool took longer than {self._timeout:g} s and was stopped")
        except ToolFailed as exc:
            log.info("tool %s failed: %s", call.name, exc)
            return _error(call, str(exc))
        except Exception:
            log.exception("tool %s failed", call.name)
            return _error(call, "the tool failed on the bot's side")
        return ToolOutcome(call, self._bounded(result), result.sources)

    def _bounded(self, result: ToolResult) -> str:
        text = result.text
        if len(text) <= self._result_chars:
            return text
        return (text[: self._result_chars]
                + f"\n[cut: the result had {len(text):,} characters; the first "
                  f"{self._result_chars:,} are shown]")


def parse_arguments(raw: str) -> dict[str, Any] | None:
    """A call's arguments as an object ("" counts as none), or None when they are not."""
    if not raw.strip():
        return {}
    try:
        value = json.loads(raw)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def status_line(calls: Sequence[ToolCall], tools: Mapping[str, Tool]) -> str:
    """The one line shown while calls run: "🔧 Reading example.com…" (several joined)."""
    shown: list[str] = []
    for call in calls:
        tool = tools.get(call.name)
        arguments = parse_arguments(call.arguments) or {}
        text = tool.status(arguments) if tool is not None else f"Trying {call.name[:60]}…"
        if text not in shown:
            shown.append(text)
    return f"{STATUS_MARK} {' · '.join(shown)}"[:MAX_STATUS_CHARS]


def _error(call: ToolCall, message: str) -> ToolOutcome:
    return ToolOutcome(call, f"Error: {message}", failed=True)
