"""Answering a Slack message: the core's Incoming, a surface in the right place, a budget."""

from __future__ import annotations

import logging

from slack_sdk.web.async_client import AsyncWebClient

from adapters.common import PlatformTuning
from adapters.slack_bot.access import People
from adapters.slack_bot.events import SlackMessage
from adapters.slack_bot.files import SlackFiles
from adapters.slack_bot.surface import Place, SlackStreamingSurface, SlackSurface
from bot import EditBudgets, Incoming, Service

log = logging.getLogger(__name__)


class Replies:
    """Hands addressed messages to the core, drawn where Slack allows native streaming.

    Threads get a streaming surface (channels pass the recipient user and team Slack asks
    for); the top level of a direct message gets post-then-chat.update. Every reply in a
    workspace shares that workspace's edit budget.
    """

    def __init__(self, service: Service, client: AsyncWebClient, people: People,
                 files: SlackFiles, tuning: PlatformTuning, budgets: EditBudgets) -> None:
        self._service = service
        self._client = client
        self._people = people
        self._files = files
        self._tuning = tuning
        self._budgets = budgets

    async def answer(self, message: SlackMessage) -> None:
        """Answer `message` through the core (which drops a redelivered event)."""
        incoming = Incoming(
            key=message.key,
            author=await self._people.author(message.user, message.team_id),
            text=message.text,
            attachments=self._files.attachments(message.files),
            event_id=message.event_id,
            message_id=message.ts,
        )
        place = Place(message.team_id, message.channel, message.reply_thread, message.user,
                      message.user_team)
        budget = self._budgets.for_scope(message.team_id)
        surface: SlackSurface
        if place.thread_ts is None:
            surface = SlackSurface(self._client, place, self._tuning.limits)
        else:
            surface = SlackStreamingSurface(self._client, place, self._tuning.limits, budget)
        log.info("%s: answering message %s (event %s)", message.key, message.ts,
                 message.event_id)
        await self._service.handle(incoming, surface, budget)
