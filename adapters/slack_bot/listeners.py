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

from adapters.slack_bot.assistant import greet
from adapters.slack_bot.commands import SlashCommands
from adapters.slack_bot.errors import describe
from adapters.slack_bot.events import (
    PLATFORM,
    SlashCommand,
    parse_assistant_thread,
    parse_command,
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
                 commands: SlashCommands, spawn: Spawn) -> None:
        self._service = service
        self._client = client
        self._replies = replies
        self._commands = commands
        self._spawn = spawn

    def register(self, app: AsyncApp) -> None:
        """Attach every listener to `app`."""
        app.event("app_mention")(self.on_mention)
        app.event("message")(self.on_message)
        app.event("assistant_thread_started")(self.on_assistant_thread)
        app.event("assistant_thread_context_changed")(self.on_context_changed)
        app.command("/gemini")(self.on_command)

    async def on_mention(self, body: dict[str, Any], context: AsyncBoltContext) -> None:
        """An `app_mention` event."""
        await self._answer(body, context, "app_mention")

    async def on_message(self, body: dict[str, Any], context: AsyncBoltContext) -> None:
        """A `message` event."""
        await self._answer(body, context, "message")

    async def on_assistant_thread(self, body: dict[str, Any]) -> None:
        """A new assistant thread: greet once, even if Slack delivers the event again."""
        thread = parse_assistant_thread(body)
        if thread is None:
            return
        if thread.event_id and not await self._service.claim_event(PLATFORM, thread.event_id):
            return
        self._spawn(greet(self._client, thread), f"slack: greeting in {thread.channel}")

    async def on_context_changed(self) -> None:
        """The user moved to another channel with the assistant pane open: nothing to do."""

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

    async def _run_command(self, command: SlashCommand, respond: AsyncRespond) -> None:
        text = await self._commands.reply(command)
        try:
            await respond(text=text, response_type="ephemeral")
        except Exception as exc:
            log.warning("slack:%s:%s: replying through response_url failed (%s); posting "
                        "an ephemeral message", command.team_id, command.channel, describe(exc))
            await self._client.chat_postEphemeral(channel=command.channel, user=command.user,
                                                  text=text)
