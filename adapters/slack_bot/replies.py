"""Answering a Slack message: the core's Incoming, a streaming surface in its thread, and the
workspace's budgets."""

from __future__ import annotations

import logging

from slack_sdk.web.async_client import AsyncWebClient

from adapters.common import PlatformTuning
from adapters.slack_bot.access import People
from adapters.slack_bot.budgets import UPDATE, SlackBudgets
from adapters.slack_bot.events import SlackMessage
from adapters.slack_bot.files import SlackFiles
from adapters.slack_bot.surface import Place, SlackStreamingSurface
from bot import Incoming, Service

log = logging.getLogger(__name__)


class Replies:
    """Hands addressed messages to the core, drawn with Slack's native streaming in the
    message's thread (a top-level message starts one), passing the recipient user and team
    Slack asks for. Every reply in a workspace takes its calls from that workspace's budgets.
    """

    def __init__(self, service: Service, client: AsyncWebClient, people: People,
                 files: SlackFiles, tuning: PlatformTuning, budgets: SlackBudgets) -> None:
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
        budgets = self._budgets.workspace(message.team_id)
        surface = SlackStreamingSurface(self._client, place, self._tuning.limits, budgets,
                                        people=self._people)
        log.info("%s: answering message %s (event %s)", message.key, message.ts,
                 message.event_id)
        await self._service.handle(incoming, surface, budgets.of(UPDATE))
