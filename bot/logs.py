"""Logging set-up: one format, identifiers in every line, secrets masked wherever they appear."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable

MASK = "[secret]"
PER_REQUEST_TOKENS = re.compile(
    r"(?P<keep>/(?:interactions|webhooks)/\d+/)[^/\s'\"?]+"
    r"|(?P<key>response_url[\"']?\s*[:=]\s*[\"']?)[^\"'&\s,}]+"
    r"|(?P<field>[\"']token[\"']\s*:\s*[\"'])[^\"']+"
)
"""Tokens a platform hands out per request (Discord interaction and webhook tokens in URLs,
Slack's response_url, a payload's "token"), which libraries log at DEBUG."""


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


def _keep_prefix(match: re.Match[str]) -> str:
    prefix = match.group("keep") or match.group("key") or match.group("field") or ""
    return prefix + MASK


def configure_logging(level: str, secrets: Iterable[str]) -> None:
    """Log to standard error at `level`, masking `secrets` in every record."""
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(SecretMask(secrets))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # Quiet below WARNING: chatty transports, and slack_sdk.webhook, which logs each
    # response_url (a credential for that one request) whole.
    for noisy in ("httpx", "httpcore", "aiosqlite", "discord.gateway", "websockets",
                  "slack_sdk.webhook"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
