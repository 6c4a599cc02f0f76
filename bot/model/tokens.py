"""Cheap token estimates for budgeting history (no tokenizer: about four characters a token)."""

from __future__ import annotations

from collections.abc import Iterable

from bot.conversation import ImagePart, Part

CHARS_PER_TOKEN = 4
TOKENS_PER_IMAGE = 260
TOKENS_PER_MESSAGE = 4


def estimate_tokens(parts: Iterable[Part]) -> int:
    """An upper-leaning estimate of the tokens a turn costs in a request."""
    total = TOKENS_PER_MESSAGE
    for part in parts:
        if isinstance(part, ImagePart):
            total += TOKENS_PER_IMAGE
        else:
            total += -(-len(part.text) // CHARS_PER_TOKEN)
    return total
