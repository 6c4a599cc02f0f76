"""Function calling for the fake model API: answers that call tools, streamed the way the API
does, and the checks the API makes on the follow-up requests.

How a tool-calling answer is streamed (OpenAI's format, as Gemini's compatible endpoint sends
it): optional text deltas first; then, per call, a first delta with its ``index``, ``id``,
``type`` and ``function.name`` (and, on Gemini 3, ``extra_content.google.thought_signature``
on the first call of the message); then the ``function.arguments`` in small pieces, the calls'
pieces interleaved by index; the last chunk has ``finish_reason: "tool_calls"``.

What a follow-up request must hold, or the fake answers 400 like the real API:

* every assistant message's tool call the fake gave a thought signature carries that
  signature back, verbatim, in ``extra_content.google.thought_signature``;
* every tool call of an assistant message is answered by a ``tool`` message with its
  ``tool_call_id`` before the next user or assistant message, and no ``tool`` message answers
  a call that was not made.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

MISSING_SIGNATURE = (
    "Function call is missing a thought_signature in functionCall parts. This is required "
    "for tools to work correctly, and missing thought_signature may lead to degraded model "
    "performance."
)


@dataclass(frozen=True)
class FakeCall:
    """One call the fake model makes: a tool's name and its JSON arguments (as text, so a
    test can send malformed ones). ``call_id`` None makes one up."""

    name: str
    arguments: str = "{}"
    call_id: str | None = None


@dataclass(frozen=True)
class ToolCalls:
    """An answer that calls ``calls`` (several: parallel calls in one message) after ``text``.

    ``signature`` is the thought signature of the message's first call (None: no signature);
    ``message_extra`` adds fields the client does not know to the message's first delta;
    ``piece_chars`` is the size of the argument pieces.
    """

    calls: Sequence[FakeCall]
    text: str = ""
    signature: str | None = "c2lnbmF0dXJlLW9mLWEtdGhvdWdodA=="
    message_extra: Mapping[str, Any] = field(default_factory=dict)
    piece_chars: int = 4
    usage: tuple[int, int] = (20, 10)


def _chunk(stream: Any, delta: Mapping[str, Any], finish: str | None = None) -> dict[str, Any]:
    chunk: dict[str, Any] = {
        "id": stream.id, "object": "chat.completion.chunk", "created": stream.created,
        "model": stream.model,
        "choices": [{"index": 0, "delta": dict(delta), "finish_reason": finish}],
    }
    if stream.include_usage:
        chunk["usage"] = None
    return chunk


def tool_call_chunks(stream: Any, answer: ToolCalls, book: SignatureBook) -> list[dict[str, Any]]:
    """The chunks of a tool-calling answer (text, first deltas, argument pieces, the end);
    the signatures given are noted in ``book``."""
    chunks: list[dict[str, Any]] = []
    if answer.text:
        chunks.append(_chunk(stream, {"role": "assistant", "content": answer.text,
                                      **answer.message_extra}))
    ids = [call.call_id or f"call_{uuid.uuid4().hex[:12]}" for call in answer.calls]
    for index, (call, call_id) in enumerate(zip(answer.calls, ids, strict=True)):
        first: dict[str, Any] = {"index": index, "id": call_id, "type": "function",
                                 "function": {"name": call.name, "arguments": ""}}
        if index == 0 and answer.signature is not None:
            first["extra_content"] = {"google": {"thought_signature": answer.signature}}
            book.signatures[call_id] = answer.signature
        delta: dict[str, Any] = {"role": "assistant", "tool_calls": [first]}
        if index == 0 and not answer.text:
            delta.update(answer.message_extra)
        chunks.append(_chunk(stream, delta))
    pieces = [[call.arguments[i : i + answer.piece_chars]
               for i in range(0, len(call.arguments), answer.piece_chars)]
              for call in answer.calls]
    for step in range(max((len(p) for p in pieces), default=0)):
        for index, call_pieces in enumerate(pieces):
            if step < len(call_pieces):
                chunks.append(_chunk(stream, {"tool_calls": [
                    {"index": index, "function": {"arguments": call_pieces[step]}}]}))
    chunks.append(_chunk(stream, {}, "tool_calls"))
    if stream.include_usage:
        prompt, completion = answer.usage
        chunks.append({"id": stream.id, "object": "chat.completion.chunk",
                       "created": stream.created, "model": stream.model, "choices": [],
                       "usage": {"prompt_tokens": prompt, "completion_tokens": completion,
                                 "total_tokens": prompt + completion}})
    return chunks


@dataclass
class SignatureBook:
    """The thought signatures the fake gave, by call id, to check that they come back."""

    signatures: dict[str, str] = field(default_factory=dict)

    def problem(self, body: Mapping[str, Any]) -> str | None:
        """Why the API would refuse this request's tool messages (None: it would not)."""
        pending: list[str] = []
        for message in body.get("messages") or ():
            if not isinstance(message, dict):
                continue
            role = message.get("role")
            if role == "tool":
                call_id = message.get("tool_call_id")
                if call_id not in pending:
                    return f"A tool message answers {call_id!r}, which no preceding message called."
                pending.remove(call_id)
                continue
            if pending:
                return ("An assistant message with 'tool_calls' must be followed by tool "
                        "messages responding to each 'tool_call_id'. The following "
                        f"tool_call_ids did not have response messages: {', '.join(pending)}")
            calls = message.get("tool_calls") or [] if role == "assistant" else []
            for call in calls:
                wanted = self.signatures.get(call.get("id"))
                given = ((call.get("extra_content") or {}).get("google") or {}).get(
                    "thought_signature")
                if wanted is not None and given != wanted:
                    return MISSING_SIGNATURE
            pending = [str(call.get("id")) for call in calls]
        if pending:
            return ("An assistant message with 'tool_calls' must be followed by tool messages "
                    f"responding to each 'tool_call_id': {', '.join(pending)}")
        return None


def encoded(chunk: Mapping[str, Any]) -> bytes:
    """One SSE event."""
    return f"data: {json.dumps(chunk, ensure_ascii=False)}\n\n".encode()
