"""The platform-neutral conversation model shared by the core and every adapter."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any


@dataclass(frozen=True, slots=True)
class ChannelKey:
    """A place where settings apply: a channel (or DM) on one workspace of one platform."""

    platform: str
    workspace: str
    channel: str

    def __str__(self) -> str:
        return f"{self.platform}:{self.workspace}:{self.channel}"


@dataclass(frozen=True, slots=True)
class ConversationKey:
    """One remembered conversation: a thread (or a whole DM) in a channel."""

    platform: str
    workspace: str
    channel: str
    thread: str

    @property
    def channel_key(self) -> ChannelKey:
        """The channel whose settings this conversation uses."""
        return ChannelKey(self.platform, self.workspace, self.channel)

    def __str__(self) -> str:
        return f"{self.platform}:{self.workspace}:{self.channel}:{self.thread}"


class Role(StrEnum):
    """Who wrote a turn."""

    USER = "user"
    ASSISTANT = "assistant"
    TOOL = "tool"


class TurnStatus(StrEnum):
    """How an assistant turn ended; user turns are always complete."""

    COMPLETE = "complete"
    INTERRUPTED = "interrupted"
    STOPPED = "stopped"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class TextPart:
    """Plain text in a turn."""

    text: str


@dataclass(frozen=True, slots=True)
class ImagePart:
    """An image in a turn, content-addressed by the SHA-256 of its bytes."""

    sha256: str
    mime_type: str
    data: bytes | None = field(default=None, repr=False, compare=False)


Part = TextPart | ImagePart


@dataclass(frozen=True, slots=True)
class ToolCall:
    """A tool the model asked to run: the call's id, the tool's name, the arguments as the
    JSON text the model wrote, and every other field the API sent with the call (such as
    `extra_content.google.thought_signature`), kept to be sent back verbatim."""

    id: str
    name: str
    arguments: str
    extra: Mapping[str, Any] = field(default_factory=dict, compare=False)


@dataclass(frozen=True, slots=True)
class Usage:
    """Tokens the model API counted for one reply."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    reasoning_tokens: int = 0


@dataclass(frozen=True, slots=True)
class Turn:
    """One message in a conversation, as stored and as sent to the model."""

    role: Role
    parts: tuple[Part, ...]
    author_id: str = ""
    author_name: str = ""
    message_ids: tuple[str, ...] = ()
    created_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    usage: Usage | None = None
    model: str | None = None
    status: TurnStatus = TurnStatus.COMPLETE
    error: str | None = None
    tool_calls: tuple[ToolCall, ...] = ()
    """An assistant turn's tool calls (its text is what the model wrote before them)."""
    tool_call_id: str | None = None
    """A tool turn's call: its text is that call's result."""
    extra: Mapping[str, Any] = field(default_factory=dict, compare=False)
    """Fields of an assistant message the API sent that the bot does not know, sent back
    verbatim."""

    @property
    def text(self) -> str:
        """All text parts joined."""
        return "\n".join(p.text for p in self.parts if isinstance(p, TextPart))

    @property
    def images(self) -> tuple[ImagePart, ...]:
        """The image parts, in order."""
        return tuple(p for p in self.parts if isinstance(p, ImagePart))


@dataclass(frozen=True, slots=True)
class Author:
    """The person behind an incoming message, as the adapter sees them."""

    id: str
    name: str
    is_bot: bool = False
    can_configure: bool = False


@dataclass(frozen=True, slots=True)
class Attachment:
    """A file sent with a message; `fetch` downloads it with the platform's own auth."""

    filename: str
    content_type: str
    size: int
    fetch: Callable[[], Awaitable[bytes]] = field(repr=False, compare=False)


@dataclass(frozen=True, slots=True)
class Incoming:
    """A message addressed to the bot, translated out of its platform."""

    key: ConversationKey
    author: Author
    text: str
    attachments: tuple[Attachment, ...] = ()
    event_id: str | None = None
    message_id: str | None = None
