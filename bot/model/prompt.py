"""Building a chat-completions request from a channel's settings and a conversation's turns."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from bot import defaults
from bot.conversation import ImagePart, Role, TextPart, Turn
from bot.model.llm import ChatMessage, ChatRequest, ImageContent, TextContent

OMITTED_IMAGE = "[an earlier image, not sent again]"

Position = tuple[int, int]
"""Where an image is in the turns: the index of its turn, then of the part in that turn."""


def build_request(
    system_prompt: str, turns: Sequence[Turn], parameters: dict[str, Any], *,
    max_request_bytes: int = defaults.MAX_REQUEST_BYTES,
) -> ChatRequest:
    """The request: the system prompt, then each turn, with images as base64 data: URLs.

    Images go newest first for as long as the JSON body stays within `max_request_bytes` (an
    estimate that errs high); the first one that does not fit and every older one become a
    note instead. So do images without bytes (older than the image cap, or refused by the
    model API before: the store leaves their bytes out).
    """
    notes: dict[Position, str] = {}
    sendable: list[tuple[Position, ImagePart]] = []
    for position, image in _user_images(turns):
        if image.data is None:
            notes[position] = OMITTED_IMAGE
        else:
            sendable.append((position, image))
    dropped = {position: OMITTED_IMAGE for position, _ in sendable}
    without_images = _request(system_prompt, turns, parameters, notes | dropped)
    room = max_request_bytes - _body_bytes(without_images)
    for position, image in reversed(sendable):
        cost = _data_url_length(image)
        if cost > room:
            break
        room -= cost
        del dropped[position]
    return _request(system_prompt, turns, parameters, notes | dropped)


def data_url(image: ImagePart) -> str:
    """The image as a base64 data: URL."""
    assert image.data is not None
    return f"data:{image.mime_type};base64,{base64.b64encode(image.data).decode('ascii')}"


def _user_images(turns: Sequence[Turn]) -> Iterator[tuple[Position, ImagePart]]:
    """Every image the user sent, oldest first, with its position."""
    for turn_index, turn in enumerate(turns):
        if turn.role is Role.USER:
            for part_index, part in enumerate(turn.parts):
                if isinstance(part, ImagePart):
                    yield (turn_index, part_index), part


def _request(
    system_prompt: str, turns: Sequence[Turn], parameters: dict[str, Any],
    notes: Mapping[Position, str],
) -> ChatRequest:
    """The request with the image at each position in `notes` replaced by its note."""
    messages: list[ChatMessage] = []
    if system_prompt:
        messages.append({"role": "system", "content": system_prompt})
    for turn_index, turn in enumerate(turns):
        if turn.role is Role.ASSISTANT:
            if not turn.text.strip():
                continue
            messages.append({"role": "assistant", "content": turn.text})
        else:
            messages.append({"role": "user", "content": _user_content(turn_index, turn, notes)})
    return ChatRequest(messages=messages, parameters=parameters)


def _user_content(
    turn_index: int, turn: Turn, notes: Mapping[Position, str]
) -> str | list[TextContent | ImageContent]:
    if not turn.images:
        return turn.text
    content: list[TextContent | ImageContent] = []
    for part_index, part in enumerate(turn.parts):
        if isinstance(part, TextPart):
            content.append({"type": "text", "text": part.text})
        elif (note := notes.get((turn_index, part_index))) is not None:
            content.append({"type": "text", "text": note})
        else:
            content.append({"type": "image_url", "image_url": {"url": data_url(part)}})
    return content


def _body_bytes(request: ChatRequest) -> int:
    """The size of the request's JSON body, or a little more: escaped to ASCII, with spaces."""
    return len(json.dumps(request.body()))


def _data_url_length(image: ImagePart) -> int:
    """What sending the image adds to the body, at most: its data: URL, in place of a note
    that is longer than the JSON around the URL."""
    assert image.data is not None
    base64_length = 4 * ((len(image.data) + 2) // 3)
    return len(f"data:{image.mime_type};base64,") + base64_length
