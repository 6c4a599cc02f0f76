"""Reading Discord messages and interactions in the core's terms: keys, mentions, authors."""

from __future__ import annotations

import re

import discord

from adapters.discord_bot.access import Access
from bot import Author, ConversationKey

PLATFORM = "discord"
DM_WORKSPACE = "dm"
THREAD_NAME_MAX = 100
"""Discord's limit for a thread name."""
THREAD_NAME_WORDS = 60
"""A thread is named from the question's first words, up to about this many characters."""
DEFAULT_THREAD_NAME = "Gemini"
CONVERSATIONAL = (discord.MessageType.default, discord.MessageType.reply)
"""Message types people write; joins, pins and thread notices are not questions."""
KEY_PATTERN = (rf"{PLATFORM}:(?P<workspace>{DM_WORKSPACE}|\d{{1,20}}):(?P<channel>\d{{1,20}})"
               r":(?P<thread>\d{1,20})")
"""A conversation key as it appears in a button's custom id (`str(ConversationKey)`)."""
NOT_HERE = "I'm not available to you here: the bot's operator limits it to some channels or roles."


def conversation_key(
    guild_id: int | None, channel_id: int, parent_id: int | None
) -> ConversationKey:
    """The conversation a channel holds: a thread (with its parent's settings), a DM, a channel.

    A thread started from a message has the message's id, so a conversation that starts at a
    top-level message is keyed by that message's id whether it lives in a thread or inline.
    """
    if guild_id is None:
        return ConversationKey(PLATFORM, DM_WORKSPACE, str(channel_id), str(channel_id))
    return ConversationKey(PLATFORM, str(guild_id), str(parent_id or channel_id), str(channel_id))


def key_of_channel(channel: discord.abc.Snowflake, guild_id: int | None) -> ConversationKey:
    """The conversation of a discord.py channel (a thread uses its parent's settings)."""
    parent_id = channel.parent_id if isinstance(channel, discord.Thread) else None
    return conversation_key(guild_id, channel.id, parent_id)


def key_of_match(match: re.Match[str]) -> ConversationKey:
    """The conversation key a match of KEY_PATTERN names."""
    return ConversationKey(PLATFORM, match["workspace"], match["channel"], match["thread"])


def scope_channel_id(channel: discord.abc.Snowflake, guild_id: int | None) -> int | None:
    """The channel an allow-list is checked against: a thread's parent; None in a DM."""
    if guild_id is None:
        return None
    return channel.parent_id if isinstance(channel, discord.Thread) else channel.id


def _mention_pattern(bot_id: int, role_id: int | None) -> re.Pattern[str]:
    role = rf"|<@&{role_id}>" if role_id is not None else ""
    return re.compile(rf"<@!?{bot_id}>{role}")


def mentions_bot(content: str, bot_id: int, role_id: int | None = None) -> bool:
    """Whether the text mentions the bot itself (or its own role), not merely replies to it.

    A reply pings the replied-to author, so `message.mentions` alone cannot tell the two apart.
    """
    return _mention_pattern(bot_id, role_id).search(content) is not None


def strip_mentions(content: str, bot_id: int, role_id: int | None = None) -> str:
    """The text without the bot's mentions, whitespace tidied where they were."""
    text = _mention_pattern(bot_id, role_id).sub(" ", content)
    return re.sub(r"[ \t]{2,}", " ", text).strip()


def thread_name(text: str, fallback: str = DEFAULT_THREAD_NAME) -> str:
    """A thread name from the question's first words (Discord allows 1 to 100 characters)."""
    words = re.sub(r"\s+", " ", re.sub(r"<[@#][!&]?\d+>", " ", text)).strip()
    if not words:
        return fallback[:THREAD_NAME_MAX] or DEFAULT_THREAD_NAME
    if len(words) <= THREAD_NAME_WORDS:
        return words
    cut = words.rfind(" ", 0, THREAD_NAME_WORDS + 1)
    head = words[: cut if cut > 0 else THREAD_NAME_WORDS].rstrip(" ,;:.-")
    return (head + "…")[:THREAD_NAME_MAX]


def author_of(user: discord.abc.User, *, can_configure: bool) -> Author:
    """The core's view of a message's or an interaction's author."""
    return Author(
        id=str(user.id), name=user.display_name, is_bot=user.bot, can_configure=can_configure
    )


def interaction_author(interaction: discord.Interaction, access: Access) -> Author:
    """The person behind a command or a click; Manage Channels (or an admin ID) configures."""
    can_configure = access.can_configure(
        interaction.user.id, interaction.guild_id, interaction.permissions.manage_channels
    )
    return author_of(interaction.user, can_configure=can_configure)


def interaction_channel(interaction: discord.Interaction) -> discord.abc.Snowflake:
    """The channel, thread or DM a command or click was used in."""
    if interaction.channel is not None:
        return interaction.channel
    if interaction.channel_id is None:
        raise ValueError("an interaction without a channel")
    return discord.Object(interaction.channel_id)


def interaction_refusal(interaction: discord.Interaction, access: Access) -> str | None:
    """Why a command or click is refused here (an unserved server or DM, the allow-lists);
    None when it is not."""
    unserved = access.unserved_note(interaction.guild_id)
    if unserved is not None:
        return unserved
    user = interaction.user
    roles = [r.id for r in user.roles] if isinstance(user, discord.Member) else None
    scope = scope_channel_id(interaction_channel(interaction), interaction.guild_id)
    return None if access.allows(user.id, scope, roles) else NOT_HERE


def edited_by_a_person(update: discord.RawMessageUpdateEvent) -> bool:
    """Whether a message update is a person's edit that may change what they asked: not a
    bot's message, stamped as edited, and, when discord.py had the message cached, with other
    text or files than before. (A link preview added to a message is an update too; it leaves
    the edit stamp as it was, so a repeat of an earlier edit's event id.)"""
    message, before = update.message, update.cached_message
    if message.author.bot or message.edited_at is None:
        return False
    return before is None or before.content != message.content or (
        [a.id for a in before.attachments] != [a.id for a in message.attachments])


def edit_event_id(message: discord.Message) -> str | None:
    """The event id of a person's edit of `message` (`edit:<message id>:<edited time>`, the
    same for each delivery of one edit); None when the update is no edit of theirs (a link
    preview added, a bot's message)."""
    if message.edited_at is None or message.author.bot:
        return None
    return f"edit:{message.id}:{message.edited_at.isoformat()}"


def where(message: discord.Message) -> str:
    """The message's place for log lines: `discord guild <id or dm> channel <id>`."""
    guild = message.guild.id if message.guild else "dm"
    return f"discord guild {guild} channel {message.channel.id}"
