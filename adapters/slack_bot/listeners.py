"""The bolt listeners: decide whether an event is for the bot, then do the work in the background.

Which messages the bot answers:
- a mention in a channel (app_mention), answered in that message's thread;
- any message in a thread the bot already takes part in, without a mention (a message that
  does mention the bot is left to its app_mention event, so it gets one answer);
- every message in a direct message with the bot (each DM thread is its own conversation).
Bots (this one included), edits and deletions are ignored. Listeners only parse and start
the work, so Slack gets its acknowledgement at once.
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
        """A mention in a channel: answer in its thread (DMs are the message listener's)."""
        message = parse_message(body, context.bot_user_id or "")
        if message is None or message.is_dm:
            return
        self._spawn(self._replies.answer(message), f"answer to {message.key}")

    async def on_message(self, body: dict[str, Any], context: AsyncBoltContext) -> None:
        """A message: answered in DMs, and in threads the bot is part of unless it mentions it."""
        message = parse_message(body, context.bot_user_id or "")
        if message is None:
            return
        if not message.is_dm:
            if message.thread_ts is None or message.mentions_bot:
                return
            if not await self._service.knows(message.key):
                return
        self._spawn(self._replies.answer(message), f"answer to {message.key}")

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

    async def _run_command(self, command: SlashCommand, respond: AsyncRespond) -> None:
        text = await self._commands.reply(command)
        try:
            await respond(text=text, response_type="ephemeral")
        except Exception as exc:
            log.warning("slack:%s:%s: replying through response_url failed (%s); posting "
                        "an ephemeral message", command.team_id, command.channel, describe(exc))
            await self._client.chat_postEphemeral(channel=command.channel, user=command.user,
                                                  text=text)
