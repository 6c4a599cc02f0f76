"""The shape of the core's ways to answer a message, which adapters pass around."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from bot import EditBudget, Incoming, ReplyOutcome, Surface

Answering = Callable[[Incoming, Surface, EditBudget | None], Awaitable[ReplyOutcome | None]]
"""`Service.handle` (a new message) or `Service.answer_edited` (an edited question)."""
