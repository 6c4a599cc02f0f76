"""Drawing a reply in a Discord channel: post, paced edits, typing, and the answer's buttons
(Stop while it is written; Regenerate, 👍, 👎 once it is finished)."""

from __future__ import annotations

import logging
from typing import Any

import discord

from adapters.common import PlatformTuning
from adapters.discord_bot.controls import answer_view, stop_view
from adapters.discord_bot.errors import as_surface_errors
from bot import ChannelMessage, ConversationKey, EditBudget, RateLimited, SurfaceLimits

log = logging.getLogger(__name__)

DISCORD_TUNING = PlatformTuning(max_message_chars=2_000, min_edit_interval=1.0, edit_rate=5,
                                edit_period=5.0, edit_burst=2, final_edit_marks=True)
"""Discord's limits: 2,000 characters a message; one edit a second per message; 5 edits per
5 seconds in a channel or thread (Discord's per-channel bucket), bursts of 2. The final edit
removes the Stop button."""

class DiscordSurface:
    """One reply, in conversation `key`, in one channel, thread or DM.

    Messages still being written carry the Stop button; the final edit removes it, and the
    answer's last message then gets Regenerate, 👍 and 👎. `reply_to` makes the first message
    a Discord reply to it (answers outside a thread). `budget` is the channel's edit budget,
    which the edit that adds the buttons waits for like the renderer's edits.
    """

    def __init__(self, channel: discord.abc.Messageable, tuning: PlatformTuning,
                 key: ConversationKey, reply_to: discord.Message | None = None,
                 budget: EditBudget | None = None) -> None:
        self._channel = channel
        self._limits = tuning.limits
        self._key = key
        self._reply_to = reply_to
        self._budget = budget
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

    async def show_answer_controls(self, message_id: str) -> None:
        """Put Regenerate, 👍 and 👎 on the answer's last message, one edit within the
        channel's edit budget (a 429 holds the budget back, and the buttons are left out)."""
        message = self._messages[int(message_id)]
        if self._budget is not None:
            await self._budget.acquire()
        try:
            with as_surface_errors("adding the answer's buttons"):
                await message.edit(view=answer_view(self._key))
        except RateLimited as limited:
            if self._budget is not None:
                await self._budget.pause(limited.retry_after)
            raise

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
