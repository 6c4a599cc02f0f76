"""An in-memory surface that records what a user would see, for service and renderer tests."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

from bot.surface import SurfaceLimits


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
