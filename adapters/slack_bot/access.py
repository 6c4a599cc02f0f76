"""Who may use the bot and who may change its settings: in Slack, everyone who can reach it
may use it, and a user's rights (and display name) come from users.info."""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from typing import Any

import aiohttp
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from adapters.slack_bot.errors import describe
from bot import Author, Clock

log = logging.getLogger(__name__)

CACHE_SECONDS = 300.0
MAX_CACHED = 10_000
GUESTS = ("is_stranger", "is_restricted", "is_ultra_restricted")
"""users.info flags of people from outside (Slack Connect) and of guests."""


class People:
    """Looks users up with users.info and remembers the answer for a few minutes.

    Admins and owners of the workspace a request comes from may configure, and so may the
    user IDs in `admin_ids` (SLACK_ADMIN_IDS). Admins of another workspace (a Slack Connect
    guest or external user), guests (restricted, ultra-restricted) and people Slack cannot
    describe get no configure right.
    """

    def __init__(self, client: AsyncWebClient, admin_ids: Iterable[str], *,
                 ttl: float = CACHE_SECONDS, clock: Clock = time.monotonic) -> None:
        self._client = client
        self._admin_ids = frozenset(admin_ids)
        self._ttl = ttl
        self._clock = clock
        self._cache: OrderedDict[str, tuple[float, Mapping[str, Any]]] = OrderedDict()

    async def author(self, user_id: str, team_id: str) -> Author:
        """The user as an Author in a request from workspace `team_id`."""
        user = await self._profile(user_id)
        if user is None:
            return Author(user_id, user_id, can_configure=user_id in self._admin_ids)
        profile = user.get("profile") or {}
        name = profile.get("display_name") or user.get("real_name") or user.get("name")
        return Author(
            id=user_id,
            name=str(name or user_id),
            is_bot=bool(user.get("is_bot")),
            can_configure=user_id in self._admin_ids or manages(user, team_id),
        )

    async def _profile(self, user_id: str) -> Mapping[str, Any] | None:
        """users.info's user object, from the cache when it is fresh; None if Slack failed."""
        cached = self._cache.get(user_id)
        if cached is not None and cached[0] > self._clock():
            return cached[1]
        try:
            response = await self._client.users_info(user=user_id)
        except (SlackApiError, aiohttp.ClientError, TimeoutError) as exc:
            log.warning("slack: looking up user %s failed: %s", user_id, describe(exc))
            return None
        user = response.get("user")
        user = user if isinstance(user, Mapping) else {}
        self._cache[user_id] = (self._clock() + self._ttl, user)
        self._cache.move_to_end(user_id)
        if len(self._cache) > MAX_CACHED:
            self._cache.popitem(last=False)
        return user


def manages(user: Mapping[str, Any], team_id: str) -> bool:
    """Whether a users.info user is an admin or owner of workspace `team_id` itself.

    The user must belong to that workspace (`team_id`, or on Enterprise Grid the workspaces
    in `enterprise_user.teams`) and be neither a stranger (Slack Connect) nor a guest.
    """
    if not team_id or any(user.get(flag) for flag in GUESTS):
        return False
    enterprise = user.get("enterprise_user")
    teams = enterprise.get("teams") if isinstance(enterprise, Mapping) else None
    member = user.get("team_id") == team_id or (isinstance(teams, list) and team_id in teams)
    return member and any(user.get(flag) for flag in ("is_admin", "is_owner", "is_primary_owner"))
