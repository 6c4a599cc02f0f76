"""The terminal's `/file PATH [question]`: documents and images from disk, through the real
core and the fake model API, with notes and mistakes on standard error."""

from __future__ import annotations

import asyncio
import io
import sys
from collections.abc import Callable
from pathlib import Path

from PIL import Image

from adapters.console import ConsoleChat
from bot.app import open_core
from bot.config import Settings
from tests.fakes.model_server import FakeModelServer, Reply
from tests.support.documents import pdf, scanned_pdf, word
from tests.support.process import bot_environment


async def chat_in_process(make_settings: Callable[..., Settings], lines: list[str]
                          ) -> tuple[str, str]:
    """Lines piped into the terminal chat, as `python -m bot chat` runs it; (stdout, stderr)."""
    stdin = io.StringIO("".join(line + "\n" for line in lines))
    stdout, stderr = io.StringIO(), io.StringIO()
    async with open_core(make_settings()) as core:
        await ConsoleChat(core.service, "default", stdin, stdout, stderr).run()
    return stdout.getvalue(), stderr.getvalue()


def write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


async def test_a_pdf_with_a_question_reaches_the_model_as_text(
    make_settings: Callable[..., Settings], model_api: FakeModelServer, tmp_path: Path
) -> None:
    report = write(tmp_path / "my report.pdf", pdf("Revenue grew by 12 percent."))
    model_api.script("direct", Reply(text="It grew by 12 percent."))

    out, err = await chat_in_process(make_settings, [f'/file "{report}" How much growth?'])

    assert (out, err) == ("It grew by 12 percent.\n", "")
    (request,) = model_api.requests_to("direct")
    assert request.body["messages"][-1]["content"] == (
        "How much growth?\n[file my report.pdf]\nRevenue grew by 12 percent.")


async def test_documents_of_every_kind_and_images_are_sent_without_a_question_too(
    make_settings: Callable[..., Settings], model_api: FakeModelServer, tmp_path: Path
) -> None:
    minutes = write(tmp_path / "minutes.docx", word("Ann chairs the meeting."))
    notes = write(tmp_path / "notes.md", b"# Plan\n- ship it")
    script = write(tmp_path / "tool.py", b"print('hi')")
    picture = tmp_path / "dot.png"
    Image.new("RGB", (3, 3), "blue").save(picture)

    out, err = await chat_in_process(make_settings, [
        f"/file {minutes}", f"/file {notes}", f"/file {script} explain", f"/file {picture} what?",
    ])

    assert err == ""
    texts = [request.body["messages"][-1]["content"] for request in model_api.requests]
    assert texts[:3] == ["[file minutes.docx]\nAnn chairs the meeting.",
                         "[file notes.md]\n# Plan\n- ship it",
                         "explain\n[file tool.py]\nprint('hi')"]
    image_request = model_api.requests_to("api")[-1].body["messages"][-1]["content"]
    assert image_request[0] == {"type": "text", "text": "what?"}
    assert image_request[1]["image_url"]["url"].startswith("data:image/png;base64,")
    assert out.count("echo: ") == 4


async def test_notes_and_mistakes_go_to_standard_error(
    make_settings: Callable[..., Settings], model_api: FakeModelServer, tmp_path: Path
) -> None:
    scan = write(tmp_path / "scan.pdf", scanned_pdf())
    archive = write(tmp_path / "bundle.zip", b"PK\x03\x04")

    out, err = await chat_in_process(make_settings, [
        f"/file {scan}", f"/file {tmp_path / 'nowhere.pdf'} read it", "/file",
        f"/file {archive}", '/file "unclosed',
    ])

    assert out == "" and model_api.requests == []
    assert err.splitlines() == [
        "(scan.pdf is a scan with no text layer: I can't read it)",
        f"No such file: {tmp_path / 'nowhere.pdf'}",
        "Usage: /file PATH [question]",
        "Skipped bundle.zip: only images (PNG, JPEG, WebP, GIF, HEIC/HEIF), PDF and Word "
        "(.docx) documents, and text files are read.",
        "Could not read that line: No closing quotation",
    ]


async def test_python_m_bot_chat_takes_a_file(model_api: FakeModelServer, tmp_path: Path
                                              ) -> None:
    minutes = write(tmp_path / "minutes.docx", word("Ann chairs the meeting."))
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", "chat", cwd=tmp_path, env=bot_environment(model_api),
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(
        process.communicate(f"/file {minutes} Who chairs?\n".encode()), timeout=60)

    assert process.returncode == 0, err.decode()
    assert out.decode() == "echo: Who chairs?\n[file minutes.docx]\nAnn chairs the meeting.\n"
