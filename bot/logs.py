"""Logging set-up: one format, identifiers in every line, secrets masked wherever they appear."""

from __future__ import annotations

import logging
from collections.abc import Iterable

MASK = "[secret]"


class SecretMask(logging.Filter):
    """Replaces every configured secret in a record's message and arguments."""

    def __init__(self, secrets: Iterable[str]) -> None:
        super().__init__()
        self._secrets = sorted({s for s in secrets if len(s) >= 4}, key=len, reverse=True)

    def mask(self, text: str) -> str:
        """`text` with each secret replaced."""
        for secret in self._secrets:
            text = text.replace(secret, MASK)
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        if self._secrets:
            record.msg = self.mask(record.getMessage())
            record.args = None
            if record.exc_info and record.exc_info[1] is not None:
                record.exc_text = self.mask(logging.Formatter().formatException(record.exc_info))
                record.exc_info = None
        return True


def configure_logging(level: str, secrets: Iterable[str]) -> None:
    """Log to standard error at `level`, masking `secrets` in every record."""
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(SecretMask(secrets))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in ("httpx", "httpcore", "aiosqlite", "discord.gateway", "websockets"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
