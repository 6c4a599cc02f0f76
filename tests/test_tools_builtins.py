"""The built-in tools without a network (calculate, current_time), the runner's bounds, and
the registry's per-channel switches."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import pytest

from bot.conversation import ToolCall
from bot.tools.base import ToolContext, ToolFailed, ToolResult, ToolSpec
from bot.tools.calculate import Calculate, evaluate
from bot.tools.channel import ReadChannel
from bot.tools.clock import CurrentTime
from bot.tools.registry import Toolbox, is_on
from bot.tools.runner import ToolRunner, status_line

CONTEXT = ToolContext()


@pytest.mark.parametrize(("expression", "value"), [
    ("1 + 2 * 3", 7), ("(17.5 * 3) ** 2 / 7", 393.75), ("7 // 2", 3), ("-3 % 5", 2),
    ("2 ^ 10", 1024), ("-(4 - 6) * +2", 4), ("10 / 4", 2.5),
])
def test_calculate_evaluates_arithmetic(expression: str, value: float) -> None:
    assert evaluate(expression) == value


@pytest.mark.parametrize(("expression", "problem"), [
    ("__import__('os').system('id')", "only numbers"),
    ("(1).__class__", "only numbers"),
    ("[1, 2]", "only numbers"),
    ("x + 1", "only numbers"),
    ("9 ** 9 ** 9", "exponents are limited"),
    ("10 ** 400", "too large"),
    ("1e308 * 10", "too large"),
    ("1 / 0", "division by zero"),
    ("(-8) ** 0.5", "not a real number"),
    ("1 +", "not an arithmetic expression"),
    ("1" * 600, "longer than 500"),
])
def test_calculate_refuses_what_is_not_bounded_arithmetic(expression: str, problem: str) -> None:
    with pytest.raises(ToolFailed, match=problem):
        evaluate(expression)


async def test_calculate_answers_with_the_expression() -> None:
    result = await Calculate().run({"expression": "6 * 7"}, CONTEXT)
    assert result.text == "6 * 7 = 42"


async def test_current_time_in_a_zone_and_by_default_utc() -> None:
    clock = CurrentTime(now=lambda: datetime(2026, 7, 14, 10, 30, tzinfo=UTC))

    assert (await clock.run({}, CONTEXT)).text == \
        "Tuesday 2026-07-14 10:30:00 UTC (UTC+0000) in UTC"
    assert (await clock.run({"timezone": "Asia/Tokyo"}, CONTEXT)).text == \
        "Tuesday 2026-07-14 19:30:00 JST (UTC+0900) in Asia/Tokyo"
    with pytest.raises(ToolFailed, match="not an IANA time zone"):
        await clock.run({"timezone": "Mars/Olympus"}, CONTEXT)


async def test_read_channel_without_a_channel_says_so() -> None:
    with pytest.raises(ToolFailed, match="no channel to read"):
        await ReadChannel().run({"limit": 5}, CONTEXT)
    with pytest.raises(ToolFailed, match="from 1 to 100"):
        await ReadChannel().run({"limit": 500}, CONTEXT)


class Waiting:
    """A tool that runs until released (or forever)."""

    spec = ToolSpec("wait", "waits")
    needs_reader = False

    def __init__(self) -> None:
        self.released = asyncio.Event()

    def status(self, arguments: Mapping[str, Any]) -> str:
        return "Waiting…"

    async def run(self, arguments: Mapping[str, Any], context: ToolContext) -> ToolResult:
        await self.released.wait()
        return ToolResult("x" * 5_000)


async def test_the_runner_bounds_time_and_size_and_answers_every_mistake() -> None:
    waiting = Waiting()
    tools = {"wait": waiting, "calculate": Calculate()}
    calls = [ToolCall("a", "wait", "{}"), ToolCall("b", "calculate", '{"expression": '),
             ToolCall("c", "nonsense", "{}"), ToolCall("d", "calculate", "[1]"),
             ToolCall("e", "calculate", '{"expression": "1/0"}')]

    outcomes = await ToolRunner(timeout=0.2, result_chars=1000).run(calls, tools, CONTEXT)

    assert [o.text for o in outcomes] == [
        "Error: the tool took longer than 0.2 s and was stopped",
        "Error: the arguments are not a JSON object; call the tool again with valid JSON "
        "arguments",
        "Error: there is no tool 'nonsense'; the tools are: wait, calculate",
        "Error: the arguments are not a JSON object; call the tool again with valid JSON "
        "arguments",
        "Error: division by zero",
    ]
    waiting.released.set()
    [long] = await ToolRunner(result_chars=1000).run([ToolCall("f", "wait", "")], tools,
                                                     CONTEXT)
    assert long.text == "x" * 1000 + "\n[cut: the result had 5,000 characters; the first " \
                                      "1,000 are shown]"


def test_one_status_line_for_parallel_calls() -> None:
    tools = {"calculate": Calculate(), "read_channel": ReadChannel()}
    calls = [ToolCall("a", "calculate", "{}"), ToolCall("b", "read_channel", '{"limit": 20}'),
             ToolCall("c", "calculate", "{}")]
    assert status_line(calls, tools) == "🔧 Calculating… · Reading the last 20 messages…"


def test_channel_switches_a_tool_or_a_whole_server() -> None:
    assert is_on("fetch_url", {})
    assert not is_on("fetch_url", {"fetch_url": False})
    assert not is_on("wiki__search", {"wiki__*": False})
    assert is_on("wiki__search", {"wiki__*": False, "wiki__search": True})


def test_the_registry_offers_what_bot_tools_allows_and_the_channel_did_not_switch_off() -> None:
    toolbox = Toolbox([Calculate(), CurrentTime(), ReadChannel()],
                      allowed=("calculate", "read_channel"))

    assert list(toolbox.offered({}, can_read_channel=True)) == ["calculate", "read_channel"]
    assert list(toolbox.offered({}, can_read_channel=False)) == ["calculate"]
    assert list(toolbox.offered({"calculate": False}, can_read_channel=True)) == \
        ["read_channel"]
