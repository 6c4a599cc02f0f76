"""The bolt listeners: parse each event, edit or click, ask `routing` whether it is for the
bot, and start the work in the background, so Slack gets its acknowledgement at once.

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
from adapters.slack_bot.clicks import Clicks
from adapters.slack_bot.commands import SlashCommands
from adapters.slack_bot.controls import Action, parse_click
from adapters.slack_bot.errors import describe
from adapters.slack_bot.events import (
    EDITED,
    MESSAGES_TAB,
    PLATFORM,
    HomeOpened,
    SlashCommand,
    parse_command,
    parse_edit,
    parse_home_opened,
    parse_message,
)
from adapters.slack_bot.replies import Replies
from adapters.slack_bot.routing import Trigger, route
from bot import Service

log = logging.getLogger(__name__)

Spawn = Callable[[Coroutine[Any, Any, None], str], None]


class Listeners:
    """Event, command and button listeners for one bolt app; `spawn` runs work in the
    background."""

    def __init__(self, service: Service, client: AsyncWebClient, replies: Replies,
                 commands: SlashCommands, clicks: Clicks, budgets: SlackBudgets,
                 spawn: Spawn) -> None:
        self._service = service
        self._client = client
        self._replies = replies
        self._commands = commands
        self._clicks = clicks
        self._budgets = budgets
        self._spawn = spawn

    def register(self, app: AsyncApp) -> None:
        """Attach every listener to `app` (the manifest subscribes to each event and enables
        the interactivity that brings the clicks)."""
        app.event("app_mention")(self.on_mention)
        app.event("message")(self.on_message)
        app.event("app_home_opened")(self.on_home_opened)
        app.command("/gemini")(self.on_command)
        for action in Action:
            app.action(action.value)(self.on_click)

    async def on_mention(self, body: dict[str, Any], context: AsyncBoltContext) -> None:
        """An `app_mention` event."""
        await self._answer(body, context, "app_mention")

    async def on_message(self, body: dict[str, Any], context: AsyncBoltContext) -> None:
        """A `message` event: a new message, or an edit of one."""
        event = body.get("event")
        if isinstance(event, dict) and event.get("subtype") == EDITED:
            await self._edited(body, context)
        else:
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

    async def on_click(self, ack: AsyncAck, body: dict[str, Any],
                       respond: AsyncRespond) -> None:
        """One of the bot's buttons was pressed: acknowledge at once, act in the background."""
        await ack()
        click = parse_click(body)
        if click is None:
            log.warning("slack: ignored a click that is not on one of the bot's buttons in "
                        "its own conversation")
            return
        self._spawn(self._clicks.handle(click, respond),
                    f"slack: {click.action.value} from {click.user} in {click.key}")

    async def _edited(self, body: dict[str, Any], context: AsyncBoltContext) -> None:
        message = parse_edit(body, context.bot_user_id or "")
        if message is not None and await self._service.knows(message.key):
            self._spawn(self._replies.answer_edited(message), f"edit in {message.key}")

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
