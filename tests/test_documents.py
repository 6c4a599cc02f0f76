"""Documents read as text: PDF, DOCX and text files reach the model under their names, with
notes for what cannot be read, within BOT_MAX_DOCUMENT_CHARS for a message.

Every document is made in the test (tests/support/documents.py). The scenarios go through the
real core (settings, service, store, the fake model API over HTTP) and through the Slack
adapter's real download path against the fake Slack.
"""

from __future__ import annotations

import asyncio
import io
import sqlite3
import threading
import zipfile
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pypdf
import pytest

from bot.app import Core, open_core
from bot.attachments import prepare_attachments
from bot.config import Settings
from bot.conversation import Attachment, Author, ConversationKey, Incoming, Role, TextPart
from bot.documents import (
    MAX_UNPACKED_BYTES,
    DocumentKind,
    DocumentReader,
    document_kind,
    read_document,
)
from tests.fakes.model_server import FakeModelServer, Reply
from tests.fakes.slack import FakeSlack
from tests.support.documents import DOCX_TYPE, encrypted, pdf, scanned_pdf, word
from tests.support.surfaces import RecordingSurface
from tests.test_slack_adapter import deliver, model_messages, running

KEY = ConversationKey("test", "team", "chan", "thread-1")
ANN = Author("u1", "Ann")
REPORT = pdf("Quarterly report\nRevenue grew by 12 percent.", "Costs fell in March.")
MINUTES = word("Minutes of the meeting", "Next meeting: Monday",
               table=[["name", "role"], ["Ann", "chair"]])
SCAN_NOTE = "(scan.pdf is a scan with no text layer: I can't read it)"
LOCKED_NOTE = "(locked.pdf is protected by a password: I can't read it)"


class Fetches:
    """Attachments whose downloads are counted."""

    def __init__(self) -> None:
        self.fetched: list[str] = []

    def file(self, name: str, data: bytes, content_type: str) -> Attachment:
        async def fetch() -> bytes:
            self.fetched.append(name)
            return data

        return Attachment(name, content_type, len(data), fetch)


def attachment(name: str, data: bytes, content_type: str) -> Attachment:
    return Fetches().file(name, data, content_type)


@asynccontextmanager
async def core_with(make_settings: Callable[..., Settings], **overrides: Any
                    ) -> AsyncIterator[Core]:
    async with open_core(make_settings(**overrides)) as core:
        yield core


async def ask(core: Core, text: str, *files: Attachment) -> RecordingSurface:
    surface = RecordingSurface()
    await core.service.handle(Incoming(KEY, ANN, text, files, message_id="q1"), surface)
    return surface


def database_bytes(folder: Path) -> bytes:
    """Every byte of the SQLite database in `folder` (with its journal files)."""
    return b"".join(path.read_bytes() for path in sorted(folder.glob("bot.db*")))


def sent_user_text(model_api: FakeModelServer) -> str:
    """The text of the last message of the one request the model received."""
    (request,) = model_api.requests
    content = request.body["messages"][-1]["content"]
    assert isinstance(content, str), "documents are text: the message has no image parts"
    return content


# ------------------------------------------------------------------ through the service


async def test_a_pdf_and_a_docx_reach_the_model_as_text_under_their_names(
    make_settings: Callable[..., Settings], model_api: FakeModelServer, tmp_path: Path
) -> None:
    async with core_with(make_settings) as core:
        surface = await ask(core, "Summarise both",
                            attachment("report.pdf", REPORT, "application/pdf"),
                            attachment("minutes.docx", MINUTES, DOCX_TYPE))
        history = await core.store.history(KEY, 100_000, 8)

    expected = ("Summarise both\n"
                "[file report.pdf]\nQuarterly report\nRevenue grew by 12 percent.\n\n"
                "Costs fell in March.\n"
                "[file minutes.docx]\nMinutes of the meeting\nNext meeting: Monday\n"
                "name | role\nAnn | chair")
    assert sent_user_text(model_api) == expected
    assert surface.notices == []
    assert surface.shown == [f"echo: {expected}"]
    assert [(t.role, t.text) for t in history] == [
        (Role.USER, expected), (Role.ASSISTANT, f"echo: {expected}")]
    stored = database_bytes(tmp_path)
    assert b"%PDF" not in stored and b"word/document.xml" not in stored, \
        "the text is stored, never the files"
    with sqlite3.connect(tmp_path / "bot.db") as db:
        assert db.execute("SELECT count(*) FROM images").fetchone() == (0,)


async def test_a_scanned_pdf_gets_a_note_for_the_person_and_the_model(
    make_settings: Callable[..., Settings], model_api: FakeModelServer
) -> None:
    async with core_with(make_settings) as core:
        surface = await ask(core, "What does it say?",
                            attachment("scan.pdf", scanned_pdf(2), "application/pdf"))

    assert surface.notices == [SCAN_NOTE]
    assert sent_user_text(model_api) == f"What does it say?\n[file scan.pdf]\n{SCAN_NOTE}"


async def test_an_encrypted_pdf_gets_a_note_and_one_without_an_open_password_is_read(
    make_settings: Callable[..., Settings], model_api: FakeModelServer
) -> None:
    async with core_with(make_settings) as core:
        surface = await ask(
            core, "Read these",
            attachment("locked.pdf", encrypted(pdf("Top secret"), "s3cret"), "application/pdf"),
            attachment("printable.pdf", encrypted(pdf("Print me not"), ""), "application/pdf"),
        )

    assert surface.notices == [LOCKED_NOTE]
    assert sent_user_text(model_api) == (
        f"Read these\n[file locked.pdf]\n{LOCKED_NOTE}\n[file printable.pdf]\nPrint me not")


async def test_damaged_files_get_notes_and_the_question_is_still_answered(
    make_settings: Callable[..., Settings], model_api: FakeModelServer
) -> None:
    async with core_with(make_settings) as core:
        surface = await ask(
            core, "Anything?",
            attachment("cut.pdf", REPORT[: len(REPORT) // 3], "application/pdf"),
            attachment("cut.docx", MINUTES[: len(MINUTES) // 2], DOCX_TYPE),
            attachment("fake.docx", b"just some words", DOCX_TYPE),
            attachment("data.txt", b"\x00\x01\x02binary", "text/plain"),
            attachment("old.docx", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 600, DOCX_TYPE),
        )

    notes = ["(cut.pdf is damaged or not a PDF: I can't read it)",
             "(cut.docx is damaged or not a Word document: I can't read it)",
             "(fake.docx is damaged or not a Word document: I can't read it)",
             "(data.txt is damaged or not a text file: I can't read it)",
             "(old.docx is protected by a password, or is an old .doc file: I can't read it)"]
    assert surface.notices == notes
    assert sent_user_text(model_api) == "\n".join(
        ["Anything?"] + [f"[file {note[1:].split(' ')[0]}]\n{note}" for note in notes])
    assert surface.shown[0].startswith("echo: Anything?")


async def test_a_file_that_cannot_be_read_alone_is_no_question_for_the_model(
    make_settings: Callable[..., Settings], model_api: FakeModelServer
) -> None:
    async with core_with(make_settings) as core:
        surface = await ask(core, "", attachment("scan.pdf", scanned_pdf(), "application/pdf"))
        history = await core.store.history(KEY, 100_000, 8)

    assert surface.notices == [SCAN_NOTE]
    assert model_api.requests == [] and history == []


async def test_the_document_characters_of_a_message_are_capped_across_its_documents(
    make_settings: Callable[..., Settings], model_api: FakeModelServer
) -> None:
    files = Fetches()
    notes_text = "a" * 30  # 30 characters of the 50
    long_pdf = pdf("b" * 15, "c" * 15)  # "bbb…\n\nccc…": 20 of its 32 characters fit

    async with core_with(make_settings, bot_max_document_chars=50) as core:
        surface = await ask(core, "Compare",
                            files.file("notes.txt", notes_text.encode(), "text/plain"),
                            files.file("long.pdf", long_pdf, "application/pdf"),
                            files.file("late.docx", MINUTES, DOCX_TYPE))

    limit = "the documents of one message are limited to 50 characters"
    assert surface.notices == [f"(long.pdf was cut after 20 characters: {limit})",
                               f"(late.docx was not read: {limit})"]
    assert files.fetched == ["notes.txt", "long.pdf"], "nothing is downloaded past the cap"
    assert sent_user_text(model_api) == (
        f"Compare\n[file notes.txt]\n{notes_text}\n"
        f"[file long.pdf]\n{'b' * 15}\n\nccc\n(cut here: {limit})\n"
        f"[file late.docx]\n(late.docx was not read: {limit})")


async def test_text_like_files_are_read_by_their_type_or_their_name(
    make_settings: Callable[..., Settings], model_api: FakeModelServer
) -> None:
    async with core_with(make_settings) as core:
        surface = await ask(
            core, "Review",
            attachment("main.py", b"print('hi')\r\n", "text/x-python; charset=utf-8"),
            attachment("README.md", b"# Title", "application/octet-stream"),
            attachment("Makefile", b"all:\n\ttrue", ""),
            attachment("page.html", b"<p>Hello</p>", "text/html"),
            attachment("wide.csv", "a,b\n1,ü".encode("utf-16"), "text/csv"),
            attachment("a\nb].txt", b"tricky name", "text/plain"),
        )

    assert surface.notices == []
    assert sent_user_text(model_api) == (
        "Review\n[file main.py]\nprint('hi')\n[file README.md]\n# Title\n"
        "[file Makefile]\nall:\n\ttrue\n[file page.html]\n<p>Hello</p>\n"
        "[file wide.csv]\na,b\n1,ü\n[file a b .txt]\ntricky name")


# ------------------------------------------------------------------ through an adapter


@pytest.fixture
async def fake() -> AsyncIterator[FakeSlack]:
    async with FakeSlack() as server:
        yield server


async def test_documents_shared_in_slack_reach_the_model_as_text(
    make_settings: Callable[..., Settings], fake: FakeSlack, model_api: FakeModelServer
) -> None:
    report = fake.add_file("report.pdf", REPORT, "application/pdf")
    minutes = fake.add_file("minutes.docx", MINUTES, DOCX_TYPE)
    scan = fake.add_file("scan.pdf", scanned_pdf(), "application/pdf")
    model_api.script("direct", Reply(text="Revenue grew; Ann chairs."))
    async with running(make_settings, fake) as (_, slack):
        event = fake.app_mention(text="summarise", files=[report, minutes, scan])
        await deliver(slack, fake.event_request(event))

        assert [(d.file_id, d.authorized) for d in fake.downloads] == [
            (report["id"], True), (minutes["id"], True), (scan["id"], True)]
        assert fake.texts("C1", event["ts"]) == [SCAN_NOTE, "Revenue grew; Ann chairs."]
        assert model_messages(model_api) == [("user", (
            "summarise\n[file report.pdf]\nQuarterly report\nRevenue grew by 12 percent.\n\n"
            "Costs fell in March.\n[file minutes.docx]\nMinutes of the meeting\n"
            f"Next meeting: Monday\nname | role\nAnn | chair\n[file scan.pdf]\n{SCAN_NOTE}"))]


# ------------------------------------------------------------------ the readers' bounds


class TickingClock:
    """A fake clock that moves one second each time it is read."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        self.now += 1.0
        return self.now


async def test_a_reading_past_its_time_stops_between_pages_and_keeps_them() -> None:
    reader = DocumentReader(timeout=2.5, clock=TickingClock())
    five_pages = pdf(*(f"page {n}" for n in range(1, 6)))

    read = await reader.read(DocumentKind.PDF, five_pages, 1_000)

    assert read.text == "page 1\n\npage 2"
    assert read.problem == "took too long to read: only its first 2 of 5 pages are included"
    prepared = await prepare_attachments(
        (attachment("five.pdf", five_pages, "application/pdf"),), 1_000_000, 1_000,
        reader=DocumentReader(timeout=2.5, clock=TickingClock()))
    note = "(five.pdf took too long to read: only its first 2 of 5 pages are included)"
    assert prepared.notes == [note]
    assert prepared.parts == [TextPart(f"[file five.pdf]\npage 1\n\npage 2\n{note}")]


async def test_a_reader_stuck_inside_a_page_is_given_up_and_its_slot_freed_when_it_ends(
    monkeypatch: pytest.MonkeyPatch
) -> None:
    release = threading.Event()

    def stuck(stream: Any) -> Any:
        release.wait(30)
        raise ValueError("never a real reader")

    monkeypatch.setattr(pypdf, "PdfReader", stuck)
    reader = DocumentReader(concurrency=1, timeout=0.05)

    read = await reader.read(DocumentKind.PDF, REPORT, 1_000)

    assert read.problem == "took too long to read: I can't read it"
    waiting = asyncio.create_task(reader.read(DocumentKind.TEXT, b"next", 1_000))
    release.set()
    assert (await waiting).text == "next"


def test_a_docx_that_would_unpack_past_the_limit_is_refused_before_unpacking() -> None:
    bomb = io.BytesIO()
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as archive, \
            archive.open("word/document.xml", "w", force_zip64=True) as member:
        zeros = bytes(1024 * 1024)
        for _ in range(MAX_UNPACKED_BYTES // len(zeros) + 1):
            member.write(zeros)
    assert len(bomb.getvalue()) < 1024 * 1024

    read = read_document(DocumentKind.DOCX, bomb.getvalue(), 1_000)

    assert read.problem == "would unpack to 65 MB, over the limit of 64 MB: I can't read it"


def test_a_files_kind_comes_from_its_declared_type_then_its_name() -> None:
    assert document_kind("x.bin", "application/pdf") is DocumentKind.PDF
    assert document_kind("report.pdf", "application/octet-stream") is DocumentKind.PDF
    assert document_kind("report.pdf", "") is DocumentKind.PDF
    assert document_kind("Letter.DOCX", "") is DocumentKind.DOCX
    assert document_kind("notes", "text/plain") is DocumentKind.TEXT
    assert document_kind("app.ts", "application/x-typescript") is DocumentKind.TEXT
    assert document_kind("Dockerfile", "") is DocumentKind.TEXT
    assert document_kind("photo.pdf", "image/png") is None, "a declared image stays an image"
    assert document_kind("clip.ts", "video/mp2t") is None
    assert document_kind("archive.zip", "application/zip") is None
    assert document_kind("old.doc", "application/msword") is None
