"""Answering Discord messages: is it for the bot, where does the answer go, then the core."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

import discord

from adapters.discord_bot.access import Access
from adapters.discord_bot.events import (
    CONVERSATIONAL,
    DEFAULT_THREAD_NAME,
    PLATFORM,
    author_of,
    conversation_key,
    interaction_author,
    key_of_channel,
    mentions_bot,
    scope_channel_id,
    strip_mentions,
    thread_name,
)
from adapters.discord_bot.files import DiscordFiles
from adapters.discord_bot.surface import DiscordSurface, DiscordTuning
from bot import WARNING, ConversationKey, EditBudgets, Incoming, Service, UserFacingError

if TYPE_CHECKING:
    from discord.abc import MessageableChannel

log = logging.getLogger(__name__)

FINISHED = "This answer is no longer being written, so there is nothing to stop."


@dataclass(frozen=True, slots=True)
class Route:
    """Where a message's answer goes: its conversation, the channel, and how it starts."""

    key: ConversationKey
    channel: MessageableChannel
    reply_to: discord.Message | None = None
    start_thread: bool = False


class Replies:
    """Decides which messages are for the bot and hands each to the core with a surface.

    - In a DM every message is for the bot; the DM is one conversation.
    - A mention in a server channel starts a public thread on the message and answers there
      (inline, as a Discord reply, when no thread can be made there).
    - In a thread: a mention, or any message once the bot is part of it (it started the
      thread, or answered there before).
    - A Discord reply to one of the bot's messages continues that message's conversation:
      a plain reply in the same channel only, never a forward or a reference from elsewhere.
    Servers off DISCORD_GUILD_ALLOWLIST (and DMs with DISCORD_ALLOW_DMS off) are ignored.
    When the database fails before the answer starts, a message that is plainly for the bot
    gets the error as a notice; others are only logged (the bot cannot tell them apart).
    """

    def __init__(self, service: Service, files: DiscordFiles, access: Access,
                 tuning: DiscordTuning) -> None:
        self._service = service
        self._files = files
        self._access = access
        self._tuning = tuning
        self._budgets = EditBudgets(tuning.edit_rate, tuning.edit_period, tuning.edit_burst)

    async def answer(self, message: discord.Message, me: discord.ClientUser) -> None:
        """Answer `message` if it is for the bot; failures are logged (and shown), never raised."""
        route: Route | None = None
        try:
            route = await self._route(message, me)
            if route is None or not await self._service.claim_event(PLATFORM, str(message.id)):
                return
            if route.start_thread:
                route = await self._open_thread(message, route, me)
            await self._reply(message, route, me)
        except UserFacingError as exc:
            await self._report(message, exc, shown=route is not None or _addressed(message, me))
        except Exception:
            log.exception("%s: failed to answer message %s", _where(message), message.id)

    async def stop(self, key: ConversationKey, interaction: discord.Interaction) -> None:
        """A click on a reply's Stop button: stop that reply if the clicker may."""
        unserved = self._access.unserved_note(interaction.guild_id)
        if unserved is not None:
            await interaction.response.send_message(unserved, ephemeral=True)
            return
        user = interaction_author(interaction, self._access)
        text = await self._service.stop(key, user)
        log.info("%s: Stop clicked by %s: %s", key, user.id, text)
        await interaction.response.send_message(text, ephemeral=True)

    async def _route(self, message: discord.Message, me: discord.ClientUser) -> Route | None:
        if message.author.bot or message.type not in CONVERSATIONAL:
            return None
        guild, channel = message.guild, message.channel
        if not self._access.serves(guild.id if guild else None):
            log.debug("%s: message %s is from a place the bot does not serve", _where(message),
                      message.id)
            return None
        if guild is not None and isinstance(channel, discord.PartialMessageable):
            fetched = await guild.fetch_channel(channel.id)  # a thread missing from the cache
            if isinstance(fetched, discord.Thread):
                channel = fetched
        if not self._allowed(message, channel):
            log.info("%s: message %s from %s is outside the allow-lists", _where(message),
                     message.id, message.author.id)
            return None
        if guild is None:
            return Route(key_of_channel(channel, None), channel)
        replied = await self._replied_conversation(message)
        in_thread = isinstance(channel, discord.Thread)
        if replied is not None:
            return Route(replied, channel, reply_to=None if in_thread else message)
        mentioned = mentions_bot(message.content, me.id, _bot_role_id(message))
        if isinstance(channel, discord.Thread):
            key = key_of_channel(channel, guild.id)
            if mentioned or channel.owner_id == me.id or await self._service.knows(key):
                return Route(key, channel)
            return None
        if mentioned:
            key = conversation_key(guild.id, message.id, channel.id)
            return Route(key, channel, reply_to=message, start_thread=True)
        return None

    def _allowed(self, message: discord.Message, channel: discord.abc.Snowflake) -> bool:
        author = message.author
        roles = [r.id for r in author.roles] if isinstance(author, discord.Member) else None
        guild_id = message.guild.id if message.guild else None
        return self._access.allows(author.id, scope_channel_id(channel, guild_id), roles)

    async def _replied_conversation(self, message: discord.Message) -> ConversationKey | None:
        """The conversation a plain reply continues; a forward, or a reference to a message in
        another channel, continues nothing (it would carry that channel's conversation here)."""
        reference = message.reference
        if (
            reference is None
            or reference.message_id is None
            or message.type != discord.MessageType.reply
            or reference.type != discord.MessageReferenceType.reply
            or reference.channel_id != message.channel.id
        ):
            return None
        return await self._service.conversation_of_message(PLATFORM, str(reference.message_id))

    async def _report(self, message: discord.Message, exc: UserFacingError, *, shown: bool
                      ) -> None:
        """Log an error met before the answer started (the database is down); if `shown`,
        also tell the person, in a reply to their message."""
        log.warning("%s: message %s could not be answered: %s", _where(message), message.id,
                    exc)
        if not shown:
            return
        try:
            await message.reply(f"{WARNING} {exc}", mention_author=False)
        except discord.HTTPException as failed:
            log.warning("%s: could not show the notice: %s", _where(message), failed)

    async def _open_thread(self, message: discord.Message, route: Route,
                           me: discord.ClientUser) -> Route:
        text = strip_mentions(message.content, me.id, _bot_role_id(message))
        fallback = message.attachments[0].filename if message.attachments else DEFAULT_THREAD_NAME
        try:
            thread = await message.create_thread(name=thread_name(text, fallback))
        except discord.HTTPException as exc:
            log.warning("%s: no thread for message %s (%s); answering in the channel",
                        _where(message), message.id, exc)
            return route
        log.info("%s: started thread %s", _where(message), thread.id)
        return Route(key_of_channel(thread, thread.guild.id), thread)

    async def _reply(self, message: discord.Message, route: Route, me: discord.ClientUser
                     ) -> None:
        author = message.author
        guild_id = message.guild.id if message.guild else None
        manages = (
            isinstance(author, discord.Member)
            and isinstance(route.channel, discord.abc.GuildChannel | discord.Thread)
            and route.channel.permissions_for(author).manage_channels
        )
        incoming = Incoming(
            key=route.key,
            author=author_of(
                author, can_configure=self._access.can_configure(author.id, guild_id, manages)
            ),
            text=strip_mentions(message.content, me.id, _bot_role_id(message)),
            attachments=self._files.attachments(message.attachments),
            message_id=str(message.id),
        )
        key = route.key

        async def on_stop(interaction: discord.Interaction) -> None:
            await self.stop(key, interaction)

        surface = DiscordSurface(route.channel, self._tuning, on_stop, route.reply_to)
        budget = self._budgets.for_scope(str(route.channel.id))
        log.info("%s: answering message %s from %s", key, message.id, author.id)
        try:
            await self._service.handle(incoming, surface, budget)
        finally:
            surface.close()


async def answer_finished(interaction: discord.Interaction) -> None:
    """A Stop click on a message whose reply is over (or was cut short by a restart)."""
    await interaction.response.send_message(FINISHED, ephemeral=True)


def _addressed(message: discord.Message, me: discord.ClientUser) -> bool:
    """Whether a message is for the bot as far as can be told without the database: a DM, a
    mention, a reply to the bot's own message, or a message in a thread the bot started."""
    if message.guild is None or mentions_bot(message.content, me.id, _bot_role_id(message)):
        return True
    reference = message.reference
    replied = reference.resolved if reference is not None else None
    if isinstance(replied, discord.Message) and replied.author.id == me.id:
        return True
    channel = message.channel
    return isinstance(channel, discord.Thread) and channel.owner_id == me.id


def _bot_role_id(message: discord.Message) -> int | None:
    role = message.guild.self_role if message.guild else None
    return role.id if role else None


def _where(message: discord.Message) -> str:
    guild = message.guild.id if message.guild else "dm"
    return f"discord guild {guild} channel {message.channel.id}"
