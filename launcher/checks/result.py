"""What a doctor check is given and what it finds: one Result per line of the report."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import Enum

from launcher.cli import Configuration


class Status(Enum):
    """How a check came out, shown as the line's first character."""

    PASSED = "✓"
    FAILED = "✗"
    SKIPPED = "-"


@dataclass(frozen=True, slots=True)
class Result:
    """One line of the report: what was checked, what was found and, on ✗, what to do."""

    name: str
    status: Status
    detail: str
    fix: str = ""

    @classmethod
    def passed(cls, name: str, detail: str) -> Result:
        """A check that found what the bot needs."""
        return cls(name, Status.PASSED, detail)

    @classmethod
    def failed(cls, name: str, detail: str, fix: str) -> Result:
        """A check that found a problem, and the operator's next step."""
        return cls(name, Status.FAILED, detail, fix)

    @classmethod
    def skipped(cls, name: str, reason: str) -> Result:
        """A check with nothing to check (a platform that is not configured)."""
        return cls(name, Status.SKIPPED, f"skipped ({reason})")

    def line(self) -> str:
        """`✓ name: detail`, with `— fix` after a failure."""
        text = f"{self.status.value} {self.name}: {self.detail}"
        return f"{text} — {self.fix}" if self.fix else text


@dataclass(frozen=True, slots=True)
class Context:
    """What every check reads: the loaded settings, and how long one answer may take."""

    config: Configuration
    timeout: float


@dataclass(frozen=True, slots=True)
class Check:
    """A named check: `run` returns one Result per thing it looked at, bounding each network
    call by the context's timeout."""

    name: str
    run: Callable[[Context], Awaitable[list[Result]]]
