"""What every tool is: a name and JSON-schema parameters the model sees, a status line for
the person waiting, and a run that returns text for the model (or raises ToolFailed)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol, runtime_checkable


class ToolFailed(Exception):
    """A tool could not do what was asked; `str(error)` is told to the model."""


@dataclass(frozen=True, slots=True)
class ChannelMessage:
    """One message of the place a question was asked, as read_channel reports it."""

    author: str
    sent_at: datetime
    text: str


@runtime_checkable
class ChannelReader(Protocol):
    """A surface that can read the latest messages of its own thread or channel (and of no
    other place): an optional capability, like native streaming."""

    async def read_channel(self, limit: int) -> Sequence[ChannelMessage]:
        """The newest `limit` messages of this reply's thread or channel, oldest first."""
        ...


@dataclass(frozen=True, slots=True)
class ToolContext:
    """What a tool may use for one call: the reply's own place to read, if it has one."""

    reader: ChannelReader | None = None


@dataclass(frozen=True, slots=True)
class ToolResult:
    """A tool's answer for the model, and the web addresses it read (for the sources list)."""

    text: str
    sources: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ToolSpec:
    """How a tool is offered to the model: its name, what it does, its JSON-schema parameters."""

    name: str
    description: str
    parameters: Mapping[str, Any] = field(default_factory=lambda: {"type": "object",
                                                                     "properties": {}})

    def definition(self) -> dict[str, Any]:
        """The OpenAI-format function definition."""
        return {"type": "function", "function": {
            "name": self.name, "description": self.description,
            "parameters": dict(self.parameters),
        }}


class Tool(Protocol):
    """A tool the model may call."""

    @property
    def spec(self) -> ToolSpec:
        """Its name, description and parameters."""
        ...

    @property
    def needs_reader(self) -> bool:
        """Whether it reads the reply's channel (offered only where the surface can)."""
        ...

    def status(self, arguments: Mapping[str, Any]) -> str:
        """What the person sees while it runs: "Reading example.com…"."""
        ...

    async def run(self, arguments: Mapping[str, Any], context: ToolContext) -> ToolResult:
        """Do the call; ToolFailed (or any error) becomes an error the model reads."""
        ...


def text_argument(arguments: Mapping[str, Any], name: str, *, default: str | None = None
                  ) -> str:
    """A string argument, or ToolFailed saying what is missing."""
    value = arguments.get(name, default)
    if not isinstance(value, str):
        raise ToolFailed(f"the argument {name!r} must be a string")
    return value


def int_argument(arguments: Mapping[str, Any], name: str, *, default: int, low: int,
                 high: int) -> int:
    """A whole-number argument within [low, high] (a float like 50.0 is taken)."""
    value = arguments.get(name, default)
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise ToolFailed(f"the argument {name!r} must be a whole number from {low} to {high}")
    return value
