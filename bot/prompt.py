"""Building a chat-completions request from a channel's settings and a conversation's turns."""

from __future__ import annotations

import base64
from collections.abc import Sequence
from typing import Any

from bot.conversation import ImagePart, Role, TextPart, Turn
from bot.llm import ChatMessage, ChatRequest, ImageContent, TextContent

OMITTED_IMAGE = "[an earlier image, not sent again]"


def build_request(
    system_prompt: str, turns: Sequence[Turn], parameters: dict[str, Any]
) -> ChatRequest:
    """The request: the system prompt, then each turn; images without bytes become a note."""
    messages: list[ChatMessage] = []
    if system_prompt:
        messages.append({"role": "system", "content": system_prompt})
    for turn in turns:
        if turn.role is Role.ASSISTANT:
            if not turn.text.strip():
                continue
            messages.append({"role": "assistant", "content": turn.text})
        else:
            messages.append({"role": "user", "content": _user_content(turn)})
    return ChatRequest(messages=messages, parameters=parameters)


def _user_content(turn: Turn) -> str | list[TextContent | ImageContent]:
    if not turn.images:
        return turn.text
    content: list[TextContent | ImageContent] = []
    for part in turn.parts:
        if isinstance(part, TextPart):
            content.append({"type": "text", "text": part.text})
        elif part.data is not None:
            content.append({"type": "image_url", "image_url": {"url": data_url(part)}})
        else:
            content.append({"type": "text", "text": OMITTED_IMAGE})
    return content


def data_url(image: ImagePart) -> str:
    """The image as a base64 data: URL."""
    assert image.data is not None
    return f"data:{image.mime_type};base64,{base64.b64encode(image.data).decode('ascii')}"
