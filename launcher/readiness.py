"""What `/readyz` answers: whether the database is migrated, each platform connected, and the
bot still taking messages."""

from __future__ import annotations

from collections.abc import Callable

MIGRATED = "migrated"
CONNECTED = "connected"
CONNECTING = "connecting"
DRAINING = {"shutdown": "draining"}
"""What is not ready once the bot drains for a restart."""


class Readiness:
    """The bot's readiness, as its parts report it.

    Ready once the database is migrated and every platform registered with `reporter` is
    connected; never again once `drain` was called.
    """

    def __init__(self) -> None:
        self._states: dict[str, str] = {"database": "migrating"}
        self._draining = False

    def database_migrated(self) -> None:
        """The database schema is up to date."""
        self._states["database"] = MIGRATED

    def reporter(self, platform: str) -> Callable[[bool], None]:
        """Register `platform` as connecting; it reports with the returned function (True:
        connected, False: connection lost, connecting again)."""
        self._states[platform] = CONNECTING

        def report(connected: bool) -> None:
            self._states[platform] = CONNECTED if connected else CONNECTING

        return report

    def drain(self) -> None:
        """The bot takes no new messages: not ready, from now on."""
        self._draining = True

    def not_ready(self) -> dict[str, str]:
        """What is not ready, each with its state (empty when the bot is ready)."""
        waiting = {name: state for name, state in self._states.items()
                   if state not in (MIGRATED, CONNECTED)}
        return {**DRAINING, **waiting} if self._draining else waiting

    def states(self) -> dict[str, str]:
        """The state of the database and of each platform."""
        return dict(self._states)
