"""The terminal chat: the same core path as Discord and Slack, drawn on standard output."""

from __future__ import annotations

import asyncio
import getpass
import mimetypes
import shlex
import sys
from pathlib import Path
from typing import TextIO

from bot import (
    Attachment,
    Author,
    CommandContext,
    ConversationKey,
    Incoming,
    Service,
    SurfaceLimits,
)

PLATFORM = "console"
LIMITS = SurfaceLimits(max_message_chars=1_000_000, min_edit_interval=0.0)
PROMPT = "you> "
FILE_COMMANDS = ("/file", "/image")
"""Commands that send a file with an optional question (`/image` is the older name)."""


class _TerminalStream:
    """A native stream on a terminal: each appended piece is printed as it arrives."""

    def __init__(self, out: TextIO, opening: str) -> None:
        self._out = out
        self._out.write(opening)
        self._out.flush()

    async def append(self, text: str) -> None:
        self._out.write(text)
        self._out.flush()

    async def close(self) -> str:
        self._out.write("\n")
        self._out.flush()
        return "console"


class TerminalSurface:
    """Streams the answer into an interactive terminal as the model writes it."""

    def __init__(self, out: TextIO, err: TextIO) -> None:
        self._out = out
        self._err = err

    @property
    def limits(self) -> SurfaceLimits:
        return LIMITS

    async def open_stream(self, opening: str) -> _TerminalStream:
        return _TerminalStream(self._out, "gemini> " + opening)

    async def post(self, text: str, *, final: bool) -> str:
        self._out.write(text + "\n")
        return "console"

    async def edit(self, message_id: str, text: str, *, final: bool) -> None:
        self._out.write(text + "\n")

    async def show_progress(self) -> None:
        return None

    async def notify(self, text: str) -> None:
        self._err.write(text + "\n")
        self._err.flush()

    async def show_status(self, text: str) -> None:
        """A tool's status line, on standard error ("" clears nothing: lines stay)."""
        if text:
            await self.notify(text)


class PipeSurface:
    """For piped input: nothing is drawn while streaming; the caller prints the whole reply."""

    def __init__(self, err: TextIO) -> None:
        self._err = err

    @property
    def limits(self) -> SurfaceLimits:
        return LIMITS

    async def post(self, text: str, *, final: bool) -> str:
        return "console"

    async def edit(self, message_id: str, text: str, *, final: bool) -> None:
        return None

    async def show_progress(self) -> None:
        return None

    async def notify(self, text: str) -> None:
        self._err.write(text + "\n")
        self._err.flush()

    async def show_status(self, text: str) -> None:
        """A tool's status line, on standard error (standard output holds replies only)."""
        if text:
            await self.notify(text)


def _file_attachment(path: Path) -> Attachment:
    """The file as an attachment; an unknown type is left empty, so the core goes by the
    file's name or, for images, by its first bytes."""
    content_type = mimetypes.guess_type(path.name)[0] or ""

    async def fetch() -> bytes:
        return await asyncio.to_thread(path.read_bytes)

    return Attachment(path.name, content_type, path.stat().st_size, fetch)


class ConsoleChat:
    """Reads messages line by line and answers each through the service."""

    def __init__(self, service: Service, conversation: str, stdin: TextIO = sys.stdin,
                 stdout: TextIO = sys.stdout, stderr: TextIO = sys.stderr) -> None:
        self._service = service
        self._in, self._out, self._err = stdin, stdout, stderr
        self._interactive = stdin.isatty() and stdout.isatty()
        self._key = ConversationKey(PLATFORM, "local", "console", conversation)
        user = getpass.getuser()
        self._author = Author(id=user, name=user, can_configure=True)

    async def run(self) -> None:
        """Chat until end of input."""
        if self._interactive:
            self._err.write(f"Chatting in conversation {self._key.thread!r}. "
                            "/file PATH [question], /gemini help, Ctrl-D to quit.\n")
        while True:
            if self._interactive:
                self._out.write(PROMPT)
                self._out.flush()
            line = await asyncio.to_thread(self._in.readline)
            if not line:
                return
            line = line.rstrip("\n")
            if line.strip():
                await self.handle_line(line)

    async def handle_line(self, line: str) -> None:
        """Answer one line: a command, a file (an image or a document), or a message."""
        if line.startswith("/gemini"):
            ctx = CommandContext(self._key, self._author)
            self._write(await self._service.commands.run(ctx, line.removeprefix("/gemini")))
            return
        attachments: tuple[Attachment, ...] = ()
        text = line
        command = (line.split(maxsplit=1) or [""])[0]
        if command in FILE_COMMANDS:
            parsed = self._file_line(command, line)
            if parsed is None:
                return
            attachments, text = parsed
        incoming = Incoming(self._key, self._author, text, attachments)
        if self._interactive:
            await self._service.handle(incoming, TerminalSurface(self._out, self._err))
            return
        outcome = await self._service.handle(incoming, PipeSurface(self._err))
        if outcome is None:
            return
        if outcome.text:
            self._write(outcome.text)
        if outcome.note:
            self._err.write(outcome.note + "\n")
            self._err.flush()

    def _file_line(self, command: str, line: str) -> tuple[tuple[Attachment, ...], str] | None:
        """The file and the question of `/file PATH [question]`, or None after saying what
        is wrong with the line."""
        try:
            words = shlex.split(line.removeprefix(command))
        except ValueError as exc:
            self._err.write(f"Could not read that line: {exc}\n")
            return None
        if not words:
            self._err.write(f"Usage: {command} PATH [question]\n")
            return None
        path = Path(words[0]).expanduser()
        if not path.is_file():
            self._err.write(f"No such file: {path}\n")
            return None
        return (_file_attachment(path),), " ".join(words[1:])

    def _write(self, text: str) -> None:
        self._out.write(text + "\n")
        self._out.flush()
