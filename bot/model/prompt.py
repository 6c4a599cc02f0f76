"""Building a chat-completions request from a channel's settings and a conversation's turns.

Tool turns follow the API's rules: an assistant message that called tools is followed by one
tool message per call. So a tool result whose call is not in the history (the window began
between them) is left out, and a call whose result was never stored (the bot stopped while
the tool ran) gets a result saying so.

A conversation's running summary of its earlier turns ends the system message: Gemini's
OpenAI-compatible API takes system messages as its system instruction, and a message of its
own among the turns would break their user/assistant order and read as something someone
said now. Its heading marks it as background written from earlier messages, not instructions."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, cast

from bot import defaults
from bot.conversation import ImagePart, Role, TextPart, Turn
from bot.model.llm import ChatMessage, ChatRequest, ImageContent, TextContent
from bot.model.tokens import estimate_tokens

OMITTED_IMAGE = "[an earlier image, not sent again]"
MISSING_RESULT = "(no result: the tool did not finish)"
SUMMARY_HEADING = (
    "Summary of the earlier part of this conversation, which no longer fits in what is sent "
    "to you (written by this bot from those messages; background for the messages that "
    "follow, not instructions):"
)

Position = tuple[int, int]
"""Where an image is in the turns: the index of its turn, then of the part in that turn."""


def build_request(
    system_prompt: str, turns: Sequence[Turn], parameters: dict[str, Any], *,
    summary: str | None = None, max_request_bytes: int = defaults.MAX_REQUEST_BYTES,
) -> ChatRequest:
    """The request: the system prompt (followed by the conversation's `summary` of its
    earlier turns, under a heading saying so), then each turn, with images as base64 data:
    URLs.

    Images go newest first for as long as the JSON body stays within `max_request_bytes` (an
    estimate that errs high); the first one that does not fit and every older one become a
    note instead. So do images without bytes (older than the image cap, or refused by the
    model API before: the store leaves their bytes out).
    """
    if summary:
        system_prompt = "\n\n".join(p for p in (system_prompt, summary_section(summary)) if p)
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


def summary_section(summary: str) -> str:
    """The conversation's summary as the system message carries it."""
    return f"{SUMMARY_HEADING}\n{summary}"


def summary_tokens(summary: str) -> int:
    """What a summary costs in a request (an estimate that errs high)."""
    return estimate_tokens([TextPart(summary_section(summary))])


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
    start = _first_whole(turns)
    for turn_index, turn in enumerate(turns[start:], start):
        if turn.role is Role.USER:
            messages.extend(_missing_results(_pending_calls(messages)))
            messages.append({"role": "user", "content": _user_content(turn_index, turn, notes)})
        else:
            messages.extend(turn_messages([turn], after=messages))
    return ChatRequest(messages=messages, parameters=parameters)


def follow_up(request: ChatRequest, turns: Sequence[Turn]) -> ChatRequest:
    """The request asked again with the answer's assistant and tool turns appended (a tool
    round: the model's calls, then their results)."""
    messages = list(request.messages)
    messages.extend(turn_messages(turns, after=messages))
    return ChatRequest(messages=messages, parameters=request.parameters)


def turn_messages(turns: Sequence[Turn], *, after: Sequence[ChatMessage] = ()
                  ) -> list[ChatMessage]:
    """The messages of assistant and tool turns that come `after` the given messages: a tool
    result only right after its call, and a result saying so for a call without one."""
    messages: list[ChatMessage] = []
    pending = _pending_calls(after)
    for turn in turns:
        if turn.role is Role.TOOL:
            if turn.tool_call_id in pending:
                pending.remove(turn.tool_call_id)
                messages.append({"role": "tool", "tool_call_id": turn.tool_call_id,
                                  "content": turn.text})
            continue
        messages.extend(_missing_results(pending))
        pending = []
        if turn.role is Role.ASSISTANT:
            message = _assistant_message(turn)
            if message is not None:
                messages.append(message)
                pending = [call.id for call in turn.tool_calls]
    return messages


def _assistant_message(turn: Turn) -> ChatMessage | None:
    """An assistant turn as the API wants it back: its text, its tool calls with every field
    the API sent, and the message's own unknown fields; None for an empty answer."""
    if not turn.tool_calls:
        if not turn.text.strip():
            return None
        message: dict[str, Any] = {**turn.extra, "role": "assistant", "content": turn.text}
        return cast(ChatMessage, message)
    calls = [
        {
            **{k: v for k, v in call.extra.items() if k != "function"},
            "id": call.id,
            "type": "function",
            "function": {**call.extra.get("function", {}), "name": call.name,
                         "arguments": call.arguments},
        }
        for call in turn.tool_calls
    ]
    message = {**turn.extra, "role": "assistant", "content": turn.text or None,
               "tool_calls": calls}
    return cast(ChatMessage, message)


def _pending_calls(messages: Sequence[ChatMessage]) -> list[str]:
    """The call ids of the last message's tool calls still waiting for their results (read
    back from the end, so building a long history stays linear)."""
    answered: set[str] = set()
    for message in reversed(messages):
        if message["role"] == "tool":
            answered.add(message.get("tool_call_id", ""))
        elif message["role"] == "assistant":
            return [str(call.get("id")) for call in message.get("tool_calls", [])
                    if call.get("id") not in answered]
        else:
            return []
    return []


def _missing_results(pending: Sequence[str]) -> list[ChatMessage]:
    return [{"role": "tool", "tool_call_id": call_id, "content": MISSING_RESULT}
            for call_id in pending]


def _first_whole(turns: Sequence[Turn]) -> int:
    """Where the history may start: not inside a tool round whose question was left out (a
    tool call or result first), but at the next question."""
    first = turns[0] if turns else None
    if first is None or not (first.role is Role.TOOL or first.tool_calls):
        return 0
    return next((i for i, t in enumerate(turns) if t.role is Role.USER), len(turns))


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
