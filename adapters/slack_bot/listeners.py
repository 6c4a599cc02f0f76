"""The bolt listeners: parse each event, ask `routing` whether it is for the bot, and start
the work in the background, so Slack gets its acknowledgement at once.

Slack needs this module where Discord does not: bolt calls listeners registered on its app
(with bolt's own arguments), where discord.py calls the client's `on_message` (in `app`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine
from typing import Any

from slack_bolt.app.async_app import AsyncApp
from slack_bolt.context.ack.async_ack import AsyncAck
from slack_bolt.context.async_context import AsyncBoltContext
from slack_bolt.context.respond.async_respond import AsyncRespond
from slack_sdk.web.async_client import AsyncWebClient

from adapters.slack_bot.assistant import welcome
from adapters.slack_bot.budgets import SlackBudgets
from adapters.slack_bot.commands import SlashCommands
from adapters.slack_bot.errors import describe
from adapters.slack_bot.events import (
    MESSAGES_TAB,
    PLATFORM,
    HomeOpened,
    SlashCommand,
    parse_command,
    parse_home_opened,
    parse_message,
)
from adapters.slack_bot.replies import Replies
from adapters.slack_bot.routing import Trigger, route
from bot import Service

log = logging.getLogger(__name__)

Spawn = Callable[[Coroutine[Any, Any, None], str], None]


class Listeners:
    """Event and command listeners for one bolt app; `spawn` runs work in the background."""

    def __init__(self, service: Service, client: AsyncWebClient, replies: Replies,
                 commands: SlashCommands, budgets: SlackBudgets, spawn: Spawn) -> None:
        self._service = service
        self._client = client
        self._replies = replies
        self._commands = commands
        self._budgets = budgets
        self._spawn = spawn

    def register(self, app: AsyncApp) -> None:
        """Attach every listener to `app` (the manifest subscribes to each event)."""
        app.event("app_mention")(self.on_mention)
        app.event("message")(self.on_message)
        app.event("app_home_opened")(self.on_home_opened)
        app.command("/gemini")(self.on_command)

    async def on_mention(self, body: dict[str, Any], context: AsyncBoltContext) -> None:
        """An `app_mention` event."""
        await self._answer(body, context, "app_mention")

    async def on_message(self, body: dict[str, Any], context: AsyncBoltContext) -> None:
        """A `message` event."""
        await self._answer(body, context, "message")

    async def on_home_opened(self, body: dict[str, Any]) -> None:
        """Someone opened the bot's App Home: on the Messages tab (their DM with the bot),
        welcome them, once per visit even if Slack delivers the event again."""
        opened = parse_home_opened(body)
        if opened is None or opened.tab != MESSAGES_TAB:
            return
        if opened.event_id and not await self._service.claim_event(PLATFORM, opened.event_id):
            return
        self._spawn(self._welcome(opened), f"slack: welcoming {opened.user}")

    async def on_command(self, ack: AsyncAck, body: dict[str, Any],
                         respond: AsyncRespond) -> None:
        """`/gemini ...`: acknowledge at once, answer privately when done."""
        await ack()
        command = parse_command(body)
        self._spawn(self._run_command(command, respond), f"slack: /gemini from {command.user}")

    async def _answer(self, body: dict[str, Any], context: AsyncBoltContext,
                      trigger: Trigger) -> None:
        message = parse_message(body, context.bot_user_id or "")
        if message is None:
            return
        key = await route(message, trigger, self._service)
        if key is not None:
            self._spawn(self._replies.answer(message), f"answer to {key}")

    async def _welcome(self, opened: HomeOpened) -> None:
        first_visit = await self._service.claim_event(PLATFORM, opened.greeting_id)
        await welcome(self._client, opened, self._budgets.workspace(opened.team_id),
                      first_visit=first_visit)

    async def _run_command(self, command: SlashCommand, respond: AsyncRespond) -> None:
        text = await self._commands.reply(command)
        try:
            await respond(text=text, response_type="ephemeral")
        except Exception as exc:
            log.warning("slack:%s:%s: replying through response_url failed (%s); posting "
                        "an ephemeral message", command.team_id, command.channel, describe(exc))
            await self._client.chat_postEphemeral(channel=command.channel, user=command.user,
                                                  text=text)
