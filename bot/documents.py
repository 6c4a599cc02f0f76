"""Reading documents as text: PDF (pypdf), DOCX (python-docx) and text-like files.

A file's kind comes from the type its platform declared, or from its name when that type
is no help (`notes.md` sent as `application/octet-stream` is text). Each document is read in
a worker thread (at most a few at once, see `DocumentReader`) by these rules:

- At most `max_chars` characters are kept (the caller shares one budget between the
  documents of a message); reading stops as soon as the budget is full.
- A reading past its time limit stops between two pages or paragraphs and keeps what it
  has; one stuck inside a single page is given up by the caller at twice the limit.
- Text loses its control characters but tabs and line ends. Text files are UTF-8, or UTF-16
  with a byte-order mark; one with a NUL byte in its first 8 KB is binary, so refused.
- A PDF with pages but no text is a scan. One that opens only with a password is refused (an
  empty password, which many PDFs carry just to restrict printing, is tried first).
- A DOCX gives its body's paragraphs and tables, in order; it is refused, before anything is
  unpacked, when its parts would unpack to more than MAX_UNPACKED_BYTES.
- Anything a reader raises means a damaged file: a note (and none of its text), never a
  crash.
"""

from __future__ import annotations

import asyncio
import io
import logging
import re
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import PurePosixPath

log = logging.getLogger(__name__)

READ_CONCURRENCY = 2
READ_SECONDS = 30.0
MAX_UNPACKED_BYTES = 64 * 1024 * 1024
BINARY_SNIFF_BYTES = 8192

TEXT_TYPES = ("text/", "application/json", "application/xml", "application/x-yaml",
              "application/yaml", "application/toml", "application/javascript",
              "application/x-javascript", "application/x-sh", "application/sql",
              "application/ld+json")
"""Declared types read as text (`text/` covers plain, html, csv, markdown, source code…)."""
PDF_TYPES = ("application/pdf", "application/x-pdf")
DOCX_TYPES = ("application/vnd.openxmlformats-officedocument.wordprocessingml.document",)
RULED_OUT_TYPES = ("image/", "audio/", "video/", "font/", "model/")
"""Declared types that make a file no document, whatever its name says."""
TEXT_NAMES = frozenset({
    "txt", "text", "md", "markdown", "rst", "adoc", "org", "tex", "log", "csv", "tsv", "json",
    "jsonl", "ndjson", "yaml", "yml", "toml", "ini", "cfg", "conf", "env", "properties", "xml",
    "html", "htm", "css", "scss", "less", "sql", "graphql", "proto", "ipynb",
    "py", "pyi", "js", "mjs", "cjs", "jsx", "ts", "tsx", "java", "kt", "kts", "scala", "groovy",
    "gradle", "c", "h", "cc", "cpp", "cxx", "hpp", "hh", "cs", "fs", "go", "rs", "rb", "php",
    "pl", "pm", "lua", "r", "jl", "swift", "m", "mm", "dart", "ex", "exs", "erl", "hs", "ml",
    "clj", "vue", "svelte", "sh", "bash", "zsh", "fish", "ps1", "bat", "cmd", "dockerfile",
    "makefile", "mk", "cmake", "tf", "hcl", "nix", "diff", "patch",
})
"""Name suffixes (or whole names without one, like `Makefile`) of text files."""
OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
"""How a password-protected Office file (or an old binary .doc) starts: it is no zip."""
CONTROL_CHARACTERS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")

SCAN = "is a scan with no text layer: I can't read it"
ENCRYPTED = "is protected by a password: I can't read it"
OLE_FILE = "is protected by a password, or is an old .doc file: I can't read it"
NO_TEXT = "has no text in it"
TIMED_OUT = "took too long to read: I can't read it"


class DocumentKind(StrEnum):
    """The reader a document needs."""

    TEXT = "text"
    PDF = "PDF"
    DOCX = "DOCX"


@dataclass(frozen=True, slots=True)
class DocumentText:
    """What was read from a document: its text (at most the characters asked for), whether
    there was more, and why it could not be read in full, if so (it completes a sentence
    that starts with the file's name: "report.pdf is a scan with no text layer: …")."""

    text: str
    cut: bool = False
    problem: str | None = None


def document_kind(filename: str, content_type: str) -> DocumentKind | None:
    """How to read a file as a document, or None when it is none (an image, an archive…).

    The declared type decides; when it is none, a generic binary type or an `application/…`
    type not known here, the name does.
    """
    declared = content_type.split(";")[0].strip().lower()
    if declared.startswith(RULED_OUT_TYPES):
        return None
    if declared in PDF_TYPES:
        return DocumentKind.PDF
    if declared in DOCX_TYPES:
        return DocumentKind.DOCX
    if declared.startswith(TEXT_TYPES):
        return DocumentKind.TEXT
    name = PurePosixPath(filename.lower()).name
    suffix = PurePosixPath(name).suffix.removeprefix(".") or name
    if suffix == "pdf":
        return DocumentKind.PDF
    if suffix == "docx":
        return DocumentKind.DOCX
    return DocumentKind.TEXT if suffix in TEXT_NAMES else None


class DocumentReader:
    """Reads documents in worker threads, at most `concurrency` at once, each within about
    `timeout` seconds (by `clock`).

    Make one and share it between every reply, like the image decoder. A slot is held until
    its thread ends, even when the reply stopped waiting: a thread cannot be stopped, so
    freeing its slot early would break the bound.
    """

    def __init__(self, concurrency: int = READ_CONCURRENCY, *, timeout: float = READ_SECONDS,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if concurrency < 1:
            raise ValueError(f"concurrency must be at least 1, not {concurrency}")
        self._slots = asyncio.Semaphore(concurrency)
        self._timeout = timeout
        self._clock = clock

    async def read(self, kind: DocumentKind, data: bytes, max_chars: int) -> DocumentText:
        """The document's text, at most `max_chars` of it; never raises for a bad file."""
        await self._slots.acquire()
        deadline = self._clock() + self._timeout
        try:
            work = asyncio.ensure_future(asyncio.to_thread(
                read_document, kind, data, max_chars,
                out_of_time=lambda: self._clock() > deadline,
            ))
        except BaseException:
            self._slots.release()
            raise
        work.add_done_callback(self._finished)
        try:
            return await asyncio.wait_for(asyncio.shield(work), 2 * self._timeout)
        except TimeoutError:
            log.warning("reading a %s document (%d bytes) did not end within %.1f s; given up",
                        kind, len(data), 2 * self._timeout)
            return DocumentText("", problem=TIMED_OUT)

    def _finished(self, work: asyncio.Future[DocumentText]) -> None:
        self._slots.release()
        if not work.cancelled():
            work.exception()  # read here too, in case nobody waits for it any more


def read_document(kind: DocumentKind, data: bytes, max_chars: int, *,
                  out_of_time: Callable[[], bool] = lambda: False) -> DocumentText:
    """The document's text by the rules in this module's docstring; blocking, so run it in a
    thread. `out_of_time` is asked before each page or paragraph."""
    collected = _Collected(max_chars)
    problem: str | None
    try:
        if kind is DocumentKind.PDF:
            problem = _read_pdf(data, collected, out_of_time)
        elif kind is DocumentKind.DOCX:
            problem = _read_docx(data, collected, out_of_time)
        else:
            problem = _read_text(data, collected)
    except Exception as exc:  # the readers raise many kinds of error for a broken file
        log.info("a %s document (%d bytes) could not be read: %r", kind, len(data), exc)
        return DocumentText("", problem=_damaged(kind))
    text = collected.text()
    if problem is None and not text.strip():
        problem = NO_TEXT
    return DocumentText(text, collected.cut, problem)


def _read_pdf(data: bytes, collected: _Collected, out_of_time: Callable[[], bool]
              ) -> str | None:
    # The readers are imported on first use: a process that never reads a document does not
    # carry their memory (about 20 MB with python-docx).
    from pypdf import PasswordType, PdfReader
    from pypdf.errors import DependencyError, FileNotDecryptedError

    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted and reader.decrypt("") == PasswordType.NOT_DECRYPTED:
            return ENCRYPTED
        pages = reader.pages
        for number, page in enumerate(pages):
            if out_of_time():
                return _timed_out(number, len(pages), "pages")
            if not collected.add(page.extract_text() + "\n\n"):
                return None
    except (FileNotDecryptedError, DependencyError):
        return ENCRYPTED
    if len(pages) and not collected.text().strip():
        return SCAN
    return None


def _read_docx(data: bytes, collected: _Collected, out_of_time: Callable[[], bool]
               ) -> str | None:
    if data.startswith(OLE_MAGIC):
        return OLE_FILE
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        unpacked = sum(member.file_size for member in archive.infolist())
    if unpacked > MAX_UNPACKED_BYTES:
        mb = 1024 * 1024
        return (f"would unpack to {unpacked // mb:,} MB, over the limit of "
                f"{MAX_UNPACKED_BYTES // mb} MB: I can't read it")
    import docx
    from docx.table import Table

    document = docx.Document(io.BytesIO(data))
    for number, block in enumerate(document.iter_inner_content()):
        if out_of_time():
            return _timed_out(number, None, "paragraphs and tables")
        if isinstance(block, Table):
            text = "\n".join(" | ".join(cell.text for cell in row.cells) for row in block.rows)
        else:
            text = block.text
        if not collected.add(text + "\n"):
            return None
    return None


def _read_text(data: bytes, collected: _Collected) -> str | None:
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        collected.add(data.decode("utf-16", errors="replace"))
    elif b"\x00" in data[:BINARY_SNIFF_BYTES]:
        return _damaged(DocumentKind.TEXT)
    else:
        collected.add(data.decode("utf-8-sig", errors="replace"))
    return None


def _timed_out(done: int, total: int | None, unit: str) -> str:
    if done == 0:
        return TIMED_OUT
    of_total = f" of {total}" if total is not None else ""
    return f"took too long to read: only its first {done}{of_total} {unit} are included"


def _damaged(kind: DocumentKind) -> str:
    what = {DocumentKind.PDF: "a PDF", DocumentKind.DOCX: "a Word document"}
    return f"is damaged or not {what.get(kind, 'a text file')}: I can't read it"


class _Collected:
    """Text gathered piece by piece, cleaned, and kept to at most `limit` characters."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._pieces: list[str] = []
        self._size = 0
        self.cut = False

    def add(self, piece: str) -> bool:
        """Keep what fits of `piece`; False once text had to be left out."""
        clean = CONTROL_CHARACTERS.sub("", piece.replace("\r\n", "\n").replace("\r", "\n"))
        room = self._limit - self._size
        kept, rest = clean[:room], clean[room:]
        self._pieces.append(kept)
        self._size += len(kept)
        if rest.strip():
            self.cut = True
        return not self.cut

    def text(self) -> str:
        """Everything kept, without blank lines or spaces at its ends."""
        return "".join(self._pieces).strip("\n ")
