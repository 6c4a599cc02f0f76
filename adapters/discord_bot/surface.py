"""Drawing a reply in a Discord channel: post, paced edits, typing, and the Stop button."""

from __future__ import annotations

import logging
import re
from typing import Any, Protocol, runtime_checkable

import discord

from adapters.common import PlatformTuning
from adapters.discord_bot.errors import as_surface_errors
from adapters.discord_bot.events import PLATFORM
from bot import ChannelMessage, ConversationKey, SurfaceLimits

log = logging.getLogger(__name__)

DISCORD_TUNING = PlatformTuning(max_message_chars=2_000, min_edit_interval=1.0, edit_rate=5,
                                edit_period=5.0, edit_burst=2, final_edit_marks=True)
"""Discord's limits: 2,000 characters a message; one edit a second per message; 5 edits per
5 seconds in a channel or thread (Discord's per-channel bucket), bursts of 2. The final edit
removes the Stop button."""

STOP_ID = "gemini:stop"
STOP_TEMPLATE = re.compile(
    rf"{STOP_ID}(?::{PLATFORM}:(?P<workspace>dm|\d+):(?P<channel>\d+):(?P<thread>\d+))?"
)
"""`gemini:stop:<conversation key>`; a bare `gemini:stop` is a button drawn before the key was
carried (its answer is long over)."""


def stop_custom_id(key: ConversationKey | None) -> str:
    """The Stop button's custom id for a reply in conversation `key` (at most 86 characters
    with 20-digit ids; Discord allows 100)."""
    return STOP_ID if key is None else f"{STOP_ID}:{key}"


@runtime_checkable
class StopsAnswers(Protocol):
    """What a Stop click is handed to: the bot's client (`interaction.client`)."""

    async def stop_answer(self, key: ConversationKey | None,
                          interaction: discord.Interaction[Any]) -> None:
        """Stop the answer being written in `key` (None: a button with no key) if the
        clicker may, and tell them what happened."""
        ...


class StopButton(discord.ui.DynamicItem[discord.ui.Button[discord.ui.View]],
                 template=STOP_TEMPLATE):
    """A reply's Stop button. Its custom id carries the conversation key, so any process of
    the bot, one started after the button was drawn included, knows what a click means:
    nothing about the button is kept in memory (register the class with
    `Client.add_dynamic_items`)."""

    def __init__(self, key: ConversationKey | None) -> None:
        super().__init__(discord.ui.Button(label="Stop", emoji="⏹️",
                                           style=discord.ButtonStyle.secondary,
                                           custom_id=stop_custom_id(key)))
        self.key = key

    @classmethod
    async def from_custom_id(cls, interaction: discord.Interaction[Any],
                             item: discord.ui.Item[Any], match: re.Match[str], /
                             ) -> StopButton:
        """The button a click's custom id describes."""
        if match["thread"] is None:
            return cls(None)
        return cls(ConversationKey(PLATFORM, match["workspace"], match["channel"],
                                   match["thread"]))

    async def callback(self, interaction: discord.Interaction[Any]) -> None:
        """Hand the click to the client."""
        client = interaction.client
        if isinstance(client, StopsAnswers):
            await client.stop_answer(self.key, interaction)
        else:
            log.warning("discord: a Stop click reached a client that cannot stop answers")


def stop_view(key: ConversationKey) -> discord.ui.View:
    """The controls of a message still being written: the Stop button for `key`."""
    view = discord.ui.View(timeout=None)
    view.add_item(StopButton(key))
    return view


class DiscordSurface:
    """One reply, in conversation `key`, in one channel, thread or DM.

    Messages still being written carry the Stop button; the final edit removes it.
    `reply_to` makes the first message a Discord reply to the question (answers outside a
    thread).
    """

    def __init__(self, channel: discord.abc.Messageable, tuning: PlatformTuning,
                 key: ConversationKey, reply_to: discord.Message | None = None) -> None:
        self._channel = channel
        self._limits = tuning.limits
        self._key = key
        self._reply_to = reply_to
        self._messages: dict[int, discord.Message] = {}

    @property
    def limits(self) -> SurfaceLimits:
        """Discord's limits for this reply."""
        return self._limits

    async def post(self, text: str, *, final: bool) -> str:
        """Send a message (with the Stop button unless final)."""
        options: dict[str, Any] = {}
        if not final:
            options["view"] = stop_view(self._key)
        if self._reply_to is not None and not self._messages:
            options["reference"] = self._reply_to.to_reference(fail_if_not_exists=False)
        with as_surface_errors("posting"):
            message = await self._channel.send(text, **options)
        self._messages[message.id] = message
        return str(message.id)

    async def edit(self, message_id: str, text: str, *, final: bool) -> None:
        """Replace a message's text; the final edit also removes its Stop button."""
        message = self._messages[int(message_id)]
        with as_surface_errors("editing"):
            if final:
                await message.edit(content=text, view=None)
            else:
                await message.edit(content=text)

    async def show_progress(self) -> None:
        """Show "is typing…" (Discord shows it for about 10 seconds)."""
        with as_surface_errors("typing"):
            await self._channel.typing()

    async def notify(self, text: str) -> None:
        """Post a short notice (a skipped attachment, an error)."""
        with as_surface_errors("posting a notice"):
            await self._channel.send(text)

    async def read_channel(self, limit: int) -> list[ChannelMessage]:
        """The newest `limit` messages of this reply's channel, thread or DM (Discord's
        channel history; needs Read Message History), oldest first; this reply's own messages
        (its status line) left out."""
        messages = [message async for message in self._channel.history(limit=limit)
                    if message.id not in self._messages]
        return [_channel_message(m) for m in reversed(messages)]


def _channel_message(message: discord.Message) -> ChannelMessage:
    """A message as read_channel shows it: the author's display name, the text with its
    mentions as names, and the files attached by name."""
    files = "".join(f" [file {a.filename}]" for a in message.attachments)
    return ChannelMessage(message.author.display_name, message.created_at,
                          message.clean_content + files)
