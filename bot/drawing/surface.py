"""What an adapter hands the core for each reply: a place to post, edit and show progress."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable


@dataclass(frozen=True, slots=True)
class SurfaceLimits:
    """A platform's limits: message length and the fastest pace for editing one message.

    `final_edit_marks` says in-progress messages carry controls (a Stop button) that the
    final edit removes, so a final edit is sent even when the text is already complete.
    """

    max_message_chars: int
    min_edit_interval: float
    final_edit_marks: bool = False


class Surface(Protocol):
    """Where one reply is drawn: post a message, edit it, show that an answer is coming.

    `final=True` marks the message's last version, so the adapter can drop its in-progress
    controls (a Stop button). Adapters raise RateLimited or DeliveryFailed; anything else is
    treated as a passing failure of that one call.
    """

    @property
    def limits(self) -> SurfaceLimits:
        """The platform's limits for this reply."""
        ...

    async def post(self, text: str, *, final: bool) -> str:
        """Post a new message and return its platform id."""
        ...

    async def edit(self, message_id: str, text: str, *, final: bool) -> None:
        """Replace a posted message's text."""
        ...

    async def show_progress(self) -> None:
        """Show that an answer is being prepared (typing, "is thinking...")."""
        ...

    async def notify(self, text: str) -> None:
        """Post a short notice that is not part of the answer (a skipped attachment)."""
        ...


@runtime_checkable
class TextStream(Protocol):
    """A platform-native streaming message: text appended as it arrives."""

    async def append(self, text: str) -> None:
        """Add text to the end of the message."""
        ...

    async def close(self) -> str:
        """Finish the message and return its platform id."""
        ...


@runtime_checkable
class StreamingSurface(Surface, Protocol):
    """A surface with native streaming (Slack), used instead of post-then-edit."""

    async def open_stream(self, opening: str) -> TextStream:
        """Start a streaming message that begins with `opening`."""
        ...


@runtime_checkable
class StatusSurface(Surface, Protocol):
    """A surface with a status line of its own beside the answer (Slack's thread status, a
    terminal's error stream), used instead of a line drawn at the answer's end."""

    async def show_status(self, text: str) -> None:
        """Show `text` as the reply's status; "" clears it."""
        ...


@runtime_checkable
class AnswerControlsSurface(Surface, Protocol):
    """A surface that puts buttons on a finished answer (Regenerate, 👍, 👎)."""

    async def show_answer_controls(self, message_id: str) -> None:
        """Put a finished answer's buttons on `message_id`, the answer's last message."""
        ...
