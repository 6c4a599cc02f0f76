"""Answering Discord messages the routing picked: open the thread, hand the message and a
surface to the core, report what failed before the answer started. Edited questions and the
clicks on an answer's buttons (Stop, Regenerate, 👍, 👎) go to the core the same way."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import discord

from adapters.common import Answering, PlatformTuning
from adapters.discord_bot.access import Access
from adapters.discord_bot.events import (
    DEFAULT_THREAD_NAME,
    PLATFORM,
    author_of,
    edit_event_id,
    interaction_author,
    interaction_refusal,
    key_of_channel,
    strip_mentions,
    thread_name,
    where,
)
from adapters.discord_bot.files import DiscordFiles
from adapters.discord_bot.routing import (
    Destination,
    bot_role_id,
    edited_conversation,
    may_be_for_the_bot,
    plainly_addressed,
    route,
)
from adapters.discord_bot.surface import DiscordSurface
from bot import (
    WARNING,
    ConversationKey,
    EditBudget,
    EditBudgets,
    Incoming,
    Service,
    UserFacingError,
)

if TYPE_CHECKING:
    from discord.abc import MessageableChannel

log = logging.getLogger(__name__)

FINISHED = "This answer is no longer being written, so there is nothing to stop."
CLICK_FAILED = f"{WARNING} Something went wrong on my side; please try again."


class Replies:
    """Hands the messages `routing` picks to the core, each with a surface in its place.

    When the database fails before the answer starts, a message that is plainly for the bot
    gets the error as a notice; others are only logged (the bot cannot tell them apart).
    Every answer, whether to a new message, an edited one or a Regenerate click, counts as
    being written in its conversation until it ends, so Stop knows what it can stop.
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
            await self._reply(message, destination, me, self._service.handle)
        except UserFacingError as exc:
            shown = destination is not None or plainly_addressed(message, me)
            await self._report(message, exc, shown=shown)
        except Exception:
            log.exception("%s: failed to answer message %s", where(message), message.id)

    async def answer_edit(self, message: discord.Message, me: discord.ClientUser) -> None:
        """A person edited `message`: if it is a question of a conversation the bot is part
        of, the core answers it again when it is that conversation's latest and its content
        changed (drawn where the conversation's answers go). Failures are logged (and shown
        in the conversation), never raised."""
        destination: Destination | None = None
        try:
            event_id = edit_event_id(message)
            if event_id is None or not may_be_for_the_bot(message, self._access):
                return
            channel = await _resolved_channel(message)
            key = await edited_conversation(message, channel, self._access, self._service)
            if key is None:
                return
            destination = await _edit_destination(message, channel, key)
            await self._reply(message, destination, me, self._service.answer_edited,
                              event_id=event_id)
        except UserFacingError as exc:
            await self._report(message, exc, shown=destination is not None)
        except Exception:
            log.exception("%s: failed to answer the edit of message %s", where(message),
                          message.id)

    async def regenerate(self, key: ConversationKey, interaction: discord.Interaction[Any]
                         ) -> None:
        """A Regenerate click on an answer in conversation `key`: acknowledge it at once,
        then have the core answer the question again in the clicked answer's channel. A
        refusal (not the latest answer, not the asker or a channel manager) goes to the
        clicker alone."""
        refusal = interaction_refusal(interaction, self._access)
        if refusal is not None:
            await interaction.response.send_message(refusal, ephemeral=True)
            return
        await interaction.response.defer()
        clicked, channel = interaction.message, interaction.channel
        if clicked is None or not isinstance(channel, discord.abc.Messageable):
            log.warning("%s: a Regenerate click without its message or channel", key)
            await interaction.followup.send(CLICK_FAILED, ephemeral=True)
            return
        user = interaction_author(interaction, self._access)
        inline = interaction.guild_id is not None and not isinstance(channel, discord.Thread)
        surface, budget = self._surface(channel, key, clicked if inline else None)
        log.info("%s: Regenerate clicked by %s on message %s", key, user.id, clicked.id)
        try:
            with self._answering(key):
                refused = await self._service.regenerate(key, str(clicked.id), user, surface,
                                                         budget)
        except UserFacingError as exc:
            refused = f"{WARNING} {exc}"
        if refused is not None:
            log.info("%s: Regenerate refused to %s: %s", key, user.id, refused)
            await interaction.followup.send(refused, ephemeral=True)

    async def rate(self, value: int, interaction: discord.Interaction[Any]) -> None:
        """A 👍 (`value` 1) or 👎 (-1) click: store it for the clicked answer and thank the
        clicker alone."""
        text = interaction_refusal(interaction, self._access) or await self._rated(
            value, interaction)
        await interaction.response.send_message(text, ephemeral=True)

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

    async def _rated(self, value: int, interaction: discord.Interaction[Any]) -> str:
        clicked = interaction.message
        if clicked is None:
            log.warning("discord: a rating click without its message")
            return CLICK_FAILED
        user = interaction_author(interaction, self._access)
        try:
            text = await self._service.rate(PLATFORM, str(clicked.id), user, value)
        except UserFacingError as exc:
            return f"{WARNING} {exc}"
        log.info("discord: %s rated message %s %+d", user.id, clicked.id, value)
        return text

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
                     me: discord.ClientUser, answering: Answering, *,
                     event_id: str | None = None) -> None:
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
            event_id=event_id,
            message_id=str(message.id),
        )
        surface, budget = self._surface(channel, key, destination.reply_to)
        log.info("%s: answering %s %s from %s", key, "the edit of message" if event_id else
                 "message", message.id, author.id)
        with self._answering(key):
            await answering(incoming, surface, budget)

    def _surface(self, channel: MessageableChannel, key: ConversationKey,
                 reply_to: discord.Message | None) -> tuple[DiscordSurface, EditBudget]:
        """A surface for one answer in `channel`, with the channel's edit budget."""
        budget = self._budgets.for_scope(str(channel.id))
        return DiscordSurface(channel, self._tuning, key, reply_to, budget), budget

    @contextmanager
    def _answering(self, key: ConversationKey) -> Iterator[None]:
        """Count an answer in `key` as being written (or waiting its turn) meanwhile."""
        self._writing[key] += 1
        try:
            yield
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


async def _edit_destination(message: discord.Message, channel: MessageableChannel,
                            key: ConversationKey) -> Destination:
    """Where the answer to an edited question of conversation `key` goes: its thread or DM;
    for a channel message that opened the conversation, the thread opened on it (inline, as a
    Discord reply, when it has none, as when the bot could not open one)."""
    if message.guild is None or isinstance(channel, discord.Thread):
        return Destination(key, channel)
    if key.thread == str(message.id):
        thread = message.thread
        if thread is None:
            try:
                thread = await message.fetch_thread()
            except (discord.NotFound, discord.Forbidden):
                thread = None
        if thread is not None:
            return Destination(key, thread)
    return Destination(key, channel, reply_to=message)
