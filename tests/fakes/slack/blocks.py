"""Block Kit as the fake reads it: the rules Slack checks on the blocks the bot sends, and
the buttons a person can press (the text a reader sees is `records.shown_text`)."""

from __future__ import annotations

import uuid
from typing import Any

from tests.fakes.slack.records import JSONDict, SlackError
from tests.fakes.slack.workspace import MAX_MARKDOWN_CHARS

MAX_BLOCKS = 50
MAX_ACTION_ELEMENTS = 25
MAX_BUTTON_TEXT = 75
MAX_ACTION_ID = 255
MAX_VALUE = 2_000
TEXT_BLOCKS = frozenset({"markdown", "section", "context", "header"})
KNOWN_BLOCKS = TEXT_BLOCKS | {"actions", "divider"}


def checked_blocks(blocks: Any) -> list[JSONDict]:
    """`blocks` as Slack keeps them (each with a block_id), or the error it answers:
    ``invalid_blocks`` for an unknown or malformed block or button, ``msg_blocks_too_long``
    past 12,000 characters of markdown blocks in one message."""
    if not isinstance(blocks, list) or len(blocks) > MAX_BLOCKS \
            or not all(isinstance(b, dict) and b.get("type") in KNOWN_BLOCKS for b in blocks):
        raise SlackError("invalid_blocks")
    markdown = 0
    for block in blocks:
        if block["type"] == "markdown":
            if not isinstance(block.get("text"), str) or not block["text"]:
                raise SlackError("invalid_blocks")
            markdown += len(block["text"])
        if block["type"] == "actions":
            _check_actions(block)
    if markdown > MAX_MARKDOWN_CHARS:
        raise SlackError("msg_blocks_too_long")
    return [{**b, "block_id": str(b.get("block_id") or uuid.uuid4().hex[:5])} for b in blocks]


def _check_actions(block: JSONDict) -> None:
    elements = block.get("elements")
    if not isinstance(elements, list) or not 0 < len(elements) <= MAX_ACTION_ELEMENTS:
        raise SlackError("invalid_blocks")
    ids = [e.get("action_id") for e in elements if isinstance(e, dict)]
    if len(ids) != len(elements) or len(set(ids)) != len(ids):
        raise SlackError("invalid_blocks")  # action_id unique within its block
    for element in elements:
        text = element.get("text")
        if (element.get("type") != "button" or not isinstance(text, dict)
                or text.get("type") != "plain_text"
                or not 0 < len(str(text.get("text") or "")) <= MAX_BUTTON_TEXT
                or not 0 < len(str(element.get("action_id") or "")) <= MAX_ACTION_ID
                or len(str(element.get("value") or "")) > MAX_VALUE):
            raise SlackError("invalid_blocks")


def buttons(blocks: list[JSONDict] | None) -> list[tuple[str, JSONDict]]:
    """Every button in `blocks`, with the block_id of its actions block."""
    return [(str(block["block_id"]), element) for block in blocks or ()
            if block.get("type") == "actions" for element in block["elements"]]
