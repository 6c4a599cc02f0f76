"""Which Discord messages are for the bot, and where each one's answer goes.

- In a DM every message is for the bot; the DM is one conversation.
- A mention in a server channel starts a conversation keyed by the message: the answer opens
  a public thread on it (inline, as a Discord reply, when no thread can be made there).
- In a thread: a mention, or any message once the bot is part of it (it started the thread,
  or has answered there before).
- A Discord reply to one of the bot's messages continues that message's conversation: a
  plain reply in the same channel only, never a forward or a reference from elsewhere.
- Bots, system messages (joins, pins), servers off DISCORD_GUILD_ALLOWLIST (and DMs with
  DISCORD_ALLOW_DMS off) and people or channels outside the allow-lists get nothing.
- An edited message matters only if it is a question the bot took in (the database maps it
  to its conversation); whether it is the latest one is the core's call.

The decision reads the message and the database only (through `Conversations`): fetching a
thread missing from discord.py's cache, opening threads and answering are `replies`' work.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import discord

from adapters.discord_bot.access import Access
from adapters.discord_bot.events import (
    CONVERSATIONAL,
    PLATFORM,
    conversation_key,
    key_of_channel,
    mentions_bot,
    scope_channel_id,
    where,
)
from bot import ConversationKey

if TYPE_CHECKING:
    from discord.abc import MessageableChannel

log = logging.getLogger(__name__)


class Conversations(Protocol):
    """What routing asks the database (the core's Service answers both)."""

    async def knows(self, key: ConversationKey) -> bool:
        """Whether the bot has taken part in conversation `key`."""
        ...

    async def conversation_of_message(self, platform: str, message_id: str
                                      ) -> ConversationKey | None:
        """The conversation a platform message belongs to, if any."""
        ...


@dataclass(frozen=True, slots=True)
class Destination:
    """Where a message's answer goes: its conversation, the channel, and how it starts
    (`reply_to`: as a Discord reply to the question; `start_thread`: in a new thread on it)."""

    key: ConversationKey
    channel: MessageableChannel
    reply_to: discord.Message | None = None
    start_thread: bool = False


def may_be_for_the_bot(message: discord.Message, access: Access) -> bool:
    """The first look, before any request: a person's message of a kind people write, from
    a server (or DM) the bot serves."""
    if message.author.bot or message.type not in CONVERSATIONAL:
        return False
    guild = message.guild
    if not access.serves(guild.id if guild else None):
        log.debug("%s: message %s is from a place the bot does not serve", where(message),
                  message.id)
        return False
    return True


async def route(message: discord.Message, channel: MessageableChannel, me: discord.ClientUser,
                access: Access, conversations: Conversations) -> Destination | None:
    """Where the answer to `message` goes, or None when it is not for the bot. `channel` is
    the message's channel (a thread fetched when discord.py's cache lacked it); call it for
    messages `may_be_for_the_bot` kept."""
    guild = message.guild
    if not _allowed(message, channel, access):
        log.info("%s: message %s from %s is outside the allow-lists", where(message),
                 message.id, message.author.id)
        return None
    if guild is None:
        return Destination(key_of_channel(channel, None), channel)
    replied = await _replied_conversation(message, conversations)
    in_thread = isinstance(channel, discord.Thread)
    if replied is not None:
        return Destination(replied, channel, reply_to=None if in_thread else message)
    mentioned = mentions_bot(message.content, me.id, bot_role_id(message))
    if isinstance(channel, discord.Thread):
        key = key_of_channel(channel, guild.id)
        if mentioned or channel.owner_id == me.id or await conversations.knows(key):
            return Destination(key, channel)
        return None
    if mentioned:
        key = conversation_key(guild.id, message.id, channel.id)
        return Destination(key, channel, reply_to=message, start_thread=True)
    return None


async def edited_conversation(message: discord.Message, channel: MessageableChannel,
                              access: Access, conversations: Conversations
                              ) -> ConversationKey | None:
    """The conversation whose question `message` (just edited, in `channel`) is, or None:
    a message the bot never took in, or a person now outside the allow-lists. Call it for
    messages `may_be_for_the_bot` kept."""
    if not _allowed(message, channel, access):
        return None
    key = await conversations.conversation_of_message(PLATFORM, str(message.id))
    if key is None or str(channel.id) not in (key.channel, key.thread):
        return None
    return key


def plainly_addressed(message: discord.Message, me: discord.ClientUser) -> bool:
    """Whether a message is for the bot as far as can be told without the database: a DM, a
    mention, a reply to the bot's own message, or a message in a thread the bot started."""
    if message.guild is None or mentions_bot(message.content, me.id, bot_role_id(message)):
        return True
    reference = message.reference
    replied = reference.resolved if reference is not None else None
    if isinstance(replied, discord.Message) and replied.author.id == me.id:
        return True
    channel = message.channel
    return isinstance(channel, discord.Thread) and channel.owner_id == me.id


def bot_role_id(message: discord.Message) -> int | None:
    """The bot's own role in the message's server (mentioning it mentions the bot)."""
    role = message.guild.self_role if message.guild else None
    return role.id if role else None


def _allowed(message: discord.Message, channel: discord.abc.Snowflake, access: Access) -> bool:
    author = message.author
    roles = [r.id for r in author.roles] if isinstance(author, discord.Member) else None
    guild_id = message.guild.id if message.guild else None
    return access.allows(author.id, scope_channel_id(channel, guild_id), roles)


async def _replied_conversation(message: discord.Message, conversations: Conversations
                                ) -> ConversationKey | None:
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
    return await conversations.conversation_of_message(PLATFORM, str(reference.message_id))
