"""An in-memory surface that records what a user would see, for service and renderer tests."""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from bot.drawing.surface import SurfaceLimits


@dataclass
class RecordingSurface:
    """Keeps every message's current text and every call made, like a chat window would."""

    limits: SurfaceLimits = field(
        default_factory=lambda: SurfaceLimits(max_message_chars=2000, min_edit_interval=0.0)
    )
    messages: dict[str, str] = field(default_factory=dict)
    calls: list[tuple[str, str, str, bool]] = field(default_factory=list)
    notices: list[str] = field(default_factory=list)
    progress: int = 0
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    async def post(self, text: str, *, final: bool) -> str:
        message_id = f"m{next(self._ids)}"
        self.messages[message_id] = text
        self.calls.append(("post", message_id, text, final))
        return message_id

    async def edit(self, message_id: str, text: str, *, final: bool) -> None:
        self.messages[message_id] = text
        self.calls.append(("edit", message_id, text, final))

    async def show_progress(self) -> None:
        self.progress += 1

    async def notify(self, text: str) -> None:
        self.notices.append(text)

    @property
    def shown(self) -> list[str]:
        """Each message's current text, in posting order."""
        return list(self.messages.values())


@dataclass
class TimedSurface(RecordingSurface):
    """A RecordingSurface that also notes when (by `clock`) each post and edit happened."""

    clock: Callable[[], float] = time.monotonic
    times: list[float] = field(default_factory=list)

    async def post(self, text: str, *, final: bool) -> str:
        self.times.append(self.clock())
        return await super().post(text, final=final)

    async def edit(self, message_id: str, text: str, *, final: bool) -> None:
        self.times.append(self.clock())
        await super().edit(message_id, text, final=final)

    @property
    def timeline(self) -> list[tuple[float, str]]:
        """(time, text shown) of every post and edit, in order."""
        return [(at, call[2]) for at, call in zip(self.times, self.calls, strict=True)]
