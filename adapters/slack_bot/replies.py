"""Answering in Slack: a message, an edited question or a Regenerate click, each through the
core on a streaming surface in its thread, within the workspace's budgets."""

from __future__ import annotations

import logging

from slack_sdk.web.async_client import AsyncWebClient

from adapters.common import Answering, PlatformTuning
from adapters.slack_bot.access import People
from adapters.slack_bot.budgets import UPDATE, SlackBudgets
from adapters.slack_bot.controls import Click
from adapters.slack_bot.events import SlackMessage
from adapters.slack_bot.files import SlackFiles
from adapters.slack_bot.surface import Place, SlackStreamingSurface
from bot import Author, EditBudget, Incoming, Service

log = logging.getLogger(__name__)


class Replies:
    """Hands messages to the core, drawn with Slack's native streaming in the message's
    thread (a top-level message starts one), passing the recipient user and team Slack asks
    for. Every reply in a workspace takes its calls from that workspace's budgets, and its
    surface is finished (its Stop button removed) however the reply ends.
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
        log.info("%s: answering message %s (event %s)", message.key, message.ts,
                 message.event_id)
        await self._through(self._service.handle, message)

    async def answer_edited(self, message: SlackMessage) -> None:
        """`message` is the new version of a person's message: the core answers it again if
        it is the conversation's latest question (and drops a redelivered edit)."""
        log.info("%s: message %s was edited (event %s)", message.key, message.ts,
                 message.event_id)
        await self._through(self._service.answer_edited, message)

    async def _through(self, answering: Answering, message: SlackMessage) -> None:
        """Hand `message` to the core's `answering` with a surface in its thread."""
        incoming = await self._incoming(message)
        surface, budget = self._surface(Place(message.team_id, message.channel,
                                              message.reply_thread, message.user,
                                              message.user_team))
        try:
            await answering(incoming, surface, budget)
        finally:
            await surface.finish()

    async def regenerate(self, click: Click, author: Author) -> str | None:
        """Answer again the question of the answer `click` was on; the refusal's text for
        the clicker alone, or None once answered again."""
        key = click.key
        surface, budget = self._surface(Place(key.workspace, key.channel, key.thread,
                                              click.user, click.user_team))
        log.info("%s: %s asks to regenerate the answer in %s", key, click.user,
                 click.message_ts)
        try:
            return await self._service.regenerate(key, click.message_ts, author, surface,
                                                  budget)
        finally:
            await surface.finish()

    async def _incoming(self, message: SlackMessage) -> Incoming:
        return Incoming(
            key=message.key,
            author=await self._people.author(message.user, message.team_id),
            text=message.text,
            attachments=self._files.attachments(message.files),
            event_id=message.event_id,
            message_id=message.ts,
        )

    def _surface(self, place: Place) -> tuple[SlackStreamingSurface, EditBudget]:
        """A reply's surface at `place`, and its workspace's chat.update budget."""
        budgets = self._budgets.workspace(place.team_id)
        surface = SlackStreamingSurface(self._client, place, self._tuning.limits, budgets,
                                        people=self._people)
        return surface, budgets.of(UPDATE)
