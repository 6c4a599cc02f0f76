"""The buttons on the bot's answers: Stop while an answer is written; Regenerate, 👍 and 👎
once it is finished.

Each button's custom id carries the conversation key, so any process of the bot, one started
after the button was drawn included, knows what a click means: nothing about a button is kept
in memory. The classes are discord.py dynamic items (register them with
`Client.add_dynamic_items`); a click is handed to the client (`interaction.client`), which
implements `HandlesClicks`.
"""

from __future__ import annotations

import logging
import re
from typing import Any, Protocol, runtime_checkable

import discord

from adapters.discord_bot.events import KEY_PATTERN, key_of_match
from bot import ConversationKey

log = logging.getLogger(__name__)

STOP_ID = "gemini:stop"
STOP_TEMPLATE = re.compile(rf"{STOP_ID}(?::{KEY_PATTERN})?")
"""`gemini:stop:<conversation key>`; a bare `gemini:stop` is a button drawn before the key was
carried (its answer is long over)."""
REGENERATE_ID = "gemini:regen"
REGENERATE_TEMPLATE = re.compile(rf"{REGENERATE_ID}:{KEY_PATTERN}")
RATE_ID = "gemini:rate"
RATE_TEMPLATE = re.compile(rf"{RATE_ID}:(?P<rating>up|down):{KEY_PATTERN}")
RATINGS = {"up": 1, "down": -1}
MAX_CUSTOM_ID = 100
"""Discord's limit for a custom id; the longest here, `gemini:rate:down:<key>` with 20-digit
ids, has 87 characters."""


def stop_custom_id(key: ConversationKey | None) -> str:
    """The Stop button's custom id for a reply in conversation `key`."""
    return STOP_ID if key is None else f"{STOP_ID}:{key}"


def regenerate_custom_id(key: ConversationKey) -> str:
    """The Regenerate button's custom id for an answer in conversation `key`."""
    return f"{REGENERATE_ID}:{key}"


def rate_custom_id(key: ConversationKey, value: int) -> str:
    """The 👍 (`value` 1) or 👎 (-1) button's custom id for an answer in conversation `key`."""
    return f"{RATE_ID}:{'up' if value > 0 else 'down'}:{key}"


@runtime_checkable
class HandlesClicks(Protocol):
    """What a click is handed to: the bot's client (`interaction.client`)."""

    async def stop_answer(self, key: ConversationKey | None,
                          interaction: discord.Interaction[Any]) -> None:
        """Stop the answer being written in `key` (None: a button with no key) if the
        clicker may, and tell them what happened."""
        ...

    async def regenerate_answer(self, key: ConversationKey,
                                interaction: discord.Interaction[Any]) -> None:
        """Answer the question of the clicked answer again, if the clicker may."""
        ...

    async def rate_answer(self, value: int, interaction: discord.Interaction[Any]) -> None:
        """Store the clicker's 👍 (1) or 👎 (-1) for the clicked answer."""
        ...


def _client(interaction: discord.Interaction[Any]) -> HandlesClicks | None:
    client = interaction.client
    if isinstance(client, HandlesClicks):
        return client
    log.warning("discord: a button click reached a client that cannot handle it")
    return None


class StopButton(discord.ui.DynamicItem[discord.ui.Button[discord.ui.View]],
                 template=STOP_TEMPLATE):
    """A reply's Stop button, shown while the answer is written."""

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
        return cls(None if match["thread"] is None else key_of_match(match))

    async def callback(self, interaction: discord.Interaction[Any]) -> None:
        """Hand the click to the client."""
        if client := _client(interaction):
            await client.stop_answer(self.key, interaction)


class RegenerateButton(discord.ui.DynamicItem[discord.ui.Button[discord.ui.View]],
                       template=REGENERATE_TEMPLATE):
    """A finished answer's Regenerate button: answer the same question again instead."""

    def __init__(self, key: ConversationKey) -> None:
        super().__init__(discord.ui.Button(label="Regenerate", emoji="🔁",
                                           style=discord.ButtonStyle.secondary,
                                           custom_id=regenerate_custom_id(key)))
        self.key = key

    @classmethod
    async def from_custom_id(cls, interaction: discord.Interaction[Any],
                             item: discord.ui.Item[Any], match: re.Match[str], /
                             ) -> RegenerateButton:
        """The button a click's custom id describes."""
        return cls(key_of_match(match))

    async def callback(self, interaction: discord.Interaction[Any]) -> None:
        """Hand the click to the client."""
        if client := _client(interaction):
            await client.regenerate_answer(self.key, interaction)


class RateButton(discord.ui.DynamicItem[discord.ui.Button[discord.ui.View]],
                 template=RATE_TEMPLATE):
    """A finished answer's 👍 (`value` 1) or 👎 (-1) button."""

    def __init__(self, key: ConversationKey, value: int) -> None:
        super().__init__(discord.ui.Button(emoji="👍" if value > 0 else "👎",
                                           style=discord.ButtonStyle.secondary,
                                           custom_id=rate_custom_id(key, value)))
        self.key, self.value = key, value

    @classmethod
    async def from_custom_id(cls, interaction: discord.Interaction[Any],
                             item: discord.ui.Item[Any], match: re.Match[str], /
                             ) -> RateButton:
        """The button a click's custom id describes."""
        return cls(key_of_match(match), RATINGS[match["rating"]])

    async def callback(self, interaction: discord.Interaction[Any]) -> None:
        """Hand the click to the client."""
        if client := _client(interaction):
            await client.rate_answer(self.value, interaction)


BUTTONS = (StopButton, RegenerateButton, RateButton)
"""Every button class, for `Client.add_dynamic_items`."""


def stop_view(key: ConversationKey) -> discord.ui.View:
    """The controls of a message still being written: the Stop button for `key`."""
    view = discord.ui.View(timeout=None)
    view.add_item(StopButton(key))
    return view


def answer_view(key: ConversationKey) -> discord.ui.View:
    """The controls of a finished answer in `key`: Regenerate, 👍, 👎, in one row."""
    view = discord.ui.View(timeout=None)
    for item in (RegenerateButton(key), RateButton(key, 1), RateButton(key, -1)):
        view.add_item(item)
    return view
