"""Splitting a long answer into messages at natural boundaries, keeping code blocks intact."""

from __future__ import annotations

import re
from dataclasses import dataclass

FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})(.*)$")
BOUNDARIES = ("\n\n", "\n", " ")
FENCE_RESERVE = 8
MAX_INFO_CHARS = 20
MIN_LIMIT = 64


@dataclass(frozen=True, slots=True)
class Page:
    """One message's worth of an answer.

    `body` is a slice of the answer; `opening` is a fence reopened at the top because the
    previous page cut a code block, and `closing` the fence added to close one this page cuts.
    """

    body: str
    opening: str = ""
    closing: str = ""

    @property
    def text(self) -> str:
        """What the message shows."""
        return self.opening + self.body + self.closing


@dataclass(frozen=True, slots=True)
class _Fence:
    marker: str
    info: str

    def closes(self, line: str) -> bool:
        match = FENCE.match(line)
        return (
            match is not None
            and match.group(1)[0] == self.marker[0]
            and len(match.group(1)) >= len(self.marker)
            and not match.group(2).strip()
        )


def open_fence_at_end(text: str) -> tuple[str, str] | None:
    """The (marker, info) of a code fence still open at the end of `text`, if any."""
    fence = _scan(text, None)
    return (fence.marker, fence.info) if fence else None


def _scan(text: str, fence: _Fence | None) -> _Fence | None:
    for line in text.split("\n"):
        if fence is None:
            match = FENCE.match(line)
            if match:
                fence = _Fence(match.group(1), match.group(2).strip())
        elif fence.closes(line):
            fence = None
    return fence


def _fence_reopening(fence: _Fence) -> str:
    language = fence.info.split(" ", 1)[0][:MAX_INFO_CHARS] if fence.info else ""
    return f"{fence.marker}{language}\n"


def _fence_closing(body: str, fence: _Fence) -> str:
    return ("" if body.endswith("\n") else "\n") + fence.marker


def _window(limit: int, window: int | None) -> int:
    return max(1, min(window if window is not None else limit // 4, limit // 2))


def paginate(text: str, limit: int, window: int | None = None) -> list[Page]:
    """Split `text` into pages whose `text` fits `limit` characters.

    A split lands at the last paragraph break, else line break, else space within the final
    `window` characters of a page's room (default: a quarter of the limit); else it cuts hard.
    The bodies joined give back `text` exactly, and a page depends only on the text before its
    end, so pages already shown stay valid while the answer grows.
    """
    if limit < MIN_LIMIT:
        raise ValueError(f"a page needs room for at least {MIN_LIMIT} characters")
    window = _window(limit, window)
    pages: list[Page] = []
    start = 0
    fence: _Fence | None = None
    while True:
        opening = _fence_reopening(fence) if fence else ""
        room = limit - len(opening) - FENCE_RESERVE
        if len(text) - start <= room:
            pages.append(Page(text[start:], opening))
            return pages
        end = _split_point(text, start, room, window)
        while True:
            body = text[start:end]
            after = _scan(body, fence)
            closing = _fence_closing(body, after) if after else ""
            overflow = len(opening) + len(body) + len(closing) - limit
            if overflow <= 0:
                break
            end -= overflow
        pages.append(Page(body, opening, closing))
        start, fence = end, after


def _split_point(text: str, start: int, room: int, window: int) -> int:
    hard = start + room
    earliest = max(start + 1, hard - window)
    for boundary in BOUNDARIES:
        found = text.rfind(boundary, earliest, hard)
        if found != -1:
            return found + len(boundary)
    return hard


def safe_length(text: str, limit: int, window: int | None = None) -> int:
    """How much of `text` can be shown for good: no later split will move it to another page.

    Native streams, which cannot take text back, append only up to this point until the
    current page's split is decided.
    """
    last = paginate(text, limit, window)[-1]
    start = len(text) - len(last.body)
    room = limit - len(last.opening) - FENCE_RESERVE
    return min(len(text), start + max(0, room - _window(limit, window)))
