"""A bot process killed mid-answer (kill -9) keeps the text it had shown: the answer is saved
as it grows, marked interrupted, and the next process sends it as history."""

from __future__ import annotations

import asyncio
import json
import signal
import sqlite3
import sys
from pathlib import Path

from tests.fakes.model_server import FakeModelServer, Hang, Reply
from tests.support.process import bot_environment

ANSWER = "one two three four five six seven eight nine ten"
WAIT_FOR_SAVE = 30.0


def assistant_turns(database: Path) -> list[tuple[str, str]]:
    if not database.exists():
        return []
    with sqlite3.connect(database) as connection:
        try:
            rows = connection.execute(
                "SELECT parts, status FROM turns WHERE role = 'assistant' ORDER BY id"
            ).fetchall()
        except sqlite3.OperationalError:
            return []
    return [(parts, status) for parts, status in rows]


async def test_kill_9_mid_answer_keeps_the_text_shown(
    model_api: FakeModelServer, tmp_path: Path
) -> None:
    model_api.script("direct", Hang(seconds=60.0, after_chunks=2, text=ANSWER))
    database = tmp_path / "data" / "bot.db"
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", "chat", cwd=tmp_path, env=bot_environment(model_api),
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert process.stdin is not None
    process.stdin.write(b"count to ten\n")
    await process.stdin.drain()
    waited = 0.0
    while not assistant_turns(database) and waited < WAIT_FOR_SAVE:
        await asyncio.sleep(0.2)
        waited += 0.2

    process.send_signal(signal.SIGKILL)
    await process.wait()

    [(parts, status)] = assistant_turns(database)
    assert status == "interrupted"
    assert json.loads(parts) == [{"type": "text", "text": "one two three four "}]
    model_api.script("direct", Reply(text="Five."))
    restarted = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", "chat", cwd=tmp_path, env=bot_environment(model_api),
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    _, err = await asyncio.wait_for(restarted.communicate(b"go on\n"), timeout=60)
    assert restarted.returncode == 0, err.decode()
    messages = model_api.requests[-1].body["messages"]
    assert messages[-2] == {"role": "assistant", "content": "one two three four "}
    assert messages[-1] == {"role": "user", "content": "go on"}
