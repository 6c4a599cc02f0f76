"""Logging set-up: text or JSON lines, identifiers in every line, secrets masked wherever they
appear.

`log_context` names the conversation, platform and event a piece of work is about; every
record logged inside it carries them (JSON lines show them as fields).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from types import MappingProxyType
from typing import Literal

from pythonjsonlogger.json import JsonFormatter

LogFormat = Literal["text", "json"]

MASK = "[secret]"
PER_REQUEST_TOKENS = re.compile(
    r"(?P<keep>/(?:interactions|webhooks)/\d+/)[^/\s'\"?]+"
    r"|(?P<key>response_url[\"']?\s*[:=]\s*[\"']?)[^\"'&\s,}]+"
    r"|(?P<field>[\"']token[\"']\s*:\s*[\"'])[^\"']+"
)
"""Tokens a platform hands out per request (Discord interaction and webhook tokens in URLs,
Slack's response_url, a payload's "token"), which libraries log at DEBUG."""
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
JSON_FIELDS = {"levelname": "level", "name": "logger"}
"""Record attributes a JSON line carries, under the names it gives them (plus `time` and
`message`, and the fields of `log_context`)."""

_context: ContextVar[Mapping[str, str]] = ContextVar("log_context",
                                                   default=MappingProxyType({}))


@contextmanager
def log_context(**fields: str | None) -> Iterator[None]:
    """Add `fields` (`conversation`, `platform`, `event_id`) to every record logged inside
    the block, in this task and the tasks it starts; empty values are left out."""
    token = _context.set({**_context.get(), **{k: v for k, v in fields.items() if v}})
    try:
        yield
    finally:
        _context.reset(token)


class ContextFields(logging.Filter):
    """Copies the fields of the current `log_context` onto each record."""

    def filter(self, record: logging.LogRecord) -> bool:
        for name, value in _context.get().items():
            setattr(record, name, value)
        return True


class SecretMask(logging.Filter):
    """Replaces every configured secret in a record's message and arguments."""

    def __init__(self, secrets: Iterable[str]) -> None:
        super().__init__()
        self._secrets = sorted({s for s in secrets if len(s) >= 4}, key=len, reverse=True)

    def mask(self, text: str) -> str:
        """`text` with each secret, and each per-request token, replaced."""
        for secret in self._secrets:
            text = text.replace(secret, MASK)
        return PER_REQUEST_TOKENS.sub(_keep_prefix, text)

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = self.mask(record.getMessage())
        record.args = None
        if record.exc_info and record.exc_info[1] is not None:
            record.exc_text = self.mask(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        return True


class JsonLines(JsonFormatter):
    """One JSON object per record: time, level, logger, message, the `log_context` fields and
    the traceback (`exc_info`), with the secrets masked in the whole line."""

    def __init__(self, mask: SecretMask) -> None:
        super().__init__("%(levelname)s %(name)s %(message)s", rename_fields=JSON_FIELDS,
                         timestamp="time")
        self._mask = mask

    def format(self, record: logging.LogRecord) -> str:
        return self._mask.mask(super().format(record))


def _keep_prefix(match: re.Match[str]) -> str:
    prefix = match.group("keep") or match.group("key") or match.group("field") or ""
    return prefix + MASK


def configure_logging(level: str, secrets: Iterable[str], log_format: LogFormat = "text") -> None:
    """Log to standard error at `level`, as text lines or JSON lines, masking `secrets` in
    every record."""
    mask = SecretMask(secrets)
    handler = logging.StreamHandler()
    handler.setFormatter(JsonLines(mask) if log_format == "json"
                         else logging.Formatter(TEXT_FORMAT))
    handler.addFilter(mask)
    handler.addFilter(ContextFields())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # Quiet below WARNING: chatty transports, and slack_sdk.webhook, which logs each
    # response_url (a credential for that one request) whole.
    for noisy in ("httpx", "httpcore", "aiosqlite", "discord.gateway", "websockets",
                  "slack_sdk.webhook"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
