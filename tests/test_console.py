"""`python -m bot chat` as a user runs it: a real process, piped input, the fake model API."""

from __future__ import annotations

import asyncio
import io
import os
import pty
import select
import sqlite3
import sys
from pathlib import Path

from PIL import Image

from tests.fakes.model_server import FakeModelServer, Reply, Status
from tests.support.process import bot_environment


async def chat(model_api: FakeModelServer, workdir: Path, lines: list[str],
               *args: str) -> tuple[int, str, str]:
    env = bot_environment(model_api)
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", "chat", *args, cwd=workdir, env=env,
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(
        process.communicate("".join(line + "\n" for line in lines).encode()), timeout=60
    )
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def test_piped_lines_get_one_complete_reply_each(
    model_api: FakeModelServer, tmp_path: Path
) -> None:
    model_api.script("direct", Reply(text="First answer,\nover two lines."),
                     Reply(text="Second answer."))

    code, out, err = await chat(model_api, tmp_path, ["hello", "and again"])

    assert code == 0, err
    assert out == "First answer,\nover two lines.\nSecond answer.\n"
    assert (tmp_path / "data" / "bot.db").exists(), "the default SQLite file was created"


async def test_errors_go_to_standard_error(model_api: FakeModelServer, tmp_path: Path) -> None:
    model_api.script("direct", Status(401))

    code, out, err = await chat(model_api, tmp_path, ["hello"])

    assert code == 0
    assert out == ""
    assert "API key was rejected" in err


async def test_image_command_sends_the_file(model_api: FakeModelServer, tmp_path: Path) -> None:
    picture = tmp_path / "cat picture.png"
    buffer = io.BytesIO()
    Image.new("RGB", (3, 3), "blue").save(buffer, format="PNG")
    picture.write_bytes(buffer.getvalue())
    model_api.script("api", Reply(text="A blue square."))

    code, out, err = await chat(model_api, tmp_path, [f'/image "{picture}" what is it?'])

    assert code == 0, err
    assert out == "A blue square.\n"
    content = model_api.requests_to("api")[0].body["messages"][-1]["content"]
    assert content[0] == {"type": "text", "text": "what is it?"}
    assert content[1]["image_url"]["url"].startswith("data:image/png;base64,")


async def test_missing_image_file_is_reported(model_api: FakeModelServer, tmp_path: Path) -> None:
    code, out, err = await chat(model_api, tmp_path, ["/image nowhere.png"])

    assert code == 0 and out == ""
    assert "No such file" in err and model_api.requests == []


async def test_gemini_commands_change_settings(model_api: FakeModelServer, tmp_path: Path) -> None:
    code, out, err = await chat(model_api, tmp_path, [
        "/gemini set temperature 5", "/gemini set temperature 1.5", "question",
    ])

    assert code == 0, err
    assert "allowed: 0 to 2" in out
    assert "`temperature` set to 1.5." in out
    assert model_api.requests[0].body["temperature"] == 1.5


async def test_a_named_conversation_persists_across_runs(
    model_api: FakeModelServer, tmp_path: Path
) -> None:
    await chat(model_api, tmp_path, ["remember: blue"], "--conversation", "notes")
    await chat(model_api, tmp_path, ["unrelated"], "--conversation", "other")

    code, _, err = await chat(model_api, tmp_path, ["what colour?"], "--conversation", "notes")

    assert code == 0, err
    contents = [m["content"] for m in model_api.requests[-1].body["messages"]]
    assert contents == ["remember: blue", "echo: remember: blue", "what colour?"]
    with sqlite3.connect(tmp_path / "data" / "bot.db") as db:
        threads = {row[0] for row in db.execute("SELECT thread FROM conversations")}
    assert threads == {"notes", "other"}


async def test_in_a_terminal_the_reply_streams_as_it_arrives(
    model_api: FakeModelServer, tmp_path: Path
) -> None:
    chunks = ["Streaming ", "answer ", "arrives ", "piece ", "by ", "piece."]
    model_api.script("direct", Reply(chunks=chunks, delay_between_chunks=0.4))
    controller, terminal = pty.openpty()
    env = bot_environment(model_api)
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", "chat", cwd=tmp_path, env=env,
        stdin=terminal, stdout=terminal, stderr=terminal,
    )
    os.close(terminal)
    screen = b""

    async def read_until(marker: bytes) -> bytes:
        nonlocal screen
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 20
        while marker not in screen:
            assert loop.time() < deadline, f"never saw {marker!r} in {screen!r}"
            ready, _, _ = await asyncio.to_thread(select.select, [controller], [], [], 0.1)
            if ready:
                screen += os.read(controller, 4096)
        return screen

    try:
        await read_until(b"you> ")
        os.write(controller, b"tell me\n")
        first_seen = await read_until(b"Streaming")
        assert b"piece." not in first_seen, "the first words showed before the answer ended"
        await read_until(b"piece by piece.")
        os.write(controller, b"\x04")
        assert await asyncio.wait_for(process.wait(), timeout=20) == 0
    finally:
        if process.returncode is None:
            process.kill()
        os.close(controller)
    assert b"gemini> Streaming answer arrives piece by piece." in screen.replace(b"\r\n", b"\n")
