"""Tools in the terminal: the same loop, the status line on standard error, and no
read_channel (a terminal has no channel to read)."""

from __future__ import annotations

import json
from pathlib import Path

from tests.fakes.model_server import FakeCall, FakeModelServer, Reply, ToolCalls
from tests.test_console import chat


async def test_a_tool_answer_in_a_pipe_prints_the_answer_and_the_status_on_stderr(
    model_api: FakeModelServer, tmp_path: Path
) -> None:
    model_api.script("direct", ToolCalls([FakeCall("calculate",
                                                   json.dumps({"expression": "21 * 2"}))]),
                     Reply(text="It is 42."))

    code, out, err = await chat(model_api, tmp_path, ["what is 21 times 2?"])

    assert code == 0, err
    assert out == "It is 42.\n"
    assert "🔧 Calculating…" in err
    offered = [t["function"]["name"] for t in model_api.requests[0].body["tools"]]
    assert offered == ["fetch_url", "current_time", "calculate"]
    assert model_api.requests[1].body["messages"][-1]["content"] == "21 * 2 = 42"
