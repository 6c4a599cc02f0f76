"""Who a Slack user is: a display name, and whether they may change the bot's settings."""

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
from bot.conversation import Author
from bot.pacing import Clock

log = logging.getLogger(__name__)

CACHE_SECONDS = 300.0
MAX_CACHED = 10_000


class People:
    """Looks users up with users.info and remembers the answer for a few minutes.

    Workspace admins and owners may configure, and so may the user IDs in `admin_ids`
    (SLACK_ADMIN_IDS). When Slack cannot answer, the user gets no configure right.
    """

    def __init__(self, client: AsyncWebClient, admin_ids: Iterable[str], *,
                 ttl: float = CACHE_SECONDS, clock: Clock = time.monotonic) -> None:
        self._client = client
        self._admin_ids = frozenset(admin_ids)
        self._ttl = ttl
        self._clock = clock
        self._cache: OrderedDict[str, tuple[float, Author]] = OrderedDict()

    async def author(self, user_id: str) -> Author:
        """The user as an Author, from the cache when it is fresh."""
        cached = self._cache.get(user_id)
        if cached is not None and cached[0] > self._clock():
            return cached[1]
        try:
            response = await self._client.users_info(user=user_id)
        except (SlackApiError, aiohttp.ClientError, TimeoutError) as exc:
            log.warning("slack: looking up user %s failed: %s", user_id, describe(exc))
            return Author(user_id, user_id, can_configure=user_id in self._admin_ids)
        author = self._from_profile(user_id, response.get("user") or {})
        self._cache[user_id] = (self._clock() + self._ttl, author)
        self._cache.move_to_end(user_id)
        if len(self._cache) > MAX_CACHED:
            self._cache.popitem(last=False)
        return author

    def _from_profile(self, user_id: str, user: Mapping[str, Any]) -> Author:
        profile = user.get("profile") or {}
        name = profile.get("display_name") or user.get("real_name") or user.get("name")
        manages = any(user.get(flag) for flag in ("is_admin", "is_owner", "is_primary_owner"))
        return Author(
            id=user_id,
            name=str(name or user_id),
            is_bot=bool(user.get("is_bot")),
            can_configure=manages or user_id in self._admin_ids,
        )
