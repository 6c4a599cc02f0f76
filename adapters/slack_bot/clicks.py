"""What a press of one of the bot's buttons does (Stop, Regenerate, 👍, 👎), and the answer
the clicker alone sees."""

from __future__ import annotations

import logging

from slack_bolt.context.respond.async_respond import AsyncRespond
from slack_sdk.web.async_client import AsyncWebClient

from adapters.slack_bot.access import People
from adapters.slack_bot.budgets import EPHEMERAL, SlackBudgets
from adapters.slack_bot.controls import RATINGS, Action, Click
from adapters.slack_bot.errors import describe
from adapters.slack_bot.events import PLATFORM
from adapters.slack_bot.mrkdwn import to_mrkdwn
from adapters.slack_bot.replies import Replies
from bot import Service

log = logging.getLogger(__name__)


class Clicks:
    """Runs a click through the core as the person who clicked (a workspace admin or owner
    counts as a channel manager) and tells them the outcome privately: an ephemeral message
    through the click's response_url, else chat.postEphemeral.

    Stop stops the answer being written in the button's conversation (the asker or a manager
    may); Regenerate answers the question again in the thread; 👍 and 👎 store a rating.
    """

    def __init__(self, service: Service, client: AsyncWebClient, people: People,
                 replies: Replies, budgets: SlackBudgets) -> None:
        self._service = service
        self._client = client
        self._people = people
        self._replies = replies
        self._budgets = budgets

    async def handle(self, click: Click, respond: AsyncRespond) -> None:
        """Do what the button says; tell the clicker anything the core has for them."""
        author = await self._people.author(click.user, click.key.workspace)
        log.info("%s: %s pressed %s on %s", click.key, click.user, click.action.value,
                 click.message_ts)
        if click.action is Action.STOP:
            text: str | None = await self._service.stop(click.key, author)
        elif click.action is Action.REGENERATE:
            text = await self._replies.regenerate(click, author)
        else:
            text = await self._service.rate(PLATFORM, click.message_ts, author,
                                            RATINGS[click.action])
        if text:
            await self._tell(click, to_mrkdwn(text), respond)

    async def _tell(self, click: Click, text: str, respond: AsyncRespond) -> None:
        try:
            response = await respond(text=text, response_type="ephemeral",
                                     replace_original=False, thread_ts=click.key.thread)
            if response.status_code == 200:
                return
            problem = f"HTTP {response.status_code}"
        except Exception as exc:
            problem = describe(exc)
        log.warning("%s: answering %s through response_url failed (%s); posting an "
                    "ephemeral message", click.key, click.user, problem)
        try:
            async with self._budgets.workspace(click.key.workspace).slot(EPHEMERAL):
                await self._client.chat_postEphemeral(channel=click.key.channel,
                                                      user=click.user, text=text,
                                                      thread_ts=click.key.thread)
        except Exception as exc:
            log.warning("%s: could not tell %s: %s", click.key, click.user, describe(exc))
