"""Slack's per-method rate limits as shared workspace budgets.

Slack limits each Web API method per app and workspace by tier: chat.startStream and
chat.stopStream are Tier 2 (about 20 calls a minute), chat.update and chat.delete Tier 3
(about 50), chat.appendStream, chat.postEphemeral and assistant.threads.setSuggestedPrompts
Tier 4 (about 100); assistant.threads.setStatus has "special" limits, budgeted here like
Tier 3. Every reply in a workspace takes its calls of a method from that method's budget, so
concurrent answers divide the limit instead of each meeting a 429; a 429 pauses the budget
for everyone. The budgets are the core's edit budgets: shared by every replica through Redis
when REDIS_URL is set.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from functools import partial
from types import MappingProxyType

from adapters.common import PlatformTuning
from adapters.slack_bot.errors import as_surface_errors
from bot import Core, EditBudget, EditBudgets, RateLimited, TimedEditBudget

PLATFORM = "slack"
UPDATE = "chat.update"
DELETE = "chat.delete"
EPHEMERAL = "chat.postEphemeral"


@dataclass(frozen=True, slots=True)
class MethodRate:
    """A method's calls per Slack rate window (a minute) and the burst allowed at once; at
    most `rate + burst - 1` calls fall in any window."""

    rate: int
    burst: int


TIER_2 = MethodRate(17, 3)
"""19 calls in any minute, under Tier 2's 20."""
TIER_3 = MethodRate(45, 5)
"""49 calls in any minute, under Tier 3's 50."""
TIER_4 = MethodRate(90, 10)
"""99 calls in any minute, under Tier 4's 100."""

METHOD_RATES: Mapping[str, MethodRate] = MappingProxyType({
    "chat.startStream": TIER_2,
    "chat.appendStream": TIER_4,
    "chat.stopStream": TIER_2,
    DELETE: TIER_3,
    EPHEMERAL: TIER_4,
    "assistant.threads.setStatus": TIER_3,
    "assistant.threads.setSuggestedPrompts": TIER_4,
})
"""The budgeted methods besides chat.update, whose rate is the tuning's edit rate."""
PACED_METHODS = frozenset({UPDATE, *METHOD_RATES})
"""Every method the adapter paces itself: the client leaves their 429s to it."""


class WorkspaceBudgets:
    """One workspace's budgets, one per paced method."""

    def __init__(self, budgets: Mapping[str, EditBudget]) -> None:
        self._budgets = budgets

    @asynccontextmanager
    async def slot(self, method: str) -> AsyncIterator[None]:
        """Wait for a slot of `method`, then run the call in the block; a 429 pauses the
        method's budget for every reply and is raised as RateLimited, a lost place as
        DeliveryFailed (see `errors.as_surface_errors`)."""
        budget = self._budgets.get(method)
        if budget is not None:
            await budget.acquire()
        try:
            with as_surface_errors():
                yield
        except RateLimited as limited:
            if budget is not None:
                await budget.pause(limited.retry_after)
            raise

    def of(self, method: str) -> EditBudget:
        """The budget of `method` itself (the core's renderer takes chat.update's)."""
        return self._budgets[method]


class SlackBudgets:
    """The budgets of every paced method, one per workspace, made on demand.

    chat.update shares the tuning's edit budget (`edit_rate` per `edit_period`); each other
    method gets its tier's rate per `edit_period`, the tuning's Slack rate window (a minute;
    tests shrink it to run fast).
    """

    def __init__(self, core: Core, tuning: PlatformTuning) -> None:
        self._budgets: dict[str, EditBudgets] = {UPDATE: tuning.edit_budgets(core, PLATFORM)}
        for method, rate in METHOD_RATES.items():
            self._budgets[method] = core.edit_budgets(f"{PLATFORM}:{method}", rate.rate,
                                                      tuning.edit_period, rate.burst)
        self._waited = partial(core.metrics.edit_budget_waited, PLATFORM)

    def workspace(self, team_id: str) -> WorkspaceBudgets:
        """The budgets of workspace `team_id`; every wait for a slot is counted in the edit
        budget wait metric (chat.update's by the core, which times the renderer's budget)."""
        return WorkspaceBudgets({
            method: budget if method == UPDATE else TimedEditBudget(budget, self._waited)
            for method, budget in ((m, b.for_scope(team_id)) for m, b in self._budgets.items())
        })
