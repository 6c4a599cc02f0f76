"""Drawing a reply in a Discord channel: post, paced edits, typing, and the Stop button."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import discord

from bot import DeliveryFailed, RateLimited, SurfaceLimits

log = logging.getLogger(__name__)

STOP_ID = "gemini:stop"
"""The Stop button's custom id; fixed, so a click after a restart still reaches the bot."""

OnClick = Callable[[discord.Interaction], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class DiscordTuning:
    """Discord's limits as the bot applies them (tests shrink the pace to run fast).

    A message holds `max_message_chars`; one message is edited at most every
    `min_edit_interval` seconds; edits in one channel or thread share `edit_rate` per
    `edit_period` seconds (Discord's per-channel bucket) with bursts of `edit_burst`.
    """

    max_message_chars: int = 2_000
    min_edit_interval: float = 1.0
    edit_rate: int = 5
    edit_period: float = 5.0
    edit_burst: int = 2

    @property
    def limits(self) -> SurfaceLimits:
        """The limits the core's renderer works within (final edits remove the Stop button)."""
        return SurfaceLimits(self.max_message_chars, self.min_edit_interval, final_edit_marks=True)


class StopView(discord.ui.View):
    """The Stop button; `on_click` decides what a click does."""

    def __init__(self, on_click: OnClick) -> None:
        super().__init__(timeout=None)
        self._on_click = on_click

    @discord.ui.button(label="Stop", emoji="⏹️", style=discord.ButtonStyle.secondary,
                       custom_id=STOP_ID)
    async def stop_answer(self, interaction: discord.Interaction,
                          button: discord.ui.Button[StopView]) -> None:
        """Pass the click on."""
        await self._on_click(interaction)


@contextmanager
def _platform_errors(what: str) -> Iterator[None]:
    try:
        yield
    except discord.RateLimited as exc:
        raise RateLimited(exc.retry_after) from exc
    except (discord.NotFound, discord.Forbidden) as exc:
        raise DeliveryFailed(f"{what}: {exc}") from exc
    except discord.HTTPException as exc:
        if exc.status == 429:
            raise RateLimited(1.0) from exc
        raise


class DiscordSurface:
    """One reply in one channel, thread or DM.

    Messages still being written carry a Stop button (a view of their own, so a click names
    the exact reply); the final edit removes it. `reply_to` makes the first message a Discord
    reply to the question (answers outside a thread). Call `close` when the reply is done.
    """

    def __init__(self, channel: discord.abc.Messageable, tuning: DiscordTuning,
                 on_stop: OnClick, reply_to: discord.Message | None = None) -> None:
        self._channel = channel
        self._limits = tuning.limits
        self._on_stop = on_stop
        self._reply_to = reply_to
        self._messages: dict[int, discord.Message] = {}
        self._views: dict[int, StopView] = {}

    @property
    def limits(self) -> SurfaceLimits:
        """Discord's limits for this reply."""
        return self._limits

    async def post(self, text: str, *, final: bool) -> str:
        """Send a message (with the Stop button unless final)."""
        options: dict[str, Any] = {}
        view = None if final else StopView(self._on_stop)
        if view is not None:
            options["view"] = view
        if self._reply_to is not None and not self._messages:
            options["reference"] = self._reply_to.to_reference(fail_if_not_exists=False)
        with _platform_errors("posting"):
            message = await self._channel.send(text, **options)
        self._messages[message.id] = message
        if view is not None:
            self._views[message.id] = view
        return str(message.id)

    async def edit(self, message_id: str, text: str, *, final: bool) -> None:
        """Replace a message's text; the final edit also removes its Stop button."""
        message = self._messages[int(message_id)]
        with _platform_errors("editing"):
            if final:
                await message.edit(content=text, view=None)
            else:
                await message.edit(content=text)
        if final:
            self._release(message.id)

    async def show_progress(self) -> None:
        """Show "is typing…" (Discord shows it for about 10 seconds)."""
        with _platform_errors("typing"):
            await self._channel.typing()

    async def notify(self, text: str) -> None:
        """Post a short notice (a skipped attachment, an error)."""
        with _platform_errors("posting a notice"):
            await self._channel.send(text)

    def close(self) -> None:
        """Stop listening for clicks on this reply's buttons."""
        for message_id in list(self._views):
            self._release(message_id)

    def _release(self, message_id: int) -> None:
        view = self._views.pop(message_id, None)
        if view is not None:
            view.stop()
