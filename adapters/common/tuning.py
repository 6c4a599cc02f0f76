"""A platform's limits as the bot applies them: one type, each adapter a constant of it."""

from __future__ import annotations

from dataclasses import dataclass

from bot import Core, EditBudgets, SurfaceLimits


@dataclass(frozen=True, slots=True)
class PlatformTuning:
    """Message length and edit pace on one platform (tests shrink the pace to run fast).

    A message holds `max_message_chars`; one message is edited at most every
    `min_edit_interval` seconds; edits in one scope (a Discord channel, a Slack workspace)
    share `edit_rate` per `edit_period` seconds, with bursts of `edit_burst`.
    `final_edit_marks`: messages being written carry controls (Discord's Stop button) that
    the final edit removes.
    """

    max_message_chars: int
    min_edit_interval: float
    edit_rate: int
    edit_period: float
    edit_burst: int
    final_edit_marks: bool = False

    @property
    def limits(self) -> SurfaceLimits:
        """The limits the core's renderer works within."""
        return SurfaceLimits(self.max_message_chars, self.min_edit_interval,
                             final_edit_marks=self.final_edit_marks)

    def edit_budgets(self, core: Core, platform: str) -> EditBudgets:
        """The edit budgets of the platform's scopes, one made for each scope on demand:
        shared by every replica through Redis when REDIS_URL is set, else this process's."""
        return core.edit_budgets(platform, self.edit_rate, self.edit_period, self.edit_burst)
