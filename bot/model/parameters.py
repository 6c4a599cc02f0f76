"""The model parameters a channel may set, their documented ranges, and validation."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from bot.errors import InvalidSetting

MAX_STOP_SEQUENCES = 5
MAX_SYSTEM_PROMPT_CHARS = 20_000
INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1
MODEL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:/-]{0,127}$")


@dataclass(frozen=True, slots=True)
class ChannelSettings:
    """A channel's system prompt (None: the bot-wide default), its parameter overrides, and
    its tool switches (a tool's name, or `SERVER__*` for an MCP server's tools, to on/off)."""

    system_prompt: str | None = None
    parameters: Mapping[str, Any] = field(default_factory=dict)
    tools: Mapping[str, bool] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Parameter:
    """One settable parameter: its name, what values it takes, and how to parse them."""

    name: str
    allowed: str
    parse: Callable[[str], Any]
    about: str


def _number(low: float, high: float, *, integer: bool) -> Callable[[str], Any]:
    kind = "a whole number" if integer else "a number"

    def parse(raw: str) -> int | float:
        try:
            value: int | float = int(raw) if integer else float(raw)
        except ValueError:
            raise InvalidSetting(f"{raw!r} is not {kind}") from None
        if isinstance(value, float) and not math.isfinite(value):
            raise InvalidSetting(f"{raw!r} is not {kind}")
        if not low <= value <= high:
            raise InvalidSetting(f"{raw} is out of range")
        return value

    return parse


def _model(raw: str) -> str:
    if not MODEL_NAME.match(raw):
        raise InvalidSetting(
            f"{raw!r} is not a model name (letters, digits and . _ : / -, up to 128)"
        )
    return raw


def _choice(*options: str) -> Callable[[str], str]:
    def parse(raw: str) -> str:
        value = raw.strip().lower()
        if value not in options:
            raise InvalidSetting(f"{raw!r} is not one of the choices")
        return value

    return parse


def _stop(raw: str) -> list[str]:
    text = raw.strip()
    sequences: Any = text
    if text.startswith("["):
        try:
            sequences = json.loads(text)
        except json.JSONDecodeError:
            raise InvalidSetting('a list is written as ["a", "b"]') from None
    if isinstance(sequences, str):
        sequences = [sequences]
    if (
        not isinstance(sequences, list)
        or not all(isinstance(s, str) and s for s in sequences)
        or not 1 <= len(sequences) <= MAX_STOP_SEQUENCES
    ):
        raise InvalidSetting('give one sequence, or a list like ["a", "b"]')
    return list(sequences)


PARAMETERS: dict[str, Parameter] = {
    p.name: p
    for p in (
        Parameter(
            "model", "a model name such as gemini-3.1-flash-lite-preview", _model,
            "which model answers",
        ),
        Parameter("temperature", "0 to 2", _number(0, 2, integer=False), "randomness"),
        Parameter("top_p", "0 to 1", _number(0, 1, integer=False), "nucleus sampling"),
        Parameter(
            "max_completion_tokens", "1 to 65536", _number(1, 65536, integer=True),
            "longest answer, in tokens",
        ),
        Parameter(
            "frequency_penalty", "-2 to 2", _number(-2, 2, integer=False),
            "discourage repeated tokens",
        ),
        Parameter(
            "presence_penalty", "-2 to 2", _number(-2, 2, integer=False),
            "encourage new topics",
        ),
        Parameter(
            "stop", f"1 to {MAX_STOP_SEQUENCES} strings", _stop, "sequences that end the answer"
        ),
        Parameter(
            "seed", f"{INT32_MIN} to {INT32_MAX}", _number(INT32_MIN, INT32_MAX, integer=True),
            "repeatable sampling",
        ),
        Parameter(
            "reasoning_effort", "low, medium, high", _choice("low", "medium", "high"),
            "thinking depth (medium maps to high)",
        ),
        Parameter(
            "response_format", "json, text", _choice("json", "text"),
            "json makes every answer a JSON object",
        ),
        Parameter(
            "tool_choice", "auto, none, required", _choice("auto", "none", "required"),
            "whether the model may use tools (required: it must, before its first answer)",
        ),
    )
}


def parameter(name: str) -> Parameter:
    """The parameter called `name`, or InvalidSetting listing the ones that exist."""
    found = PARAMETERS.get(name.strip().lower())
    if found is None:
        raise InvalidSetting(
            f"There is no setting {name!r}. Settings: {', '.join(PARAMETERS)}."
        )
    return found


def parse_value(name: str, raw: str) -> Any:
    """Validate `raw` for parameter `name`; InvalidSetting names the allowed range."""
    spec = parameter(name)
    try:
        return spec.parse(raw.strip())
    except InvalidSetting as exc:
        raise InvalidSetting(
            f"`{spec.name}`: {exc}; allowed: {spec.allowed}. Nothing changed."
        ) from None


def validate_system_prompt(prompt: str) -> str:
    """A non-empty system prompt within the length limit."""
    text = prompt.strip()
    if not text:
        raise InvalidSetting("The system prompt is empty. Nothing changed.")
    if len(text) > MAX_SYSTEM_PROMPT_CHARS:
        raise InvalidSetting(
            f"The system prompt has {len(text):,} characters; the limit is "
            f"{MAX_SYSTEM_PROMPT_CHARS:,}. Nothing changed."
        )
    return text


def request_parameters(model: str, settings: ChannelSettings) -> dict[str, Any]:
    """The chat-completions body fields (other than messages) for a channel's settings."""
    body: dict[str, Any] = {"model": model}
    for name, value in settings.parameters.items():
        if name == "response_format":
            if value == "json":
                body["response_format"] = {"type": "json_object"}
        else:
            body[name] = value
    return body
