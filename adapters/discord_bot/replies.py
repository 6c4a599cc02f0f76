"""Answering Discord messages the routing picked: open the thread, hand the message and a
surface to the core, report what failed before the answer started; and Stop clicks."""

from __future__ import annotations

import logging
from collections import Counter
from typing import TYPE_CHECKING, Any

import discord

from adapters.common import PlatformTuning
from adapters.discord_bot.access import Access
from adapters.discord_bot.events import (
    DEFAULT_THREAD_NAME,
    PLATFORM,
    author_of,
    interaction_author,
    key_of_channel,
    strip_mentions,
    thread_name,
    where,
)
from adapters.discord_bot.files import DiscordFiles
from adapters.discord_bot.routing import (
    Destination,
    bot_role_id,
    may_be_for_the_bot,
    plainly_addressed,
    route,
)
from adapters.discord_bot.surface import DiscordSurface
from bot import WARNING, ConversationKey, EditBudgets, Incoming, Service, UserFacingError

if TYPE_CHECKING:
    from discord.abc import MessageableChannel

log = logging.getLogger(__name__)

FINISHED = "This answer is no longer being written, so there is nothing to stop."


class Replies:
    """Hands the messages `routing` picks to the core, each with a surface in its place.

    When the database fails before the answer starts, a message that is plainly for the bot
    gets the error as a notice; others are only logged (the bot cannot tell them apart).
    """

    def __init__(self, service: Service, files: DiscordFiles, access: Access,
                 tuning: PlatformTuning, budgets: EditBudgets) -> None:
        self._service, self._files, self._access = service, files, access
        self._tuning, self._budgets = tuning, budgets
        self._writing: Counter[ConversationKey] = Counter()
        """Messages being answered (or waiting their turn), per conversation."""

    async def answer(self, message: discord.Message, me: discord.ClientUser) -> None:
        """Answer `message` if it is for the bot; failures are logged (and shown), never raised."""
        destination: Destination | None = None
        try:
            if not may_be_for_the_bot(message, self._access):
                return
            channel = await _resolved_channel(message)
            destination = await route(message, channel, me, self._access, self._service)
            if destination is None or not await self._service.claim_event(
                PLATFORM, str(message.id)
            ):
                return
            if destination.start_thread:
                destination = await self._open_thread(message, destination, me)
            await self._reply(message, destination, me)
        except UserFacingError as exc:
            shown = destination is not None or plainly_addressed(message, me)
            await self._report(message, exc, shown=shown)
        except Exception:
            log.exception("%s: failed to answer message %s", where(message), message.id)

    async def stop(self, key: ConversationKey | None, interaction: discord.Interaction[Any]
                   ) -> None:
        """A click on a Stop button of conversation `key`: stop the answer being written
        there if the clicker may; an answer already over (a button left by a restart) gets a
        note saying so."""
        if key is None or key not in self._writing:
            await interaction.response.send_message(FINISHED, ephemeral=True)
            return
        unserved = self._access.unserved_note(interaction.guild_id)
        if unserved is not None:
            await interaction.response.send_message(unserved, ephemeral=True)
            return
        user = interaction_author(interaction, self._access)
        text = await self._service.stop(key, user)
        log.info("%s: Stop clicked by %s: %s", key, user.id, text)
        await interaction.response.send_message(text, ephemeral=True)

    async def _report(self, message: discord.Message, exc: UserFacingError, *, shown: bool
                      ) -> None:
        """Log an error met before the answer started (the database is down); if `shown`,
        also tell the person, in a reply to their message."""
        log.warning("%s: message %s could not be answered: %s", where(message), message.id,
                    exc)
        if not shown:
            return
        try:
            await message.reply(f"{WARNING} {exc}", mention_author=False)
        except discord.HTTPException as failed:
            log.warning("%s: could not show the notice: %s", where(message), failed)

    async def _open_thread(self, message: discord.Message, destination: Destination,
                           me: discord.ClientUser) -> Destination:
        text = strip_mentions(message.content, me.id, bot_role_id(message))
        fallback = message.attachments[0].filename if message.attachments else DEFAULT_THREAD_NAME
        try:
            thread = await message.create_thread(name=thread_name(text, fallback))
        except discord.HTTPException as exc:
            log.warning("%s: no thread for message %s (%s); answering in the channel",
                        where(message), message.id, exc)
            return destination
        log.info("%s: started thread %s", where(message), thread.id)
        return Destination(key_of_channel(thread, thread.guild.id), thread)

    async def _reply(self, message: discord.Message, destination: Destination,
                     me: discord.ClientUser) -> None:
        author = message.author
        guild_id = message.guild.id if message.guild else None
        channel = destination.channel
        manages = (
            isinstance(author, discord.Member)
            and isinstance(channel, discord.abc.GuildChannel | discord.Thread)
            and channel.permissions_for(author).manage_channels
        )
        key = destination.key
        incoming = Incoming(
            key=key,
            author=author_of(
                author, can_configure=self._access.can_configure(author.id, guild_id, manages)
            ),
            text=strip_mentions(message.content, me.id, bot_role_id(message)),
            attachments=self._files.attachments(message.attachments),
            message_id=str(message.id),
        )
        surface = DiscordSurface(channel, self._tuning, key, destination.reply_to)
        budget = self._budgets.for_scope(str(channel.id))
        log.info("%s: answering message %s from %s", key, message.id, author.id)
        self._writing[key] += 1
        try:
            await self._service.handle(incoming, surface, budget)
        finally:
            self._writing[key] -= 1
            if not self._writing[key]:
                del self._writing[key]


async def _resolved_channel(message: discord.Message) -> MessageableChannel:
    """The message's channel; a thread missing from discord.py's cache arrives as a
    PartialMessageable and is fetched, so routing can see it is a thread."""
    guild, channel = message.guild, message.channel
    if guild is not None and isinstance(channel, discord.PartialMessageable):
        fetched = await guild.fetch_channel(channel.id)
        if isinstance(fetched, discord.Thread):
            return fetched
    return channel
